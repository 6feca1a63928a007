import type { Cluster, Redis } from 'ioredis';

/**
 * The hand-off between the functions that see events and the `events`
 * function that sends them: a Redis LIST of JSON records (EventRecord).
 *
 * Why not PutEvents from the handler itself: `$connect` and `$default`
 * answer a client, and in Lambda nothing runs after the handler returns
 * (the environment is frozen), so a PutEvents there, awaited or not, would
 * either delay the answer by an HTTPS round trip to EventBridge (plus a TLS
 * handshake on a cold start) or be lost. One RPUSH rides the Redis
 * connection the handler already uses (auto-pipelined with its other
 * commands), and keeps the signer and PutEvents code out of the client
 * routes' zips. The cost: delivery is at most once (a record taken by a
 * relay that then dies is lost) and as durable as Redis.
 */
export interface EventOutbox {
  /** Appends records; answers how many old ones were dropped to stay within the bound. */
  push(records: readonly string[]): Promise<{ dropped: number }>;
  /** Takes (removes) up to `max` of the oldest records. */
  take(max: number): Promise<string[]>;
}

export class RedisEventOutbox implements EventOutbox {
  readonly #redis: Redis | Cluster;
  readonly #key: string;
  readonly #maxLength: number;

  /** `maxLength`: records kept while no relay takes them; past it the oldest are dropped. */
  constructor(redis: Redis | Cluster, key: string, maxLength: number) {
    this.#redis = redis;
    this.#key = key;
    this.#maxLength = maxLength;
  }

  async push(records: readonly string[]): Promise<{ dropped: number }> {
    if (records.length === 0) return { dropped: 0 };
    const length = await this.#redis.rpush(this.#key, ...records);
    if (length <= this.#maxLength) return { dropped: 0 };
    // Two pushes racing past the bound may both trim: the count is what each saw over it.
    await this.#redis.ltrim(this.#key, -this.#maxLength, -1);
    return { dropped: Math.min(records.length, length - this.#maxLength) };
  }

  async take(max: number): Promise<string[]> {
    // LPOP with a count (Redis 6.2): one round trip, atomic, so relays side by side never share a record.
    return (await this.#redis.lpop(this.#key, max)) ?? [];
  }
}
