import type { Cluster, Redis } from 'ioredis';

/** Remembers publish ids so a retried publish is recognised, with the first result. */
export interface DedupStore {
  /** Claims an id; false (and the first result, when known) if it was already claimed. */
  claim(id: string): Promise<{ claimed: true } | { claimed: false; first: unknown }>;
  /** Records the result of the publish that claimed `id`. */
  complete(id: string, result: unknown): Promise<void>;
  /** Gives a claim back after a failed publish, so a retry can deliver. */
  release(id: string): Promise<void>;
}

export class RedisDedupStore implements DedupStore {
  readonly #redis: Redis | Cluster;
  readonly #key: (id: string) => string;
  readonly #ttl: number;

  constructor(redis: Redis | Cluster, key: (id: string) => string, ttlSeconds: number) {
    this.#redis = redis;
    this.#key = key;
    this.#ttl = ttlSeconds;
  }

  async claim(id: string) {
    const key = this.#key(id);
    const set = await this.#redis.set(key, 'pending', 'EX', this.#ttl, 'NX');
    if (set === 'OK') return { claimed: true as const };
    const value = await this.#redis.get(key);
    let first: unknown = null;
    if (value && value !== 'pending') first = JSON.parse(value);
    return { claimed: false as const, first };
  }

  async complete(id: string, result: unknown): Promise<void> {
    await this.#redis.set(this.#key(id), JSON.stringify(result), 'KEEPTTL', 'XX');
  }

  async release(id: string): Promise<void> {
    await this.#redis.del(this.#key(id));
  }
}
