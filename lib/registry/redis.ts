import type { Cluster, Redis } from 'ioredis';
import { topicAllowed } from '../auth/tokens.js';
import { compareCursors, parseCursor } from './cursor.js';
import {
  type Audience,
  createKeys,
  decodeMember,
  encodeMember,
  type Keys,
  type PresenceKeys,
  type Recipient,
} from './keys.js';
import { defineScripts } from './scripts.js';
import type {
  Connection,
  ConnectionRecord,
  ConnectionRegistry,
  MembersPage,
  PublishStep,
  RegisterOutcome,
  ResumeLimits,
  ResumeStep,
  SubscribeOutcome,
  Touched,
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
/** See RedisRegistryOptions.tokenEpochGraceMs. */
export const TOKEN_EPOCH_GRACE_MS = 60_000;

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
  /**
   * How long before the token epoch (when Redis's data began, server clock) a
   * token may have been issued and still be admitted, ms. Default 60 s: a
   * fresh Redis looks like one that lost its data, and tokens minted just
   * before its first $connect must pass; a revocation made less than this
   * before a data loss may be lost with it (SECURITY.md).
   */
  tokenEpochGraceMs?: number;
  /** Topic names or prefixes (`doc:*`) whose subscribers may ask for deltas (DELTA_TOPICS). */
  deltaTopics?: readonly string[];
  /** Clock, injectable for tests. */
  now?: () => number;
  presence?: PresenceOptions;
}

/** How a topic's joins and leaves travel (lib/presence/events.ts fans them out). */
export interface PresenceOptions {
  /** Topic names or patterns (the grant syntax) whose joins and leaves are fanned out. */
  eventTopics: string[];
  /** Above this many users, a topic's events are coalesced (0: never). */
  coalesceAbove: number;
  /** How long coalesced events gather before one `presence_diff`, ms. */
  intervalMs: number;
  /** Asks for a topic's events to be fanned out after `delayMs` (Invoke of presenceEvents). */
  nudge?: (topic: string, delayMs: number) => Promise<void>;
  /** Told of a nudge that failed (the sweep fans its events out later). */
  onNudgeFailed?: (topic: string, error: unknown) => void;
}

/** A topic whose events wait is due this long after its nudge (the sweep's backstop). */
export const NUDGE_GRACE_MS = 5_000;

/**
 * Marks when this Redis's data began, if not marked yet (endpoint.lua): what
 * a publish instance does before its first history entry, and `npm start`
 * once Redis answers (so a token minted minutes before the first $connect
 * is not refused as older than the data). Returns the token epoch (ms, the
 * server's clock).
 */
