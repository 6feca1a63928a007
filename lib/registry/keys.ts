/**
 * Every Redis key pushwire uses, built in one place.
 *
 * Keys carry Redis Cluster hash tags so that everything one Lua script or one
 * atomic step touches lives in one slot: a connection's record and its topic
 * list share `{connectionId}`; a user's live set, resuming set, history stream
 * and trim marker share `{u:userId}`; a topic's share `{t:topic}`. Commands that
 * must touch several of these (register, remove) send one command per slot.
 */

export interface AudienceKeys {
  /** ZSET of live members (`connectionId|endpoint`), scored by expiry time in ms. */
  live: string;
  /** ZSET of members replaying history, scored by expiry; publish skips them until they catch up. */
  resuming: string;
  /**
   * ZSET: the replay lease of each resuming member (lease end in ms). Past it,
   * the member counts as live again, whatever became of its replay.
   */
  leases: string;
  /** STREAM of the last messages (the history behind cursors). */
  history: string;
  /**
   * STRING: the stream's floor: history holds exactly the entries after it
   * (the newest entry ever trimmed away, or where a (re)created stream's
   * history starts, or where a client joined a stream with no history).
   */
  lost: string;
  /**
   * HASH: publish id -> the cursor it was stored under, for the entries still
   * in history (a retried publish is not appended again). Trimmed with them.
   */
  ids: string;
  /**
   * HASH (delta topics, issue 17): member -> the stream's position when it
   * joined live asking for deltas ("0-0": joined by a replay). A member
   * gets a delta only against an entry stored after its position.
   */
  delta: string;
  /**
   * ZSET: ids of acknowledged messages a first ack dismissed (issue 18),
   * scored by when; a replay marks them `dismissed`. Only user streams have one.
   */
  dismissed: string;
}

/**
 * A topic's presence: who is on it (users, each once), kept beside its
 * audience in the topic's slot so one script reads and writes all of it.
 */
export interface PresenceKeys {
  /** ZSET of devices (`connectionId|userId`), scored by expiry time in ms. */
  devices: string;
  /** ZSET of the users present, all scored 0: ordered by name, paged by ZRANGEBYLEX. */
  users: string;
  /** HASH: userId -> `<device count> <info JSON or nothing>`. */
  counts: string;
  /** LIST of join/leave events not yet fanned out (`+userId connectionId info` / `-userId connectionId`). */
  events: string;
  /** STRING: set (with a PX) while coalesced events wait for their flush, or while a drain runs. */
  flush: string;
  /** STRING: held by the drain fanning this topic's events out (keeps their order). */
  lock: string;
}

export type AudienceKind = 'user' | 'topic';

export interface Audience {
  kind: AudienceKind;
  name: string;
  keys: AudienceKeys;
}

export interface Keys {
  connection(connectionId: string): string;
  connectionTopics(connectionId: string): string;
  audience(kind: AudienceKind, name: string): Audience;
  presence(topic: string): PresenceKeys;
  /**
   * ZSET: topic -> when its presence next needs a look (its earliest device
   * expiry, or events waiting): what the sweep visits. One per deployment,
   * in the endpoints key's slot.
   */
  presenceDue(): string;
  /** ZSET of every live connection, for broadcast. */
  all(): string;
  dedup(publishId: string): string;
  /** STRING: when the user's tokens were last revoked (ms); tokens issued before are refused. In the user's slot. */
  revoked(userId: string): string;
  /** STRING: replays (resume, subscribe with since) this connection made in the current minute. */
  connectionReplays(connectionId: string): string;
  /** SET of the streams (topics, '' for the user's) this connection has replayed at least once. */
  connectionReplayed(connectionId: string): string;
  /** STRING counting this connection's client publishes in the current second (issue 16). */
  connectionPublishes(connectionId: string): string;
  /** SET of the management endpoints connections were recorded with (what `deliver` may post to). */
  endpoints(): string;
  /**
   * STRING: when this Redis's data began (ms, Redis's clock), set by the
   * first $connect (or a publish instance's first stored publish) that finds
   * it missing (endpoint.lua), so it moves on when Redis loses its data.
   * Hash-tagged into the endpoints key's slot; no TTL: one key per deployment.
   */
  epoch(): string;
  /**
   * STRING: the same moment in the server's clock (ms), set with the epoch:
   * tokens issued before it are refused at $connect (a revocation older than
   * the data went with it). Same slot as the epoch; no TTL.
   */
  tokenEpoch(): string;
  /**
   * LIST of lifecycle event records waiting for the `events` relay of one
   * stack (lib/events/outbox.ts), named by its region and stage: stacks that
   * share the Redis (docs/deploying.md) each relay their own functions'
   * events, to their own bus, in their own stage.
   */
  events(stack: { region: string; stage: string }): string;
  /**
   * HASH: the token bucket for management API posts in one region
   * (lib/delivery/pace.lua): AWS throttles per account and region, so stacks
   * sharing the Redis in one region share it. TTL 60 s.
   */
  pace(region: string): string;
  /**
   * HASH: an acknowledged message's state for one user (issue 18,
   * lib/acks/): where it was posted, who acked it and when, the push. In the
   * user's slot, beside the stream and its live set (ack.lua reads them together).
   */
  ack(userId: string, id: string): string;
  /**
   * HASH: device id -> the JSON record of one of the user's push devices
   * (lib/push/devices.ts: Web Push subscriptions, SNS platform endpoints).
   * In the user's slot; its TTL is refreshed by every registration.
   */
  devices(userId: string): string;
}

