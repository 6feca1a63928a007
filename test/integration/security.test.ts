import { describe, expect, it } from 'vitest';
import { markEpoch, type RedisRegistry } from '../../lib/registry/redis.js';
import { handleFrame } from '../../lib/session/session.js';
import { callsDelta, TOPOLOGIES, testClock, useTopologies } from '../helpers/redis-matrix.js';
import { connection, RecordingGateway } from './support.js';

const envs = useTopologies();

describe.each(TOPOLOGIES)('security limits on %s Redis', (topology) => {
  const env = envs[topology];

  describe("token exp bounds a connection's member scores", () => {
    it('never scores a member past its token exp, so publishes and lookups skip it once expired', async () => {
      // Prepare
      const clock = testClock();
      const registry = env.registry({ now: clock.now, connectionTtlSeconds: 600 });
      const exp = clock.now() + 5_000;
      const record = connection('exp-user', { tokenExpiresAt: exp });
      await registry.register(record);
      await registry.subscribe(record, 'news');
      const member = `${record.connectionId}|${record.endpoint}`;

      // Act
      await registry.touch(record.connectionId);
      const userScore = Number(
        await env.redis.zscore(registry.userAudience('exp-user').keys.live, member),
      );
      const topicScore = Number(
        await env.redis.zscore(registry.topicAudience('news').keys.live, member),
      );
      const beforeExp = await registry.lookupUser('exp-user');
      clock.advance(5_001);
      const afterExp = await registry.lookupUser('exp-user');
      const published = await registry.publish(registry.topicAudience('news'), null, 100);

      // Assess
      expect(userScore).toBe(exp);
      expect(topicScore).toBe(exp);
      expect(beforeExp.map((r) => r.connectionId)).toEqual([record.connectionId]);
      expect(afterExp).toEqual([]);
      expect(published.count).toBe(0);
    });

    it('raises the bound when the token is refreshed', async () => {
      // Prepare
      const clock = testClock();
      const registry = env.registry({ now: clock.now, connectionTtlSeconds: 600 });
      const record = connection('refresh-user', { tokenExpiresAt: clock.now() + 5_000 });
      await registry.register(record);
      const newExp = clock.now() + 60_000;

      // Act
      await registry.refreshToken(record.connectionId, {
        expiresAt: newExp,
        issuedAt: clock.now(),
        topics: ['news'],
      });
      const stored = await registry.get(record.connectionId);
      const score = Number(
        await env.redis.zscore(
          registry.userAudience('refresh-user').keys.live,
          `${record.connectionId}|${record.endpoint}`,
        ),
      );

      // Assess
      expect(stored?.tokenExpiresAt).toBe(newExp);
      expect(stored?.allowedTopics).toEqual(['news']);
      expect(score).toBe(newExp);
    });
  });

  describe('topics per connection', () => {
    it('admits exactly the limit of topics even when subscribes race', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('topic-racer', { allowedTopics: ['*'] });
      await registry.register(record);
      const topics = Array.from({ length: 20 }, (_, i) => `race-${i}`);

      // Act
      const outcomes = await Promise.all(
        topics.map((t) => registry.subscribe(record, t, undefined, 5)),
      );
      const stored = await registry.get(record.connectionId);

      // Assess
      expect(outcomes.filter((o) => o === 'subscribed')).toHaveLength(5);
      expect(stored?.topics).toHaveLength(5);
      // A refused topic's audience was not joined.
      const refused = topics.filter((_, i) => outcomes[i] !== 'subscribed');
      const counts = await Promise.all(
        refused.map((t) => registry.countConnected(registry.topicAudience(t))),
      );
      expect(counts.every((c) => c === 0)).toBe(true);
    });

    it('accepts a repeated subscribe to a topic it has, at the limit', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('topic-repeat', { allowedTopics: ['*'] });
      await registry.register(record);
      await registry.subscribe(record, 'a', undefined, 1);

      // Act
      const again = await registry.subscribe(record, 'a', undefined, 1);
      const other = await registry.subscribe(record, 'b', undefined, 1);

      // Assess
      expect(again).toBe('subscribed');
      expect(other).toBe('too_many_topics');
    });
  });

  describe('revocation, endpoints and replay counts', () => {
    it("reads the user's revocation with each frame's touch, and forgets it after its TTL", async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('adm-user');
      await registry.register(record);

      // Act
      const before = await registry.touch(record.connectionId);
      await registry.revokeUser('adm-user', 1234, 60);
      const after = await registry.touch(record.connectionId);
      const ttl = await env.redis.ttl(registry.keys.revoked('adm-user'));

      // Assess
      expect(before?.revokedAt).toBeUndefined();
      expect(after?.revokedAt).toBe(1234);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60);
    });

    it('refuses a token issued before Redis lost its data: the revocation went with the data (model seed -1830243317)', async () => {
      // Prepare: a revoked user, whose token from before the revocation is refused.
      const clock = testClock();
      const registry = env.registry({ now: clock.now });
      // The data begins (as `npm start` marks it, or the first $connect).
      const prefix = registry.keys.endpoints().slice(0, -'endpoints'.length);
      const began = clock.now();
      expect(await markEpoch(env.redis, prefix, began)).toBe(began);
      clock.advance(10_000);
      const issued = clock.now();
      const old = (id: string) =>
        connection('rev-user', { connectionId: id, tokenIssuedAt: issued });
      expect(await registry.register(old('rv-1='))).toBe('registered');
      clock.advance(1_000);
      await registry.revokeUser('rev-user', clock.now(), 3_600);
      expect(await registry.register(old('rv-2='))).toBe('revoked');
      // Redis restarts empty, more than the grace (60 s) after the revocation:
      // the revocation, the records, the epochs are gone.
      clock.advance(61_000);
      await registry.remove('rv-1=');
      const gone = [
        registry.keys.revoked('rev-user'),
        registry.keys.epoch(),
        registry.keys.tokenEpoch(),
        registry.keys.endpoints(),
      ];
      for (const key of gone) await env.redis.del(key);

      // Act
      const lost = clock.now();
      const stale = await registry.register(old('rv-3='));
      const fresh = await registry.register(
        connection('rev-user', { connectionId: 'rv-4=', tokenIssuedAt: clock.now() }),
      );
      // Within the grace before the data began: admitted (a fresh Redis looks the same).
      const minted = await registry.register(
        connection('rev-user', { connectionId: 'rv-5=', tokenIssuedAt: clock.now() - 50_000 }),
      );

      // Assess: the old token is refused and nothing of it is written; a new one is admitted.
      expect(stale).toBe('issued_before_epoch');
      expect(await env.redis.exists(registry.keys.connection('rv-3='))).toBe(0);
      expect((await registry.lookupUser('rev-user')).map((c) => c.connectionId).sort()).toEqual([
        'rv-4=',
        'rv-5=',
      ]);
      expect(fresh).toBe('registered');
      expect(minted).toBe('registered');
      const epoch = Number(await env.redis.get(registry.keys.tokenEpoch()));
      expect(epoch).toBeGreaterThanOrEqual(lost);
      expect(epoch).toBeLessThanOrEqual(clock.now());
    });

    it('refuses no token on data from before token epochs (an epoch but no token epoch)', async () => {
      const registry = env.registry();
      await registry.register(connection('upg-user'));
      await env.redis.del(registry.keys.tokenEpoch());
      const record = connection('upg-user', { connectionId: 'upg-2=', tokenIssuedAt: 1_000 });
      expect(await registry.register(record)).toBe('registered');
    });

    it('knows the endpoints connections were recorded with, and no others', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('ep-user', { endpoint: 'https://recorded.example/prod' });
      await registry.register(record);

      // Act
      const recorded = await registry.endpointsKnown([record.endpoint, record.endpoint]);
      const mixed = await registry.endpointsKnown([record.endpoint, 'https://attacker.example/x']);

      // Assess
      expect(recorded).toBe(true);
      expect(mixed).toBe(false);
      expect(await env.redis.ttl(registry.keys.endpoints())).toBeGreaterThan(7_200);
    });

    it('counts replays in a window that expires', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('replay-user');

      // Act
      const counts = [];
      for (let i = 0; i < 3; i++) counts.push(await registry.countReplay(record.connectionId));
      const ttl = await env.redis.ttl(registry.keys.connectionReplays(record.connectionId));

      // Assess
      expect(counts).toEqual([1, 2, 3]);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60);
    });
    it('lets a reconnection resubscribe every topic from its cursor (first replay of each stream is free); counts repeats (issue 21, item 1)', async () => {
      // Prepare: the defaults, 10 replays a minute and 100 topics; 12 topics with history.
      const registry = env.registry();
      const record = connection('many-topics', { allowedTopics: ['*'] });
      await registry.register(record);
      const deps = {
        registry,
        gateway: new RecordingGateway(),
        limits: { topicsPerConnection: 100, replaysPerMinute: 10 },
      };
      const subscribe = (topic: string) =>
        handleFrame(
          record.connectionId,
          JSON.stringify({ action: 'subscribe', topic, since: '0-0' }),
          deps,
        ).catch((error: { code?: string; extra?: object }) => error);

      // Act
      const first = [];
      for (let i = 0; i < 12; i++) first.push(await subscribe(`many-${i}`));
      const repeats = [];
      for (let i = 0; i < 11; i++) repeats.push(await subscribe('many-0'));

      // Assess: all 12 replayed; repeats of one stream count, the 11th is refused with when and which.
      expect(first.map((f) => (f as { type?: string }).type)).toEqual(Array(12).fill('resumed'));
      expect(repeats.slice(0, 10).map((f) => (f as { type?: string }).type)).toEqual(
        Array(10).fill('resumed'),
      );
      expect(repeats[10]).toMatchObject({
        code: 'rate_limited',
        extra: { retryAfter: 60, topic: 'many-0' },
      });
    });

    it('counts a stream free only once, and no more streams free than the topic limit allows', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('free-streams');

      // Act
      const counts = [
        await registry.countReplay(record.connectionId, 't:a', 2),
        await registry.countReplay(record.connectionId, 't:b', 2),
        await registry.countReplay(record.connectionId, 't:a', 2),
        await registry.countReplay(record.connectionId, 't:c', 2),
      ];

      // Assess
      expect(counts).toEqual([0, 0, 1, 2]);
    });
  });

  describe('ping cost', () => {
    /** Redis commands one ping costs a connection subscribed to `topics` topics. */
    async function pingCommands(registry: RedisRegistry, topics: number): Promise<number> {
      const record = connection(`ping-${topics}`, { allowedTopics: ['*'] });
      await registry.register(record);
      for (let i = 0; i < topics; i++) await registry.subscribe(record, `pc-${i}`, undefined, 100);
      const deps = {
        registry,
        gateway: new RecordingGateway(),
        limits: { topicsPerConnection: 100 },
      };
      const before = await env.commandCalls();
      await handleFrame(record.connectionId, '{"action":"ping"}', deps);
      const delta = callsDelta(before, await env.commandCalls());
      return Object.values(delta).reduce((a, b) => a + b, 0);
    }

    it('grows linearly with topics and stays bounded by the topic limit', async () => {
      // Prepare
      const registry = env.registry();

      // Act
      const none = await pingCommands(registry, 0);
      const ten = await pingCommands(registry, 10);
      const atLimit = await pingCommands(registry, 100);
      // A client cannot go past the limit: the 101st subscribe is refused.
      const record = connection('ping-over', { allowedTopics: ['*'] });
      await registry.register(record);
      for (let i = 0; i < 100; i++) await registry.subscribe(record, `po-${i}`, undefined, 100);
      const over = await registry.subscribe(record, 'po-100', undefined, 100);

      // Assess
      const perTopic = (ten - none) / 10;
      expect(perTopic).toBeGreaterThan(0);
      expect(atLimit).toBe(none + perTopic * 100);
      expect(over).toBe('too_many_topics');
      console.log(
        `[${topology}] ping cost (Redis commands): 0 topics ${none}, 10 topics ${ten}, 100 topics ${atLimit} (${perTopic} per topic)`,
      );
    });
  });
});
