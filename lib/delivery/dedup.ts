import { randomUUID } from 'node:crypto';
import type { Cluster, Redis, Result } from 'ioredis';
import releaseLua from './dedup-release.lua';

/** What claiming a publish id found. */
export type Claim =
  /** This attempt owns the id until it completes, releases it, or its lease runs out. */
  | { state: 'claimed'; token: string }
  /** A publish with this id completed; `first` is its result. */
  | { state: 'done'; first: unknown }
  /** Another attempt holds the id and its lease has not run out. */
  | { state: 'running' };

/**
 * Remembers publish ids so a retried publish is recognised. An attempt holds
 * its id under a lease (about the function's timeout), so one that died
 * (killed by its timeout, out of memory) stops blocking retries when the
 * lease runs out; a completed one is remembered with its result.
 */
export interface DedupStore {
  claim(id: string): Promise<Claim>;
  /** Records the result of the publish that claimed `id`. */
  complete(id: string, result: unknown): Promise<void>;
  /** Gives a claim back after a failed attempt, so a retry can deliver. */
  release(id: string, token: string): Promise<void>;
}

export interface RedisDedupOptions {
  /** How long a completed publish id is remembered (DEDUP_TTL_SECONDS). */
  ttlSeconds: number;
  /** How long an attempt holds its id before a retry may take over (PUBLISH_LEASE_SECONDS). */
  leaseSeconds: number;
}

const PENDING = 'pending:';

/**
 * One STRING per id: `pending:<token>` with the lease as TTL while an attempt
 * runs, then the result JSON with the dedup TTL.
 *
 * Why not Powertools Idempotency's CachePersistenceLayer (checked against
 * @aws-lambda-powertools/idempotency 2.35): it would take ioredis (standalone
 * and Cluster) through a three-method adapter, but its in-progress record
 * expires only through a registered Lambda context; without one (publish()
 * called in-process, in tests or benchmarks) an in-progress record counts as
 * orphaned and a concurrent attempt takes it over at once. Its takeover of an
 * expired attempt is a GET, a lock key and a SET rather than one SET NX, and
 * the publish result would still need a hook to say `duplicate`. This store
 * is one SET NX per first attempt, as the library's is.
 */
export class RedisDedupStore implements DedupStore {
  readonly #redis: Redis | Cluster;
  readonly #key: (id: string) => string;
  readonly #options: RedisDedupOptions;

  constructor(redis: Redis | Cluster, key: (id: string) => string, options: RedisDedupOptions) {
    if (typeof (redis as Partial<Redis>).pwDedupRelease !== 'function') {
      redis.defineCommand('pwDedupRelease', { numberOfKeys: 1, lua: releaseLua });
    }
    this.#redis = redis;
    this.#key = key;
    this.#options = options;
  }

  async claim(id: string): Promise<Claim> {
    const key = this.#key(id);
    const token = randomUUID();
    // A claim that expires between our SET NX and GET leaves nothing to read:
    // claim again (a few times at most; each round needs that exact race).
    for (let round = 0; round < 3; round++) {
      const set = await this.#redis.set(
        key,
        PENDING + token,
        'EX',
        this.#options.leaseSeconds,
        'NX',
      );
      if (set === 'OK') return { state: 'claimed', token };
      const value = await this.#redis.get(key);
      if (value === null) continue;
      if (value.startsWith(PENDING)) return { state: 'running' };
      return { state: 'done', first: JSON.parse(value) };
    }
    return { state: 'running' };
  }

  async complete(id: string, result: unknown): Promise<void> {
    // Unconditional: even an attempt that outlived its lease delivered the
    // same frames, and its result is as good as a retry's.
    await this.#redis.set(this.#key(id), JSON.stringify(result), 'EX', this.#options.ttlSeconds);
  }

  async release(id: string, token: string): Promise<void> {
    await this.#redis.pwDedupRelease(this.#key(id), PENDING + token);
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwDedupRelease(key: string, claim: string): Result<number, Context>;
  }
}
