import type { Cluster, Redis } from 'ioredis';
import { compareCursors, parseCursor } from './cursor.js';
import {
  type Audience,
  createKeys,
  decodeMember,
  encodeMember,
  type Keys,
  type Recipient,
} from './keys.js';
import { defineScripts } from './scripts.js';
import type {
  Admission,
  Connection,
  ConnectionRecord,
  ConnectionRegistry,
  PublishStep,
  ResumeStep,
} from './types.js';

/** API Gateway's 2 h connection lifetime, plus the connection TTL's margin. */
const ENDPOINTS_TTL_SECONDS = 2 * 3600 + 15 * 60;

export interface RedisRegistryOptions {
  prefix: string;
  connectionTtlSeconds: number;
  historySize: number;
  historyTtlSeconds: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/**
 * Redis adapter of the registry. Every record expires: a connection's hash and
 * topic set by key TTL, its set memberships by score (expiry time), so a lost
 * `$disconnect` heals itself within one TTL.
 */
export class RedisRegistry implements ConnectionRegistry {
  readonly keys: Keys;
  readonly #redis: Redis | Cluster;
  readonly #ttl: number;
  readonly #historySize: number;
  readonly #historyTtl: number;
  readonly #now: () => number;

  constructor(redis: Redis | Cluster, options: RedisRegistryOptions) {
    defineScripts(redis);
    this.#redis = redis;
    this.keys = createKeys(options.prefix);
    this.#ttl = options.connectionTtlSeconds;
    this.#historySize = options.historySize;
    this.#historyTtl = options.historyTtlSeconds;
    this.#now = options.now ?? Date.now;
  }

  /**
   * A member's score: when it stops receiving. Never later than its token's
   * `exp`, so publishes skip a connection whose token has expired with no
   * extra work (they already skip expired scores).
   */
  #expiry(tokenExpiresAt?: number): number {
    const expiry = this.#now() + this.#ttl * 1000;
    return tokenExpiresAt === undefined ? expiry : Math.min(expiry, tokenExpiresAt);
  }

  userAudience(userId: string): Audience {
    return this.keys.audience('user', userId);
  }

  topicAudience(topic: string): Audience {
    return this.keys.audience('topic', topic);
  }

