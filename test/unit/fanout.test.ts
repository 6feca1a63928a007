import {
  ApiGatewayManagementApiClient,
  ApiGatewayManagementApiServiceException,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  addCounts,
  type DeliveryJob,
  deliver,
  emptyCounts,
  type FanoutLogger,
  groupByEndpoint,
  reason,
} from '../../lib/delivery/fanout.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import type { Recipient } from '../../lib/registry/keys.js';

const EP_A = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
const EP_B = 'https://bbb.execute-api.us-east-1.amazonaws.com/prod';

const api = mockClient(ApiGatewayManagementApiClient);

const gone = () => new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } });
const serverError = (message = 'boom') =>
  new ApiGatewayManagementApiServiceException({
    name: 'InternalServerErrorException',
    $fault: 'server',
    message,
    $metadata: { httpStatusCode: 500 },
  });

const noWaitGateway = () =>
  new AwsGateway({ region: 'us-east-1', sleep: async () => undefined, random: () => 0 });

/** A logger that keeps what it was told. */
function recordingLogger() {
  const warnings: { message: string; extra: Record<string, unknown> }[] = [];
  const logger: FanoutLogger = {
    warn: (message, extra) => {
      warnings.push({ message, extra });
    },
  };
  return { logger, warnings };
}

/** A prune port that keeps the ids it was asked to prune. */
function recordingPrune() {
  const pruned: string[] = [];
  return {
    pruned,
    prune: async (connectionId: string) => {
      pruned.push(connectionId);
    },
  };
}

const job = (frame: string, recipients: Recipient[]): DeliveryJob => ({
  frame: Buffer.from(frame),
  recipients,
});
const at = (endpoint: string, ...ids: string[]): Recipient[] =>
  ids.map((connectionId) => ({ connectionId, endpoint }));

const postedIds = () =>
  api.commandCalls(PostToConnectionCommand).map((call) => call.args[0].input.ConnectionId);
const closedIds = () =>
  api.commandCalls(DeleteConnectionCommand).map((call) => call.args[0].input.ConnectionId);

beforeEach(() => {
  api.reset();
});

