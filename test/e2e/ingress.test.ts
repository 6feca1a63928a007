import { describe, expect, it } from 'vitest';
import { DEV_AWS_ENV } from '../../scripts/local-env.js';
import { devToken } from '../../scripts/token.js';
import { createPushwire, InvalidRequestError, TooLargeError } from '../../server/index.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { contractFetch } from '../helpers/contract.js';
import { eventually, type TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, messageIds, useStack } from '../helpers/stack.js';

/**
 * Every way a service reaches pushwire, end to end under serverless-offline:
 * the HTTP API, the server SDK (over Lambda Invoke and over HTTP), the queue
 * consumer fed real-shaped SQS and EventBridge events through the Lambda
 * Invoke API; and the metrics a developer sees in the `npm start` output.
 */

const stack = useStack();

async function connectAs(userId: string): Promise<TrackedClient> {
  return connectTracked(stack, stack.offline, userId, await devToken(userId));
}
/** POSTs to the HTTP API; the JSON answer is typed loosely, as a test reads it. */
async function http(path: string, body: string) {
  const response = await contractFetch(`http://localhost:${stack.offline.httpPort}${path}`, {
    method: 'POST',
    body,
  });
  // biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
  return { status: response.status, json: async (): Promise<any> => response.json() };
}

/** An SQS record as Lambda's event source mapping delivers it. */
const sqsRecord = (messageId: string, body: string) => ({
  messageId,
  receiptHandle: `AQEB${messageId}`,
  body,
  attributes: {
    ApproximateReceiveCount: '1',
    SentTimestamp: String(Date.now()),
    SenderId: 'AIDAEXAMPLE',
    ApproximateFirstReceiveTimestamp: String(Date.now()),
  },
  messageAttributes: {},
  md5OfBody: '0',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:pushwire-local-publish',
  awsRegion: 'us-east-1',
});
/** An EventBridge event as the rule delivers it (to the queue as its body, or to a function). */
const busEvent = (id: string, detail: unknown) => ({
  version: '0',
  id,
  'detail-type': 'pushwire.publish',
  source: 'com.example.orders',
  account: '123456789012',
  time: new Date().toISOString(),
  region: 'us-east-1',
  resources: [],
  detail,
});

describe('HTTP API', () => {
  it('POST /publish delivers and answers 200 with the result; 400 and 413 with {error}', async () => {
    // Prepare
    const alice = await connectAs('http-alice');

    // Act
    const ok = await http('/publish', '{"userId":"http-alice","data":{"hi":1}}');
    const okBody = await ok.json();
    const bad = await http('/publish', '{"userId":"http-alice"}');
    const big = await http(
      '/publish',
      JSON.stringify({ userId: 'http-alice', data: 'x'.repeat(1024 * 1024) }),
    );

    // Assess
    expect(ok.status).toBe(200);
    expect(okBody).toMatchObject({ recipients: 1, delivered: 1, stored: true });
    const message = await alice.client.next(isMessage(okBody.id));
    expect(message['data']).toEqual({ hi: 1 });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toEqual({
      code: 'invalid_request',
      message: expect.stringContaining('data is required'),
    });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('too_large');
  });

  it('POST /presence and /kick answer like the functions', async () => {
    // Prepare
    const bob = await connectAs('http-bob');

    // Act
    const before = await (await http('/presence', '{"userIds":["http-bob"]}')).json();
    const kicked = await (await http('/kick', '{"userId":"http-bob"}')).json();

    // Assess
    expect(before.users['http-bob']).toEqual({ online: true, connections: 1 });
    expect(kicked).toMatchObject({ connections: 1, closed: 1 });
    await eventually(() => bob.client.closed, 10_000, 'kicked client closed');
    // PW-X2: before the close (which carries no code), a last frame says why.
    expect(bob.client.frames.at(-1)).toMatchObject({ type: 'error', code: 'kicked' });
  });
});

describe('server SDK', () => {
  it('publishes over Lambda Invoke; a repeated id is a duplicate; a bad request throws typed', async () => {
    // Prepare
    const carol = await connectAs('sdk-carol');
    const pushwire = createPushwire({
      lambda: {
        stage: 'local',
        clientConfig: {
          region: DEV_AWS_ENV.AWS_REGION,
          endpoint: `http://localhost:${stack.offline.lambdaPort}`,
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        },
      },
    });

    // Act
    const first = await pushwire.publish({ userId: 'sdk-carol', data: 'one' });
    const again = await pushwire.publish({ userId: 'sdk-carol', data: 'one', id: first.id });
    const refused = pushwire.publish({ userId: 'sdk-carol' } as never);
    const tooLarge = pushwire.publish({ userId: 'sdk-carol', data: 'x'.repeat(1024 * 1024) });

    // Assess
    expect(first).toMatchObject({ delivered: 1, id: expect.any(String) });
    expect(again).toMatchObject({ id: first.id, duplicate: true });
    await expect(refused).rejects.toThrow(InvalidRequestError);
    await expect(tooLarge).rejects.toThrow(TooLargeError);
    await carol.client.next(isMessage(first.id));
    // A sentinel after it: whatever the duplicate could have sent has arrived by then.
    const sentinel = await pushwire.publish({ userId: 'sdk-carol', data: 'end' });
    await carol.client.next(isMessage(sentinel.id));
    expect(messageIds(carol)).toEqual([first.id, sentinel.id]);
  });

  it('publishes and asks presence over the HTTP API', async () => {
    // Prepare
    const dan = await connectAs('sdk-dan');
    const pushwire = createPushwire({
      http: { url: `http://localhost:${stack.offline.httpPort}`, fetch: contractFetch },
    });

    // Act
    const result = await pushwire.publish({ userId: 'sdk-dan', data: { via: 'http' } });
    const online = await pushwire.presence({ userIds: ['sdk-dan'] });

    // Assess
    expect(result.delivered).toBe(1);
    expect((await dan.client.next(isMessage(result.id)))['data']).toEqual({ via: 'http' });
    expect(online.users?.['sdk-dan']?.online).toBe(true);
  });
});

