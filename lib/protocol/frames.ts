import * as v from 'valibot';
import { MAX_CLIENT_FRAME_BYTES, TOPIC_PATTERN, USER_ID_PATTERN } from '../constants.js';
import { TooLargeError, ValidationError } from '../errors.js';
import { isCursor } from '../registry/cursor.js';

/**
 * The wire protocol between clients and pushwire. Client frames are JSON with
 * an `action` (API Gateway's route selection is `$request.body.action`); server
 * frames have a `type`. docs/protocol.md documents both, docs/asyncapi.yaml is their contract.
 */

export const Topic = v.pipe(
  v.string('topic must be a string'),
  v.regex(TOPIC_PATTERN, 'topic must be 1-128 characters of A-Z a-z 0-9 _ . : @ = -'),
);
/** A user id, by the one rule shared by token `sub`, publish, presence and kick. */
export const UserId = v.pipe(
  v.string('user ids are strings'),
  v.regex(
    USER_ID_PATTERN,
    'a user id is 1-256 printable characters without whitespace, "{", "}" or "|"',
  ),
);
export const CursorSchema = v.pipe(
  v.string('since must be a string cursor'),
  v.check(isCursor, 'since must be a cursor like "1732752000000-0"'),
);

/** A client's tag for a frame: its reply, and an error answering it, carry it back (PW-F3). */
const Ref = v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(64)));

const Ping = v.strictObject({ action: v.literal('ping'), ref: Ref });
const Subscribe = v.strictObject({
  action: v.literal('subscribe'),
  topic: Topic,
  since: v.optional(CursorSchema),
  /** Deltas instead of whole messages on a delta topic (PW-D1); the one format is fossil. */
  delta: v.optional(v.literal('fossil', 'delta must be "fossil"')),
  ref: Ref,
});
const Unsubscribe = v.strictObject({ action: v.literal('unsubscribe'), topic: Topic, ref: Ref });
const Resume = v.strictObject({ action: v.literal('resume'), since: CursorSchema, ref: Ref });
/** Refreshes the connection's token in place (same `sub`), before it expires. */
const Auth = v.strictObject({
  action: v.literal('auth'),
  token: v.pipe(v.string('token must be a string'), v.minLength(1), v.maxLength(8_192)),
  ref: Ref,
});

/** A publish id: the same alphabet as a service's (PW-C3). */
export const PublishId = v.pipe(
  v.string('id must be a string'),
  v.regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'id must be 1-128 characters of A-Z a-z 0-9 _ . : -'),
);
/** A client's publish (issue 16): allowed by the token's `publish` claim. */
const Publish = v.pipe(
  v.strictObject({
    action: v.literal('publish'),
    topic: Topic,
    data: v.unknown(),
    id: v.optional(PublishId),
    echo: v.optional(v.boolean()),
    ephemeral: v.optional(v.boolean()),
    ref: Ref,
  }),
  v.check((f) => f.data !== undefined, 'data is required (any JSON value)'),
);
/** A page of the members of a topic the connection is subscribed to (PW-P1). */
const Presence = v.strictObject({
  action: v.literal('presence'),
  topic: Topic,
  cursor: v.optional(v.pipe(v.string('cursor must be a string'), v.minLength(1), v.maxLength(400))),
  limit: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1_000, 'limit is 1 to 1000')),
  ),
  ref: Ref,
});

/** Acknowledges messages (issue 18, PW-K2): ids of acknowledged messages to this connection's user. */
const Ack = v.strictObject({
  action: v.literal('ack'),
  ids: v.pipe(v.array(PublishId), v.minLength(1), v.maxLength(100, 'at most 100 ids per ack')),
  ref: Ref,
});

/**
 * Push devices of the connection's user (issue 18, PW-N1): shapes are checked
 * by the `devices` function `$default` hands them to (docs/push.md).
 */
const PushTarget = {
  webpush: v.optional(v.unknown()),
  mobile: v.optional(v.unknown()),
  ref: Ref,
};
const PushRegister = v.strictObject({ action: v.literal('push_register'), ...PushTarget });
const PushUnregister = v.strictObject({
  action: v.literal('push_unregister'),
  id: v.optional(v.string()),
  ...PushTarget,
});

