/**
 * The pushwire client: one small ESM file for browsers, React Native and Node
 * (with a WebSocket class passed in). It does what the wire protocol asks of
 * every client (docs/protocol.md and docs/clients.md): ping under API
 * Gateway's idle timeout, reconnect with backoff and a fresh token, resume the
 * user's stream and every topic from a little before the last cursor seen
 * (`reorderWindow`), re-subscribe, and hand each message to the app once.
 * Messages published one after another reach the app in order per stream (the
 * server posts them in that order); messages of concurrent publishes may
 * arrive, and are handed over, in arrival order rather than cursor order.
 *
 * No runtime dependencies, no DOM types: the host's globals are reached through
 * the minimal shapes below, so the same file runs on all three hosts. Private
 * members end in `_`: the build shortens them (esbuild --mangle-props), which
 * keeps the bundle under 5 KB min+gzip without `#private` fields (React
 * Native's Hermes does not support those).
 */

export type State = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface Message {
  id: string;
  data: unknown;
  /** Set for a topic's messages. */
  topic?: string;
  /** Position in its stream (the user's or the topic's); absent for broadcasts and ephemeral messages. */
  cursor?: string;
  /** The publishing user, for a message a client published. */
  from?: string;
  /** Live only: never stored, never replayed on resume (typing indicators, cursors). */
  ephemeral?: true;
  /** Acknowledged: acked once handed over (or by `ack(id)` with `autoAck: false`). */
  ack?: true;
  /** Another device of the user acked it first (a replay after a `dismiss`): do not ring. */
  dismissed?: true;
}

export interface PublishOptions {
  /** The idempotency key (default: a random one); every retry reuses it, so it is delivered once. */
  id?: string;
  /** Whether this connection gets the message too (default true, as everyone else on the topic). */
  echo?: boolean;
  /** Live only: not stored, not replayed, no cursor. */
  ephemeral?: boolean;
}

/** The server's acknowledgement of a publish. */
export interface Published {
  topic: string;
  id: string;
  /** Where it was stored in the topic's stream; absent when ephemeral. */
  cursor?: string;
  /** This id had been published before (an earlier attempt's ack was lost): delivered once all the same. */
  duplicate?: true;
}

/** A refused publish: `code` is the server's (`forbidden`, `too_large`, `hook_denied`, ...) or `closed`. */
export type PublishError = Error & { code: string };

/** History no longer reached back to the last cursor: messages may be missing. */
export interface Gap {
  /** The topic; absent for the user's own stream. */
  topic?: string;
}

export interface ErrorInfo {
  code: string;
  message: string;
  /** The topic a refused subscribe was for (`rate_limited`: the library retries it). */
  topic?: string;
  /** With `rate_limited`: seconds until a retry may succeed (the library retries then). */
  retryAfter?: number;
}

/** A user on a topic: each once, however many devices. */
export interface Member {
  userId: string;
  /** The `info` claim of the user's token. */
  info?: Record<string, unknown>;
}

/** One page of a topic's members (`presence()`). */
export interface MembersPage {
  members: Member[];
  /** Users on the topic. */
  count: number;
  /** Pass as `cursor` for the next page; absent on the last. */
  next?: string;
}

/**
 * Who joined and left a topic the deployment sends presence events for: one
 * `join` or `leave`, or (large topics) what changed over an interval.
 */
export interface PresenceChange {
  topic: string;
  joined: Member[];
  left: string[];
}

export interface Events {
  message: Message;
  state: State;
  gap: Gap;
  error: ErrorInfo;
  presence: PresenceChange;
  /** Another device of the user acked this acknowledged message first: stop showing it. */
  dismiss: { id: string };
}

/** What the client uses of a WebSocket: the browser's, React Native's, or `ws`'s in Node. */
export interface SocketLike {
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketClass = new (url: string) => SocketLike;

/** `localStorage`, React Native's AsyncStorage, or anything with these two methods. */
export interface StorageLike {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): unknown;
}

export interface Options {
  /** The WebSocket API URL, e.g. `wss://abc.execute-api.eu-west-1.amazonaws.com/prod`. */
  url: string;
  /** A JWT, or a (possibly async) function called on every connection attempt. */
  token: string | (() => string | Promise<string>);
  /** Where cursors are kept across restarts; `localStorage` by default where present; `null`: memory only. */
  storage?: StorageLike | null;
  /** `globalThis.WebSocket` by default. */
  WebSocket?: SocketClass;
  /** Whose cursors these are (the storage key); by default the token's `sub`, read without verifying. */
  user?: string;
  /**
   * A publish not acknowledged within this long is sent again (same id), ms
   * (default 10,000); one sent while disconnected goes at the next connection.
   */
  ackTimeout?: number;
  /** Ping period, ms (default 120,000; API Gateway closes a connection idle for 10 minutes). */
  pingInterval?: number;
  /** A ping unanswered this long means a dead socket, ms (default 20,000). */
  pongTimeout?: number;
  /**
   * A connection attempt not open within this long is given up and made
   * again, ms (default 30,000: API Gateway gives up on `$connect` after 29 s;
   * a WebSocket of its own may wait far longer on a network that drops packets).
   */
  connectTimeout?: number;
  /** First reconnection delay bound, ms (default 1,000); doubles per failed attempt. */
  minDelay?: number;
  /** Largest reconnection delay bound, ms (default 30,000). */
  maxDelay?: number;
  /** How many recent message ids are remembered to drop duplicates (default 1,000). */
  dedupeWindow?: number;
  /**
   * How late (in cursor time, ms) a message may arrive after one published
   * later on its stream (default 5,000: a post retried through the server's
   * whole backoff budget). A stream resumes from this long before its newest
   * cursor, so a message overtaken just before a drop is not skipped.
   */
  reorderWindow?: number;
  /**
   * Cursors are written to storage at most this often, ms (default 1,000),
   * and when the page is hidden or left, and at `close()`.
   */
  saveInterval?: number;
  /**
   * A stream not subscribed to and not heard from for this long is dropped
   * from storage, ms (default 86,400,000: the server's default
   * HISTORY_TTL_SECONDS, beyond which its history cannot resume it anyway).
   */
  keepFor?: number;
  /**
   * Delta topics: `fossilDelta` from `pushwire/delta` (a separate import).
   * With it, every subscription asks for deltas; on topics the deployment
   * sends them for, the library applies each to the message before it and
   * hands the app whole messages (docs/clients.md#delta-topics).
   */
  delta?: () => DeltaApplier;
  /**
   * Acknowledged messages are acked once handed to the app (default true);
   * false: the app calls `ack(id)` itself, e.g. once it has shown them.
   */
  autoAck?: boolean;
}

