import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context, SQSRecord } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import type { PublishResult } from '../../lib/delivery/publish.js';
import { handleQueueBatch, requestFromRecord } from '../../lib/edge/batch.js';
import { handleHttp } from '../../lib/edge/http.js';
import { webSocketErrors } from '../../lib/edge/middleware.js';
import type { Operations } from '../../lib/edge/operations.js';
import { UnauthorizedError } from '../../lib/errors.js';
import { InternalError, TooLargeError, ValidationError } from './ingress-fakes.js';

/** Operations that record what they were asked, and answer with `answer`. */
function fakeOperations(answer: (input: unknown) => unknown = () => ({ ok: true })) {
  const calls: { operation: string; input: unknown }[] = [];
  const record = (operation: string) => async (input: unknown) => {
    calls.push({ operation, input });
    return answer(input) as never;
  };
  const operations: Operations = {
    publish: record('publish'),
    presence: record('presence'),
    kick: record('kick'),
    status: record('status'),
    devices: record('devices'),
  };
  return { operations, calls };
}
const quietLogger = { info: () => {}, error: () => {}, warn: () => {} };

/** A REST (payload 1.0) event as API Gateway and serverless-offline send it. */
const restEvent = (path: string, body: string | null, extra: Record<string, unknown> = {}) => ({
  resource: path,
  path,
  httpMethod: 'POST',
  headers: { 'content-type': 'application/json' },
  requestContext: { resourcePath: path, httpMethod: 'POST', stage: 'prod' },
  body,
  isBase64Encoded: false,
  ...extra,
});

describe('HTTP API', () => {
  it('routes POST /publish to publish and answers 200 with the result as JSON', async () => {
    // Prepare
    const { operations, calls } = fakeOperations(() => ({ id: 'm1', delivered: 1 }));

    // Act
    const response = await handleHttp(restEvent('/publish', '{"userId":"alice","data":{"hi":1}}'), {
      operations,
      logger: quietLogger,
    });

    // Assess
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    expect(JSON.parse(response.body)).toEqual({ id: 'm1', delivered: 1 });
    expect(calls).toEqual([{ operation: 'publish', input: { userId: 'alice', data: { hi: 1 } } }]);
  });

  it('reads HTTP API (2.0) events and base64 bodies too', async () => {
    // Prepare
    const { operations, calls } = fakeOperations();
    const event = {
      version: '2.0',
      routeKey: 'POST /presence',
      rawPath: '/prod/presence',
      requestContext: { http: { method: 'POST' } },
      body: Buffer.from('{"topic":"news"}').toString('base64'),
      isBase64Encoded: true,
    };

    // Act
    const response = await handleHttp(event, { operations, logger: quietLogger });

    // Assess
    expect(response.statusCode).toBe(200);
    expect(calls).toEqual([{ operation: 'presence', input: { topic: 'news' } }]);
  });

  it.each([
    ['a refused request', new ValidationError('data is required'), 400, 'invalid_request'],
    ['an oversize message', new TooLargeError('message is 200000 bytes'), 413, 'too_large'],
    [
      'our own failure, without its details',
      new InternalError('ECONNREFUSED 10.0.0.1'),
      500,
      'internal',
    ],
  ])(
    'answers %s with its status and {error:{code,message}}',
    async (_what, error, status, code) => {
      // Prepare
      const { operations } = fakeOperations(() => {
        throw error;
      });

      // Act
      const response = await handleHttp(restEvent('/kick', '{"userId":"a"}'), {
        operations,
        logger: quietLogger,
      });

      // Assess
      expect(response.statusCode).toBe(status);
      const body = JSON.parse(response.body);
      expect(body.error.code).toBe(code);
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
      if (status === 500) expect(body.error.message).not.toContain('ECONNREFUSED');
    },
  );

  it('refuses a body that is not JSON, a missing body, an unknown path and GET', async () => {
    // Prepare
    const { operations, calls } = fakeOperations();
    const deps = { operations, logger: quietLogger };

    // Act
    const notJson = await handleHttp(restEvent('/publish', '{"userId":'), deps);
    const empty = await handleHttp(restEvent('/publish', null), deps);
    const unknown = await handleHttp(restEvent('/broadcast', '{}'), deps);
    const get = await handleHttp(restEvent('/publish', '{}', { httpMethod: 'GET' }), deps);

    // Assess
    expect([notJson.statusCode, empty.statusCode, unknown.statusCode, get.statusCode]).toEqual([
      400, 400, 404, 405,
    ]);
    expect(JSON.parse(notJson.body).error).toEqual({
      code: 'invalid_request',
      message: 'the body is not valid JSON',
    });
    expect(calls).toEqual([]);
  });

  it('answers a path caught by the /{proxy+} resource with 404 naming the path asked for', async () => {
    // Prepare
    const { operations, calls } = fakeOperations();
    const event = restEvent('/{proxy+}', '{}', { path: '/publish/extra' });

    // Act
    const response = await handleHttp(event, { operations, logger: quietLogger });

    // Assess
    expect(response.statusCode).toBe(404);
    expect(JSON.parse(response.body).error).toEqual({
      code: 'not_found',
      message: 'no route /publish/extra: POST /publish, /presence, /kick, /status or /devices',
    });
    expect(calls).toEqual([]);
  });
});