export async function markEpoch(
  redis: Redis | Cluster,
  prefix: string,
  now = Date.now(),
): Promise<number> {
  defineScripts(redis);
  const keys = createKeys(prefix);
  return Number(
    await redis.pwEndpoint(keys.endpoints(), keys.epoch(), keys.tokenEpoch(), '', 0, now),
  );
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
  readonly #tokenEpochGraceMs: number;
  readonly #now: () => number;
  readonly #presence: PresenceOptions;
  readonly #deltaTopics: readonly string[];
  #epochMarked = false;

  constructor(redis: Redis | Cluster, options: RedisRegistryOptions) {
    defineScripts(redis);
    this.#redis = redis;
    this.keys = createKeys(options.prefix);
    this.#ttl = options.connectionTtlSeconds;
    this.#historySize = options.historySize;
    this.#historyTtl = options.historyTtlSeconds;
    this.#pendingLeaseMs = options.pendingLeaseMs ?? 7_000;
    this.#tokenEpochGraceMs = options.tokenEpochGraceMs ?? TOKEN_EPOCH_GRACE_MS;
    this.#now = options.now ?? Date.now;
    this.#presence = options.presence ?? { eventTopics: [], coalesceAbove: 0, intervalMs: 1_000 };
    this.#deltaTopics = options.deltaTopics ?? [];
  }

  isDeltaTopic(topic: string): boolean {
    return topicAllowed(topic, this.#deltaTopics);
  }

  async deltaFlags(audience: Audience, recipients: Recipient[], base: string): Promise<boolean[]> {
    if (recipients.length === 0) return [];
    const joined = await this.#redis.hmget(audience.keys.delta, ...recipients.map(encodeMember));
    return joined.map((j) => j !== null && compareCursors(j, base) < 0);
  }

  /**
   * Presence keys outlive their devices' scores by two TTLs and the sweep's
   * period, so an expired device is always found (and its leave recorded)
   * before its keys could expire under it.
   */
  get #presenceTtl(): number {
    return 2 * this.#ttl + 300;
  }

  /** Runs presence.lua on a topic (the sweep's too: lib/registry/presence-sweep.ts). */
  presenceOp(topic: string, op: string, ...args: (string | number)[]) {
    const k: PresenceKeys = this.keys.presence(topic);
    const p = this.#presence;
    return this.#redis.pwPresence(
      k.devices,
      k.users,
      k.counts,
      k.events,
      k.flush,
      op,
      this.#now(),
      this.#presenceTtl,
      topicAllowed(topic, p.eventTopics) ? '1' : '0',
      p.coalesceAbove,
      p.intervalMs,
      ...args,
    );
  }

  /** After an op that answered `nudge` (-1: none): invoke the fan-out, and leave the sweep a backstop. */
  async #nudge(topic: string, nudge: number): Promise<void> {
    if (nudge < 0) return;
    await this.#redis.zadd(
      this.keys.presenceDue(),
      'LT',
      this.#now() + nudge + NUDGE_GRACE_MS,
      topic,
    );
    await this.#presence.nudge?.(topic, nudge).catch((error: unknown) => {
      this.#presence.onNudgeFailed?.(topic, error);
    });
  }

  async #join(connection: ConnectionRecord, topic: string, expiry: number): Promise<void> {
    const device = `${connection.connectionId}|${connection.userId}`;
    const [, nudge] = (await this.presenceOp(
      topic,
      'join',
      device,
      connection.userId,
      expiry,
      connection.info ?? '',
    )) as [number, number];
    // The sweep must visit the topic by the time this device could expire.
    await this.#redis.zadd(this.keys.presenceDue(), 'LT', expiry, topic);
    await this.#nudge(topic, Number(nudge));
  }

  async #leave(connectionId: string, userId: string, topic: string): Promise<void> {
    const [, nudge] = (await this.presenceOp(
      topic,
      'leave',
      `${connectionId}|${userId}`,
      userId,
    )) as [number, number];
    await this.#nudge(topic, Number(nudge));
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

  async register(record: ConnectionRecord, maxConnections = 0): Promise<RegisterOutcome> {
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
    if (record.publishTopics?.length)
      fields['publishTopics'] = JSON.stringify(record.publishTopics);
    if (record.pendingSince !== undefined) fields['pendingSince'] = record.pendingSince;
    if (record.tokenExpiresAt !== undefined) fields['exp'] = String(record.tokenExpiresAt);
    if (record.tokenIssuedAt !== undefined) fields['iat'] = String(record.tokenIssuedAt);
    if (record.presenceTopics?.length)
      fields['presenceTopics'] = JSON.stringify(record.presenceTopics);
    if (record.info !== undefined) fields['info'] = record.info;
    // The record first (awaited), so a member never points at a record that
    // was not written; then one step per slot, sent together (auto-pipelined).
    // With the record: the endpoints `deliver` may post to (a handful per
    // deployment; kept for API Gateway's 2 h connection lifetime past the
    // last connect) and, before any message this connection can receive, the
    // epoch that recoverable() checks, with its token epoch: a token issued
    // before Redis's data began (by more than the grace) is refused: a
    // revocation older than the data is gone, so the token cannot be trusted
    // (the client gets a new one). A token epoch of 0 refuses nothing.
    const [, tokenEpoch] = await Promise.all([
      this.#redis.multi().hset(key, fields).expire(key, this.#ttl).exec(),
      this.#redis.pwEndpoint(
        this.keys.endpoints(),
        this.keys.epoch(),
        this.keys.tokenEpoch(),
        record.endpoint,
        ENDPOINTS_TTL_SECONDS,
        now,
      ),
    ]);
    const since = Number(tokenEpoch);
    if (
      since > 0 &&
      record.tokenIssuedAt !== undefined &&
      record.tokenIssuedAt < since - this.#tokenEpochGraceMs
    ) {
      await this.#redis.del(key);
      return 'issued_before_epoch';
    }
    const [admitted] = await Promise.all([
      // Revocation and the per-user cap, checked where the member is added.
      // A connection that will replay history joins its user's resuming set,
      // so live publishes skip it until replay has caught up, or until its
      // lease runs out (it never sent the frame that starts the replay).
      this.#redis.pwAdmit(
        user.live,
        user.resuming,
        user.leases,
        this.keys.revoked(record.userId),
        member,
        expiry,
        now,
        this.#ttl,
        record.tokenIssuedAt ?? 0,
        maxConnections,
        record.pendingSince === undefined ? '' : now + this.#pendingLeaseMs,
      ),
      this.#redis
        .multi()
        // Connections whose $disconnect never came leave the broadcast set here,
        // not only when someone broadcasts.
        .zremrangebyscore(this.keys.all(), '-inf', now - PRUNE_DELAY_MS)
        .zadd(this.keys.all(), expiry, member)
        .expire(this.keys.all(), this.#ttl)
        .exec(),
    ]);
    if (admitted === 1) return 'registered';
    // Refused: nothing of it stays (the broadcast set was written side by side).
    await Promise.all([this.#redis.zrem(this.keys.all(), member), this.#redis.del(key)]);
    return admitted === -1 ? 'revoked' : 'too_many_connections';
  }

  async get(connectionId: string): Promise<Connection | null> {
    const [hash, topics] = await Promise.all([
      this.#redis.hgetall(this.keys.connection(connectionId)),
      this.#redis.smembers(this.keys.connectionTopics(connectionId)),
    ]);
    return toConnection(connectionId, hash, topics);
  }

  async touch(connectionId: string, position = false): Promise<Touched | null> {
    const connection: Touched | null = await this.get(connectionId);
    if (!connection) return null;
    const now = this.#now();
    const expiry = this.#expiry(connection.tokenExpiresAt);
    const member = encodeMember(connection);
    // Renews only members that are there (a removal racing this frame is not
    // undone) and makes live a member whose replay lease ran out.
    const renew = ({ keys: k }: Audience) =>
      this.#redis.pwRenew(k.live, k.resuming, k.leases, member, expiry, now, this.#ttl);
    const user = this.userAudience(connection.userId);
    // Read in the same round trip as the renewals (auto-pipelined, one more command).
    const at = position ? this.#position(user) : undefined;
    const [revokedAt, , , inUserSet] = await Promise.all([
      // For the frame's revocation check, in the same round trip.
      this.#redis.get(this.keys.revoked(connection.userId)),
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
      renew(user),
      ...connection.topics.map((topic) => renew(this.topicAudience(topic))),
      ...connection.topics.map((topic) =>
        this.presenceOp(topic, 'renew', `${connectionId}|${connection.userId}`, expiry),
      ),
    ]);
    if (at) connection.userCursor = await at;
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
    if (revokedAt !== null) connection.revokedAt = Number(revokedAt);
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
        .hdel(k.delta, member)
        .exec();
    await Promise.all([
      leave(this.userAudience(connection.userId)),
      ...connection.topics.map((topic) => leave(this.topicAudience(topic))),
      ...connection.topics.map((topic) => this.#leave(connectionId, connection.userId, topic)),
      this.#redis.zrem(this.keys.all(), member),
    ]);
    // The record goes last, so a crash half-way leaves it for the next attempt to find.
    await this.#redis.del(
      this.keys.connection(connectionId),
      this.keys.connectionTopics(connectionId),
      this.keys.connectionReplays(connectionId),
      this.keys.connectionReplayed(connectionId),
    );
    return connection;
  }

  async clearPendingSince(connectionId: string): Promise<boolean> {
    return (await this.#redis.hdel(this.keys.connection(connectionId), 'pendingSince')) === 1;
  }

  /**
   * Three steps, because the record and the topic's sets live in different
   * cluster slots: (1) add the topic to the record's list, only if the record
   * exists and is not being removed, its stored grants allow the topic, and
   * within `maxTopics` (atomically, so racing subscribes cannot pass it
   * together); (2) add the member; (3) check the record again and take the
   * member back if it is gone or closing, or if the topic has left its list.
   * Against remove() (mark closing and read the topics; remove memberships;
   * delete the record): if (1) came after the mark, nothing is created; if
   * before, remove() read the topic, and either its ZREM comes after (2), or
   * (3) comes after the mark and takes the member back. Against an `auth`
   * refresh (store the new grants and read the topics, atomically; take the
   * ones they refuse out of the list; then out of their audiences): if (1)
   * came after the grants were stored, it refuses the topic; if before, the
   * refresh read it, and either its ZREM comes after (2), or (3) comes after
   * the topic left the list and takes the member back. Only a subscribe
   * killed between (2) and (3), racing a removal, can leave a member behind,
   * and its score (set before (1) renewed the record) makes it expire no
   * later than the record would have: publishes skip it from then on and
   * prune it.
   */
  async subscribe(
    connection: ConnectionRecord,
    topic: string,
    leaseEnd?: number,
    maxTopics?: number,
    delta = false,
  ): Promise<SubscribeOutcome> {
    return (await this.#subscribe(connection, topic, leaseEnd, maxTopics, false, delta)).outcome;
  }

  subscribeWithCursor(
    connection: ConnectionRecord,
    topic: string,
    maxTopics?: number,
    delta = false,
  ): Promise<{ outcome: SubscribeOutcome; cursor?: string }> {
    return this.#subscribe(connection, topic, undefined, maxTopics, true, delta);
  }

  async #subscribe(
    connection: ConnectionRecord,
    topic: string,
    leaseEnd: number | undefined,
    maxTopics: number | undefined,
    position: boolean,
    delta: boolean,
  ): Promise<{ outcome: SubscribeOutcome; cursor?: string }> {
    const record = this.keys.connection(connection.connectionId);
    const topics = this.keys.connectionTopics(connection.connectionId);
    const a = this.topicAudience(topic).keys;
    const member = encodeMember(connection);
    const expiry = this.#expiry(connection.tokenExpiresAt);
    const attached = await this.#redis.pwAttach(record, topics, topic, this.#ttl, maxTopics ?? 0);
    // The topic list first: a refused subscribe has joined no audience.
    if (attached === -1) return { outcome: 'too_many_topics' };
    if (attached === -2) return { outcome: 'forbidden' };
    if (attached !== 1) return { outcome: 'gone' };
    const add = this.#redis.multi();
    const scores = leaseEnd === undefined ? a.live : a.resuming;
    if (leaseEnd === undefined) {
      add.zrem(a.resuming, member).zrem(a.leases, member).zadd(a.live, expiry, member);
      add.expire(a.live, this.#ttl);
    } else {
      add.zrem(a.live, member).zadd(a.resuming, expiry, member).zadd(a.leases, leaseEnd, member);
      add.expire(a.resuming, this.#ttl).expire(a.leases, this.#ttl);
    }
    // A delta topic's member records whether (and from where) it takes
    // deltas: by a replay it receives every entry ("0-0"); joining live, from
    // the position read below (after the member joined): any later entry
    // reaches it live. Written after that read, which is safe: a publish
    // before the write sends it whole messages, and no publish can pair it
    // with an entry older than its position.
    const deltas = delta && this.isDeltaTopic(topic);
    add.hdel(a.delta, member);
    // (8,100 s: every connection joins again within API Gateway's 2 h lifetime.)
    if (deltas && leaseEnd !== undefined) add.hset(a.delta, member, '0-0').expire(a.delta, 8_100);
    // The stream's position right after the member was written, in the same
    // round trip (auto-pipelined, same slot): a message published after it
    // reaches the member live, one before it is not after the cursor.
    // Present (presence.lua) with the member: a removal or refresh that
    // reads the topic after this takes both out; the check below takes back
    // both when one came first.
    const [, cursor] = await Promise.all([
      add.exec(),
      position || (deltas && leaseEnd === undefined)
        ? this.#position(this.topicAudience(topic))
        : undefined,
      this.#join(connection, topic, expiry),
    ]);
    if (deltas && leaseEnd === undefined)
      await this.#redis
        .multi()
        .hset(a.delta, member, cursor as string)
        .expire(a.delta, 8_100)
        .exec();
    // One slot (the record's): one MULTI.
    const check = await this.#redis
      .multi()
      .hmget(record, 'userId', 'closing', 'exp', 'allowedTopics')
      .sismember(topics, topic)
      .exec();
    const [[, fields], [, listed]] = check as [[null, (string | null)[]], [null, number]];
    const [userId, closing, exp, grants] = fields;
    if (userId === null || closing !== null || listed === 0) {
      await this.#redis
        .multi()
        .zrem(a.live, member)
        .zrem(a.resuming, member)
        .zrem(a.leases, member)
        .exec();
      await this.#leave(connection.connectionId, connection.userId, topic);
      if (userId === null || closing !== null) return { outcome: 'gone' };
      return {
        outcome: topicAllowed(topic, JSON.parse(grants ?? '[]') as string[]) ? 'left' : 'forbidden',
      };
    }
    // A refresh that stored a later exp after this subscribe read the old one
    // re-scored the memberships it could see; (2) may have come after that.
    if (exp !== null && Number(exp) !== connection.tokenExpiresAt) {
      const bound = this.#expiry(Number(exp));
      await Promise.all([
        this.#redis.zadd(scores, 'XX', bound, member),
        this.presenceOp(topic, 'renew', `${connection.connectionId}|${connection.userId}`, bound),
      ]);
    }
    return cursor === undefined ? { outcome: 'subscribed' } : { outcome: 'subscribed', cursor };
  }

  /** Where a stream stands for a client joining it (see position.lua). */
  #position({ keys }: Audience): Promise<string> {
    return this.#redis.pwPosition(keys.history);
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
        .hdel(a.delta, member)
        .exec(),
      this.#leave(connection.connectionId, connection.userId, topic),
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
    const { history, live, resuming, lost, leases, dismissed } = audience.keys;
    const reply = await this.#redis.pwResume(
      history,
      live,
      resuming,
      lost,
      leases,
      dismissed,
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
    const [lost, first, epoch] = await Promise.all([
      this.#redis.get(audience.keys.lost),
      this.#redis.xrange(audience.keys.history, '-', '+', 'COUNT', 1),
      this.#redis.get(this.keys.epoch()),
    ]);
    // From before Redis's data began (it restarted empty, or was flushed):
    // whatever was published between `since` and then is gone with it. (No
    // epoch: no $connect since the data began; a resume comes after one.)
    if (epoch !== null && cursor.ms < Number(epoch)) return false;
    if (lost !== null && compareCursors(since, lost) < 0) return false;
    const ttlMs = this.#historyTtl * 1000;
    const oldest = first[0]?.[0];
    // With no history at all, nothing after `since` can have existed unless it
    // is old enough to have expired: every message renews the stream's TTL.
    if (oldest === undefined) return cursor.ms >= this.#now() - ttlMs;
    // A stream never trimmed holds everything since it was created, unless it
    // expired whole (its trim marker with it) and a new message recreated it:
    // then its first entry came at least a TTL after the last message of the
    // old one, hence after `since`. A `since` that much older than the first
    // entry may have missed messages that went with the old stream.
    // (Wrongly doubted only if `since` is older than the TTL anyway.)
    return lost !== null || cursor.ms > parseCursor(oldest).ms - ttlMs;
  }

  async epoch(): Promise<string | null> {
    return this.#redis.get(this.keys.epoch());
  }

  async revokeUser(userId: string, atMs: number, ttlSeconds: number): Promise<void> {
    await this.#redis.set(this.keys.revoked(userId), String(atMs), 'EX', ttlSeconds);
  }

  async refreshToken(
    connectionId: string,
    token: {
      expiresAt: number;
      issuedAt: number;
      topics: string[];
      presenceTopics?: string[];
      info?: string;
      publish?: string[];
    },
  ): Promise<boolean> {
    const topics = this.keys.connectionTopics(connectionId);
    const listed = await this.#redis.pwRefresh(
      this.keys.connection(connectionId),
      topics,
      token.expiresAt,
      JSON.stringify(token.topics),
      this.#ttl,
      token.issuedAt,
      JSON.stringify(token.presenceTopics ?? []),
      token.info ?? '',
      JSON.stringify(token.publish ?? []),
    );
    if (listed === null) return false;
    const refused = listed.filter((topic) => !topicAllowed(topic, token.topics));
    if (refused.length > 0) {
      // Out of the list first, then out of the audiences (see subscribe).
      const [[endpoint, userId]] = await Promise.all([
        this.#redis.hmget(this.keys.connection(connectionId), 'endpoint', 'userId'),
        this.#redis.srem(topics, ...refused),
      ]);
      const member = encodeMember({ connectionId, endpoint: endpoint ?? '' });
      await Promise.all(
        refused.map(async (topic) => {
          if (userId) await this.#leave(connectionId, userId, topic);
          const a = this.topicAudience(topic).keys;
          return this.#redis
            .multi()
            .zrem(a.live, member)
            .zrem(a.resuming, member)
            .zrem(a.leases, member)
            .exec();
        }),
      );
    }
    // Re-scores every membership with the new bound.
    return (await this.touch(connectionId)) !== null;
  }

  async countReplay(connectionId: string, stream?: string, freeStreams = 0): Promise<number> {
    if (stream !== undefined && freeStreams) {
      const streams = this.keys.connectionReplayed(connectionId);
      // Lives as long as the connection's record (remove() deletes it with it).
      // A failed command reads as not free: the replay is counted.
      const [[, added], [, size]] = (await this.#redis
        .multi()
        .sadd(streams, stream)
        .scard(streams)
        .expire(streams, this.#ttl)
        .exec()) as [[unknown, number], [unknown, number]];
      if (added === 1 && Number(size) <= freeStreams) return 0;
    }
    const key = this.keys.connectionReplays(connectionId);
    // A fixed one-minute window, started by the first replay in it.
    const replies = await this.#redis.multi().set(key, '0', 'EX', 60, 'NX').incr(key).exec();
    const [error, count] = replies?.[1] ?? [new Error('no reply'), 0];
    if (error) throw error;
    return Number(count);
  }

  async countPublish(
    connectionId: string,
    windowMs: number,
  ): Promise<{ count: number; resetMs: number }> {
    const key = this.keys.connectionPublishes(connectionId);
    // A fixed window, started by the first publish in it; it expires by
    // itself, so remove() need not know it.
    const replies = await this.#redis
      .multi()
      .set(key, '0', 'PX', windowMs, 'NX')
      .incr(key)
      .pttl(key)
      .exec();
    const [error, count] = replies?.[1] ?? [new Error('no reply'), 0];
    if (error) throw error;
    return { count: Number(count), resetMs: Math.max(0, Number(replies?.[2]?.[1] ?? windowMs)) };
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
    // Once per instance, before its first history entry: the epoch (see
    // endpoint.lua), so a new deployment's first messages are not older
    // than it. After a data loss, the first $connect marks it anew.
    if (entry !== null && !this.#epochMarked) {
      const k = this.keys;
      await this.#redis.pwEndpoint(k.endpoints(), k.epoch(), k.tokenEpoch(), '', 0, now);
      this.#epochMarked = true;
    }
    // Members whose replay lease ran out are live again before this publish
    // reads the live set: sent in the same pipeline (one round trip), and a
    // no-op unless some replay died. See rescue.lua.
    const delta = audience.kind === 'topic' && this.isDeltaTopic(audience.name);
    const [, [cursor, count, ...rest]] = await Promise.all([
      this.#redis.pwRescue(live, audience.keys.resuming, audience.keys.leases, now, this.#ttl, ''),
      this.#redis.pwPublish(
        live,
        history,
        lost,
        audience.keys.ids,
        now,
        entry ?? '',
        this.#historySize,
        this.#historyTtl,
        inlineLimit,
        publishId ?? '',
        delta ? '1' : '',
      ),
    ]);
    const step: PublishStep = { cursor, count: Number(count) };
    let members = rest;
    if (delta) {
      const [previous = '', entry = '', ...others] = rest;
      members = others;
      if (previous) step.previous = { cursor: previous, entry };
    }
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

  async members(topic: string, after: string | undefined, limit: number): Promise<MembersPage> {
    const [nudge, count, more, ...flat] = (await this.presenceOp(
      topic,
      'page',
      after ?? '',
      limit,
    )) as (string | number)[];
    await this.#nudge(topic, Number(nudge));
    const members: MembersPage['members'] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const info = String(flat[i + 1]);
      members.push(info ? { userId: String(flat[i]), info } : { userId: String(flat[i]) });
    }
    return { count: Number(count), members, more: Number(more) === 1 };
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
  const {
    userId,
    endpoint,
    connectedAt,
    allowedTopics,
    publishTopics,
    pendingSince,
    exp,
    iat,
    info,
  } = hash;
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
  if (publishTopics !== undefined) connection.publishTopics = JSON.parse(publishTopics) as string[];
  if (pendingSince !== undefined) connection.pendingSince = pendingSince;
  if (exp !== undefined) connection.tokenExpiresAt = Number(exp);
  if (iat !== undefined) connection.tokenIssuedAt = Number(iat);
  const presence = hash['presenceTopics'];
  if (presence) connection.presenceTopics = JSON.parse(presence) as string[];
  if (info) connection.info = info;
  return connection;
}