describe('deliver', () => {
  it('posts the frame to every recipient and counts them delivered', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    const { prune, pruned } = recordingPrune();
    const { logger, warnings } = recordingLogger();

    // Act
    const counts = await deliver([job('hello', at(EP_A, 'a1', 'a2', 'a3'))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 10,
    });

    // Assess
    expect(counts).toEqual({ delivered: 3, gone: 0, failed: 0, failures: [] });
    expect(postedIds().sort()).toEqual(['a1', 'a2', 'a3']);
    const frames = api
      .commandCalls(PostToConnectionCommand)
      .map((call) => Buffer.from(call.args[0].input.Data as Uint8Array).toString());
    expect(frames).toEqual(['hello', 'hello', 'hello']);
    expect(pruned).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('prunes the gone connection and not another (not the sender, not a live one)', async () => {
    // Prepare: the sender "sender" and "live" are fine; only "dead" is gone
    api.on(PostToConnectionCommand).resolves({});
    api.on(PostToConnectionCommand, { ConnectionId: 'dead' }).rejects(gone());
    const { prune, pruned } = recordingPrune();
    const { logger } = recordingLogger();

    // Act
    const counts = await deliver([job('m', at(EP_A, 'sender', 'dead', 'live'))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 4,
    });

    // Assess
    expect(pruned).toEqual(['dead']);
    expect(counts).toEqual({ delivered: 2, gone: 1, failed: 0, failures: [] });
  });

  it('keeps going and counts exactly when some posts are gone and some fail', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    api.on(PostToConnectionCommand, { ConnectionId: 'g1' }).rejects(gone());
    api.on(PostToConnectionCommand, { ConnectionId: 'g2' }).rejects(gone());
    // A 403 is not retried (a 5xx would be, see gateway.test.ts), so each id is posted once.
    api.on(PostToConnectionCommand, { ConnectionId: 'bad' }).rejects(
      Object.assign(new Error('Forbidden'), {
        name: 'ForbiddenException',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    api.on(DeleteConnectionCommand).resolves({});
    const { prune, pruned } = recordingPrune();
    const { logger } = recordingLogger();
    const ids = ['ok1', 'g1', 'bad', 'ok2', 'g2', 'ok3'];

    // Act
    const counts = await deliver([job('m', at(EP_A, ...ids))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 1,
    });

    // Assess: every recipient was tried, even those after the failure
    expect(counts).toMatchObject({ delivered: 3, gone: 2, failed: 1 });
    expect(postedIds()).toEqual(ids);
    // The gone ones pruned; the failed one pruned too, before it was closed
    expect(pruned.sort()).toEqual(['bad', 'g1', 'g2']);
    expect(closedIds()).toEqual(['bad']);
  });

  it('names a failed delivery (connection id, endpoint, reason) in its report and one log line, then prunes and closes it (issue 21: no silent loss)', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    api.on(PostToConnectionCommand, { ConnectionId: 'bad' }).rejects(serverError('kaput'));
    api.on(DeleteConnectionCommand).resolves({});
    const { prune, pruned } = recordingPrune();
    const { logger, warnings } = recordingLogger();

    // Act
    const report = await deliver([job('m', [...at(EP_A, 'good'), ...at(EP_B, 'bad')])], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 2,
    });

    // Assess: the client of 'bad' is told by a close: it reconnects and resumes from its cursor
    expect(pruned).toEqual(['bad']);
    expect(closedIds()).toEqual(['bad']);
    const failure = {
      connectionId: 'bad',
      endpoint: EP_B,
      reason: 'InternalServerErrorException (HTTP 500): kaput',
    };
    expect(report).toEqual({ delivered: 1, gone: 0, failed: 1, failures: [failure] });
    expect(warnings).toEqual([
      { message: 'delivery failed', extra: { failed: 1, connections: [failure] } },
      {
        message:
          'closed the connections a message could not reach (they resume from their cursors)',
        extra: { closed: 1 },
      },
    ]);
  });

  it('closes a connection whose post timed out past its retries, prunes a gone one without closing it', async () => {
    // Prepare: 'slow' never answers (every attempt times out), 'dead' is gone, 'ok' is fine
    api.on(PostToConnectionCommand).resolves({});
    api
      .on(PostToConnectionCommand, { ConnectionId: 'slow' })
      .rejects(Object.assign(new Error('no answer'), { name: 'TimeoutError' }));
    api.on(PostToConnectionCommand, { ConnectionId: 'dead' }).rejects(gone());
    api.on(DeleteConnectionCommand).resolves({});
    const { prune, pruned } = recordingPrune();
    const { logger } = recordingLogger();
    let closedMetric = 0;

    // Act
    const report = await deliver([job('m', at(EP_A, 'ok', 'slow', 'dead'))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 3,
      onClosed: () => {
        closedMetric++;
      },
    });

    // Assess
    expect(report).toMatchObject({ delivered: 1, gone: 1, failed: 1 });
    expect(postedIds().filter((id) => id === 'slow')).toHaveLength(5);
    expect(pruned.sort()).toEqual(['dead', 'slow']);
    expect(closedIds()).toEqual(['slow']);
    expect(closedMetric).toBe(1);
  });

  it('says so when even the close fails, and still counts the failure once', async () => {
    // Prepare: the management API answers 500 to everything
    api.on(PostToConnectionCommand).rejects(serverError());
    api.on(DeleteConnectionCommand).rejects(serverError('still down'));
    const { prune, pruned } = recordingPrune();
    const { logger, warnings } = recordingLogger();

    // Act
    const report = await deliver([job('m', at(EP_A, 'a'))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 1,
    });

    // Assess: pruned all the same, so its next frame is answered unknown_connection and closed
    expect(report).toMatchObject({ delivered: 0, gone: 0, failed: 1 });
    expect(pruned).toEqual(['a']);
    expect(warnings[1]?.extra).toEqual({
      closed: 0,
      notClosed: 1,
      reason: 'InternalServerErrorException (HTTP 500): still down',
    });
  });

  it('keeps its log bounded however many fail: the first 100 by name, the rest counted', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(
      Object.assign(new Error('Forbidden'), {
        name: 'ForbiddenException',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const { prune } = recordingPrune();
    const { logger, warnings } = recordingLogger();
    api.on(DeleteConnectionCommand).resolves({});
    const ids = Array.from({ length: 250 }, (_, i) => `f${i}`);

    // Act
    const report = await deliver([job('m', at(EP_A, ...ids))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 10,
    });

    // Assess
    expect(report.failed).toBe(250);
    expect(report.failures).toHaveLength(100);
    // One line naming the failures, one counting the closes (not one per connection)
    expect(warnings).toHaveLength(2);
    expect(warnings[1]?.extra).toEqual({ closed: 250 });
    expect(warnings[0]?.extra).toMatchObject({ failed: 250, unnamed: 150 });
    expect(warnings[0]?.extra['connections']).toHaveLength(100);
  });

  it('still counts a gone connection when pruning it fails, and logs the prune failure', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(gone());
    const { logger, warnings } = recordingLogger();

    // Act
    const counts = await deliver([job('m', at(EP_A, 'dead'))], {
      gateway: noWaitGateway(),
      prune: async () => {
        throw new Error('redis down');
      },
      logger,
      concurrency: 1,
    });

    // Assess
    expect(counts).toEqual({ delivered: 0, gone: 1, failed: 0, failures: [] });
    expect(warnings).toEqual([
      {
        message: 'could not prune a gone connection',
        extra: { connectionId: 'dead', reason: 'Error: redis down' },
      },
    ]);
  });

  it('delivers each job its own frame', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    const { prune } = recordingPrune();
    const { logger } = recordingLogger();

    // Act
    const counts = await deliver([job('first', at(EP_A, 'x')), job('second', at(EP_B, 'y', 'z'))], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 1,
    });

    // Assess
    expect(counts.delivered).toBe(3);
    const sent = api
      .commandCalls(PostToConnectionCommand)
      .map(
        (call) =>
          `${call.args[0].input.ConnectionId}:${Buffer.from(call.args[0].input.Data as Uint8Array).toString()}`,
      );
    expect(sent).toEqual(['x:first', 'y:second', 'z:second']);
  });

  it('posts recipients endpoint by endpoint, through the client of each endpoint', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    const gateway = noWaitGateway();
    const { prune } = recordingPrune();
    const { logger } = recordingLogger();
    const mixed = [
      { connectionId: 'a1', endpoint: EP_A },
      { connectionId: 'b1', endpoint: EP_B },
      { connectionId: 'a2', endpoint: EP_A },
      { connectionId: 'b2', endpoint: EP_B },
    ];

    // Act
    await deliver([job('m', mixed)], { gateway, prune, logger, concurrency: 1 });

    // Assess
    expect(postedIds()).toEqual(['a1', 'a2', 'b1', 'b2']);
    const clients = api.send.getCalls().map((call) => call.thisValue);
    expect(clients).toEqual([
      gateway.client(EP_A),
      gateway.client(EP_A),
      gateway.client(EP_B),
      gateway.client(EP_B),
    ]);
  });

  it('never has more posts in flight than the concurrency bound', async () => {
    // Prepare: a gateway that counts the posts running at once
    let inFlight = 0;
    let peak = 0;
    let calls = 0;
    const gateway: Gateway = {
      post: async (): Promise<GatewayResult> => {
        calls++;
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
        return 'ok';
      },
      close: async () => 'ok',
    };
    const ids = Array.from({ length: 50 }, (_, i) => `c${i}`);
    const { prune } = recordingPrune();
    const { logger } = recordingLogger();

    // Act
    const counts = await deliver([job('m', at(EP_A, ...ids))], {
      gateway,
      prune,
      logger,
      concurrency: 7,
    });

    // Assess: the bound is reached (so it is the bound that limits) and never exceeded
    expect(calls).toBe(50);
    expect(peak).toBe(7);
    expect(counts.delivered).toBe(50);
  });

  it('counts nothing and posts nothing for no jobs or empty recipients', async () => {
    // Prepare
    const { prune } = recordingPrune();
    const { logger } = recordingLogger();

    // Act
    const counts = await deliver([job('m', [])], {
      gateway: noWaitGateway(),
      prune,
      logger,
      concurrency: 3,
    });

    // Assess
    expect(counts).toEqual({ delivered: 0, gone: 0, failed: 0, failures: [] });
    expect(api.send.callCount).toBe(0);
  });
});

