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
  ResumeLimits,
  ResumeStep,
  SubscribeOutcome,
} from './types.js';

/**
 * How long an expired member stays in the broadcast set before a connect or
 * a broadcast prunes it: the `events` relay sweeps first (at a minute past
 * expiry, sweepExpired) and reports it as expired without `$disconnect`.
 * Lookups skip expired members whatever their age.
 */
export const PRUNE_DELAY_MS = 5 * 60_000;

/** API Gateway's 2 h connection lifetime, plus the connection TTL's margin. */
const ENDPOINTS_TTL_SECONDS = 2 * 3600 + 15 * 60;

export interface RedisRegistryOptions {
  prefix: string;
  connectionTtlSeconds: number;
  historySize: number;
  historyTtlSeconds: number;
  /**
   * Replay lease of a connection registered with `?since=` (ms): until its
   * first frame starts the replay, publishes skip it; past the lease they
   * no longer do. Default 7 s (the default replay budget and grace).
   */
  pendingLeaseMs?: number;
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
  readonly #pendingLeaseMs: number;
  readonly #now: () => number;
  #epochMarked = false;

  constructor(redis: Redis | Cluster, options: RedisRegistryOptions) {
    defineScripts(redis);
    this.#redis = redis;
    this.keys = createKeys(options.prefix);
    this.#ttl = options.connectionTtlSeconds;
    this.#historySize = options.historySize;
    this.#historyTtl = options.historyTtlSeconds;
    this.#pendingLeaseMs = options.pendingLeaseMs ?? 7_000;
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
    const now = this.#now();
    // Computed before the record's EXPIRE runs: a member never outlives its
    // record; and never its token (capped at exp).
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
    const userStep = this.#redis.multi();
    if (record.pendingSince === undefined) {
      userStep.zadd(user.live, expiry, member).expire(user.live, this.#ttl);
    } else {
      // A connection that will replay history joins its user's resuming set,
      // so live publishes skip it until replay has caught up, or until its
      // lease runs out (it never sent the frame that starts the replay).
      userStep
        .zadd(user.resuming, expiry, member)
        .zadd(user.leases, now + this.#pendingLeaseMs, member)
        .expire(user.resuming, this.#ttl)
        .expire(user.leases, this.#ttl);
    }
    await Promise.all([
      userStep.exec(),
      this.#redis
        .multi()
        // Connections whose $disconnect never came leave the broadcast set here,
        // not only when someone broadcasts.
        .zremrangebyscore(this.keys.all(), '-inf', now - PRUNE_DELAY_MS)
        .zadd(this.keys.all(), expiry, member)
        .expire(this.keys.all(), this.#ttl)
        .exec(),
      // The endpoints `deliver` may post to (a handful per deployment; kept
      // for API Gateway's 2 h connection lifetime past the last connect) and,
      // before any message this connection can receive, the epoch that
      // recoverable() checks.
      this.#redis.pwEndpoint(
        this.keys.endpoints(),
        this.keys.epoch(),
        record.endpoint,
        ENDPOINTS_TTL_SECONDS,
      ),
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
    const now = this.#now();
    const expiry = this.#expiry(connection.tokenExpiresAt);
    const member = encodeMember(connection);
    // Renews only members that are there (a removal racing this frame is not
    // undone) and makes live a member whose replay lease ran out.
    const renew = ({ keys: k }: Audience) =>
      this.#redis.pwRenew(k.live, k.resuming, k.leases, member, expiry, now, this.#ttl);
    const [, , inUserSet] = await Promise.all([
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
    // Every registered connection is in its user's live or resuming set until
    // it is removed. A record without that membership was half lost (a Redis
    // Cluster failover that lost the user's slot but not the record's): the
    // connection could never be reached. Forget it, so the client is told
    // unknown_connection, is disconnected, and reconnects whole.
    // (Unless its token expired: its members' scores stopped at exp and a
    // publish may have pruned them; the frame is answered token_expired.)
    const expired = connection.tokenExpiresAt !== undefined && connection.tokenExpiresAt <= now;
    if (inUserSet === 0 && !expired) {
      await this.remove(connectionId);
      return null;
    }
    return connection;
  }

  async remove(connectionId: string): Promise<Connection | null> {
    // Marks the record closing and reads it in one step: a subscribe racing
    // this removal either added its topic before (and is read here) or sees
    // the mark and takes its member back (see subscribe).
    const reply = await this.#redis.pwClose(
      this.keys.connection(connectionId),
      this.keys.connectionTopics(connectionId),
    );
    const [flat, topics] = reply;
    const connection =
      flat && topics ? toConnection(connectionId, pairs(flat), topics, true) : null;
    if (!connection) return null;
    const member = encodeMember(connection);
    const leave = ({ keys: k }: Audience) =>
      this.#redis
        .multi()
        .zrem(k.live, member)
        .zrem(k.resuming, member)
        .zrem(k.leases, member)
        .exec();
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

  /**
   * Three steps, because the record and the topic's sets live in different
   * cluster slots: (1) add the topic to the record's list, only if the record
   * exists and is not being removed, and within `maxTopics` (atomically, so
   * racing subscribes cannot pass it together); (2) add the member; (3) check the record
   * again and take the member back if it is gone or closing. Against remove()
   * (mark closing and read the topics; remove memberships; delete the record):
   * if (1) came after the mark, nothing is created; if before, remove() read
   * the topic, and either its ZREM comes after (2), or (3) comes after the
   * mark and takes the member back. Only a subscribe killed between (2) and
   * (3), racing a removal, can leave a member behind, and its score (set
   * before (1) renewed the record) makes it expire no later than the record
   * would have: publishes skip it from then on and prune it.
   */
  async subscribe(
    connection: ConnectionRecord,
    topic: string,
    leaseEnd?: number,
    maxTopics?: number,
  ): Promise<SubscribeOutcome> {
    const record = this.keys.connection(connection.connectionId);
    const a = this.topicAudience(topic).keys;
    const member = encodeMember(connection);
    const expiry = this.#expiry(connection.tokenExpiresAt);
    const attached = await this.#redis.pwAttach(
      record,
      this.keys.connectionTopics(connection.connectionId),
      topic,
      this.#ttl,
      maxTopics ?? 0,
    );
    // The topic list first: a refused subscribe has joined no audience.
    if (attached === -1) return 'too_many_topics';
    if (attached !== 1) return 'gone';
    const add = this.#redis.multi();
    if (leaseEnd === undefined) {
      add.zrem(a.resuming, member).zrem(a.leases, member).zadd(a.live, expiry, member);
      add.expire(a.live, this.#ttl);
    } else {
      add.zrem(a.live, member).zadd(a.resuming, expiry, member).zadd(a.leases, leaseEnd, member);
      add.expire(a.resuming, this.#ttl).expire(a.leases, this.#ttl);
    }
    await add.exec();
    const [userId, closing] = await this.#redis.hmget(record, 'userId', 'closing');
    if (userId === null || closing !== null) {
      await this.#redis
        .multi()
        .zrem(a.live, member)
        .zrem(a.resuming, member)
        .zrem(a.leases, member)
        .exec();
      return 'gone';
    }
    return 'subscribed';
  }

  async unsubscribe(connection: ConnectionRecord, topic: string): Promise<boolean> {
    const a = this.topicAudience(topic).keys;
    const member = encodeMember(connection);
    const [removed] = await Promise.all([
      this.#redis.srem(this.keys.connectionTopics(connection.connectionId), topic),
      this.#redis
        .multi()
        .zrem(a.live, member)
        .zrem(a.resuming, member)
        .zrem(a.leases, member)
        .exec(),
    ]);
    return removed > 0;
  }

  async beginResume(audience: Audience, recipient: Recipient, leaseEnd: number): Promise<boolean> {
    const { live, resuming, leases } = audience.keys;
    const begun = await this.#redis.pwBeginResume(
      live,
      resuming,
      leases,
      encodeMember(recipient),
      this.#now(),
      leaseEnd,
      this.#ttl,
    );
    return begun === 1;
  }

  async endResume(audience: Audience, recipient: Recipient): Promise<void> {
    const { live, resuming, leases } = audience.keys;
    await this.#redis.pwRescue(
      live,
      resuming,
      leases,
      this.#now(),
      this.#ttl,
      encodeMember(recipient),
    );
  }

  async resumeStep(
    audience: Audience,
    recipient: Recipient,
    since: string,
    limits: ResumeLimits,
  ): Promise<ResumeStep> {
    const { history, live, resuming, lost, leases } = audience.keys;
    const reply = await this.#redis.pwResume(
      history,
      live,
      resuming,
      lost,
      leases,
      encodeMember(recipient),
      since,
      limits.entries,
      limits.bytes,
      limits.entryOverhead,
      this.#now(),
      this.#ttl,
      limits.handOffWhenFits ? '1' : '0',
    );
    const [state, marker, ...rest] = reply;
    if (state === 'live' || state === 'gone') return { state };
    if (state !== 'more' && state !== 'last' && state !== 'rest') {
      throw new Error(`unexpected resume step ${state}`);
    }
    const entries: { cursor: string; entry: string }[] = [];
    for (let i = 0; i + 1 < rest.length; i += 2) {
      entries.push({ cursor: rest[i] as string, entry: rest[i + 1] as string });
    }
    const step: Extract<ResumeStep, { entries: unknown }> = {
      state: state === 'rest' ? 'more' : state,
      entries,
    };
    if (state === 'rest') step.rest = true;
    // Read atomically with the batch: entries after `since` were trimmed unread.
    if (marker && compareCursors(marker, since) > 0) step.gap = true;
    return step;
  }

  async recoverable(audience: Audience, since: string): Promise<boolean> {
    const cursor = parseCursor(since);
    // No history kept: nothing can be replayed, so nothing is known to be complete.
    if (this.#historySize === 0) return false;
    const [lost, exists, epoch] = await Promise.all([
      this.#redis.get(audience.keys.lost),
      this.#redis.exists(audience.keys.history),
      this.#redis.get(this.keys.epoch()),
    ]);
    // From before Redis's data began (it restarted empty, or was flushed):
    // whatever was published between `since` and then is gone with it. (No
    // epoch: no $connect since the data began; a resume comes after one.)
    if (epoch !== null && cursor.ms < Number(epoch)) return false;
    if (lost !== null && compareCursors(since, lost) < 0) return false;
    // With no history at all, nothing after `since` can have existed unless it
    // is old enough to have expired: every message renews the stream's TTL.
    if (exists === 0 && cursor.ms < this.#now() - this.#historyTtl * 1000) return false;
    return true;
  }

  async epoch(): Promise<string | null> {
    return this.#redis.get(this.keys.epoch());
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
    const now = this.#now();
    // Without a caller-given id the key is never read or written, but every
    // key a script may touch is declared (Cluster routes by KEYS).
    const idKey = this.keys.publishId(audience, publishId ?? '');
    // Once per instance, before its first history entry: the epoch (see
    // endpoint.lua), so a new deployment's first messages are not older
    // than it. After a data loss, the first $connect marks it anew.
    if (entry !== null && !this.#epochMarked) {
      await this.#redis.pwEndpoint(this.keys.endpoints(), this.keys.epoch(), '', 0);
      this.#epochMarked = true;
    }
    // Members whose replay lease ran out are live again before this publish
    // reads the live set: sent in the same pipeline (one round trip), and a
    // no-op unless some replay died. See rescue.lua.
    const [, [cursor, count, ...members]] = await Promise.all([
      this.#redis.pwRescue(live, audience.keys.resuming, audience.keys.leases, now, this.#ttl, ''),
      this.#redis.pwPublish(
        live,
        history,
        lost,
        idKey,
        now,
        entry ?? '',
        this.#historySize,
        this.#historyTtl,
        inlineLimit,
        publishId === undefined ? '' : '1',
      ),
    ]);
    const step: PublishStep = { cursor, count: Number(count) };
    if (step.count <= inlineLimit) step.members = members.map(decodeMember);
    return step;
  }

  async *scan(audience: Audience | 'all', batch: number): AsyncIterable<Recipient[]> {
    const key = audience === 'all' ? this.keys.all() : audience.keys.live;
    const now = this.#now();
    // Drop expired members first (connections whose $disconnect never came),
    // so the scan and the set itself do not grow with the dead.
    await this.#redis.zremrangebyscore(
      key,
      '-inf',
      audience === 'all' ? now - PRUNE_DELAY_MS : now,
    );
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

  async sweepExpired(cutoffMs: number, max: number): Promise<Recipient[]> {
    const members = await this.#redis.pwSweep(this.keys.all(), cutoffMs, max);
    if (members.length === 0) return [];
    const recipients = members.map(decodeMember);
    const present = await Promise.all(
      recipients.map((r) => this.#redis.exists(this.keys.connection(r.connectionId))),
    );
    return recipients.filter((_, i) => present[i] === 0);
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

/** HGETALL's flat [field, value, ...] reply (as a script returns it) as an object. */
function pairs(flat: string[]): Record<string, string> {
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
  return hash;
}

/** A record being removed (marked closing) is unknown to everyone but remove() itself. */
function toConnection(
  connectionId: string,
  hash: Record<string, string>,
  topics: string[],
  closing = false,
): Connection | null {
  const { userId, endpoint, connectedAt, allowedTopics, pendingSince, exp } = hash;
  if (userId === undefined || endpoint === undefined) return null;
  if (hash['closing'] !== undefined && !closing) return null;
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
