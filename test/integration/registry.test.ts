import { describe, expect, it } from 'vitest';
import { presence } from '../../lib/admin/presence.js';
import { publish } from '../../lib/delivery/publish.js';
import { encodeMember } from '../../lib/registry/keys.js';
import {
  callsDelta,
  sleep,
  TOPOLOGIES,
  testClock,
  useTopologies,
} from '../helpers/redis-matrix.js';
import {
  connection,
  ENDPOINT_A,
  ENDPOINT_B,
  noDedup,
  publishDeps,
  RecordingGateway,
} from './support.js';

const envs = useTopologies();

const byId = (a: { connectionId: string }, b: { connectionId: string }) =>
  a.connectionId.localeCompare(b.connectionId);

describe.each(TOPOLOGIES)('registry on %s Redis', (topology) => {
  const env = envs[topology];

  describe('register and get', () => {
    it('stores every field of the record', async () => {
      const registry = env.registry();
      const record = connection('alice', {
        endpoint: ENDPOINT_B,
        connectedAt: 1_732_752_000_123,
        allowedTopics: ['news', 'room:*'],
      });
      await registry.register(record);
      expect(await registry.get(record.connectionId)).toEqual({
        connectionId: record.connectionId,
        userId: 'alice',
        endpoint: ENDPOINT_B,
        connectedAt: 1_732_752_000_123,
        allowedTopics: ['news', 'room:*'],
        topics: [],
      });
      expect(await registry.get('never-registered=')).toBeNull();
    });

    it('keeps pendingSince, parks the connection as resuming, and clears it on request', async () => {
      const registry = env.registry();
      const record = connection('bob', { pendingSince: '1732752000000-3' });
      await registry.register(record);
      const stored = await registry.get(record.connectionId);
      expect(stored?.pendingSince).toBe('1732752000000-3');
      // Resuming, so not live yet: publishes skip it until replay has caught up.
      const user = registry.userAudience('bob').keys;
      expect(await env.redis.zscore(user.live, encodeMember(record))).toBeNull();
      expect(await env.redis.zscore(user.resuming, encodeMember(record))).not.toBeNull();
      const step = await registry.publish(registry.userAudience('bob'), '{"id":"x","data":1}', 10);
      expect(step).toMatchObject({ count: 0, members: [] });

      await registry.clearPendingSince(record.connectionId);
      const cleared = await registry.get(record.connectionId);
      expect(cleared).not.toBeNull();
      expect(cleared && 'pendingSince' in cleared).toBe(false);
    });

    it('counts a connection that is still resuming as connected (presence sees it online)', async () => {
      // Prepare: one live device, one that connected with ?since and has not caught up
      const registry = env.registry();
      await registry.register(connection('carol'));
      await registry.register(connection('carol', { pendingSince: '1732752000000-0' }));
      // Act
      const counted = await registry.countConnected(registry.userAudience('carol'));
      const seen = await presence({ userIds: ['carol'] }, { registry });
      // Assess
      expect(counted).toBe(2);
      expect(seen.users?.['carol']).toEqual({ online: true, connections: 2 });
    });

    it('never claims a resume complete when no history is kept (HISTORY_SIZE=0)', async () => {
      const registry = env.registry({ historySize: 0 });
      await registry.publish(registry.userAudience('dave'), '{"id":"x","data":1}', 10);
      expect(
        await registry.recoverable(registry.userAudience('dave'), `${Date.now() - 1000}-0`),
      ).toBe(false);
      // The same with history kept: a recent cursor with nothing trimmed is complete.
      const kept = env.registry();
      expect(await kept.recoverable(kept.userAudience('dave'), `${Date.now() - 1000}-0`)).toBe(
        true,
      );
    });

    it('returns every device of a user, with its endpoint, from lookupUser', async () => {
      const registry = env.registry();
      const phone = connection('carol', { endpoint: ENDPOINT_A });
      const laptop = connection('carol', { endpoint: ENDPOINT_B });
      const tablet = connection('carol', { endpoint: ENDPOINT_A });
      const other = connection('dave');
      await Promise.all([phone, laptop, tablet, other].map((c) => registry.register(c)));

      const found = await registry.lookupUser('carol');
      expect(found.sort(byId)).toEqual(
        [phone, laptop, tablet]
          .map(({ connectionId, endpoint }) => ({ connectionId, endpoint }))
          .sort(byId),
      );
      expect(await registry.countConnected(registry.userAudience('carol'))).toBe(3);
      expect(await registry.countConnected('all')).toBe(4);
    });
  });

  describe('lookupUser', () => {
    it('is one round trip to one node, whatever the number of connections', async () => {
      const deltas: Record<string, number>[] = [];
      for (const n of [1, 10, 100]) {
        const registry = env.registry();
        const records = Array.from({ length: n }, () => connection('erin'));
        await Promise.all(records.map((c) => registry.register(c)));
        const nodesBefore = await Promise.all(env.masters.map((m) => m.info('commandstats')));

        const before = await env.commandCalls();
        const { result: found, writes } = await env.socketWrites(() => registry.lookupUser('erin'));
        const after = await env.commandCalls();
        const nodesAfter = await Promise.all(env.masters.map((m) => m.info('commandstats')));

        expect(found, `${n} connections`).toHaveLength(n);
        expect(new Set(found.map((r) => r.connectionId))).toEqual(
          new Set(records.map((r) => r.connectionId)),
        );
        expect(writes, `socket writes for ${n} connections`).toBe(1);
        const delta = callsDelta(before, after);
        // Only range reads of the user's sets reached Redis ...
        expect(Object.keys(delta), `${n} connections`).toEqual(['zrangebyscore']);
        // ... and on one node only (the user's slot), apart from our own INFO.
        const moved = nodesBefore.filter((info, i) => {
          const strip = (s: string | undefined) => s?.replace(/^cmdstat_info:.*$/m, '');
          return strip(info) !== strip(nodesAfter[i]);
        });
        expect(moved, `nodes reached for ${n} connections`).toHaveLength(1);
        deltas.push(delta);
      }
      // The same commands for 1, 10 and 100 connections: no per-connection lookups.
      expect(deltas[1]).toEqual(deltas[0]);
      expect(deltas[2]).toEqual(deltas[0]);
      expect(deltas[0]?.['zrangebyscore']).toBeLessThanOrEqual(2);
    });
  });

  describe('TTLs', () => {
    it('sets a TTL of at most connectionTtlSeconds on the record and the user set', async () => {
      const registry = env.registry({ connectionTtlSeconds: 2 });
      const record = connection('frank');
      await registry.register(record);
      await registry.subscribe(record, 'news');
      const keys = registry.keys;
      for (const key of [
        keys.all(),
        keys.connection(record.connectionId),
        keys.connectionTopics(record.connectionId),
        registry.userAudience('frank').keys.live,
        registry.topicAudience('news').keys.live,
      ]) {
        const ttl = await env.redis.pttl(key);
        expect(ttl, key).toBeGreaterThan(0);
        expect(ttl, key).toBeLessThanOrEqual(2_000);
      }
    });

    it('renews every TTL and moves every score forward on touch()', async () => {
      const clock = testClock();
      const registry = env.registry({ connectionTtlSeconds: 60, now: clock.now });
      const record = connection('gina');
      await registry.register(record);
      await registry.subscribe(record, 'room:1');
      const member = encodeMember(record);
      const keys = [
        registry.keys.all(),
        registry.keys.connection(record.connectionId),
        registry.keys.connectionTopics(record.connectionId),
        registry.userAudience('gina').keys.live,
        registry.topicAudience('room:1').keys.live,
      ];
      const scoreKeys = [
        registry.keys.all(),
        registry.userAudience('gina').keys.live,
        registry.topicAudience('room:1').keys.live,
      ];
      const scores = async () =>
        Promise.all(scoreKeys.map(async (k) => Number(await env.redis.zscore(k, member))));
      const before = await scores();
      // Let the keys run low, as if the connection had been quiet for most of its TTL.
      await Promise.all(keys.map((k) => env.redis.pexpire(k, 500)));
      clock.advance(30_000);

      const touched = await registry.touch(record.connectionId);
      expect(touched?.topics).toEqual(['room:1']);
      for (const key of keys) {
        const ttl = await env.redis.pttl(key);
        expect(ttl, key).toBeGreaterThan(50_000);
        expect(ttl, key).toBeLessThanOrEqual(60_000);
      }
      const after = await scores();
      for (const [i, score] of after.entries()) {
        expect(score - (before[i] as number), scoreKeys[i]).toBeGreaterThanOrEqual(30_000);
      }
      expect(await registry.touch('never-registered=')).toBeNull();
    });

    it('stops returning a connection whose score expired (no renewal), everywhere', async () => {
      const clock = testClock();
      const registry = env.registry({ connectionTtlSeconds: 60, now: clock.now });
      const gateway = new RecordingGateway();
      const quiet = connection('hank');
      await registry.register(quiet);
      await registry.subscribe(quiet, 'news');
      clock.advance(61_000);
      const fresh = connection('hank');
      await registry.register(fresh);
      await registry.subscribe(fresh, 'news');

      expect(await registry.lookupUser('hank')).toEqual([
        { connectionId: fresh.connectionId, endpoint: fresh.endpoint },
      ]);
      expect(await registry.countConnected(registry.userAudience('hank'))).toBe(1);
      expect(await registry.countConnected('all')).toBe(1);
      expect(await presence({ userIds: ['hank'], topic: 'news' }, { registry })).toEqual({
        users: { hank: { online: true, connections: 1 } },
        topic: { name: 'news', members: 1 },
      });
      const scanned = [];
      for await (const batch of registry.scan(registry.topicAudience('news'), 10))
        scanned.push(...batch);
      expect(scanned.map((r) => r.connectionId)).toEqual([fresh.connectionId]);

      const deps = publishDeps(registry, gateway, noDedup);
      const toTopic = await publish({ topic: 'news', data: 1 }, deps);
      const toUser = await publish({ userId: 'hank', data: 2 }, deps);
      const everyone = await publish({ broadcast: true, data: 3 }, deps);
      for (const result of [toTopic, toUser, everyone]) {
        expect(result).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });
      }
      expect(gateway.countsByConnection()).toEqual({ [fresh.connectionId]: 3 });
    });

    it('lets Redis expire an un-renewed connection and its topic membership (real clock)', async () => {
      const registry = env.registry({ connectionTtlSeconds: 1 });
      const record = connection('ivan');
      await registry.register(record);
      await registry.subscribe(record, 'room:ttl');
      expect(await registry.countConnected(registry.topicAudience('room:ttl'))).toBe(1);

      await sleep(1_200);

      const user = registry.userAudience('ivan').keys;
      const topic = registry.topicAudience('room:ttl').keys;
      for (const key of [
        registry.keys.all(),
        registry.keys.connection(record.connectionId),
        registry.keys.connectionTopics(record.connectionId),
        user.live,
        topic.live,
      ]) {
        expect(await env.redis.exists(key), key).toBe(0);
      }
      expect(await registry.get(record.connectionId)).toBeNull();
      expect(await registry.lookupUser('ivan')).toEqual([]);
      expect(await registry.countConnected(registry.userAudience('ivan'))).toBe(0);
      expect(await registry.countConnected('all')).toBe(0);
      expect(await presence({ topic: 'room:ttl' }, { registry })).toEqual({
        topic: { name: 'room:ttl', members: 0 },
      });
      const gateway = new RecordingGateway();
      const result = await publish(
        { topic: 'room:ttl', data: 'late' },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result.recipients).toBe(0);
      expect(gateway.posts).toEqual([]);
      // And the lapsed connection cannot be touched back to life.
      expect(await registry.touch(record.connectionId)).toBeNull();
    });
  });

  describe('remove', () => {
    it('removes the connection everywhere and is idempotent', async () => {
      const registry = env.registry();
      const gone = connection('judy');
      const stays = connection('judy');
      await Promise.all([registry.register(gone), registry.register(stays)]);
      await registry.subscribe(gone, 'news');
      await registry.subscribe(gone, 'room:a', Date.now() + 60_000);
      await registry.subscribe(stays, 'news');
      const member = encodeMember(gone);

      const removed = await registry.remove(gone.connectionId);
      expect(removed).toMatchObject({
        connectionId: gone.connectionId,
        userId: 'judy',
        topics: ['news', 'room:a'],
      });
      expect(await registry.remove(gone.connectionId)).toBeNull();
      expect(await registry.remove('never-registered=')).toBeNull();

      expect(await registry.get(gone.connectionId)).toBeNull();
      expect(await env.redis.exists(registry.keys.connection(gone.connectionId))).toBe(0);
      expect(await env.redis.exists(registry.keys.connectionTopics(gone.connectionId))).toBe(0);
      expect(await env.redis.zscore(registry.keys.all(), member)).toBeNull();
      for (const audience of [
        registry.userAudience('judy'),
        registry.topicAudience('news'),
        registry.topicAudience('room:a'),
      ]) {
        expect(await env.redis.zscore(audience.keys.live, member)).toBeNull();
        expect(await env.redis.zscore(audience.keys.resuming, member)).toBeNull();
      }
      // The other device is untouched.
      expect(await registry.lookupUser('judy')).toEqual([
        { connectionId: stays.connectionId, endpoint: stays.endpoint },
      ]);
      expect(await registry.countConnected(registry.topicAudience('news'))).toBe(1);
      expect(await registry.countConnected('all')).toBe(1);
    });

    it('removes a connection that is still resuming', async () => {
      const registry = env.registry();
      const record = connection('kate', { pendingSince: '0' });
      await registry.register(record);
      expect(await registry.remove(record.connectionId)).not.toBeNull();
      expect(
        await env.redis.zcard(registry.userAudience('kate').keys.resuming),
        'resuming set',
      ).toBe(0);
    });
  });

  describe('subscribe and unsubscribe', () => {
    it('adds to and removes from the topic live set', async () => {
      const registry = env.registry();
      const record = connection('liam');
      await registry.register(record);
      const topic = registry.topicAudience('room:7');
      const member = encodeMember(record);

      await registry.subscribe(record, 'room:7');
      expect(await env.redis.zscore(topic.keys.live, member)).not.toBeNull();
      expect((await registry.get(record.connectionId))?.topics).toEqual(['room:7']);
      expect(await registry.countConnected(topic)).toBe(1);

      expect(await registry.unsubscribe(record, 'room:7')).toBe(true);
      expect(await env.redis.zscore(topic.keys.live, member)).toBeNull();
      expect((await registry.get(record.connectionId))?.topics).toEqual([]);
      expect(await registry.countConnected(topic)).toBe(0);
      expect(await registry.unsubscribe(record, 'room:7')).toBe(false);
    });

    it('subscribes as resuming outside the live set, and moves to live on a plain subscribe', async () => {
      const registry = env.registry();
      const record = connection('mona');
      await registry.register(record);
      const topic = registry.topicAudience('room:8');
      const member = encodeMember(record);

      await registry.subscribe(record, 'room:8', Date.now() + 60_000);
      expect(await env.redis.zscore(topic.keys.live, member)).toBeNull();
      expect(await env.redis.zscore(topic.keys.resuming, member)).not.toBeNull();
      // Catching up is still being a member: presence counts it.
      expect(await registry.countConnected(topic)).toBe(1);

      await registry.subscribe(record, 'room:8');
      expect(await env.redis.zscore(topic.keys.live, member)).not.toBeNull();
      expect(await env.redis.zscore(topic.keys.resuming, member)).toBeNull();

      expect(await registry.unsubscribe(record, 'room:8')).toBe(true);
      expect(await env.redis.zcard(topic.keys.resuming)).toBe(0);
      expect(await env.redis.zcard(topic.keys.live)).toBe(0);
    });

    it('remove() takes the connection out of every topic', async () => {
      const registry = env.registry();
      const record = connection('nina');
      const other = connection('otto');
      await Promise.all([registry.register(record), registry.register(other)]);
      const topics = ['news', 'room:1', 'room:2', 'room:3'];
      for (const t of topics) await registry.subscribe(record, t);
      await registry.subscribe(other, 'room:2');

      await registry.remove(record.connectionId);
      for (const t of topics) {
        expect(await registry.countConnected(registry.topicAudience(t)), t).toBe(
          t === 'room:2' ? 1 : 0,
        );
      }
    });
  });
});