/** An SQS record as Lambda's event source mapping delivers it. */
const sqsRecord = (messageId: string, body: string, receiveCount = '1'): SQSRecord => ({
  messageId,
  receiptHandle: `rh-${messageId}`,
  body,
  attributes: {
    ApproximateReceiveCount: receiveCount,
    SentTimestamp: '1732752000000',
    SenderId: 'AIDAEXAMPLE',
    ApproximateFirstReceiveTimestamp: '1732752000001',
  },
  messageAttributes: {},
  md5OfBody: 'x',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:pushwire-prod-publish',
  awsRegion: 'us-east-1',
});

/** An EventBridge event as the rule's SQS target receives it (the whole event as body). */
const eventBridgeEvent = (detail: unknown, detailType = 'pushwire.publish') => ({
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': detailType,
  source: 'com.example.orders',
  account: '123456789012',
  time: '2026-11-28T06:00:00Z',
  region: 'us-east-1',
  resources: [],
  detail,
});

describe('queue and event bus', () => {
  it('takes the request from a plain message, with the SQS message id as default id', () => {
    // Act
    const request = requestFromRecord(sqsRecord('m-1', '{"userId":"a","data":1}'));

    // Assess
    expect(request).toEqual({ userId: 'a', data: 1, id: 'm-1' });
  });

  it('takes the request from an EventBridge event, with the event id as default id', () => {
    // Act
    const request = requestFromRecord(
      sqsRecord('m-2', JSON.stringify(eventBridgeEvent({ topic: 'news', data: 'x' }))),
    );
    const own = requestFromRecord(
      sqsRecord('m-3', JSON.stringify(eventBridgeEvent({ topic: 'news', data: 'x', id: 'mine' }))),
    );

    // Assess
    expect(request).toEqual({
      topic: 'news',
      data: 'x',
      id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
    });
    expect(own).toEqual({ topic: 'news', data: 'x', id: 'mine' });
  });

  it('gives each message of a batch publish without an id `<message id>:<index>`, stable across redeliveries', () => {
    // Act
    const body = {
      messages: [
        { userId: 'a', data: 1 },
        { id: 'own', topic: 'news', data: 2 },
      ],
    };
    const request = requestFromRecord(sqsRecord('m-4', JSON.stringify(body)));
    const event = requestFromRecord(sqsRecord('m-5', JSON.stringify(eventBridgeEvent(body))));

    // Assess
    expect(request).toEqual({
      messages: [
        { userId: 'a', data: 1, id: 'm-4:0' },
        { id: 'own', topic: 'news', data: 2 },
      ],
    });
    expect(event).toEqual({
      messages: [
        { userId: 'a', data: 1, id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718:0' },
        { id: 'own', topic: 'news', data: 2 },
      ],
    });
  });

  it('reports only the failed messages of a batch, for SQS to redeliver', async () => {
    // Prepare
    const { operations, calls } = fakeOperations((input) => {
      const request = input as { userId?: string };
      if (request.userId === 'boom') throw new InternalError('redis timeout');
      return { id: 'ok' } as Partial<PublishResult>;
    });
    const event = {
      Records: [
        sqsRecord('good-1', '{"userId":"a","data":1}'),
        sqsRecord('bad-json', '{"userId":'),
        sqsRecord('failing', '{"userId":"boom","data":1}', '2'),
        sqsRecord('wrong-type', JSON.stringify(eventBridgeEvent({}, 'orders.created'))),
        sqsRecord('good-2', JSON.stringify(eventBridgeEvent({ userId: 'b', data: 2 }))),
      ],
    };

    // Act
    const response = await handleQueueBatch(event, { operations, logger: quietLogger });

    // Assess
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual([
      'bad-json',
      'failing',
      'wrong-type',
    ]);
    expect(calls.map((c) => (c.input as { id: string }).id).sort()).toEqual([
      '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
      'failing',
      'good-1',
    ]);
  });

  it('reports a wholly failed batch as failures rather than throwing', async () => {
    // Prepare
    const { operations } = fakeOperations(() => {
      throw new InternalError('down');
    });

    // Act
    const response = await handleQueueBatch(
      { Records: [sqsRecord('x', '{"userId":"a","data":1}')] },
      { operations, logger: quietLogger },
    );

    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'x' }] });
  });

  it('refuses an event that is neither SQS nor EventBridge', async () => {
    // Act
    const call = handleQueueBatch(
      { hello: 1 },
      { operations: fakeOperations().operations, logger: quietLogger },
    );

    // Assess
    await expect(call).rejects.toThrow(/not an SQS event/);
  });
});

