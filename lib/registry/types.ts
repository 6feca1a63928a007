import type { Audience, Recipient } from './keys.js';

export type { Audience, Recipient };

/** What pushwire knows about one WebSocket connection. */
export interface ConnectionRecord {
  connectionId: string;
  userId: string;
  /** Management API endpoint of the API/stage holding the connection. */
  endpoint: string;
  connectedAt: number;
  /** Topic names or `prefix*` patterns the connection's token allows. */
  allowedTopics: string[];
  /** Topic names or `prefix*` patterns the connection may publish to (its token's `publish` claim). */
  publishTopics?: string[];
  /** A `?since=` cursor given at connect, replayed at the connection's first frame. */
  pendingSince?: string;
  /** When the connection's token expires (ms): no member score ever exceeds it. */
  tokenExpiresAt?: number;
  /** When the connection's token was issued (its `iat`, ms): a revocation at or after it refuses it. */
  tokenIssuedAt?: number;
  /** Topic names or patterns whose member list the token lets it read (`presence` claim). */
  presenceTopics?: string[];
  /** The token's `info` claim as JSON text: public info shown in member lists and join events. */
  info?: string;
}

/** One page of a topic's members, in user id order. */
export interface MembersPage {
  /** Users present on the topic (each once, however many devices). */
  count: number;
  /** `info`: the user's `info` claim as JSON text. */
  members: { userId: string; info?: string }[];
  /** More users follow the last one of this page. */
  more: boolean;
}

/**
 * What register() did: admitted the connection, or refused it (writing
 * nothing) because the user's tokens were revoked at or after this one was
 * issued, because the token was issued before Redis's data began (any
 * revocation older than the data is gone with it), or because the user
 * already has as many connections as allowed.
 */
export type RegisterOutcome =
  | 'registered'
  | 'revoked'
  | 'issued_before_epoch'
  | 'too_many_connections';

/** How much one replay step may return: what one post to the connection can carry. */
export interface ResumeLimits {
  entries: number;
  /** Bytes, counted as the sum of (cursor + entry + entryOverhead) over the batch. */
  bytes: number;
  /** Bytes a frame adds around each entry (type, cursor and topic fields). */
  entryOverhead: number;
  /**
   * Go live with the batch that holds all that remains (always converges),
   * rather than only at a read that finds nothing left (exact order).
   */
  handOffWhenFits: boolean;
}

/**
 * 'forbidden': the grants stored with the connection (an `auth` refresh may
 * have replaced them) do not allow the topic. 'left': the topic left the
 * connection's list while it was being joined (an unsubscribe side by side).
 */
export type SubscribeOutcome = 'subscribed' | 'gone' | 'too_many_topics' | 'forbidden' | 'left';

export interface Connection extends ConnectionRecord {
  /** Topics the connection is subscribed to. */
  topics: string[];
  /** (touch() only) When the user's tokens were last revoked (ms), if they were lately. */
  revokedAt?: number;
}

/** A connection as touch() found it. */
export interface Touched extends Connection {
  /** Where its user stream stands (when asked for). */
  userCursor?: string;
}

export interface PublishStep {
  /** History cursor of the stored message ('' when none was stored). */
  cursor: string;
  /** Live members at the moment of publishing. */
  count: number;
  /** The members, when there were few enough to return inline; else stream them with scan(). */
  members?: Recipient[];
  /**
   * A delta topic's entry this one follows (read atomically with the
   * append), when there is one: the base of its delta (issue 17).
   */
  previous?: { cursor: string; entry: string };
}

export type ResumeStep =
  | {
      /**
       * 'more': a batch, and more remain (the member is still resuming).
       * 'last': all that remained (maybe nothing); the member went live in the same step.
       */
      state: 'more' | 'last';
      entries: { cursor: string; entry: string }[];
      /** ('more' only) This batch is all that remained when it was read. */
      rest?: true;
      /** History was trimmed past `since` before this batch was read: entries were missed. */
      gap?: true;
    }
  /** Already live: a replay side by side caught up first. */
  | { state: 'live' }
  /** In neither set: removed, kicked or expired. */
  | { state: 'gone' };

