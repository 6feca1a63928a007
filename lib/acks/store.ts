import type { Cluster, Redis, Result } from 'ioredis';
import type { PushOutcome } from '../push/types.js';
import type { Keys } from '../registry/keys.js';
import ackOpenLua from '../registry/scripts/ack-open.lua';
import ackTimeoutLua from '../registry/scripts/ack-timeout.lua';

/**
 * The state of acknowledged messages (issue 18), one hash per message and
 * user in the user's slot (keys.ack): where it was posted, who acked it and
 * when, and what its timeout did. It lives as long as the user's history
 * (HISTORY_TTL_SECONDS, or the timeout and ten minutes when that is longer).
 *
 * Fields: id, u (user), s (state), at (published, ms), due (timeout, ms),
 * d ("1": dismissOthers), n ("1": notify given), e (the epoch at publish),
 * cur (cursor), p:<connection> (posted, ms), a:<connection> (acked, ms),
 * first and fa (the first ack), tf (the timeout fired, ms), push (JSON),
 * pa (pushed, ms), lost (why the state had to be made again).
 */

export type AckState = 'pending' | 'acked' | 'pushing' | 'pushed' | 'timed_out';

export interface AckDevice {
  connectionId: string;
  postedAt?: number;
  ackedAt?: number;
}

/** What `status` answers (docs/openapi.yaml AckStatus). */
export interface AckStatus {
  id: string;
  userId: string;
  state: AckState;
  publishedAt?: number;
  timeoutAt?: number;
  cursor?: string;
  dismissOthers: boolean;
  notify: boolean;
  devices: AckDevice[];
  firstAck?: { connectionId: string; at: number };
  timedOutAt?: number;
  push?: PushOutcome & { at: number };
  /** The state was gone when the timeout came (Redis lost it): made again then; acks before are unknown. */
  stateLost?: string;
}

export interface OpenAck {
  cursor?: string | undefined;
  connections: string[];
  timeoutSeconds: number;
  dismissOthers: boolean;
  notify: boolean;
  epoch: string | null;
}

export type TimeoutDecision = 'missing' | 'acked' | 'done' | 'busy' | 'push' | 'timed_out';

/** A "pushing" mark older than this is a crashed attempt: the next delivery pushes again. */
export const PUSHING_STALE_MS = 60_000;

export interface AckStoreOptions {
  historyTtlSeconds: number;
  now?: () => number;
}

export class RedisAckStore {
  readonly #redis: Redis | Cluster;
  readonly #keys: Keys;
  readonly #historyTtl: number;
  readonly #now: () => number;

  constructor(redis: Redis | Cluster, keys: Keys, options: AckStoreOptions) {
    this.#redis = redis;
    this.#keys = keys;
    this.#historyTtl = options.historyTtlSeconds;
    this.#now = options.now ?? Date.now;
    if (typeof (redis as Partial<Redis>).pwAckOpen !== 'function') {
      redis.defineCommand('pwAckOpen', { numberOfKeys: 1, lua: ackOpenLua });
      redis.defineCommand('pwAckTimeout', { numberOfKeys: 1, lua: ackTimeoutLua });
    }
  }

  ttlFor(timeoutSeconds: number): number {
    return Math.max(this.#historyTtl, timeoutSeconds + 600);
  }

  /** Opens the state (or adds the connections of a retried publish); true when new. */
  async open(userId: string, id: string, o: OpenAck): Promise<boolean> {
    const now = this.#now();
    const fields: (string | number)[] = [
      'id',
      id,
      'u',
      userId,
      's',
      'pending',
      'at',
      now,
      'due',
      now + o.timeoutSeconds * 1000,
      'd',
      o.dismissOthers ? '1' : '0',
      'n',
      o.notify ? '1' : '0',
    ];
    if (o.epoch !== null) fields.push('e', o.epoch);
    if (o.cursor) fields.push('cur', o.cursor);
    const opened = await this.#redis.pwAckOpen(
      this.#keys.ack(userId, id),
      this.ttlFor(o.timeoutSeconds),
      now,
      ...fields,
      '',
      ...o.connections,
    );
    return opened === 1;
  }