describe('cluster key layout', () => {
  const env = envs.cluster;
  const slot = async (key: string) => Number(await env.masters[0]?.cluster('KEYSLOT', key));

  it('keeps every key of one user in one slot, and of one connection in one slot', async () => {
    const registry = env.registry();
    const user = registry.userAudience('alice').keys;
    const userSlots = await Promise.all(
      [user.live, user.resuming, user.history, user.lost].map(slot),
    );
    expect(new Set(userSlots).size).toBe(1);

    const topic = registry.topicAudience('room:1').keys;
    const topicSlots = await Promise.all(
      [topic.live, topic.resuming, topic.history, topic.lost].map(slot),
    );
    expect(new Set(topicSlots).size).toBe(1);

    const id = 'L0SM9cOFvHcCIhw=';
    expect(await slot(registry.keys.connection(id))).toBe(
      await slot(registry.keys.connectionTopics(id)),
    );
    // Hash tags really separate users: not everything collapses into one slot.
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => slot(registry.userAudience(`u${i}`).keys.live)),
    );
    expect(new Set(many).size).toBeGreaterThan(10);
  });

  it('spreads one test run over several nodes, so the matrix really crosses slots', async () => {
    const registry = env.registry();
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => registry.register(connection(`spread${i}`))),
    );
    const sizes = await Promise.all(env.masters.map((m) => m.dbsize()));
    expect(env.masters).toHaveLength(3);
    expect(sizes.filter((n) => n > 0).length).toBe(3);
  });
});