/**
 * The connection registry port: who is connected where, who listens to what,
 * and the history behind resume. The Redis adapter is the production one; the
 * port keeps `lib/` logic independent of how it is stored.
 */
export interface ConnectionRegistry {
  /**
   * Records a connection, unless its user's tokens were revoked at or after
   * it was issued or (with `maxConnections`) the user already has that many
   * connections: checked and added atomically, so neither a kick with revoke
   * nor connects racing this one can slip past. A refused one leaves nothing.
   */
  register(record: ConnectionRecord, maxConnections?: number): Promise<RegisterOutcome>;
  get(connectionId: string): Promise<Connection | null>;
  /**
   * Renews every TTL of a connection; null when it is not registered. Reads
   * the user's revocation in the same round trip (`revokedAt`). With
   * `position`, also where its user stream stands (`userCursor`, see
   * subscribeWithCursor), read in the same round trip.
   */
  touch(connectionId: string, position?: boolean): Promise<Touched | null>;
  /** Removes a connection everywhere. Idempotent: null when nothing was there. */
  remove(connectionId: string): Promise<Connection | null>;
  /**
   * Removes a connection's pending `?since=`. True only for the call that
   * removed it: of frames handled side by side, that one replays it.
   */
  clearPendingSince(connectionId: string): Promise<boolean>;

  userAudience(userId: string): Audience;
  topicAudience(topic: string): Audience;
  /**
   * Adds a connection to a topic: live, or (given the end of a replay lease,
   * when about to replay) resuming. 'gone', having left nothing behind, when
   * the connection's record is gone or being removed; with `maxTopics`,
   * 'too_many_topics' (joining nothing) when the connection already has that
   * many other topics (checked and added atomically); 'forbidden' (joining
   * nothing) when the grants stored in the record now do not allow the topic.
   */
  subscribe(
    connection: ConnectionRecord,
    topic: string,
    leaseEnd?: number,
    maxTopics?: number,
    delta?: boolean,
  ): Promise<SubscribeOutcome>;
  /**
   * subscribe() to join live, answering also where the topic's stream stood
   * right after the member was written: its newest entry's cursor, or (no
   * history) a cursor of Redis's clock recorded as the stream's floor. A
   * resume from it is exact: everything after it was sent live or is in
   * history, and it is never doubted (recovered:false) while within the
   * history TTL.
   */
  subscribeWithCursor(
    connection: ConnectionRecord,
    topic: string,
    maxTopics?: number,
    delta?: boolean,
  ): Promise<{ outcome: SubscribeOutcome; cursor?: string }>;
  /** Whether DELTA_TOPICS names the topic (docs/protocol.md PW-D1). */
  isDeltaTopic(topic: string): boolean;
  /**
   * Per recipient of a delta topic, whether it asked for deltas and joined
   * before `base` was stored (so it received it): publish's per-member
   * flags (one HMGET of the topic's delta hash per batch of recipients).
   */
  deltaFlags(audience: Audience, recipients: Recipient[], base: string): Promise<boolean[]>;
  unsubscribe(connection: ConnectionRecord, topic: string): Promise<boolean>;
  /**
   * Takes a member out of live delivery until resumeStep() says it caught up,
   * or at the latest until `leaseEnd` (ms), when it counts as live again. False,
   * creating nothing, when the member is not in the audience (removed, expired).
   */
  beginResume(audience: Audience, recipient: Recipient, leaseEnd: number): Promise<boolean>;
  /** Gives a replay up: the member is live again (whatever history it did not get). */
  endResume(audience: Audience, recipient: Recipient): Promise<void>;
  resumeStep(
    audience: Audience,
    recipient: Recipient,
    since: string,
    limits: ResumeLimits,
  ): Promise<ResumeStep>;
  /** Whether history still holds every entry after `since`. */
  recoverable(audience: Audience, since: string): Promise<boolean>;
  /** When this Redis's data began (ms since 1970, as a string), once a $connect or publish has marked it. */
  epoch(): Promise<string | null>;