describe('groupByEndpoint', () => {
  it('groups connection ids by endpoint, keeping their order within each endpoint', () => {
    // Prepare
    const recipients: Recipient[] = [
      { connectionId: 'a1', endpoint: EP_A },
      { connectionId: 'b1', endpoint: EP_B },
      { connectionId: 'a2', endpoint: EP_A },
      { connectionId: 'a3', endpoint: EP_A },
      { connectionId: 'b2', endpoint: EP_B },
    ];

    // Act
    const groups = groupByEndpoint(recipients);

    // Assess
    expect([...groups.entries()]).toEqual([
      [EP_A, ['a1', 'a2', 'a3']],
      [EP_B, ['b1', 'b2']],
    ]);
  });

  it('returns an empty map for no recipients', () => {
    // Act
    const groups = groupByEndpoint([]);

    // Assess
    expect(groups.size).toBe(0);
  });
});

describe('counts and reasons', () => {
  it('adds counts field by field', () => {
    // Act
    const sum = addCounts(
      { delivered: 1, gone: 2, failed: 3 },
      { delivered: 10, gone: 20, failed: 30 },
    );

    // Assess
    expect(sum).toEqual({ delivered: 11, gone: 22, failed: 33 });
    expect(addCounts(emptyCounts(), sum)).toEqual(sum);
  });

  it('describes an error with its name, HTTP status when known, and message', () => {
    // Act + Assess
    expect(reason(serverError('kaput'))).toBe('InternalServerErrorException (HTTP 500): kaput');
    expect(reason(new TypeError('bad'))).toBe('TypeError: bad');
    expect(reason('plain text')).toBe('plain text');
  });
});

