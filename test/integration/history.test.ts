import { describe, expect, it } from 'vitest';
import { publish } from '../../lib/delivery/publish.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import { sleep, TOPOLOGIES, testClock, useTopologies } from '../helpers/redis-matrix.js';
import { connection, noDedup, publishDeps, RecordingGateway } from './support.js';

const envs = useTopologies();

describe.each(TOPOLOGIES)('history on %s Redis', (topology) => {
  const env = envs[topology];

  /** Publishes `n` messages to a user through publish() and returns their cursors. */
  async function publishMany(registry: RedisRegistry, userId: string, n: number, from = 1) {
    const deps = publishDeps(registry, new RecordingGateway(), noDedup);
    const cursors: string[] = [];
    for (let i = from; i < from + n; i++) {
      const result = await publish({ userId, data: { n: i } }, deps);
      expect(result.stored).toBe(true);
      cursors.push(result.cursor as string);
    }
    return cursors;
  }

  const historyIds = async (registry: RedisRegistry, userId: string) =>
    (await env.redis.xrange(registry.userAudience(userId).keys.history, '-', '+')).map(
      ([id]) => id,
    );

  it('stores each message for a user, with increasing cursors, and the entry as JSON', async () => {
    const registry = env.registry();
    await registry.register(connection('alice'));
    const cursors = await publishMany(registry, 'alice', 3);
    for (let i = 1; i < cursors.length; i++) {
      expect(compareCursors(cursors[i] as string, cursors[i - 1] as string)).toBeGreaterThan(0);
    }
    const entries = await env.redis.xrange(registry.userAudience('alice').keys.history, '-', '+');
    expect(entries.map(([id]) => id)).toEqual(cursors);
    const first = entries[0]?.[1];
    expect(first?.[0]).toBe('m');
    expect(JSON.parse(first?.[1] as string)).toMatchObject({ data: { n: 1 } });
  });

  it('stores topic messages in the topic history', async () => {
    const registry = env.registry();
    const deps = publishDeps(registry, new RecordingGateway(), noDedup);
    const result = await publish({ topic: 'news', data: 'hello' }, deps);
    expect(result.stored).toBe(true);
    const ids = (await env.redis.xrange(registry.topicAudience('news').keys.history, '-', '+')).map(
      ([id]) => id,
    );
    expect(ids).toEqual([result.cursor]);
  });

  it('keeps no history when historySize is 0', async () => {
    const registry = env.registry({ historySize: 0 });
    const result = await publish(
      { userId: 'nobody', data: 1 },
      publishDeps(registry, new RecordingGateway(), noDedup),
    );
    expect(result.stored).toBe(false);
    expect(result.cursor).toBeUndefined();
    expect(await env.redis.exists(registry.userAudience('nobody').keys.history)).toBe(0);
  });

  it('trims by size, remembers the newest trimmed entry, and answers recoverable()', async () => {
    const registry = env.registry({ historySize: 3 });
    const audience = registry.userAudience('bob');
    const [c1, c2, c3, c4, c5] = (await publishMany(registry, 'bob', 5)) as [
      string,
      string,
      string,
      string,
      string,
    ];

    expect(await historyIds(registry, 'bob')).toEqual([c3, c4, c5]);
    expect(await env.redis.get(audience.keys.lost)).toBe(c2);
    const lostTtl = await env.redis.pttl(audience.keys.lost);
    expect(lostTtl).toBeGreaterThan(0);
    expect(lostTtl).toBeLessThanOrEqual(3_600_000);

    // After c1, c2 was trimmed: the client missed something.
    expect(await registry.recoverable(audience, c1)).toBe(false);
    expect(await registry.recoverable(audience, '0')).toBe(false);
    // From c2 (the newest trimmed entry) on, everything after is still there.
    expect(await registry.recoverable(audience, c2)).toBe(true);
    expect(await registry.recoverable(audience, c3)).toBe(true);
    expect(await registry.recoverable(audience, c5)).toBe(true);

    // The marker moves on with further trimming.
    const [c6] = (await publishMany(registry, 'bob', 1, 6)) as [string];
    expect(await historyIds(registry, 'bob')).toEqual([c4, c5, c6]);
    expect(await env.redis.get(audience.keys.lost)).toBe(c3);
    expect(await registry.recoverable(audience, c2)).toBe(false);
  });

  it('trims by age: entries older than historyTtlSeconds go, the lost marker is set', async () => {
    const registry = env.registry({ historyTtlSeconds: 60 });
    const audience = registry.userAudience('carol');
    const now = Date.now();
    // A deployment whose data began 10 minutes ago (its first publish or
    // $connect would have marked the epoch then).
    await env.redis.set(registry.keys.epoch(), String(now - 600_000));
    // Entries written a while ago (the stream id is the time it was written).
    const veryOld = await env.redis.xadd(
      audience.keys.history,
      `${now - 120_000}-0`,
      'm',
      '{"id":"a","data":1}',
    );
    const old = await env.redis.xadd(
      audience.keys.history,
      `${now - 61_000}-0`,
      'm',
      '{"id":"b","data":2}',
    );
    const recent = await env.redis.xadd(
      audience.keys.history,
      `${now - 30_000}-0`,
      'm',
      '{"id":"c","data":3}',
    );
    expect(await registry.recoverable(audience, veryOld as string)).toBe(true);

    const [latest] = await publishMany(registry, 'carol', 1);

    expect(await historyIds(registry, 'carol')).toEqual([recent, latest]);
    expect(await env.redis.get(audience.keys.lost)).toBe(old);
    expect(await registry.recoverable(audience, veryOld as string)).toBe(false);
    expect(await registry.recoverable(audience, old as string)).toBe(true);
    const ttl = await env.redis.pttl(audience.keys.history);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('recoverable() with no history at all: a since older than the TTL is not, a recent one is', async () => {
    const clock = testClock();
    const registry = env.registry({ historyTtlSeconds: 60, now: clock.now });
    const audience = registry.userAudience('never-published');
    const now = clock.now();
    expect(await registry.recoverable(audience, `${now - 61_000}-0`)).toBe(false);
    expect(await registry.recoverable(audience, `${now - 1_000}-5`)).toBe(true);
    // Time passes (no message meanwhile): the same cursor is now too old to vouch for.
    clock.advance(60_000);
    expect(await registry.recoverable(audience, `${now - 1_000}-5`)).toBe(false);
  });

  it('after Redis loses its data, a cursor from before is not recoverable, one from after is', async () => {
    const registry = env.registry();
    const audience = registry.userAudience('erin');
    await registry.register(connection('erin'));
    const epoch = await env.redis.get(registry.keys.epoch());
    expect(Number(epoch)).toBeGreaterThan(Date.now() - 60_000);
    const [before] = (await publishMany(registry, 'erin', 2)) as [string, string];
    expect(await registry.recoverable(audience, before)).toBe(true);
    // A later $connect leaves the epoch as it was.
    await registry.register(connection('erin'));
    expect(await env.redis.get(registry.keys.epoch())).toBe(epoch);
    await sleep(5);

    // Redis restarts empty: the history, the epoch and the endpoints are gone.
    for (const key of [audience.keys.history, registry.keys.epoch(), registry.keys.endpoints()]) {
      await env.redis.del(key);
    }
    // The client comes back ($connect marks a new epoch) and resumes from
    // `before`: whatever followed it went with the data, and nothing says so
    // but the epoch (there is no history, and `before` is recent).
    await registry.register(connection('erin'));
    expect(Number(await env.redis.get(registry.keys.epoch()))).toBeGreaterThan(Number(epoch));
    expect(await registry.recoverable(audience, before)).toBe(false);
    // New messages make a new history: `before` still is not recoverable,
    // a cursor of the new epoch is.
    const [after] = (await publishMany(registry, 'erin', 1, 3)) as [string];
    expect(await registry.recoverable(audience, before)).toBe(false);
    expect(await registry.recoverable(audience, after)).toBe(true);
  });

  it('a new deployment publishing before anyone connects marks the epoch before its first entry', async () => {
    const registry = env.registry();
    expect(await env.redis.get(registry.keys.epoch())).toBeNull();
    const [first] = (await publishMany(registry, 'gus', 1)) as [string];
    const epoch = Number(await env.redis.get(registry.keys.epoch()));
    expect(epoch).toBeGreaterThan(0);
    expect(epoch).toBeLessThanOrEqual(Number(first.split('-')[0]));
    // The user connects later and resumes from the first message: nothing doubted.
    await registry.register(connection('gus'));
    expect(Number(await env.redis.get(registry.keys.epoch()))).toBe(epoch);
    expect(await registry.recoverable(registry.userAudience('gus'), first)).toBe(true);
  });

  it('a deployment upgraded in place (endpoints recorded, no epoch yet) doubts no cursor', async () => {
    const registry = env.registry();
    const audience = registry.userAudience('fay');
    await registry.register(connection('fay'));
    const [cursor] = (await publishMany(registry, 'fay', 1)) as [string];
    // As a version before epochs left it.
    await env.redis.del(registry.keys.epoch());
    await sleep(5);
    await registry.register(connection('fay'));
    expect(await env.redis.get(registry.keys.epoch())).toBe('0');
    expect(await registry.recoverable(audience, cursor)).toBe(true);
  });

  it('lets the history expire after historyTtlSeconds without messages (real clock)', async () => {
    const registry = env.registry({ historyTtlSeconds: 1 });
    const audience = registry.userAudience('dora');
    const [cursor] = (await publishMany(registry, 'dora', 1)) as [string];
    const ttl = await env.redis.pttl(audience.keys.history);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1_000);
    expect(await registry.recoverable(audience, cursor)).toBe(true);

    await sleep(1_150);

    expect(await env.redis.exists(audience.keys.history)).toBe(0);
    expect(await registry.recoverable(audience, cursor)).toBe(false);
    expect(await registry.recoverable(audience, `${Date.now() - 100}-0`)).toBe(true);
  });
});