  /** Refuses the user's tokens issued at or before `atMs`, for `ttlSeconds`. */
  revokeUser(userId: string, atMs: number, ttlSeconds: number): Promise<void>;
  /**
   * Stores a refreshed token's expiry, issue time and grants, leaves the topics they do
   * not allow (read atomically with the write, so a subscribe side by side
   * cannot keep one), and re-bounds the member scores. False, writing
   * nothing, when the connection is unknown or being removed.
   */
  refreshToken(
    connectionId: string,
    token: {
      expiresAt: number;
      issuedAt: number;
      topics: string[];
      /** The `presence` grants and `info` claim (JSON) of the new token. */
      presenceTopics?: string[];
      info?: string;
      /** The `publish` grants of the new token. */
      publish?: string[];
    },
  ): Promise<boolean>;
  /**
   * Counts one replay of this connection in the current minute; returns the
   * count. With `stream` (a topic, or '' for the user's own stream), the
   * first replay of each of the connection's first `freeStreams` streams is
   * free (returns 0): a reconnection resubscribing every topic from its cursor
   * costs one replay per stream, already bounded by the topic limit.
   */
  countReplay(connectionId: string, stream?: string, freeStreams?: number): Promise<number>;
  /**
   * Counts one client publish of this connection in the current fixed
   * window (`windowMs`, started by its first publish): the count, and the
   * window's time left (ms).
   */
  countPublish(connectionId: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
  /** Whether every one of these endpoints is one a connection was recorded with (lately). */
  endpointsKnown(endpoints: readonly string[]): Promise<boolean>;

  /** Connections of one user, live or still replaying history, with endpoints. */
  lookupUser(userId: string): Promise<Recipient[]>;
  /**
   * Stores `entry` in the audience's history (unless null) and reads its live
   * members, atomically. With a `publishId` already stored in this stream, it
   * stores nothing and answers the cursor it was stored under.
   */
  publish(
    audience: Audience,
    entry: string | null,
    inlineLimit: number,
    publishId?: string,
  ): Promise<PublishStep>;
  /** Streams the live members of an audience (or of everyone) in batches, never all at once. */
  scan(audience: Audience | 'all', batch: number): AsyncIterable<Recipient[]>;
  /**
   * Takes up to `max` connections out of the broadcast set whose membership
   * expired before `cutoffMs`, and answers those whose record is gone too:
   * connections that expired without a `$disconnect`. (One whose token
   * expired first still has its record: not answered.)
   */
  sweepExpired(cutoffMs: number, max: number): Promise<Recipient[]>;
  /** Connected members (live, or catching up on history), expired ones not counted. */
  countConnected(audience: Audience | 'all'): Promise<number>;

  /**
   * A page of the users on a topic, after `after` (a user id) in id order.
   * Devices whose expiry passed are taken out first (their users leave).
   */
  members(topic: string, after: string | undefined, limit: number): Promise<MembersPage>;
}

/** The presenceEvents function's side of presence: the sweep and the drain's takes. */
export interface PresenceSweeper {
  /**
   * Visits the topics whose presence is due (a device may have expired, or
   * events wait): takes out expired devices, recording their users' leaves.
   * Answers the topics with events waiting to be fanned out.
   */
  sweepPresence(maxTopics: number): Promise<string[]>;
  /**
   * Takes up to `max` of a topic's waiting join/leave events, in order, for
   * the drain holding `token` (the first take acquires it; one that finds
   * none left releases it). Null while another drain holds the topic.
   */
  takePresenceEvents(topic: string, token: string, max: number): Promise<string[] | null>;
}