/**
 * Turns a delta frame into a whole message in place (false: it cannot,
 * and the library fetches the message whole), and keeps each topic's last
 * message as the next delta's base.
 */
export type DeltaApplier = (frame: Frame) => boolean;

/** A stream's state as stored: resume point, newest cursor ('' if none), ids after the resume point, last active (ms). */
type Saved = [string, string, Record<string, string>, number];

/** A server frame as the client reads it (docs/asyncapi.yaml; test/unit/contract.test.ts). */
/** An Error carrying the server's error `code` (or `disconnected`). */
const fail = (code: string, message: string) => Object.assign(new Error(message), { code });

export interface Frame {
  type?: string;
  id?: string;
  data?: unknown;
  topic?: string;
  cursor?: string;
  connectionId?: string;
  /** In `pong`: when the server's Redis data began (ms). */
  epoch?: string;
  recovered?: boolean;
  /** Replay `batch`: several message frames in one. */
  messages?: Frame[];
  code?: string;
  message?: string;
  /** The `ref` of the client frame this answers (docs/protocol.md PW-F3). */
  ref?: string;
  /** In a `rate_limited` error: seconds. */
  retryAfter?: number;
  /** In `authenticated` (not used: this client reconnects with a fresh token instead). */
  expiresAt?: number;
  /** In a client-published `message`: its user. */
  from?: string;
  /** In a `message` not stored. */
  ephemeral?: true;
  /** In a delta topic's `message`: `data` is a fossil delta against the message at cursor `base`. */
  delta?: { base: string };
  /** In an acknowledged `message`; `dismissed`: another device acked it first. */
  ack?: true;
  dismissed?: true;
  /** In `acked`: the ids recorded, and those refused. */
  ids?: string[];
  refused?: string[];
  /** In `published`: an earlier attempt with this id had been published. */
  duplicate?: true;
  /** In `presence` (a page), `join` and `leave`, `presence_diff`. */
  members?: Member[];
  count?: number;
  next?: string;
  userId?: string;
  info?: Record<string, unknown>;
  joined?: Member[];
  left?: string[];
  /** In `part`: its index, and how many parts the message has (PW-F6). */
  n?: number;
  of?: number;
  /** In `push_registered`: devices dropped for the per-user limit (pushwire/push). */
  evicted?: string[];
  /** In `push_unregistered` (pushwire/push). */
  removed?: boolean;
}

/** A publish waiting for its ack: the frame (resent as is), its promise, its timer, its retries. */
interface Pending {
  f: { topic: string; id: string };
  ok: (p: Published) => void;
  no: (e: PublishError) => void;
  t?: unknown;
  n: number;
}

