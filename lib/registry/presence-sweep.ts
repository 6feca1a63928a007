import type { Cluster, Redis } from 'ioredis';
import { NUDGE_GRACE_MS, type RedisRegistry } from './redis.js';
import takeLua from './scripts/presence-take.lua';
import type { PresenceSweeper } from './types.js';

/**
 * The sweep and the drain's takes, for the presenceEvents function only: kept
 * out of RedisRegistry so `$default`, which never sweeps, does not carry them
 * (every byte there counts against its 250 KB target).
 */
export class RedisPresenceSweeper implements PresenceSweeper {
  readonly #redis: Redis | Cluster;
  readonly #registry: RedisRegistry;
  readonly #now: () => number;

  constructor(redis: Redis | Cluster, registry: RedisRegistry, now: () => number = Date.now) {
    if (typeof (redis as Partial<Redis>).pwPresenceTake !== 'function')
      redis.defineCommand('pwPresenceTake', { numberOfKeys: 2, lua: takeLua });
    this.#redis = redis;
    this.#registry = registry;
    this.#now = now;
  }

  async sweepPresence(maxTopics: number): Promise<string[]> {
    const due = this.#registry.keys.presenceDue();
    const topics = await this.#redis.zrangebyscore(due, '-inf', this.#now(), 'LIMIT', 0, maxTopics);
    const waiting: string[] = [];
    for (const topic of topics) {
      // Expired devices out (their users' leaves recorded), 500 at a time.
      let removed: number;
      do {
        const step = (await this.#registry.presenceOp(topic, 'expire', 500)) as number[];
        removed = Number(step[2]);
      } while (removed === 500);
      // Out of the due set, then back in by what is left. A join between the
      // two steps re-adds the topic itself (it writes its device, then ZADD
      // LT), and one before is read here: no device goes unswept.
      await this.#redis.zrem(due, topic);
      const [, , , earliest, events] = (await this.#registry.presenceOp(topic, 'expire', 0)) as (
        | string
        | number
      )[];
      if (earliest !== '' && earliest !== undefined)
        await this.#redis.zadd(due, 'LT', Number(earliest), topic);
      if (Number(events) > 0) {
        await this.#redis.zadd(due, 'LT', this.#now() + NUDGE_GRACE_MS, topic);
        waiting.push(topic);
      }
    }
    return waiting;
  }

  async takePresenceEvents(topic: string, token: string, max: number): Promise<string[] | null> {
    const k = this.#registry.keys.presence(topic);
    // 30 s: longer than a drain's fan-out of one batch; a drain that died frees it then.
    return this.#redis.pwPresenceTake(k.events, k.lock, token, max, 30_000);
  }
}