  /** What the timeout is to do (ack-timeout.lua). */
  async decide(userId: string, id: string, notify: boolean): Promise<TimeoutDecision> {
    return (await this.#redis.pwAckTimeout(
      this.#keys.ack(userId, id),
      this.#now(),
      notify ? '1' : '0',
      PUSHING_STALE_MS,
    )) as TimeoutDecision;
  }

  /** The state, made again after it was lost, as the timeout found things (no ack known). */
  async recreate(
    userId: string,
    id: string,
    why: string,
    o: { cursor?: string | undefined; notify: boolean; timeoutSeconds: number },
  ): Promise<void> {
    const key = this.#keys.ack(userId, id);
    const now = this.#now();
    await this.#redis
      .multi()
      .hset(key, {
        id,
        u: userId,
        s: o.notify ? 'pushing' : 'timed_out',
        tf: now,
        n: o.notify ? '1' : '0',
        lost: why,
        ...(o.cursor && { cur: o.cursor }),
      })
      .expire(key, this.ttlFor(o.timeoutSeconds))
      .exec();
  }

  /** Records the push's outcome. */
  async pushed(userId: string, id: string, outcome: PushOutcome): Promise<void> {
    await this.#redis.hset(this.#keys.ack(userId, id), {
      s: 'pushed',
      pa: this.#now(),
      push: JSON.stringify(outcome),
    });
  }

  /** A push that threw: pending again, so the queue's next delivery of the timeout tries again. */
  async release(userId: string, id: string): Promise<void> {
    await this.#redis.hset(this.#keys.ack(userId, id), { s: 'pending' });
  }

  async status(userId: string, id: string): Promise<AckStatus | null> {
    const h = await this.#redis.hgetall(this.#keys.ack(userId, id));
    if (!h['id']) return null;
    const devices = new Map<string, AckDevice>();
    const device = (c: string) => {
      const known = devices.get(c);
      if (known) return known;
      const d: AckDevice = { connectionId: c };
      devices.set(c, d);
      return d;
    };
    for (const [field, value] of Object.entries(h)) {
      if (field.startsWith('p:')) device(field.slice(2)).postedAt = Number(value);
      else if (field.startsWith('a:')) device(field.slice(2)).ackedAt = Number(value);
    }
    const num = (f: string) => (h[f] === undefined ? undefined : Number(h[f]));
    const status: AckStatus = {
      id,
      userId,
      // ack.lua does not touch `s`: a first ack makes a pending message acked.
      state: h['s'] === 'pending' && h['first'] ? 'acked' : ((h['s'] as AckState) ?? 'pending'),
      dismissOthers: h['d'] === '1',
      notify: h['n'] === '1',
      devices: [...devices.values()],
    };
    const publishedAt = num('at');
    const timeoutAt = num('due');
    const timedOutAt = num('tf');
    if (publishedAt !== undefined) status.publishedAt = publishedAt;
    if (timeoutAt !== undefined) status.timeoutAt = timeoutAt;
    if (h['cur']) status.cursor = h['cur'];
    if (h['first']) status.firstAck = { connectionId: h['first'], at: Number(h['fa']) };
    if (timedOutAt !== undefined) status.timedOutAt = timedOutAt;
    if (h['push']) status.push = { ...(JSON.parse(h['push']) as PushOutcome), at: Number(h['pa']) };
    if (h['lost']) status.stateLost = h['lost'];
    return status;
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwAckOpen(
      key: string,
      ttlSeconds: number,
      nowMs: number,
      ...args: (string | number)[]
    ): Result<number, Context>;
    pwAckTimeout(
      key: string,
      nowMs: number,
      notify: '0' | '1',
      staleMs: number,
    ): Result<string, Context>;
    pwAck(...keysAndArgs: (string | number)[]): Result<[number[], string[]], Context>;
  }
}