/** The host's optional globals, without depending on DOM or Node types. */
interface Host {
  WebSocket?: SocketClass;
  localStorage?: StorageLike;
  addEventListener?: (type: string, fn: () => void) => void;
  removeEventListener?: (type: string, fn: () => void) => void;
  document?: {
    visibilityState?: string;
    addEventListener?: (type: string, fn: () => void) => void;
    removeEventListener?: (type: string, fn: () => void) => void;
  };
}
declare function setTimeout(fn: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare function atob(data: string): string;

/** Error codes after which the server has dropped (or will drop) the connection: come back. */
const RECONNECT_ON = ['unknown_connection', 'token_expired'];
/**
 * A stream joined before any of its messages was seen resumes from this long
 * before it was joined (client and server clocks differ): a drop before the
 * first message loses nothing, at the price of perhaps replaying a few older
 * messages (at most the history the server keeps).
 */
const CLOCK_SKEW_MS = 300_000;
/** The user's own stream, among topic names (which are never empty). */
const USER = '';
const CURSOR = /^\d{1,16}(-\d{1,16})?$/;
const TOPIC = /^[\w.:@=-]{1,128}$/;
const EPOCH = /^\d{1,16}$/;

const host = globalThis as unknown as Host;

/**
 * A record keyed by stream (topic names such as `constructor` or `__proto__`
 * are legal) or message id: no prototype, so no name reads an inherited member.
 */
const dict = <T>(): Record<string, T> => Object.create(null);

/** Two decimal numbers of any length, compared exactly (16 digits overflow a double). */
const compareNumbers = (x: string, y: string): number => {
  const a = x.replace(/^0+(?=\d)/, '');
  const b = y.replace(/^0+(?=\d)/, '');
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
};

/** Cursors are Redis stream ids `<ms>-<seq>`: negative, zero or positive as `a` is before, at or after `b`. */
export function compareCursors(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return compareNumbers(am, bm) || compareNumbers(as, bs);
}

/** The token's `sub`, decoded without verifying (the server verifies); a key, not a proof. */
function subject(token: string): string | undefined {
  try {
    const part = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const sub = (JSON.parse(atob(part)) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

type Listener<K extends keyof Events> = (value: Events[K]) => void;

export class Pushwire {
  /** The connection's state; `state` events report each change. */
  state: State = 'disconnected';
  /** This connection's id, once the server has said it (for a publish's `exceptConnectionId`). */
  connectionId: string | undefined;

  private o_: Options;
  private storage_: StorageLike | null | undefined;
  private ws_: SocketLike | undefined;
  /** The current socket is open (frames can be sent). */
  private up_ = false;
  private stopped_ = true;
  /** Bumped whenever an attempt is abandoned, so a late token or storage read is ignored. */
  private attempt_ = 0;
  /** Consecutive attempts that did not reach `connected`. */
  private fails_ = 0;
  private retry_: unknown;
  private ping_: unknown;
  private pong_: unknown;
  private topics_ = new Set<string>();
  /**
   * Where each stream resumes from: every message at or before it has been
   * handed over (the newest cursor minus `reorderWindow`, see `settle_`).
   */
  private cursors_: Record<string, string> = dict();
  /** Newest cursor handed over per stream. */
  private max_: Record<string, string> = dict();
  /**
   * Per stream, the ids (with their cursors) handed over after its resume
   * point: what a resume from there replays again is dropped by these, however
   * many messages that is. Persisted with the cursors.
   */
  private wins_: Record<string, Record<string, string>> = dict();
  /** Streams whose replay has not ended yet (no `resumed`): their resume point stays put. */
  private pending_ = new Set<string>();
  /** When each stream was last joined or heard from (ms): streams idle past `keepFor` are dropped. */
  private at_: Record<string, number> = dict();
  /** Streams unsubscribed since the last write (so what another tab wrote is not kept for them). */
  private dropped_ = new Set<string>();
  /**
   * Per stream unsubscribed within the time floor's depth: its newest cursor
   * then. Joined again, its floor goes no further back (a page reloaded
   * before `subscribed` came would replay what was handed over). Persisted.
   */
  private left_: Record<string, string> = dict();
  /** The pending write (`saveInterval`). */
  private saving_: unknown;
  /** A write failed and was reported: report the next failure only after a success. */
  private failed_ = false;
  /** When the current socket was made (ms), to bound how far before its pong's cursor anything was posted. */
  private opened_ = 0;
  /** Streams whose replay the server refused (`rate_limited`), retried by one timer. */
  private refusedSet_ = new Set<string>();
  private limit_: unknown;
  /** Consecutive refusals, for the retry's backoff. */
  private limits_ = 0;
  /** When the server's data began (its `pong` says): no stream holds anything older. */
  private epoch_: string | undefined;
  /** Storage key of the cursors in use (by user); undefined: not persisted. */
  private key_: string | undefined;
  private loaded_ = false;
  private seen_ = new Set<string>();
  /** Parts of messages over 128 KB by id, until all have come (PW-F6); a drop discards them. */
  private parts_: Record<string, string[]> = dict();
  /** Per topic, the `ref` of its last `subscribe`: an error carrying it answers that topic. */
  private refs_: Record<string, string> = dict();
  private n_ = 0;
  /** Publishes not acknowledged yet, by `ref`. */
  private pubs_: Record<string, Pending> = dict();
  /** `presence()` calls waiting for their page, by `ref`. */
  private asks_: Record<string, [(page: never) => void, (error: Error) => void]> = dict();
  /** Ids to ack, sent together within a tick (kept while disconnected). */
  private acks_ = new Set<string>();
  private ackT_: unknown;
  private listeners_: { [K in keyof Events]?: Set<Listener<K>> } = {};
  /** Applies deltas (`options.delta`). */
  private x_: DeltaApplier | undefined;
  /** Topics that refused a delta while their replay ran: fetched again at its `resumed`. */
  private r_ = new Set<string>();

  constructor(options: Options) {
    this.o_ = options;
    this.x_ = options.delta?.();
    if ('storage' in options) this.storage_ = options.storage;
    else
      try {
        this.storage_ = host.localStorage;
      } catch {
        // Some browsers throw on access when storage is disabled.
      }
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof Events>(event: K, listener: Listener<K>): () => void {
    const set: Set<Listener<K>> = this.listeners_[event] ?? new Set();
    (this.listeners_ as Record<K, Set<Listener<K>>>)[event] = set;
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<K>): void {
    this.listeners_[event]?.delete(listener);
  }

  /** The topics subscribed to (kept across reconnections). */
  get topics(): string[] {
    return [...this.topics_];
  }

  /**
   * Starts connecting (and keeps reconnecting until `close()`). While waiting
   * to reconnect, tries at once: call it when a React Native app comes back to
   * the foreground.
   */
  connect(): void {
    if (!this.stopped_ && this.state !== 'disconnected') return;
    if (this.stopped_) this.listen_('addEventListener');
    this.stopped_ = false;
    this.open_();
  }

  /** Closes the connection for good (until `connect()`); the only way to reach `closed`. */
  close(): void {
    this.stopped_ = true;
    this.listen_('removeEventListener');
    this.abandon_();
    this.closed_(false);
    this.flush_();
    for (const [ref, p] of Object.entries(this.pubs_)) {
      this.end_(ref);
      p.no(
        Object.assign(new Error('closed before the publish was acknowledged'), { code: 'closed' }),
      );
    }
    this.set_('closed');
  }

  /**
   * Publishes to a topic the token's `publish` claim allows. Resolves with
   * the server's ack; until then the frame is sent again (same id, so it is
   * delivered once) after `ackTimeout`, at every reconnection, and after a
   * retryable refusal (`rate_limited`, `unavailable`, `internal`; at most 5).
   * Rejects with the server's code otherwise, or `closed` at `close()`.
   */
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<Published> {
    if (!TOPIC.test(topic))
      throw new TypeError(`pushwire: bad topic name ${JSON.stringify(topic)}`);
    const ref = `w${++this.n_}`;
    const f = {
      action: 'publish',
      topic,
      data,
      id: options.id ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`,
      ref,
      ...(options.echo === false && { echo: false }),
      ...(options.ephemeral && { ephemeral: true }),
    };
    return new Promise((ok, no) => {
      this.pubs_[ref] = { f, ok, no, n: 0 };
      if (this.up_) this.pub_(ref);
    });
  }

  /** Sends a pending publish (again), and sends it again if no ack comes within `ackTimeout`. */
  private pub_(ref: string, after?: number): void {
    const p = this.pubs_[ref];
    if (!p) return;
    clearTimeout(p.t);
    if (after === undefined) this.send_(p.f);
    p.t = setTimeout(() => this.up_ && this.pub_(ref), after ?? this.o_.ackTimeout ?? 10_000);
  }

  /** The answer to a pending publish: its ack, a retry, or its refusal. */
  private answer_(ref: string, frame: Frame): void {
    const p = this.pubs_[ref] as Pending;
    const code = String(frame.code);
    if (
      frame.type === 'error' &&
      ['rate_limited', 'unavailable', 'internal'].includes(code) &&
      ++p.n < 6
    ) {
      const backoff = Math.min(this.o_.maxDelay ?? 30_000, (this.o_.minDelay ?? 1000) * 2 ** p.n);
      this.pub_(ref, (frame.retryAfter ?? 0) * 1000 + Math.random() * backoff);
      return;
    }
    this.end_(ref);
    if (frame.type === 'error') p.no(Object.assign(new Error(String(frame.message)), { code }));
    else {
      const ack: Published = { topic: p.f.topic, id: p.f.id };
      if (frame.cursor) ack.cursor = frame.cursor;
      if (frame.duplicate) ack.duplicate = true;
      p.ok(ack);
    }
  }

  private end_(ref: string): void {
    clearTimeout(this.pubs_[ref]?.t);
    delete this.pubs_[ref];
  }

  /** Subscribes to a topic, now and after every reconnection, resuming from its last cursor. */
  subscribe(topic: string): void {
    // The server's rule (docs/protocol.md PW-A8): fail here, not at every reconnection.
    if (!TOPIC.test(topic))
      throw new TypeError(`pushwire: bad topic name ${JSON.stringify(topic)}`);
    if (this.topics_.has(topic)) return;
    this.topics_.add(topic);
    if (this.up_) this.join_(topic);
  }

  /**
   * A page of the users on a subscribed topic (the token's `presence` claim
   * must allow it). Rejects with an Error whose `code` is the server's
   * (`forbidden`, …) or `disconnected` when the connection is not up or drops.
   */
  presence(topic: string, page: { cursor?: string; limit?: number } = {}): Promise<MembersPage> {
    return new Promise((resolve, reject) => {
      if (!this.up_) return reject(fail('disconnected', 'pushwire: not connected'));
      const ref = `p${++this.n_}`;
      this.asks_[ref] = [resolve, reject];
      this.send_({ action: 'presence', topic, ...page, ref });
    });
  }

  /**
   * Sends a frame and resolves with the server's reply to it (by `ref`), or
   * rejects as presence() does. For the optional features (pushwire/push).
   */
  request(frame: object): Promise<Frame> {
    return new Promise((resolve, reject) => {
      if (!this.up_) return reject(fail('disconnected', 'pushwire: not connected'));
      const ref = `p${++this.n_}`;
      this.asks_[ref] = [resolve, reject];
      this.send_({ ...frame, ref });
    });
  }

  unsubscribe(topic: string): void {
    if (!this.topics_.delete(topic)) return;
    const point = this.max_[topic] ?? this.cursors_[topic];
    if (point) this.left_[topic] = point;
    this.forget_(topic);
    this.save_();
    if (this.up_) this.send_({ action: 'unsubscribe', topic });
  }

  private forget_(stream: string): void {
    delete this.cursors_[stream];
    delete this.max_[stream];
    delete this.wins_[stream];
    delete this.at_[stream];
    delete this.refs_[stream];
    this.pending_.delete(stream);
    this.dropped_.add(stream);
  }

  private emit_<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const listener of this.listeners_[event] ?? []) {
      try {
        listener(value);
      } catch (error) {
        // An app's bug must not stop delivery: report it outside our stack.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  private set_(state: State): void {
    if (this.state === state) return;
    this.state = state;
    this.emit_('state', state);
  }

  private async open_(): Promise<void> {
    const attempt = ++this.attempt_;
    clearTimeout(this.retry_);
    this.set_('connecting');
    let token: string;
    try {
      const t = this.o_.token;
      token = typeof t === 'function' ? await this.within_(t(), 'token()') : t;
      if (attempt !== this.attempt_) return;
      const user = this.o_.user ?? subject(token);
      const key = user === undefined ? undefined : `pushwire:${this.o_.url}:${user}`;
      if (!this.loaded_ || key !== this.key_) {
        // What the previous user's streams had not written yet goes under their key.
        this.flush_();
        let raw: string | null | undefined;
        try {
          raw =
            key !== undefined && this.storage_
              ? await this.within_(this.storage_.getItem(key), 'storage.getItem')
              : null;
        } catch (error) {
          // Unreadable (or never answering) storage: connect from memory
          // only, and write nothing over what it may still hold.
          if (attempt !== this.attempt_) return;
          this.storage_ = null;
          this.fail_(error);
        }
        // Only the current attempt applies what it read (a stale one may finish later).
        if (attempt !== this.attempt_) return;
        this.load_(key, raw);
      }
    } catch (error) {
      if (attempt !== this.attempt_) return;
      this.emit_('error', { code: 'token_failed', message: String(error) });
      this.closed_(false);
      return;
    }
    if (attempt !== this.attempt_) return;

    const since = this.resumeFrom_(USER);
    const url = `${this.o_.url}${this.o_.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}${since ? `&since=${since}` : ''}`;
    let ws: SocketLike;
    try {
      ws = new (this.o_.WebSocket ?? (host.WebSocket as SocketClass))(url);
    } catch (error) {
      this.emit_('error', { code: 'socket_failed', message: String(error) });
      this.closed_(false);
      return;
    }
    this.ws_ = ws;
    this.opened_ = Date.now();
    // Until it opens, the pong timer waits for the handshake instead.
    this.pong_ = setTimeout(() => this.drop_(), this.o_.connectTimeout ?? 30_000);
    ws.onopen = () => {
      this.up_ = true;
      clearTimeout(this.pong_);
      this.pong_ = undefined;
      // The first frame also starts the replay of `?since=` (API Gateway lets
      // nobody post to a connection until `$connect` has returned).
      this.ping_now_();
      for (const topic of this.topics_) this.join_(topic);
      // Not acknowledged on an earlier connection: again, with the same id.
      for (const ref in this.pubs_) this.pub_(ref);
      this.ack();
    };
    ws.onmessage = (event: { data: unknown }) => this.frame_(event.data);
    ws.onclose = () => this.closed_(this.state === 'connected');
    ws.onerror = () => {
      // A close event follows.
    };
  }

  /** Takes the cursors of a user (another user's never mix with them), as read from storage. */
  private load_(key: string | undefined, raw: string | null | undefined): void {
    this.key_ = key;
    this.cursors_ = dict();
    this.max_ = dict();
    this.wins_ = dict();
    this.at_ = dict();
    this.epoch_ = undefined;
    this.left_ = dict();
    this.pending_.clear();
    this.seen_.clear();
    this.dropped_.clear();
    this.loaded_ = true;
    const saved = this.parse_(raw);
    if (saved.e) this.epoch_ = saved.e;
    this.left_ = saved.l;
    for (const [stream, [c, m, w, t]] of Object.entries(saved.s)) {
      this.cursors_[stream] = c;
      if (m) this.max_[stream] = m;
      this.wins_[stream] = w;
      this.at_[stream] = t;
    }
  }

  /** Stored state, checked: what is not a cursor is left out; unreadable is empty. */
  private parse_(raw: unknown): {
    e?: string;
    s: Record<string, Saved>;
    l: Record<string, string>;
  } {
    const s: Record<string, Saved> = dict();
    const l: Record<string, string> = dict();
    let e: string | undefined;
    try {
      const saved = JSON.parse(String(raw)) as {
        s?: Record<string, Saved>;
        e?: string;
        l?: Record<string, string>;
        // Written by earlier versions: one map per field.
        c?: Record<string, string>;
        f?: Record<string, string>;
        m?: Record<string, string>;
        w?: Record<string, Record<string, string>>;
      };
      const ok = (c: unknown): c is string => typeof c === 'string' && CURSOR.test(c);
      const now = Date.now();
      const streams: Record<string, unknown> = Object.assign(dict(), saved.s);
      for (const [stream, c] of Object.entries({ ...saved.f, ...saved.c }))
        streams[stream] = [c, saved.m?.[stream] ?? '', saved.w?.[stream] ?? {}, now];
      for (const [stream, v] of Object.entries(streams)) {
        if (!Array.isArray(v) || !ok(v[0])) continue;
        const w: Record<string, string> = dict();
        for (const [id, c] of Object.entries(v[2] ?? {})) if (ok(c)) w[id] = c;
        s[stream] = [v[0], ok(v[1]) ? v[1] : '', w, typeof v[3] === 'number' ? v[3] : now];
      }
      if (typeof saved.e === 'string' && EPOCH.test(saved.e)) e = saved.e;
      for (const [stream, c] of Object.entries(Object.assign(dict(), saved.l)))
        if (ok(c)) l[stream] = c;
    } catch {
      // Unreadable: start afresh rather than refuse to connect.
    }
    return e ? { e, s, l } : { s, l };
  }

  /** Asks for a write of the state, at most one per `saveInterval`. */
  private save_(): void {
    if (this.saving_ === undefined && this.key_ !== undefined && this.storage_)
      this.saving_ = setTimeout(this.flush_, this.o_.saveInterval ?? 1000);
  }

  /**
   * Writes the state now: this tab's streams, merged per stream with what
   * other tabs sharing the storage wrote (a stream both hold keeps the one
   * further on), less streams idle past `keepFor`. A failing write is
   * reported once (as `error` `storage_failed`) until one succeeds again.
   */
  private flush_ = (): void => {
    clearTimeout(this.saving_);
    this.saving_ = undefined;
    const key = this.key_;
    const storage = this.storage_;
    if (key === undefined || !storage) return;
    const out: Record<string, Saved> = dict();
    const ahead = (a: Saved, b: Saved) => compareCursors(a[1] || a[0], b[1] || b[0]) > 0;
    for (const [stream, c] of Object.entries(this.cursors_))
      out[stream] = [c, this.max_[stream] ?? '', this.wins_[stream] ?? {}, this.at_[stream] ?? 0];
    let theirs: unknown;
    try {
      // Only a synchronous storage (localStorage, shared by tabs) is merged with.
      theirs = storage.getItem(key);
    } catch {}
    const now = Date.now();
    const left: Record<string, string> = dict();
    const floor = `${now - CLOCK_SKEW_MS}-0`;
    const leave = (l: Record<string, string>) => {
      for (const [stream, c] of Object.entries(l))
        if (compareCursors(c, floor) > 0 && compareCursors(c, left[stream] ?? floor) > 0)
          left[stream] = c;
    };
    leave(this.left_);
    if (typeof theirs === 'string') {
      const parsed = this.parse_(theirs);
      for (const [stream, v] of Object.entries(parsed.s)) {
        const mine = out[stream];
        if (!this.dropped_.has(stream) && (!mine || ahead(v, mine))) out[stream] = v;
      }
      leave(parsed.l);
    }
    this.left_ = left;
    this.dropped_.clear();
    for (const [stream, v] of Object.entries(out))
      if (
        stream !== USER &&
        !this.topics_.has(stream) &&
        now - v[3] > (this.o_.keepFor ?? 86_400_000)
      ) {
        delete out[stream];
        if (this.cursors_[stream]) this.forget_(stream);
      }
    try {
      const written = storage.setItem(key, JSON.stringify({ s: out, e: this.epoch_, l: left }));
      (written as Promise<unknown> | undefined)?.then?.(
        () => (this.failed_ = false),
        (error: unknown) => this.fail_(error),
      );
      if (!(written as Promise<unknown> | undefined)?.then) this.failed_ = false;
    } catch (error) {
      // Full or disabled storage: cursors stay in memory.
      this.fail_(error);
    }
  };

  /** Reports a storage failure, once until storage works again. */
  private fail_(error: unknown): void {
    if (this.failed_) return;
    this.failed_ = true;
    this.emit_('error', { code: 'storage_failed', message: String(error) });
  }

  /** `value`, or a rejection if it has not settled within `connectTimeout`: no await of the connection path waits for ever. */
  private within_<T>(value: T | Promise<T>, what: string): Promise<T> {
    const ms = this.o_.connectTimeout ?? 30_000;
    let timer: unknown;
    return Promise.race([
      value,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The cursor a stream resumes from; a stream joined now with none gets a floor for next time. */
  private resumeFrom_(stream: string): string | undefined {
    this.at_[stream] = Date.now();
    let since = this.cursors_[stream];
    // Nothing the server holds is older than its epoch, so a resume point
    // (a floor, or the newest cursor minus reorderWindow) before it is moved
    // up to it: a new server's first minutes then bring no false `gap`. Not
    // when the newest message seen is older: its data was lost, and a resume
    // from there is answered recovered:false, a `gap`, as it should be.
    const start = this.epoch_ && `${this.epoch_}-0`;
    const max = this.max_[stream];
    if (
      since &&
      start &&
      compareCursors(since, start) < 0 &&
      (max === undefined || compareCursors(max, start) >= 0)
    )
      since = start;
    if (!since) {
      // No further back than where it was left (if it was, lately).
      const floor = `${Date.now() - CLOCK_SKEW_MS}-0`;
      const left = this.left_[stream];
      this.cursors_[stream] = left && compareCursors(left, floor) > 0 ? left : floor;
      delete this.left_[stream];
    } else this.pending_.add(stream);
    this.save_();
    return since;
  }

  /**
   * Moves a stream's resume point up to `reorderWindow` before its newest
   * cursor (never back, and not while a replay of it is under way: replayed
   * messages come in order, but until `resumed` says the replay is done the
   * point it started from is the one known to be safe), and forgets the ids
   * the window no longer needs.
   */
  private settle_(stream: string): void {
    const max = this.max_[stream];
    this.at_[stream] = Date.now();
    if (max === undefined || this.pending_.has(stream)) return;
    const ms = max.split('-')[0] as string;
    const w = this.o_.reorderWindow ?? 5000;
    // Cursor times are ms since 1970: exact as doubles.
    const point = `${Math.max(0, Number(ms) - w)}-0`;
    const current = this.cursors_[stream];
    const resume = current === undefined || compareCursors(point, current) > 0 ? point : current;
    this.cursors_[stream] = resume;
    const win = this.wins_[stream] ?? dict();
    for (const [id, cursor] of Object.entries(win))
      if (compareCursors(cursor, resume) <= 0) delete win[id];
  }

  private join_(topic: string): void {
    const since = this.resumeFrom_(topic);
    const ref = String(++this.n_);
    this.refs_[topic] = ref;
    this.send_({ action: 'subscribe', topic, ...(since && { since }), ...this.d_(), ref });
  }

  /** A subscribe's ask for deltas, when the app gave `delta`. */
  private d_() {
    return this.x_ && { delta: 'fossil' };
  }

  /** The `presence()` call a frame answers (by its `ref`), taken off the waiting list. */
  private ask_(ref: string | undefined) {
    const ask = ref === undefined ? undefined : this.asks_[ref];
    if (ask) delete this.asks_[ref as string];
    return ask;
  }

  private send_(frame: object): void {
    try {
      this.ws_?.send(JSON.stringify(frame));
    } catch {
      // Not open after all: its close event brings a reconnection.
    }
  }

  private ping_now_(): void {
    if (this.pong_) return;
    this.send_({ action: 'ping' });
    this.pong_ = setTimeout(() => this.drop_(), this.o_.pongTimeout ?? 20_000);
  }

  private frame_(raw: unknown): void {
    let frame: Frame;
    try {
      frame = JSON.parse(String(raw)) as Frame;
    } catch {
      return;
    }
    const { type, topic, ref } = frame;
    // A publish's answer (unless it also tells this connection to go: then it
    // is sent again). One to a publish already settled (an earlier attempt's
    // ack came first) is dropped.
    if (ref?.[0] === 'w' && !RECONNECT_ON.includes(String(frame.code))) {
      if (this.pubs_[ref]) this.answer_(ref, frame);
      return;
    }
    if (type === 'pong') {
      clearTimeout(this.pong_);
      this.pong_ = undefined;
      this.connectionId = frame.connectionId;
      if (
        typeof frame.epoch === 'string' &&
        EPOCH.test(frame.epoch) &&
        frame.epoch !== this.epoch_
      ) {
        this.epoch_ = frame.epoch;
        this.save_();
      }
      // The first pong's cursor: the user's stream when the ping was handled.
      // Posts to this connection began at its $connect, no earlier than the
      // socket was made: a stream heard nothing from resumes from that long
      // (and a second) before the cursor, not from the time floor.
      if (this.state !== 'connected')
        this.start_(USER, frame.cursor, Date.now() - this.opened_ + 1000);
      clearTimeout(this.ping_);
      this.ping_ = setTimeout(() => this.ping_now_(), this.o_.pingInterval ?? 120_000);
      this.fails_ = 0;
      this.set_('connected');
    } else if (type === 'subscribed') {
      // The topic's position when this connection joined it: everything
      // after comes live (or by replay); nothing before is owed.
      if (topic !== undefined && this.topics_.has(topic)) this.start_(topic, frame.cursor, 0);
    } else if (type === 'message') {
      this.deliver_(frame);
    } else if (type === 'dismiss') {
      this.emit_('dismiss', { id: String(frame.id) });
    } else if (type === 'batch') {
      for (const m of frame.messages ?? []) this.deliver_(m);
    } else if (type === 'part') {
      // Kept by index (a part posted twice overwrites itself); all of them
      // make the message frame, handled as if it had come whole.
      const id = String(frame.id);
      const p = this.parts_[id] ?? [];
      this.parts_[id] = p;
      p[frame.n as number] = String(frame.data);
      if (Object.keys(p).length === frame.of) {
        delete this.parts_[id];
        this.frame_(p.join(''));
      }
    } else if (type === 'resumed') {
      const stream = topic ?? USER;
      if (topic !== undefined && !this.topics_.has(topic)) return;
      if (frame.recovered === false && frame.cursor !== undefined && CURSOR.test(frame.cursor)) {
        // The replay stopped early (out of time, a failure): everything up to
        // `cursor` came; resume again from there (what came live meanwhile
        // comes again and is dropped by id). Still replaying: the point stays there.
        this.cursors_[stream] = frame.cursor;
        this.pending_.add(stream);
        this.settle_(stream);
        this.save_();
        this.send_(
          topic === undefined
            ? { action: 'resume', since: frame.cursor }
            : { action: 'subscribe', topic, since: frame.cursor, ...this.d_() },
        );
        return;
      }
      // The replay is over: the resume point may move on.
      this.limits_ = 0;
      this.pending_.delete(stream);
      this.settle_(stream);
      this.save_();
      if (frame.recovered === false) this.emit_('gap', topic === undefined ? {} : { topic });
      if (this.r_.delete(stream)) this.join_(stream);
    } else if (type === 'presence') {
      const ask = this.ask_(frame.ref);
      const page: MembersPage = { members: frame.members ?? [], count: frame.count ?? 0 };
      if (frame.next) page.next = frame.next;
      ask?.[0](page as never);
    } else if (type === 'join' || type === 'leave' || type === 'presence_diff') {
      const user = { userId: String(frame.userId) } as Member;
      if (frame.info) user.info = frame.info;
      this.emit_('presence', {
        topic: String(topic),
        joined: type === 'join' ? [user] : (frame.joined ?? []),
        left: type === 'leave' ? [user.userId] : (frame.left ?? []),
      });
    } else if (type === 'error') {
      const code = String(frame.code);
      const ask = this.ask_(frame.ref);
      // The server has forgotten this connection or its token: come back with a fresh one.
      if (RECONNECT_ON.includes(code)) this.drop_();
      else if (ask) ask[1](fail(code, String(frame.message)));
      else {
        // Which topic it answers: the server names a refused replay's; else the frame's `ref`.
        const t = topic ?? Object.keys(this.refs_).find((k) => this.refs_[k] === frame.ref);
        // A refused replay (a subscribe, or the user's resume): retried after `retryAfter`.
        if (code === 'rate_limited') this.refused_(t ?? USER, frame.retryAfter);
        const info: ErrorInfo = { code, message: String(frame.message) };
        if (t !== undefined) info.topic = t;
        if (typeof frame.retryAfter === 'number') info.retryAfter = frame.retryAfter;
        this.emit_('error', info);
      }
    }
    // Any other reply to a request(): a ping's pong, a subscribe's subscribed…
    if (type !== 'presence' && type !== 'error') this.ask_(ref)?.[0](frame as never);
  }

  /**
   * A stream joined without `since` on this connection gets its exact
   * starting point from the server (`back`: how long before `cursor` posts
   * may have begun): it replaces a time floor, and lifts a resume point
   * below it (nothing published before the join is owed, so a replay must
   * not hand it over after what came live).
   */
  private start_(stream: string, cursor: string | undefined, back: number): void {
    if (typeof cursor !== 'string' || !CURSOR.test(cursor) || this.pending_.has(stream)) return;
    const start = back ? `${Math.max(0, Number(cursor.split('-')[0]) - back)}-0` : cursor;
    const current = this.cursors_[stream];
    if (this.max_[stream] === undefined || !current || compareCursors(start, current) > 0) {
      this.cursors_[stream] = start;
      this.save_();
    }
  }

  /** Retries refused replays after `retryAfter` seconds plus a backoff that grows per refusal (full jitter). */
  private refused_(stream: string, retryAfter: unknown): void {
    this.refusedSet_.add(stream);
    if (this.limit_ !== undefined) return;
    const wait = typeof retryAfter === 'number' && retryAfter > 0 ? retryAfter * 1000 : 60_000;
    const backoff = Math.min(
      this.o_.maxDelay ?? 30_000,
      (this.o_.minDelay ?? 1000) * 2 ** this.limits_++,
    );
    this.limit_ = setTimeout(
      () => {
        this.limit_ = undefined;
        for (const s of this.refusedSet_) {
          this.refusedSet_.delete(s);
          if (s !== USER) {
            if (this.topics_.has(s)) this.join_(s);
          } else {
            const since = this.cursors_[USER];
            if (since) this.send_({ action: 'resume', since });
          }
        }
      },
      wait + Math.random() * backoff,
    );
  }

  /**
   * Hands a message over unless its id was handed over before: within the
   * last `dedupeWindow` ids, or among its stream's ids after the stream's
   * resume point (all of what a resume replays again). A message older than
   * one already handed over is not a duplicate for that: publishes side by
   * side post independently, so the later may overtake the earlier; it is
   * handed over late rather than lost.
   */
  private deliver_(frame: Frame): void {
    const { id, topic, cursor } = frame;
    const stream = topic ?? USER;
    if (typeof id !== 'string' || this.seen_.has(id)) return;
    if (topic !== undefined && !this.topics_.has(topic)) return;
    const win = this.wins_[stream] ?? dict();
    const ok = cursor !== undefined && CURSOR.test(cursor);
    if (ok && win[id] !== undefined) return;
    // A delta it cannot apply (no base, another base, corrupt): fetched
    // whole by a replay from the topic's resume point, never handed over.
    // One fetch at a time per topic: refused while a replay of it runs, once more after it.
    if (this.x_ ? !this.x_(frame) : frame.delta) {
      if (topic && this.pending_.has(topic)) this.r_.add(topic);
      else if (topic) this.join_(topic);
      return;
    }
    if (ok) {
      this.wins_[stream] = win;
      win[id] = cursor;
      const max = this.max_[stream];
      if (max === undefined || compareCursors(cursor, max) > 0) this.max_[stream] = cursor;
      // A replay that never ends (no `resumed`) must not grow the window forever.
      if (
        this.pending_.has(stream) &&
        Object.keys(win).length > 10 * (this.o_.dedupeWindow ?? 1000)
      )
        this.pending_.delete(stream);
      this.settle_(stream);
      this.save_();
    }
    this.seen_.add(id);
    if (this.seen_.size > (this.o_.dedupeWindow ?? 1000))
      this.seen_.delete(this.seen_.values().next().value as string);
    const message: Message = { id, data: frame.data };
    if (topic !== undefined) message.topic = topic;
    if (cursor !== undefined) message.cursor = cursor;
    if (frame.from !== undefined) message.from = frame.from;
    if (frame.ephemeral) message.ephemeral = true;
    if (frame.ack) message.ack = true;
    if (frame.dismissed) message.dismissed = true;
    this.emit_('message', message);
    if (frame.dismissed) this.emit_('dismiss', { id });
    else if (frame.ack && this.o_.autoAck !== false) this.ack(id);
  }

  /**
   * Acknowledges messages (by id): the ids of one tick go in one frame;
   * while disconnected they wait for the connection. Idempotent.
   */
  ack(...ids: string[]): void {
    for (const id of ids) this.acks_.add(id);
    if (this.ackT_ || !this.up_ || !this.acks_.size) return;
    this.ackT_ = setTimeout(() => {
      this.ackT_ = undefined;
      if (!this.up_) return;
      const all = [...this.acks_];
      this.acks_.clear();
      for (let i = 0; i < all.length; i += 100)
        this.send_({ action: 'ack', ids: all.slice(i, i + 100) });
    });
  }

  /** Gives up the current socket (dead, or told to go) and reconnects. */
  private drop_(): void {
    const connected = this.state === 'connected';
    this.abandon_();
    this.closed_(connected);
  }

  /** Forgets the current socket and any attempt or timer in progress. */
  private abandon_(): void {
    const ws = this.ws_;
    this.attempt_++;
    this.ws_ = undefined;
    if (ws) {
      // Not null: `ws` (Node) throws an 'error' event nobody listens to.
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = () => undefined;
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
  }

  /**
   * The socket is gone: reconnect unless the app closed. After a working
   * connection, within `minDelay` (full jitter: a server-wide drop must not
   * bring every client back in the same instant); a failed attempt gets one
   * immediate retry (with a fresh token), then exponential backoff with full jitter.
   */
  private closed_(wasConnected: boolean): void {
    this.ws_ = undefined;
    this.up_ = false;
    this.connectionId = undefined;
    clearTimeout(this.retry_);
    clearTimeout(this.ping_);
    clearTimeout(this.pong_);
    clearTimeout(this.limit_);
    this.limit_ = undefined;
    // An incomplete message comes again, whole, by resume.
    this.parts_ = dict();
    // A new connection joins every stream again.
    this.refusedSet_.clear();
    for (const ref of Object.keys(this.asks_))
      this.ask_(ref)?.[1](fail('disconnected', 'pushwire: the connection dropped'));
    this.pong_ = undefined;
    if (this.stopped_) return;
    this.set_('disconnected');
    const min = this.o_.minDelay ?? 1000;
    const fails = wasConnected ? 0 : ++this.fails_;
    const bound =
      fails === 1 ? 0 : Math.min(this.o_.maxDelay ?? 30_000, min * 2 ** Math.max(0, fails - 2));
    this.retry_ = setTimeout(() => this.open_(), Math.random() * bound);
  }

  /** Browser hints: back online or visible again means try now; offline means the socket is dead. */
  private wake_ = (): void => {
    // Hidden: the page may be frozen or closed next; write the cursors now.
    if (host.document?.visibilityState === 'hidden') this.flush_();
    if (this.stopped_ || host.document?.visibilityState === 'hidden') return;
    if (this.state === 'disconnected') this.open_();
    else if (this.state === 'connected') this.ping_now_();
  };

  private offline_ = (): void => {
    if (this.ws_) this.drop_();
  };

  private listen_(method: 'addEventListener' | 'removeEventListener'): void {
    host[method]?.('online', this.wake_);
    host[method]?.('offline', this.offline_);
    host[method]?.('pagehide', this.flush_);
    host.document?.[method]?.('visibilitychange', this.wake_);
  }
}
