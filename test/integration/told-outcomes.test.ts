import { describe, expect, it } from 'vitest';
import { publish } from '../../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import { handleFrame } from '../../lib/session/session.js';
import { sleep, TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, noDedup, publishDeps, RecordingGateway } from './support.js';

const envs = useTopologies();

/** A management API that is down: every post answers 500; closes are recorded and succeed. */
class DownGateway implements Gateway {
  readonly closes: string[] = [];
  posts = 0;
  async post(): Promise<GatewayResult> {
    this.posts++;
    throw Object.assign(new Error('internal'), {
      name: 'InternalServerErrorException',
      $metadata: { httpStatusCode: 500 },
    });
  }
  async close(_endpoint: string, connectionId: string): Promise<GatewayResult> {
    this.closes.push(connectionId);
    return 'ok';
  }
}

describe.each(TOPOLOGIES)('told outcomes (issue 21) on %s Redis', (topology) => {
  const env = envs[topology];

  const publishTo = async (registry: RedisRegistry, target: object, n: number) =>
    (
      await publish(
        { ...target, data: { n } },
        publishDeps(registry, new RecordingGateway(), noDedup),
      )
    ).cursor as string;

  /** Waits until Redis has expired `key` (its TTL is set by the test, a second or two). */
  async function expired(key: string): Promise<void> {
    for (let i = 0; i < 200 && (await env.redis.exists(key)) === 1; i++) await sleep(25);
    expect(await env.redis.exists(key)).toBe(0);
  }

  it('a stream that expired whole and was recreated by one message answers recovered:false to a cursor from before (item 2)', async () => {
    // Prepare: a user stream with two messages, then quiet past its TTL (history and marker go)
    const registry = env.registry({ historyTtlSeconds: 1 });
    const audience = registry.userAudience('quiet');
    await registry.register(connection('quiet'));
    await publishTo(registry, { userId: 'quiet' }, 1);
    const seen = await publishTo(registry, { userId: 'quiet' }, 2);
    await expired(audience.keys.history);

    // Act: one new message recreates the stream
    const fresh = await publishTo(registry, { userId: 'quiet' }, 3);

    // Assess: from `seen`, whatever followed it before the expiry is gone: told so.
    // (Before the fix: recovered, as the new stream had no floor.)
    expect(await registry.recoverable(audience, seen)).toBe(false);
    // From the new message on, history is whole
    expect(await registry.recoverable(audience, fresh)).toBe(true);
  });

  it('a client that joined a topic with no history and resumes from subscribed.cursor is never doubted', async () => {
    // Prepare
    const registry = env.registry();
    const audience = registry.topicAudience('room:new');
    const client = connection('jo');
    await registry.register(client);

    // Act: join the empty topic, then the first message creates its stream
    const joined = await registry.subscribeWithCursor(client, 'room:new');
    const first = await publishTo(registry, { topic: 'room:new' }, 1);

    // Assess: the cursor is before the first message, and a resume from it is exact
    expect(joined.outcome).toBe('subscribed');
    const cursor = joined.cursor as string;
    expect(compareCursors(cursor, first)).toBeLessThan(0);
    expect(await registry.recoverable(audience, cursor)).toBe(true);
    expect(await registry.recoverable(audience, first)).toBe(true);
    expect(await registry.beginResume(audience, client, Date.now() + 7_000)).toBe(true);
    const step = await registry.resumeStep(audience, client, cursor, {
      entries: 10,
      bytes: 100_000,
      entryOverhead: 0,
      handOffWhenFits: true,
    });
    expect(step).toMatchObject({ entries: [{ cursor: first }] });
    expect(step).not.toHaveProperty('gap');
  });

  it('a brand-new stream doubts no cursor younger than the history TTL (a client without a join cursor)', async () => {
    // Prepare: a client whose cursor is a 5-minute time floor, as the library's was
    const registry = env.registry({ historyTtlSeconds: 86_400 });
    const audience = registry.topicAudience('room:fresh');
    const floor = `${Date.now() - 5 * 60_000}-0`;
    // (A deployment whose data began long ago: the epoch doubts nothing.)
    await env.redis.set(registry.keys.epoch(), '0');

    // Act: the topic's first message creates its stream
    await publishTo(registry, { topic: 'room:fresh' }, 1);

    // Assess: nothing can have expired between the floor and the first message
    expect(await registry.recoverable(audience, floor)).toBe(true);
  });

  it('joining a topic with history gives its newest cursor, recoverable from', async () => {
    // Prepare
    const registry = env.registry();
    const audience = registry.topicAudience('room:old');
    const late = connection('lu');
    await registry.register(late);
    const newest = await publishTo(registry, { topic: 'room:old' }, 1);

    // Act
    const joined = await registry.subscribeWithCursor(late, 'room:old');

    // Assess
    expect(joined).toEqual({ outcome: 'subscribed', cursor: newest });
    expect(await registry.recoverable(audience, newest)).toBe(true);
  });

  it('pong.cursor: a touch with position answers the user stream position, exact for a later resume', async () => {
    // Prepare: a user with no history yet
    const registry = env.registry();
    const audience = registry.userAudience('pat');
    const client = connection('pat');
    await registry.register(client);

    // Act
    const touched = await registry.touch(client.connectionId, true);
    const first = await publishTo(registry, { userId: 'pat' }, 1);
    const again = await registry.touch(client.connectionId, true);
    const plain = await registry.touch(client.connectionId);

    // Assess
    const cursor = touched?.userCursor as string;
    expect(compareCursors(cursor, first)).toBeLessThan(0);
    expect(await registry.recoverable(audience, cursor)).toBe(true);
    expect(again?.userCursor).toBe(first);
    expect(plain?.userCursor).toBeUndefined();
  });

  it('a ?since replay whose every post fails, resumed included, ends with the connection forgotten and closed (item 4)', async () => {
    // Prepare: a connection that missed a message and reconnects with ?since while the API is down
    const registry = env.registry();
    const since = await publishTo(registry, { userId: 'rae' }, 1);
    await publishTo(registry, { userId: 'rae' }, 2);
    const client = connection('rae', { pendingSince: since });
    await registry.register(client);
    const gateway = new DownGateway();

    // Act: its first frame starts the replay
    const reply = await handleFrame(client.connectionId, '{"action":"ping"}', {
      registry,
      gateway,
    });

    // Assess: replay and resumed both failed; the client is told by a close
    // (and the reply), and no record is left to receive live messages silently
    expect(gateway.posts).toBeGreaterThanOrEqual(2);
    expect(gateway.closes).toEqual([client.connectionId]);
    expect(reply).toMatchObject({ type: 'error', code: 'unknown_connection' });
    expect(await registry.get(client.connectionId)).toBeNull();
  });

  it('a live publish whose post to a connection finally fails closes that connection and forgets it (the one rule)', async () => {
    // Prepare
    const registry = env.registry();
    const client = connection('sam');
    await registry.register(client);
    const gateway = new DownGateway();

    // Act
    const result = await publish(
      { userId: 'sam', data: 1 },
      publishDeps(registry, gateway, noDedup),
    );

    // Assess
    expect(result).toMatchObject({ recipients: 1, failed: 1 });
    expect(gateway.closes).toEqual([client.connectionId]);
    expect(await registry.get(client.connectionId)).toBeNull();
    expect(await registry.lookupUser('sam')).toEqual([]);
  });
});