  async register(record: ConnectionRecord): Promise<void> {
    const key = this.keys.connection(record.connectionId);
    const member = encodeMember(record);
    const user = this.userAudience(record.userId).keys;
    const expiry = this.#expiry(record.tokenExpiresAt);
    const fields: Record<string, string> = {
      userId: record.userId,
      endpoint: record.endpoint,
      connectedAt: String(record.connectedAt),
      allowedTopics: JSON.stringify(record.allowedTopics),
    };
    if (record.pendingSince !== undefined) fields['pendingSince'] = record.pendingSince;
    if (record.tokenExpiresAt !== undefined) fields['exp'] = String(record.tokenExpiresAt);
    // The record first (awaited), so a member never points at a record that
    // was not written; then one MULTI per slot, sent together (auto-pipelined).
    await this.#redis.multi().hset(key, fields).expire(key, this.#ttl).exec();
    await Promise.all([
      this.#redis
        .multi()
        // A connection that will replay history joins its user's resuming set,
        // so live publishes skip it until replay has caught up.
        .zadd(record.pendingSince === undefined ? user.live : user.resuming, expiry, member)
        .expire(record.pendingSince === undefined ? user.live : user.resuming, this.#ttl)
        .exec(),
      this.#redis
        .multi()
        .zadd(this.keys.all(), expiry, member)
        .expire(this.keys.all(), this.#ttl)
        .exec(),
      // The endpoints `deliver` may post to. A handful per deployment; kept
      // for API Gateway's 2 h connection lifetime past the last connect.
      this.#redis
        .multi()
        .sadd(this.keys.endpoints(), record.endpoint)
        .expire(this.keys.endpoints(), ENDPOINTS_TTL_SECONDS)
        .exec(),
    ]);
  }

  async get(connectionId: string): Promise<Connection | null> {
    const [hash, topics] = await Promise.all([
      this.#redis.hgetall(this.keys.connection(connectionId)),
      this.#redis.smembers(this.keys.connectionTopics(connectionId)),
    ]);
    return toConnection(connectionId, hash, topics);
  }

  async touch(connectionId: string): Promise<Connection | null> {
    const connection = await this.get(connectionId);
    if (!connection) return null;
    const expiry = this.#expiry(connection.tokenExpiresAt);
    const member = encodeMember(connection);
    const renew = (a: Audience) =>
      this.#redis
        .multi()
        .zadd(a.keys.live, 'XX', expiry, member)
        .zadd(a.keys.resuming, 'XX', expiry, member)
        .expire(a.keys.live, this.#ttl)
        .expire(a.keys.resuming, this.#ttl)
        .exec();
    await Promise.all([
      this.#redis
        .multi()
        .expire(this.keys.connection(connectionId), this.#ttl)
        .expire(this.keys.connectionTopics(connectionId), this.#ttl)
        .exec(),
      this.#redis
        .multi()
        .zadd(this.keys.all(), 'XX', expiry, member)
        .expire(this.keys.all(), this.#ttl)
        .exec(),
      renew(this.userAudience(connection.userId)),
      ...connection.topics.map((topic) => renew(this.topicAudience(topic))),
    ]);
    return connection;
  }

  async remove(connectionId: string): Promise<Connection | null> {
    const connection = await this.get(connectionId);
    if (!connection) return null;
    const member = encodeMember(connection);
    const leave = (a: Audience) =>
      this.#redis.multi().zrem(a.keys.live, member).zrem(a.keys.resuming, member).exec();
    await Promise.all([
      leave(this.userAudience(connection.userId)),
      ...connection.topics.map((topic) => leave(this.topicAudience(topic))),
      this.#redis.zrem(this.keys.all(), member),
    ]);
    // The record goes last, so a crash half-way leaves it for the next attempt to find.
    await this.#redis.del(
      this.keys.connection(connectionId),
      this.keys.connectionTopics(connectionId),
      this.keys.connectionReplays(connectionId),
    );
    return connection;
  }

  async clearPendingSince(connectionId: string): Promise<boolean> {
    return (await this.#redis.hdel(this.keys.connection(connectionId), 'pendingSince')) === 1;
  }

  async subscribe(
    connection: ConnectionRecord,
    topic: string,
    resuming: boolean,
    maxTopics?: number,
  ): Promise<boolean> {
    const topicsKey = this.keys.connectionTopics(connection.connectionId);
    const a = this.topicAudience(topic).keys;
    const member = encodeMember(connection);
    const target = resuming ? a.resuming : a.live;
    const other = resuming ? a.live : a.resuming;
    const join = () =>
      this.#redis
        .multi()
        .zrem(other, member)
        .zadd(target, this.#expiry(connection.tokenExpiresAt), member)
        .expire(target, this.#ttl)
        .exec();
    if (maxTopics === undefined) {
      await Promise.all([
        this.#redis.multi().sadd(topicsKey, topic).expire(topicsKey, this.#ttl).exec(),
        join(),
      ]);
      return true;
    }
    // The topic list first: a refused subscribe must not have joined the audience.
    if ((await this.#redis.pwTopicAdd(topicsKey, topic, maxTopics, this.#ttl)) === 0) return false;
    await join();
    return true;
  }

  async unsubscribe(connection: ConnectionRecord, topic: string): Promise<boolean> {
    const a = this.topicAudience(topic).keys;
    const member = encodeMember(connection);
    const [removed] = await Promise.all([
      this.#redis.srem(this.keys.connectionTopics(connection.connectionId), topic),
      this.#redis.multi().zrem(a.live, member).zrem(a.resuming, member).exec(),
    ]);
    return removed > 0;
  }

  async beginResume(audience: Audience, recipient: Recipient): Promise<void> {
    const member = encodeMember(recipient);
    const { live, resuming } = audience.keys;
    await this.#redis
      .multi()
      .zrem(live, member)
      .zadd(resuming, this.#expiry(recipient.tokenExpiresAt), member)
      .expire(resuming, this.#ttl)
      .exec();
  }

  async resumeStep(
    audience: Audience,
    recipient: Recipient,
    since: string,
    batch: number,
  ): Promise<ResumeStep> {
    const { history, live, resuming, lost } = audience.keys;
    const reply = await this.#redis.pwResume(
      history,
      live,
      resuming,
      lost,
      encodeMember(recipient),
      since,
      batch,
      this.#expiry(recipient.tokenExpiresAt),
      this.#ttl,
    );
    const [state, marker, ...rest] = reply;
    if (state === 'live' || state === 'gone') return { state };
    const entries: { cursor: string; entry: string }[] = [];
    for (let i = 0; i + 1 < rest.length; i += 2) {
      entries.push({ cursor: rest[i] as string, entry: rest[i + 1] as string });
    }
    // Read atomically with the batch: entries after `since` were trimmed unread.
    if (marker && compareCursors(marker, since) > 0) return { state: 'more', entries, gap: true };
    return { state: 'more', entries };
  }

  async recoverable(audience: Audience, since: string): Promise<boolean> {
    const cursor = parseCursor(since);
    // No history kept: nothing can be replayed, so nothing is known to be complete.
    if (this.#historySize === 0) return false;
    const [lost, exists] = await Promise.all([
      this.#redis.get(audience.keys.lost),
      this.#redis.exists(audience.keys.history),
    ]);
    if (lost !== null && compareCursors(since, lost) < 0) return false;
    // With no history at all, nothing after `since` can have existed unless it
    // is old enough to have expired: every message renews the stream's TTL.
    if (exists === 0 && cursor.ms < this.#now() - this.#historyTtl * 1000) return false;
    return true;
  }

  async admission(userId: string): Promise<Admission> {
    const { live, resuming } = this.userAudience(userId).keys;
    const min = `(${this.#now()}`;
    // One slot (the user's), one round trip.
    const replies = await this.#redis
      .pipeline()
      .get(this.keys.revoked(userId))
      .zcount(live, min, '+inf')
      .zcount(resuming, min, '+inf')
      .exec();
    const [revoked, live_, resuming_] = (replies ?? []).map(([error, value]) => {
      if (error) throw error;
      return value;
    });
    return {
      revokedAt: revoked == null ? null : Number(revoked),
      connections: Number(live_) + Number(resuming_),
    };
  }

  async revokeUser(userId: string, atMs: number, ttlSeconds: number): Promise<void> {
    await this.#redis.set(this.keys.revoked(userId), String(atMs), 'EX', ttlSeconds);
  }

  async refreshToken(
    connectionId: string,
    tokenExpiresAt: number,
    allowedTopics: string[],
  ): Promise<void> {
    const key = this.keys.connection(connectionId);
    // With its TTL: a disconnect racing this must not leave a record that never expires.
    await this.#redis
      .multi()
      .hset(key, { exp: String(tokenExpiresAt), allowedTopics: JSON.stringify(allowedTopics) })
      .expire(key, this.#ttl)
      .exec();
    // Re-scores every membership with the new bound.
    await this.touch(connectionId);
  }

  async countReplay(connectionId: string): Promise<number> {
    const key = this.keys.connectionReplays(connectionId);
    // A fixed one-minute window, started by the first replay in it.
    const replies = await this.#redis.multi().set(key, '0', 'EX', 60, 'NX').incr(key).exec();
    const [error, count] = replies?.[1] ?? [new Error('no reply'), 0];
    if (error) throw error;
    return Number(count);
  }

  async endpointsKnown(endpoints: readonly string[]): Promise<boolean> {
    const distinct = [...new Set(endpoints)];
    if (distinct.length === 0) return true;
    const known = await this.#redis.smismember(this.keys.endpoints(), ...distinct);
    return known.every((k) => k === 1);
  }

  async lookupUser(userId: string): Promise<Recipient[]> {
    const { live, resuming } = this.userAudience(userId).keys;
    const min = `(${this.#now()}`;
    // A connection still replaying history (connected with ?since, or resuming)
    // waits in the resuming set; it is the user's connection all the same.
    // Both sets share the user's slot: one pipeline, one round trip.
    const replies = await this.#redis
      .pipeline()
      .zrangebyscore(live, min, '+inf')
      .zrangebyscore(resuming, min, '+inf')
      .exec();
    const members = (replies ?? []).flatMap(([error, value]) => {
      if (error) throw error;
      return value as string[];
    });
    return [...new Set(members)].map(decodeMember);
  }

  async publish(
    audience: Audience,
    entry: string | null,
    inlineLimit: number,
    publishId?: string,
  ): Promise<PublishStep> {
    const { live, history, lost } = audience.keys;
    // Without a caller-given id the key is never read or written, but every
    // key a script may touch is declared (Cluster routes by KEYS).
    const idKey = this.keys.publishId(audience, publishId ?? '');
    const [cursor, count, ...members] = await this.#redis.pwPublish(
      live,
      history,
      lost,
      idKey,
      this.#now(),
      entry ?? '',
      this.#historySize,
      this.#historyTtl,
      inlineLimit,
      publishId === undefined ? '' : '1',
    );
    const step: PublishStep = { cursor, count: Number(count) };
    if (step.count <= inlineLimit) step.members = members.map(decodeMember);
    return step;
  }

  async *scan(audience: Audience | 'all', batch: number): AsyncIterable<Recipient[]> {
    const key = audience === 'all' ? this.keys.all() : audience.keys.live;
    const now = this.#now();
    // Drop expired members first (connections whose $disconnect never came),
    // so the scan and the set itself do not grow with the dead.
    await this.#redis.zremrangebyscore(key, '-inf', now);
    let cursor = '0';
    do {
      const [next, flat] = await this.#redis.zscan(key, cursor, 'COUNT', batch);
      cursor = next;
      const recipients: Recipient[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        if (Number(flat[i + 1]) > now) recipients.push(decodeMember(flat[i] as string));
      }
      if (recipients.length > 0) yield recipients;
    } while (cursor !== '0');
  }

  async countConnected(audience: Audience | 'all'): Promise<number> {
    const min = `(${this.#now()}`;
    if (audience === 'all') return this.#redis.zcount(this.keys.all(), min, '+inf');
    // A member catching up on history sits in the resuming set: it is
    // connected all the same. The sets are disjoint (members move atomically).
    const [live, resuming] = await Promise.all([
      this.#redis.zcount(audience.keys.live, min, '+inf'),
      this.#redis.zcount(audience.keys.resuming, min, '+inf'),
    ]);
    return live + resuming;
  }
}

function toConnection(
  connectionId: string,
  hash: Record<string, string>,
  topics: string[],
): Connection | null {
  const { userId, endpoint, connectedAt, allowedTopics, pendingSince, exp } = hash;
  if (userId === undefined || endpoint === undefined) return null;
  const connection: Connection = {
    connectionId,
    userId,
    endpoint,
    connectedAt: Number(connectedAt),
    allowedTopics: allowedTopics ? (JSON.parse(allowedTopics) as string[]) : [],
    topics: topics.sort(),
  };
  if (pendingSince !== undefined) connection.pendingSince = pendingSince;
  if (exp !== undefined) connection.tokenExpiresAt = Number(exp);
  return connection;
}