describe('deliver with several frames per connection (parts, PW-F6)', () => {
  /** A gateway that records posts and closes, and answers per connection and part. */
  function scriptedGateway(answer: (connectionId: string, part: string) => GatewayResult | Error) {
    const posts: string[] = [];
    const closes: string[] = [];
    const gateway: Gateway = {
      post: async (_endpoint, connectionId, data) => {
        // Yield between posts, so posts to different connections interleave.
        await new Promise((resolve) => setTimeout(resolve, 0));
        const part = Buffer.from(data).toString();
        posts.push(`${connectionId}:${part}`);
        const result = answer(connectionId, part);
        if (result instanceof Error) throw result;
        return result;
      },
      close: async (_endpoint, connectionId) => {
        closes.push(connectionId);
        return 'ok';
      },
    };
    return { gateway, posts, closes };
  }
  const partsJob = (recipients: Recipient[]): DeliveryJob => ({
    frame: Buffer.from('p0'),
    frames: ['p0', 'p1', 'p2'].map((p) => Buffer.from(p)),
    recipients,
  });

  it('posts every frame in order to each connection and counts each connection once', async () => {
    const { gateway, posts } = scriptedGateway(() => 'ok');
    const { prune } = recordingPrune();
    const { logger } = recordingLogger();

    const report = await deliver([partsJob(at(EP_A, 'c1', 'c2', 'c3'))], {
      gateway,
      prune,
      logger,
      concurrency: 3,
    });

    expect(report).toMatchObject({ delivered: 3, gone: 0, failed: 0 });
    for (const c of ['c1', 'c2', 'c3'])
      expect(posts.filter((p) => p.startsWith(`${c}:`))).toEqual([`${c}:p0`, `${c}:p1`, `${c}:p2`]);
  });

  it('stops at a failed part: counts the connection failed, closes it untold, and goes on with the rest', async () => {
    const { gateway, posts, closes } = scriptedGateway((c, part) =>
      c === 'c2' && part === 'p1' ? serverError('throttled for good') : 'ok',
    );
    const { prune, pruned } = recordingPrune();
    const { logger, warnings } = recordingLogger();

    const report = await deliver([partsJob(at(EP_A, 'c1', 'c2', 'c3'))], {
      gateway,
      prune,
      logger,
      concurrency: 2,
    });

    expect(report).toMatchObject({ delivered: 2, gone: 0, failed: 1 });
    expect(report.failures).toEqual([
      expect.objectContaining({ connectionId: 'c2', reason: expect.stringContaining('throttled') }),
    ]);
    // Nothing after the failed part; the connection is pruned and closed, so it resumes.
    expect(posts.filter((p) => p.startsWith('c2:'))).toEqual(['c2:p0', 'c2:p1']);
    expect(pruned).toEqual(['c2']);
    expect(closes).toEqual(['c2']);
    expect(warnings.map((w) => w.message)).toContain('delivery failed');
  });

  it('stops at a part the gateway finds gone: counts it gone and prunes it', async () => {
    const { gateway, posts, closes } = scriptedGateway((c, part) =>
      c === 'c1' && part === 'p0' ? 'gone' : 'ok',
    );
    const { prune, pruned } = recordingPrune();
    const { logger } = recordingLogger();

    const report = await deliver([partsJob(at(EP_A, 'c1', 'c2'))], {
      gateway,
      prune,
      logger,
      concurrency: 1,
    });

    expect(report).toMatchObject({ delivered: 1, gone: 1, failed: 0 });
    expect(posts.filter((p) => p.startsWith('c1:'))).toEqual(['c1:p0']);
    expect(pruned).toEqual(['c1']);
    expect(closes).toEqual([]);
  });
});