export function createKeys(prefix: string): Keys {
  if (/[{}]/.test(prefix)) throw new Error('a key prefix must not contain { or }');
  const audienceTag = (kind: AudienceKind, name: string) =>
    `${prefix}${kind === 'user' ? 'u' : 't'}:{${kind === 'user' ? 'u' : 't'}:${name}}`;
  return {
    connection: (id) => `${prefix}c:{${id}}`,
    connectionTopics: (id) => `${prefix}c:{${id}}:t`,
    audience: (kind, name) => {
      const tag = audienceTag(kind, name);
      return {
        kind,
        name,
        keys: {
          live: `${tag}:c`,
          resuming: `${tag}:r`,
          leases: `${tag}:rl`,
          history: `${tag}:h`,
          lost: `${tag}:l`,
          // Same slot as the stream: publish.lua reads and writes both.
          ids: `${tag}:ids`,
          delta: `${tag}:dx`,
          dismissed: `${tag}:dm`,
        },
      };
    },
    presence: (topic) => {
      const tag = audienceTag('topic', topic);
      return {
        devices: `${tag}:pd`,
        users: `${tag}:pu`,
        counts: `${tag}:pn`,
        events: `${tag}:pe`,
        flush: `${tag}:pf`,
        lock: `${tag}:pl`,
      };
    },
    presenceDue: () => `${prefix}{${prefix}endpoints}:presence`,
    all: () => `${prefix}all`,
    dedup: (id) => `${prefix}d:{${id}}`,
    revoked: (userId) => `${prefix}u:{u:${userId}}:rv`,
    connectionReplays: (id) => `${prefix}c:{${id}}:rp`,
    connectionReplayed: (id) => `${prefix}c:{${id}}:rs`,
    connectionPublishes: (id) => `${prefix}c:{${id}}:pr`,
    endpoints: () => `${prefix}endpoints`,
    epoch: () => `${prefix}{${prefix}endpoints}:epoch`,
    tokenEpoch: () => `${prefix}{${prefix}endpoints}:epoch:iat`,
    events: ({ region, stage }) => `${prefix}events:${region}:${stage}`,
    pace: (region) => `${prefix}{${prefix}pace:${region}}`,
    ack: (userId, id) => `${audienceTag('user', userId)}:a:${id}`,
    devices: (userId) => `${audienceTag('user', userId)}:dv`,
  };
}

/** A member of an audience set: who to post to, and through which API endpoint. */
export interface Recipient {
  connectionId: string;
  endpoint: string;
  /**
   * When the connection's token expires (ms). Not part of the member: it
   * bounds the member's score (its expiry), so a publish skips the member
   * once the token has expired, at no extra cost.
   */
  tokenExpiresAt?: number;
}

/**
 * Set members carry the endpoint beside the connection id so one read of a
 * set is enough to deliver: no second lookup per connection. `|` appears in
 * neither an API Gateway connection id nor a URL we produce.
 */
export const encodeMember = (r: Recipient): string => `${r.connectionId}|${r.endpoint}`;

export function decodeMember(member: string): Recipient {
  const bar = member.indexOf('|');
  if (bar <= 0) throw new Error(`malformed audience member: ${member}`);
  return { connectionId: member.slice(0, bar), endpoint: member.slice(bar + 1) };
}
