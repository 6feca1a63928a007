import type { Cluster, Redis, Result } from 'ioredis';
import { defaultSleep, type Gateway, type GatewayResult, isThrottled } from '../gateway/gateway.js';
import paceLua from './pace.lua';

/**
 * Paced delivery (issue 19). API Gateway throttles the management API per
 * account and region (10,000 requests/s with a 5,000-request token bucket by
 * default, shared with every API of the account: docs/pacing.md). `deliver`
 * workers run side by side without knowing about each other, so a
 * million-member fan-out that lets each back off on 429 alone wastes
 * requests, stretches the tail and starves every other publish. Here every
 * post takes a token from one bucket in Redis first (pace.lua), refilled at
 * PACE_RATE, so all workers of all publishes together stay under the limit.
 *
 * Two lanes share the bucket. What `publish` delivers itself (an audience of
 * one chunk: the small publishes) takes any token; `deliver` workers (the
 * chunks of large audiences) leave `reserve` tokens in it. Bulk delivery
 * keeps the bucket at the reserve, so a small publish finds its tokens there
 * at once instead of queueing behind a million posts, and the rate is never
 * split in fixed shares: when no small publish comes, bulk gets all of it.
 * Between several large publishes the rate is shared per worker (each takes
 * in turn as its batch comes due), so in proportion to their chunks in flight.
 */

/** The bucket's port: Redis in production, a fake in unit tests. */
export interface PaceLimiter {
  /** Takes up to `want` tokens, leaving `keep`: [granted, ms until `want` are free when 0]. */
  take(want: number, keep: number): Promise<[granted: number, waitMs: number]>;
  /** AWS throttled a post anyway: lower the shared rate (at most once a second). */
  throttled(): Promise<unknown>;
}

export interface PaceSettings {
  /** Posts per second for the whole account (PACE_RATE). */
  rate: number;
  /** Most tokens the bucket holds (PACE_BURST). */
  burst: number;
}

/** How long the bucket outlives its last use: past it, a fresh one is full. */
const BUCKET_TTL_MS = 60_000;

export class RedisPaceLimiter implements PaceLimiter {
  readonly #redis: Redis | Cluster;
  readonly #key: string;
  readonly #settings: PaceSettings;

  constructor(redis: Redis | Cluster, key: string, settings: PaceSettings) {
    if (typeof (redis as Partial<Redis>).pwPace !== 'function') {
      redis.defineCommand('pwPace', { numberOfKeys: 1, lua: paceLua });
    }
    this.#redis = redis;
    this.#key = key;
    this.#settings = settings;
  }

  async take(want: number, keep: number): Promise<[number, number]> {
    const { rate, burst } = this.#settings;
    const [granted, wait] = await this.#redis.pwPace(
      this.#key,
      'take',
      rate,
      burst,
      want,
      keep,
      BUCKET_TTL_MS,
    );
    return [Number(granted), Number(wait)];
  }

  throttled(): Promise<unknown> {
    const { rate, burst } = this.#settings;
    return this.#redis.pwPace(this.#key, 'throttled', rate, burst, 0, 0, BUCKET_TTL_MS);
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwPace(
      bucket: string,
      op: 'take' | 'throttled',
      rate: number,
      burst: number,
      want: number,
      keep: number,
      ttlMs: number,
    ): Result<[number, number], Context>;
  }
}

export interface PacerOptions {
  limiter: PaceLimiter;
  /** Tokens most asked for in one round trip (a few ms of the rate: fewer trips, little left unspent). */
  batch: number;
  /** Tokens this lane leaves in the bucket: the reserve for `deliver` workers, 0 for `publish`. */
  keep: number;
  /** Told when the bucket cannot be reached (delivery then goes on unpaced: AWS still throttles). */
  onError?: (error: unknown) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** How long delivery goes unpaced after the bucket could not be reached, before it asks again. */
const UNPACED_MS = 1_000;
/** Longest wait before asking again, whatever the bucket said (a new rate may come sooner). */
const MAX_WAIT_MS = 250;

/**
 * One process's side of the bucket: posts wait here for a token; one request
 * at a time asks Redis for as many as are waiting (up to `batch`), so a
 * worker with 100 posts in flight makes one round trip per batch, not per post.
 */
export class Pacer {
  readonly #options: PacerOptions;
  readonly #sleep: (ms: number) => Promise<void>;
  #tokens = 0;
  readonly #waiting: (() => void)[] = [];
  #filling = false;
  #unpacedUntil = 0;
  #lastThrottle = 0;