describe('metrics', () => {
  it('emits a publish as EMF: counts and duration under namespace pushwire', async () => {
    // Prepare
    const { recordPublish } = await import('../../lib/observability/metrics.js');
    const metrics = new Metrics({ namespace: 'pushwire', serviceName: 'pushwire-test' });

    // Act
    recordPublish(metrics, { recipients: 5, delivered: 3, gone: 1, failed: 1, chunks: 0 }, 12.5);
    const emf = metrics.serializeMetrics();

    // Assess
    const [directive] = emf._aws.CloudWatchMetrics;
    expect(directive?.Namespace).toBe('pushwire');
    expect(directive?.Dimensions).toEqual([['service']]);
    expect(emf).toMatchObject({
      service: 'pushwire-test',
      Publishes: 1,
      PublishRecipients: 5,
      PublishDelivered: 3,
      PublishGone: 1,
      PublishFailed: 1,
      PublishChunks: 0,
      PublishDuration: 12.5,
    });
  });

  it.each([
    [{ recovered: true, gone: false }, 'recovered'],
    [{ recovered: false, gone: false }, 'not_recovered'],
    [{ recovered: true, gone: true }, 'gone'],
    [{ recovered: false, gone: false, complete: false }, 'stopped'],
  ])('counts a replay ending %j as outcome %s', async (outcome, expected) => {
    // Prepare
    const { recordReplay } = await import('../../lib/observability/metrics.js');
    const dimensions: Record<string, string>[] = [];
    const recorder = {
      addMetric: () => undefined,
      singleMetric: () => {
        const single: Record<string, string> = {};
        dimensions.push(single);
        return {
          addDimension: (name: string, value: string) => {
            single[name] = value;
          },
          addMetric: (name: string) => {
            single['metric'] = name;
          },
        };
      },
    };

    // Act
    recordReplay(recorder, outcome);

    // Assess
    expect(dimensions).toEqual([{ outcome: expected, metric: 'Replays' }]);
  });

  it('adds a tally once per invocation, however many times it was counted', async () => {
    // Prepare
    const { tally, withMetrics } = await import('../../lib/observability/metrics.js');
    const metrics = new Metrics({ namespace: 'pushwire', serviceName: 'pushwire-test' });
    const flushed: unknown[] = [];
    vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => {
      flushed.push(metrics.serializeMetrics());
      metrics.clearMetrics();
      return metrics;
    });
    const handler = middy(async () => {
      for (let i = 0; i < 1_000; i++) tally('ThrottledRetries');
      return {};
    }).use(withMetrics(() => metrics));

    // Act
    await handler({}, { functionName: 'publish', awsRequestId: 'r' } as Context);

    // Assess
    expect(flushed).toHaveLength(1);
    expect(flushed[0]).toMatchObject({ ThrottledRetries: 1_000 });
  });

  it('counts a duplicate publish as a duplicate only', async () => {
    // Prepare
    const { recordPublish } = await import('../../lib/observability/metrics.js');
    const metrics = new Metrics({ namespace: 'pushwire', serviceName: 'pushwire-test' });

    // Act
    recordPublish(
      metrics,
      { recipients: 0, delivered: 0, gone: 0, failed: 0, chunks: 0, duplicate: true },
      1,
    );

    // Assess
    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
    expect(emf['PublishDuplicates']).toBe(1);
    expect(emf['Publishes']).toBeUndefined();
  });
});

describe('refused handshakes', () => {
  it('logs the reason with the connection id and counts it by reason', async () => {
    // Prepare
    const logger = new Logger({ serviceName: 'pushwire-unit', logLevel: 'SILENT' });
    const info = vi.spyOn(logger, 'info');
    const metrics = new Metrics({ namespace: 'pushwire', serviceName: 'pushwire-test' });
    const handler = middy(async (): Promise<{ statusCode: number }> => {
      throw new UnauthorizedError('token expired');
    }).use(webSocketErrors({ logger: () => logger, metrics: () => metrics, route: 'connect' }));
    const singles: Metrics[] = [];
    const single = metrics.singleMetric.bind(metrics);
    vi.spyOn(metrics, 'singleMetric').mockImplementation(() => {
      const m = single();
      vi.spyOn(m, 'publishStoredMetrics').mockImplementation(() => m);
      singles.push(m);
      return m;
    });

    // Act
    const response = await handler({ requestContext: { connectionId: 'abc=' } }, {
      functionName: 'connect',
      awsRequestId: 'r',
    } as Context);

    // Assess
    expect(response.statusCode).toBe(401);
    expect(info).toHaveBeenCalledWith('handshake refused', {
      route: 'connect',
      connectionId: 'abc=',
      code: 'unauthorized',
      reason: 'token expired',
    });
    expect(singles).toHaveLength(1);
    expect(singles[0]?.serializeMetrics()).toMatchObject({
      HandshakesRefused: 1,
      reason: 'unauthorized',
    });
  });
});