export const ClientFrame = v.variant('action', [
  Ping,
  Subscribe,
  Unsubscribe,
  Resume,
  Auth,
  Publish,
  Presence,
  Ack,
  PushRegister,
  PushUnregister,
]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;
export const ACTIONS = [
  'ping',
  'subscribe',
  'unsubscribe',
  'resume',
  'auth',
  'publish',
  'presence',
  'ack',
  'push_register',
  'push_unregister',
] as const;

/** A user on a topic (member lists, join events). */
export type MemberEntry = { userId: string; info?: Record<string, unknown> };

export type MessageFrame = {
  type: 'message';
  id: string;
  data: unknown;
  cursor?: string;
  topic?: string;
  /** The publishing user, for a client's publish (from its token). */
  from?: string;
  /** Not stored: live only, never replayed, no cursor. */
  ephemeral?: true;
  /** A delta topic's message as a fossil delta against the entry at `base` (PW-D3); `data` is the delta text. */
  delta?: { base: string };
  /** Acknowledged (issue 18): the client acks it (PW-K1). */
  ack?: true;
  /** In a replay: another device acked it first, and the publish asked to dismiss it (PW-K3). */
  dismissed?: true;
};

/** A client frame's `ref`, echoed by the reply to it (left out of the JSON when undefined). */
type Ref = { ref?: string | undefined };

/** A reply to a client frame (or an error answering one). */
export type ReplyFrame =
  /** `cursor`: where the user stream stands (see subscribed). */
  (
    | { type: 'pong'; connectionId: string; epoch?: string; cursor?: string }
    /**
     * `cursor` (a subscribe without `since`): where the topic's stream stood
     * when the connection joined it; a client with no cursor for it starts there.
     */
    | { type: 'subscribed'; topic: string; cursor?: string; delta?: 'fossil' }
    | { type: 'unsubscribed'; topic: string }
    /**
     * The end of a replay. `recovered`: every message after `since` was
     * replayed. `cursor` (only when the replay stopped before catching up: it
     * failed or ran out of time): the last cursor replayed; the connection is
     * live again, and a resume (or subscribe) from `cursor` fetches the rest.
     */
    | { type: 'resumed'; recovered: boolean; topic?: string; cursor?: string }
    | { type: 'authenticated'; expiresAt: number }
    /**
     * A client publish was accepted. `cursor`: where it was stored (none
     * when ephemeral); `duplicate`: this id was published before, and this
     * is that publish's answer.
     */
    | { type: 'published'; topic: string; id: string; cursor?: string; duplicate?: true }
    /** An `ack` was recorded for `ids`; `refused`: ids that are not this user's acknowledged messages (PW-K2). */
    | { type: 'acked'; ids: string[]; refused?: string[] }
    /** A page of members (PW-P1); `next`: the cursor of the next page, when there is one. */
    | { type: 'presence'; topic: string; members: MemberEntry[]; count: number; next?: string }
    /** A push device registered for the user (PW-N1); `evicted`: devices dropped for the limit. */
    | { type: 'push_registered'; id: string; expiresAt: number; evicted?: string[] }
    /** `removed`: whether the user had that device. */
    | { type: 'push_unregistered'; id: string; removed: boolean }
    /** `retryAfter` (seconds): with `rate_limited`. */
    | {
        type: 'error';
        code: string;
        message: string;
        retryAfter?: number | undefined;
        /** A refused subscribe's topic (with `rate_limited`). */
        topic?: string | undefined;
      }
  ) &
    Ref;

/**
 * Frames the server sends: docs/asyncapi.yaml describes each, and
 * test/unit/contract.test.ts checks that these types and the client frame
 * schemas above say the same. `cursor` in `pong` and `subscribed` is
 * docs/protocol.md PW-R4.
 */
export type ServerFrame =
  | ReplyFrame
  | MessageFrame
  /** Several history messages in one post, in cursor order (replay only). */
  | { type: 'batch'; messages: MessageFrame[] }
  /** A slice of a message frame over 128 KB (PW-F6; built in lib/delivery/parts.ts). */
  | { type: 'part'; id: string; n: number; of: number; data: string }
  /** A user's first device subscribed to an opted-in topic (PW-P3). */
  | { type: 'join'; topic: string; userId: string; info?: Record<string, unknown> }
  /** A user's last device left the topic, or expired (PW-P3). */
  | { type: 'leave'; topic: string; userId: string }
  /** Joins and leaves of a large topic, gathered over an interval (PW-P4). */
  | { type: 'presence_diff'; topic: string; joined: MemberEntry[]; left: string[] }
  /** Another device of the user acked this message first (PW-K3): stop showing it. */
  | { type: 'dismiss'; id: string };

/**
 * Every `code` an error frame may carry (docs/protocol.md PW-E2): the
 * document's enum; test/unit/contract.test.ts checks they agree.
 */
export const ERROR_CODES = [
  'invalid_json',
  'unknown_action',
  'invalid_frame',
  'invalid_cursor',
  'too_large',
  'invalid_request',
  'forbidden',
  'too_many_topics',
  'rate_limited',
  'token_expired',
  'unknown_connection',
  'unauthorized',
  'unavailable',
  'internal',
  'kicked',
  'revoked',
  'token_revoked',
  'hook_denied',
  'hook_failed',
  'ack_refused',
  'push_unsupported',
] as const;

export function parseClientFrame(body: string | undefined): ClientFrame {
  if (body === undefined || body === '')
    throw new ValidationError('empty frame: send JSON with an "action"', 'invalid_frame');
  if (Buffer.byteLength(body) > MAX_CLIENT_FRAME_BYTES) {
    throw new TooLargeError(`frame is over ${MAX_CLIENT_FRAME_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ValidationError('frame is not valid JSON', 'invalid_json');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ValidationError('frame must be a JSON object with an "action"', 'invalid_frame');
  }
  const action = (json as { action?: unknown }).action;
  if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
    throw new ValidationError(
      `unknown action ${JSON.stringify(action ?? null)}; expected one of ${ACTIONS.join(', ')}`,
      'unknown_action',
    );
  }
  const parsed = v.safeParse(ClientFrame, json);
  if (!parsed.success) {
    // A `since` that is there but is no cursor has its own code; a missing one is a shape error.
    const badCursor =
      'since' in json && parsed.issues.every((issue) => issue.path?.[0]?.key === 'since');
    throw new ValidationError(
      describeIssues(parsed.issues),
      badCursor ? 'invalid_cursor' : 'invalid_frame',
    );
  }
  return parsed.output;
}

export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .map((issue) => {
      const path = issue.path?.map((p) => String(p.key)).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

export const encodeFrame = (frame: ServerFrame): string => JSON.stringify(frame);