describe.each(TOPOLOGIES)(
  'publish ids bounded by history (issue 21, item 8) on %s Redis',
  (topology) => {
    const env = envs[topology];

    it('keeps the publish ids of the entries still in history only, for userIds publishes too', async () => {
      // Prepare: a history of 3 entries per stream
      const registry = env.registry({ historySize: 3 });
      const deps = publishDeps(registry, new RecordingGateway(), noDedup);

      // Act: 10 publishes with ids, each to two users
      for (let i = 0; i < 10; i++) {
        await publish({ id: `p${i}`, userIds: ['ida', 'ivo'], data: i }, deps);
      }

      // Assess: each user's id index holds exactly the ids of its 3 entries
      for (const userId of ['ida', 'ivo']) {
        const { keys } = registry.userAudience(userId);
        const entries = await env.redis.xrange(keys.history, '-', '+');
        expect(entries).toHaveLength(3);
        const index = await env.redis.hgetall(keys.ids);
        expect(index).toEqual(
          Object.fromEntries(entries.map(([cursor], i) => [`p${7 + i}`, cursor])),
        );
        expect(await env.redis.ttl(keys.ids)).toBeGreaterThan(0);
      }
    });

    it('a retried publish id still in history gets its cursor; one trimmed away is stored again', async () => {
      // Prepare
      const registry = env.registry({ historySize: 2 });
      const deps = publishDeps(registry, new RecordingGateway(), noDedup);
      const first = (await publish({ id: 'r1', userId: 'rik', data: 1 }, deps)).cursor;

      // Act + Assess: a retry while r1 is in history: same cursor, nothing appended
      expect((await publish({ id: 'r1', userId: 'rik', data: 1 }, deps)).cursor).toBe(first);
      const { keys } = registry.userAudience('rik');
      expect(await env.redis.xlen(keys.history)).toBe(1);
      // r1 trimmed away by two newer messages: a retry now is a new entry (clients dedupe by id)
      await publish({ id: 'r2', userId: 'rik', data: 2 }, deps);
      await publish({ userId: 'rik', data: 3 }, deps);
      expect(await env.redis.hexists(keys.ids, 'r1')).toBe(0);
      const again = (await publish({ id: 'r1', userId: 'rik', data: 1 }, deps)).cursor as string;
      expect(compareCursors(again, first as string)).toBeGreaterThan(0);
    });

    it('forgets the ids of entries trimmed by age', async () => {
      // Prepare: entries older than the TTL go at the next publish (a clock moved forward)
      let offset = 0;
      const registry = env.registry({ historyTtlSeconds: 60, now: () => Date.now() + offset });
      const deps = publishDeps(registry, new RecordingGateway(), noDedup);
      await publish({ id: 'old1', userId: 'age', data: 1 }, deps);
      await publish({ id: 'old2', userId: 'age', data: 2 }, deps);

      // Act: the next publish's minimum id is its own `now` (TTL 60 s, clock 60 s ahead)
      await sleep(5);
      offset = 60_000;
      await publish({ id: 'new', userId: 'age', data: 3 }, deps);

      // Assess
      const { keys } = registry.userAudience('age');
      expect(Object.keys(await env.redis.hgetall(keys.ids))).toEqual(['new']);
    });
  },
);
