/**
 * Lifecycle events: what pushwire tells other services about connections,
 * sent to Amazon EventBridge (opt-in per type: EVENTS in lib/config.ts).
 * docs/events.md says what each means and when it is sent;
 * docs/asyncapi.yaml's `events` channel has each detail's JSON Schema.
 *
 * Adding an event: its name to EVENT_TYPES, its detail to EventDetails, its
 * message and schema to docs/asyncapi.yaml's `events` channel, and one `events.emit(...)` where it
 * happens (test/unit/events-schema.test.ts checks the three agree).
 */
export const EVENT_TYPES = [
  'connected',
  'disconnected',
  'subscribed',
  'unsubscribed',
  'refused',
  'presence.join',
  'presence.leave',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/**
 * Why a connection ended. `client_close`: API Gateway's `$disconnect` (the
 * client closed, the network dropped, the idle or 2 h limit); `kick`: the
 * kick API; `token_expired`: its token expired and pushwire closed it;
 * `gone`: a post found it gone (410) before its `$disconnect` came;
 * `expired`: its records expired and no `$disconnect` ever came.
 */
export type DisconnectReason = 'client_close' | 'kick' | 'token_expired' | 'gone' | 'expired';

export interface EventDetails {
  connected: {
    connectionId: string;
    userId: string;
    connectedAt: number;
    /** The token's `exp`, ms. */
    tokenExpiresAt?: number;
  };
  disconnected: {
    connectionId: string;
    /** Unknown for `expired`: the record had expired with the user in it. */
    userId?: string;
    reason: DisconnectReason;
  };
  subscribed: { connectionId: string; userId: string; topic: string };
  unsubscribed: {
    connectionId: string;
    userId: string;
    topic: string;
    /** `client`: an unsubscribe frame; `token_refresh`: a new token no longer allows it. */
    reason: 'client' | 'token_refresh';
  };
  /**
   * A user's first device joined a topic of PRESENCE_EVENTS_TOPICS (issue 16);
   * `connectionId`: that device. Sent by presenceEvents as it fans the join out.
   */
  'presence.join': { connectionId: string; userId: string; topic: string };
  /** A user's last device left such a topic (or expired); `connectionId`: that device. */
  'presence.leave': { connectionId: string; userId: string; topic: string };
  refused: {
    connectionId: string;
    /** `connect`: a refused handshake; `default`: a refused frame. */
    route: 'connect' | 'default';
    /** The error code the client was (or, for a handshake, would have been) told. */
    code: string;
  };
}

/** Where lib/ reports events. Synchronous and cheap: sending happens elsewhere, later. */
export interface EventSink {
  emit<T extends EventType>(type: T, detail: EventDetails[T]): void;
}

/** One event as handed from a function to the relay (JSON in the outbox). */
export interface EventRecord {
  type: EventType;
  /** Unique per event: consumers drop a repeat (PutEvents may be retried). */
  id: string;
  /** When it happened, ms since 1970. */
  at: number;
  detail: EventDetails[EventType];
}