  constructor(options: PacerOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? defaultSleep;
  }

  /** Undefined when a token is at hand (the hot path allocates nothing), else a promise of one. */
  acquire(): Promise<void> | undefined {
    if (this.#tokens > 0) {
      this.#tokens--;
      return undefined;
    }
    if (this.#unpacedUntil > Date.now()) return undefined;
    const waiting = new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (!this.#filling) {
      this.#filling = true;
      void this.#fill();
    }
    return waiting;
  }

  /**
   * The gateway is about to retry a call: lower the shared rate if AWS
   * throttled it despite the pacing (other traffic in the account). A 5xx,
   * a reset or a timeout says nothing about the rate (an outage of the
   * management API must not starve every publish after it).
   */
  retried(error: unknown): void {
    if (isThrottled(error)) this.throttled();
  }

  /** AWS answered 429 despite the pacing: lower the shared rate. */
  throttled(): void {
    const now = Date.now();
    // The script lowers at most once a second; this saves it the calls.
    if (now - this.#lastThrottle < 1_000) return;
    this.#lastThrottle = now;
    this.#options.limiter.throttled().catch((error: unknown) => this.#options.onError?.(error));
  }

  async #fill(): Promise<void> {
    const { limiter, batch, keep } = this.#options;
    while (this.#waiting.length > 0) {
      let granted: number;
      let wait: number;
      try {
        [granted, wait] = await limiter.take(Math.min(batch, this.#waiting.length), keep);
      } catch (error) {
        this.#options.onError?.(error);
        this.#unpacedUntil = Date.now() + UNPACED_MS;
        for (const go of this.#waiting.splice(0)) go();
        break;
      }
      if (granted === 0) {
        await this.#sleep(Math.max(1, Math.min(wait, MAX_WAIT_MS)));
        continue;
      }
      const go = this.#waiting.splice(0, granted);
      this.#tokens += granted - go.length;
      for (const resolve of go) resolve();
    }
    this.#filling = false;
  }
}

/** Times a post still throttled after the gateway's own retries goes back to wait for a token. */
const PACED_ROUNDS = 3;

/**
 * A gateway whose every post and close first takes a token. Retries after a
 * 429 inside the inner gateway take none (they are rare by construction, and
 * each 429 lowers the shared rate: Pacer.throttled, wired to the gateway's
 * onThrottle); a call still throttled once those are spent queues for a token
 * again, up to PACED_ROUNDS times within the deadline, rather than failing
 * (and closing its connection) while the lowered rate lets it through.
 */
export function pacedGateway(inner: Gateway, pacer: Pacer): Gateway {
  const paced = (send: () => Promise<GatewayResult>, deadline?: number) => {
    const round = (n: number): Promise<GatewayResult> => {
      const attempt = () =>
        send().catch((error: unknown) => {
          if (!isThrottled(error) || n >= PACED_ROUNDS || Date.now() >= (deadline ?? Infinity))
            throw error;
          pacer.throttled();
          return round(n + 1);
        });
      const wait = pacer.acquire();
      return wait === undefined ? attempt() : wait.then(attempt);
    };
    return round(1);
  };
  return {
    post: (endpoint, connectionId, data, deadline) =>
      paced(() => inner.post(endpoint, connectionId, data, deadline), deadline),
    close: (endpoint, connectionId, deadline) =>
      paced(() => inner.close(endpoint, connectionId, deadline), deadline),
  };
}