describe('queue and event bus', () => {
  it('publishes an SQS batch, names only the bad message, and a redelivered batch reaches nobody twice', async () => {
    // Prepare
    const erin = await connectAs('queue-erin');
    const suffix = Date.now().toString(36);
    const batch = {
      Records: [
        sqsRecord(`plain-${suffix}`, JSON.stringify({ userId: 'queue-erin', data: 'plain' })),
        sqsRecord('not-json', '{"userId":'),
        sqsRecord(
          `bus-${suffix}`,
          JSON.stringify(busEvent(`evt-${suffix}`, { userId: 'queue-erin', data: 'bus' })),
        ),
      ],
    };

    // Act
    const first = await stack.offline.invoke('queue', batch);
    const redelivered = await stack.offline.invoke('queue', batch);

    // Assess
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: 'not-json' }] });
    expect(redelivered).toEqual({ batchItemFailures: [{ itemIdentifier: 'not-json' }] });
    await erin.client.next(isMessage(`plain-${suffix}`));
    await erin.client.next(isMessage(`evt-${suffix}`));
    const sentinel = await stack.offline.invoke<{ id: string }>('publish', {
      userId: 'queue-erin',
      data: 'end',
    });
    await erin.client.next(isMessage(sentinel.id));
    expect(messageIds(erin).sort()).toEqual(
      [`plain-${suffix}`, `evt-${suffix}`, sentinel.id].sort(),
    );
  });

  it('publishes a bare EventBridge event (a rule targeting the function)', async () => {
    // Prepare
    const fay = await connectAs('bus-fay');
    const id = `evt-direct-${Date.now().toString(36)}`;

    // Act
    const result = await stack.offline.invoke<{ id: string; delivered: number }>(
      'queue',
      busEvent(id, { userId: 'bus-fay', data: { order: 7 } }),
    );

    // Assess
    expect(result).toMatchObject({ id, delivered: 1 });
    expect((await fay.client.next(isMessage(id)))['data']).toEqual({ order: 7 });
  });
});

describe('first hour', () => {
  it('answers a binary frame holding JSON like the text frame', async () => {
    // Prepare
    const gus = await connectAs('binary-gus');

    // Act
    const from = gus.client.frames.length;
    gus.client.ws.send(Buffer.from('{"action":"ping"}'), { binary: true });

    // Assess
    const reply = await gus.client.next(() => true, 10_000, from);
    expect(reply.type).toBe('pong');
  });
});

describe('metrics and logs in the npm start output', () => {
  it('prints EMF lines for publishes, connects and cold starts', async () => {
    // Prepare
    const hal = await connectAs('metrics-hal');

    // Act
    const result = await stack.offline.invoke<{ id: string }>('publish', {
      userId: 'metrics-hal',
      data: 1,
    });
    await hal.client.next(isMessage(result.id));

    // Assess
    const emf = await eventually(
      () => {
        const lines = stack.offline
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{"_aws"'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const has = (name: string) => lines.some((l) => name in l);
        return has('Publishes') && has('Connects') && has('ColdStart') ? lines : undefined;
      },
      10_000,
      'EMF lines for Publishes, Connects and ColdStart',
    );
    const publish = emf.find((l) => 'Publishes' in l && l['PublishDelivered'] === 1);
    expect(publish).toMatchObject({ service: 'pushwire-local', PublishRecipients: 1 });
    expect(JSON.stringify(publish?.['_aws'])).toContain('"Namespace":"pushwire"');
  });

  it('logs a refused handshake with its reason and connection id, and counts it by reason', async () => {
    // Act
    const refused = await TestClient.connect(stack.offline.wsUrl({ token: 'not-a-jwt' })).catch(
      (error: unknown) => error,
    );

    // Assess
    expect(refused).toBeInstanceOf(HandshakeRefused);
    expect((refused as HandshakeRefused).status).toBe(401);
    const line = await eventually(
      () =>
        stack.offline
          .output()
          .split('\n')
          .find((l) => l.includes('"handshake refused"')),
      10_000,
      'a handshake refused log line',
    );
    expect(JSON.parse(line)).toMatchObject({
      code: 'unauthorized',
      connectionId: expect.any(String),
      reason: expect.any(String),
    });
    await eventually(
      () => stack.offline.output().includes('"reason":"unauthorized","HandshakesRefused":1'),
      10_000,
      'a HandshakesRefused metric with reason unauthorized',
    );
  });
});
