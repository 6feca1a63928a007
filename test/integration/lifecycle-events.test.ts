import { describe, expect, it } from 'vitest';
import { RedisEventOutbox } from '../../lib/events/outbox.js';
import { encodeMember } from '../../lib/registry/keys.js';
import { PRUNE_DELAY_MS } from '../../lib/registry/redis.js';
import { TOPOLOGIES, testClock, useTopologies } from '../helpers/redis-matrix.js';
import { connection } from './support.js';

const envs = useTopologies();

describe.each(TOPOLOGIES)('lifecycle events on %s Redis', (topology) => {
  const env = envs[topology];

  describe('the outbox', () => {
    it('hands records over oldest first, each to one taker', async () => {
      // Prepare
      const outbox = new RedisEventOutbox(env.redis, `${env.prefix()}events`, 100);
      await outbox.push(['a', 'b', 'c']);
      // Act
      const [first, second, third] = await Promise.all([
        outbox.take(2),
        outbox.take(2),
        outbox.take(2),
      ]);
      // Assess
      expect([first, second, third]).toEqual([['a', 'b'], ['c'], []]);
    });

    it('keeps at most its bound, dropping the oldest, and says how many it dropped', async () => {
      // Prepare
      const outbox = new RedisEventOutbox(env.redis, `${env.prefix()}events`, 5);
      await outbox.push(['1', '2', '3']);
      // Act
      const { dropped } = await outbox.push(['4', '5', '6', '7']);
      // Assess
      expect(dropped).toBe(2);
      expect(await outbox.take(10)).toEqual(['3', '4', '5', '6', '7']);
    });
  });

  describe('sweepExpired', () => {
    it('answers connections whose membership and record expired, once, and leaves live ones', async () => {
      // Prepare: three connections; time moves past their expiry (660 s) and a minute.
      const clock = testClock();
      const registry = env.registry({ connectionTtlSeconds: 660, now: clock.now });
      const lost = connection('ann'); // its $disconnect never came; its record expired
      const tokenExpired = connection('ben'); // membership expired, record still there
      const live = connection('cid');
      for (const c of [lost, tokenExpired, live]) await registry.register(c);
      await env.redis.del(registry.keys.connection(lost.connectionId)); // its TTL ran out
      clock.advance(660_000 + 61_000);
      await registry.touch(live.connectionId); // a frame renews it
      // A connect meanwhile prunes only what expired PRUNE_DELAY_MS ago: the sweep comes first.
      await registry.register(connection('dee'));

      // Act
      const swept = await registry.sweepExpired(clock.now() - 60_000, 100);
      const again = await registry.sweepExpired(clock.now() - 60_000, 100);

      // Assess
      expect(swept).toEqual([{ connectionId: lost.connectionId, endpoint: lost.endpoint }]);
      expect(again).toEqual([]);
      const all = registry.keys.all();
      expect(await env.redis.zscore(all, encodeMember(lost))).toBeNull();
      expect(await env.redis.zscore(all, encodeMember(tokenExpired))).toBeNull();
      expect(await env.redis.zscore(all, encodeMember(live))).not.toBeNull();
    });

    it('a connect still prunes what expired longer ago than PRUNE_DELAY_MS', async () => {
      // Prepare
      const clock = testClock();
      const registry = env.registry({ connectionTtlSeconds: 660, now: clock.now });
      const old = connection('eve');
      await registry.register(old);
      clock.advance(660_000 + PRUNE_DELAY_MS + 1_000);
      // Act
      await registry.register(connection('fay'));
      // Assess
      expect(await env.redis.zscore(registry.keys.all(), encodeMember(old))).toBeNull();
    });
  });
});
