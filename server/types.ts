/**
 * The requests and results of pushwire's service API, as a service sees them.
 * They mirror lib/delivery/publish.ts and lib/admin/ (the server validates
 * every field again; these types only help the caller get them right).
 */

/** Exactly one target. */
export type PublishTarget =
  | { userId: string }
  | { userIds: string[] }
  | { connectionIds: string[] }
  | { topic: string }
  | { broadcast: true };

export type PublishRequest = PublishTarget & {
  /** Any JSON value; the frame must fit API Gateway's 128 KB. */
  data: unknown;
  /** Idempotency key (1-128 of A-Z a-z 0-9 _ . : -). The SDK makes one when absent. */
  id?: string;
  /** Leave out this connection (the sender's own). */
  exceptConnectionId?: string;
  /** Live only: not stored, never replayed, no cursor (typing indicators, cursors). */
  ephemeral?: boolean;
  /** Acknowledged message (user targets only; docs/acks.md). */
  ack?: AckOption;
};

/** What a push notification shows (an acknowledged message's fallback, docs/acks.md). */
export interface Notify {
  title: string;
  body?: string;
  data?: unknown;
  tag?: string;
  ttlSeconds?: number;
  urgency?: 'very-low' | 'low' | 'normal' | 'high';
}

/** Acknowledged message: a push with `notify` if no device of the user acks in time. */
export interface AckOption {
  timeoutSeconds: number;
  notify?: Notify;
  dismissOthers?: boolean;
}

export interface PublishResult {
  id: string;
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  chunks: number;
  stored: boolean;
  /** The history cursor, for a single user or a topic. */
  cursor?: string;
  /** Each user's history cursor, for `userIds`. */
  cursors?: Record<string, string>;
  /** The id was published before: nothing was sent again. */
  duplicate?: true;
}

/**
 * Many messages in one call (`publishBatch`): at most 100, at most 1 MiB as
 * frames, each at most 128 KB, at most 10,000 users and connection ids in
 * all. Each message is a PublishRequest with its own target and id. The
 * batch is validated whole: one bad message refuses it (naming
 * `messages[<index>]`), and nothing is sent.
 */
export interface PublishBatchRequest {
  messages: PublishRequest[];
}

/** One message's outcome in a batch: its PublishResult (without `chunks`), or why it was not sent. */
export type PublishBatchMessageResult =
  | Omit<PublishResult, 'chunks'>
  | {
      id: string;
      /** `in_progress`: another attempt with this id is still running; retry later. */
      error: { code: string; message: string };
    };

export interface PublishBatchResult {
  /** In the order of the request. */
  messages: PublishBatchMessageResult[];
  /** Connections posted to, each counted once per set of messages it received together. */
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  chunks: number;
}

export interface PresenceRequest {
  userIds?: string[];
  topic?: string;
  /** With `topic`: a page of its users, not only the count. */
  members?: true;
  /** The `next` of the previous page (opaque). */
  cursor?: string;
  /** Users per page, 1-1000 (default 100). */
  limit?: number;
}

/** A user on a topic: each once, however many devices. */
export interface Member {
  userId: string;
  /** The `info` claim of the user's token. */
  info?: Record<string, unknown>;
}

export interface PresenceResult {
  users?: Record<string, { online: boolean; connections: number }>;
  /** `members`: connections on the topic (a user's devices each count). */
  topic?: { name: string; members: number };
  /** With `members: true`: a page of the topic's users, in user id order. */
  members?: Member[];
  /** With `members: true`: users on the topic. */
  count?: number;
  /** The cursor of the next page, when there is one. */
  next?: string;
}

export type KickRequest =
  /** `revoke`: also refuse, at `$connect`, every token of the user issued until now. */
  { userId: string; revoke?: boolean } | { connectionIds: string[] };

export interface KickResult {
  /** The user's tokens issued until now are refused (kick with `revoke: true`). */
  revoked?: true;
  connections: number;
  closed: number;
  gone: number;
  failed: number;
}

export interface StatusRequest {
  id: string;
  userId: string;
}

/** An acknowledged message's delivery status (docs/openapi.yaml AckStatus). */
export interface AckStatus {
  id: string;
  userId: string;
  state: 'pending' | 'acked' | 'pushing' | 'pushed' | 'timed_out';
  publishedAt?: number;
  timeoutAt?: number;
  cursor?: string;
  dismissOthers: boolean;
  notify: boolean;
  devices: { connectionId: string; postedAt?: number; ackedAt?: number }[];
  firstAck?: { connectionId: string; at: number };
  timedOutAt?: number;
  push?: { devices: number; sent: number; failed: number; removed: number; at: number };
  stateLost?: string;
}

/** A browser's PushSubscription JSON (`subscription.toJSON()`). */
export interface WebPushSubscription {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}

/** An app's APNs device token (hex) or FCM registration token. */
export interface MobileDevice {
  platform: 'apns' | 'apns_sandbox' | 'fcm';
  token: string;
}

/** Exactly one of `webpush` or `mobile` (docs/push.md). */
export type DeviceTarget = { webpush: WebPushSubscription } | { mobile: MobileDevice };

/** A push device as pushwire shows it: no keys, no token. */
export interface DeviceSummary {
  id: string;
  kind: 'webpush' | 'mobile';
  platform?: MobileDevice['platform'];
  /** The push service's origin (Web Push). */
  origin?: string;
  registeredAt: number;
  expiresAt: number;
}

export interface DeviceRegistered {
  registered: DeviceSummary;
  /** Devices removed to stay within the per-user limit, least recently registered first. */
  evicted: DeviceSummary[];
}

export interface DeviceRemoved {
  removed: boolean;
  id: string;
}

export interface DeviceList {
  devices: DeviceSummary[];
  /** Devices a user may have (PUSH_MAX_DEVICES). */
  max: number;
}

export type Operation = 'publish' | 'presence' | 'kick' | 'status' | 'devices';

/** What one attempt of a call came back with. */
export type Reply =
  | { ok: true; value: unknown }
  | {
      ok: false;
      /** Worth another attempt: throttled, the function failed, a 5xx, the network. */
      retryable: boolean;
      code: string;
      message: string;
      status?: number;
      cause?: unknown;
    };

/** How the SDK reaches pushwire: Lambda Invoke or the HTTP API. */
export interface Transport {
  call(operation: Operation, body: object): Promise<Reply>;
}
