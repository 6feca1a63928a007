import { describe, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import { eventually, type TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, messageIds, publishOk, useStack } from '../helpers/stack.js';

/**
 * The chunked fan-out path: with FANOUT_CHUNK=2 an audience of more than two
 * is cut into chunks that `publish` hands to the real `deliver` function
 * through serverless-offline's Lambda endpoint (LAMBDA_ENDPOINT).
 */

const CHUNK = 2;

const stack = useStack({ env: { FANOUT_CHUNK: String(CHUNK) } });

const publish = (payload: object) => publishOk(stack.offline, payload);

async function connectAs(userId: string): Promise<TrackedClient> {
  return connectTracked(stack, stack.offline, userId, await devToken(userId));
}

const ids = messageIds;
/** Invocations of `deliver` serverless-offline has reported so far. */
const deliverRuns = () => stack.offline.output().split('(λ: deliver)').length - 1;

describe('chunked fan-out through the deliver function', () => {
  it('delivers a broadcast to 5 clients in 3 chunks of at most 2, once each', async () => {
    const clients: TrackedClient[] = [];
    for (const user of ['u1', 'u2', 'u3', 'u3', 'u4']) clients.push(await connectAs(user));
    const runsBefore = deliverRuns();

    const result = await publish({ broadcast: true, data: { n: 1 } });
    expect(result).toMatchObject({ recipients: 5, delivered: 5, gone: 0, failed: 0, chunks: 3 });
    expect(result.stored).toBe(false);
    // Each chunk ran as its own invocation of the deliver function.
    await eventually(() => deliverRuns() - runsBefore >= 3, 5_000, 'three deliver runs');
    expect(deliverRuns() - runsBefore).toBe(3);

    const last = await publish({ broadcast: true, data: 'sentinel' });
    expect(last).toMatchObject({ recipients: 5, delivered: 5, chunks: 3 });
    await Promise.all(clients.map((c) => c.client.next(isMessage(last.id))));
    for (const c of clients) {
      expect(ids(c)).toEqual([result.id, last.id]);
      expect(c.client.messages()[0]).toEqual({ type: 'message', id: result.id, data: { n: 1 } });
    }
  });

  it('streams a user with more devices than a chunk through deliver, and inlines a smaller one', async () => {
    const many = [await connectAs('many'), await connectAs('many'), await connectAs('many')];
    const few = [await connectAs('few'), await connectAs('few')];

    const toMany = await publish({ userId: 'many', data: 'm' });
    expect(toMany).toMatchObject({ recipients: 3, delivered: 3, gone: 0, failed: 0, chunks: 2 });
    expect(toMany.cursor).toMatch(/^\d+-\d+$/);
    const toFew = await publish({ userId: 'few', data: 'f' });
    expect(toFew).toMatchObject({ recipients: 2, delivered: 2, gone: 0, failed: 0, chunks: 0 });

    const last = await publish({ userIds: ['many', 'few'], data: 'sentinel' });
    expect(last).toMatchObject({ recipients: 5, delivered: 5, chunks: 3 });
    await Promise.all([...many, ...few].map((c) => c.client.next(isMessage(last.id))));
    for (const c of many) {
      expect(ids(c)).toEqual([toMany.id, last.id]);
      expect(c.client.messages()[0]?.['cursor']).toBe(toMany.cursor);
    }
    for (const c of few) expect(ids(c)).toEqual([toFew.id, last.id]);
  });

  it("carries a 120 KB userIds message once per chunk; deliver rebuilds each user's frame with its own cursor", async () => {
    const users = ['big0', 'big1', 'big2', 'big3', 'big4'];
    const clients = [];
    for (const user of users) clients.push(await connectAs(user));
    const data = { body: 'y'.repeat(120 * 1024), quote: '"a\\b"' };
    const runsBefore = deliverRuns();

    const result = await publish({ id: 'big-userids-1', userIds: users, data });
    expect(result).toMatchObject({ recipients: 5, delivered: 5, gone: 0, failed: 0, chunks: 3 });
    await eventually(() => deliverRuns() - runsBefore >= 3, 5_000, 'three deliver runs');

    await Promise.all(clients.map((c) => c.client.next(isMessage(result.id))));
    for (const [i, c] of clients.entries()) {
      const frame = c.client.messages().find(isMessage(result.id));
      expect(frame).toMatchObject({ type: 'message', id: 'big-userids-1', data });
      const cursor = frame?.['cursor'] as string;
      const [last] = await stack.probe.redis.xrevrange(
        stack.probe.keys.audience('user', users[i] as string).keys.history,
        '+',
        '-',
        'COUNT',
        1,
      );
      // Each user's own stream position (streams are independent: equal ids are possible).
      expect(cursor).toBe(last?.[0]);
    }
  });

  it('counts a connection a lost $disconnect left as gone, and deliver prunes it', async () => {
    // The broadcast below must see only this test's connections.
    await stack.probe.waitUntilNoConnections();
    const ghost = await connectAs('ghost');
    const others = [await connectAs('v1'), await connectAs('v2'), await connectAs('v3')];
    const key = stack.probe.keys.connection(ghost.connectionId);
    const live = stack.probe.keys.audience('user', 'ghost').keys.live;
    const all = stack.probe.keys.all();
    const record = await stack.probe.redis.hgetall(key);
    const score = Number(await stack.probe.redis.zscore(all, ghost.member));

    await ghost.client.close();
    await eventually(
      async () => (await stack.probe.redis.exists(key)) === 0,
      20_000,
      '$disconnect to remove the closed connection',
    );
    await stack.probe.redis
      .multi()
      .hset(key, record)
      .expire(key, 600)
      .zadd(live, score, ghost.member)
      .zadd(all, score, ghost.member)
      .exec();

    const result = await publish({ broadcast: true, data: 'x' });
    expect(result).toMatchObject({ recipients: 4, delivered: 3, gone: 1, failed: 0, chunks: 2 });
    expect(await stack.probe.redis.exists(key)).toBe(0);
    expect(await stack.probe.redis.zscore(all, ghost.member)).toBeNull();
    expect(await stack.probe.redis.zscore(live, ghost.member)).toBeNull();

    const last = await publish({ broadcast: true, data: 'sentinel' });
    expect(last).toMatchObject({ recipients: 3, delivered: 3, gone: 0, chunks: 2 });
    await Promise.all(others.map((c) => c.client.next(isMessage(last.id))));
    for (const c of others) expect(ids(c)).toEqual([result.id, last.id]);
  });

  it('leaves no connection record once every client closed', async () => {
    await Promise.all(stack.open.map((c) => c.close()));
    await stack.probe.waitUntilNoConnections();
    expect(await stack.probe.scanKeys(`${stack.probe.prefix}c:*`)).toEqual([]);
  });
});
