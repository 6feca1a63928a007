import WebSocket from 'ws';
import { compareCursors } from '../../lib/registry/cursor.js';
import { checkClientMessage, checkServerMessage } from './contract.js';

/** The user stream's key in per-stream maps; topics are keyed by name. */
export const USER_STREAM = '';

export interface Received {
  id: string;
  /** USER_STREAM or the topic. */
  stream: string;
  cursor?: string;
  data: unknown;
  /** Which connection (1, 2, …) it arrived on. */
  connection: number;
}

export interface ResumingClientOptions {
  /** Builds the WebSocket URL from its query (token, since). */
  url: (query: Record<string, string>) => string;
  /** Called on every (re)connect, so an expired token is replaced. */
  token: () => string | Promise<string>;
  topics?: string[];
  /** Pings this often (API Gateway's idle timeout makes real clients ping too). */
  pingIntervalMs?: number;
  /**
   * true (default): reacts to error frames as the client library will
   * (`unknown_connection` and `token_expired` reconnect). false: a plain
   * WebSocket client that reconnects only when the server closes the socket.
   */
  library?: boolean;
  /**
   * Resumes again after a `recovered:false` answer, at most this many times
   * per stream and connection: what an app does on the library's `gap` event
   * when it wants what it missed (history may still hold it, after a replay
   * that failed).
   */
  gapRetries?: number;
}

interface StreamState {
  /** Confirmed on this connection: live, or resumed. */
  confirmed: boolean;
  askedAt: number;
  /** The answer that confirms it: `resumed` for a resume or a subscribe with `since`. */
  awaiting: 'subscribed' | 'resumed';
  gapRetries: number;
}

type Frame = Record<string, unknown> & { type: string };

/**
 * A test client that behaves as the planned client library (issue 8) will:
 * it keeps the last cursor of each stream (its user stream and every topic),
 * reconnects on any close it did not ask for with `?since=<cursor>` and a
 * first frame `ping`, re-subscribes every topic with `since`, dedupes by
 * message id, and reconnects on `unknown_connection` and `token_expired`.
 * Everything it receives is kept, by id, for the fault suite's accounting.
 */
export class ResumingClient {
  readonly received = new Map<string, Received>();
  /** Frames whose id had already arrived: at-least-once on the wire, removed by the dedupe. */
  wireDuplicates = 0;
  /** Connections opened (the first one included). */
  connections = 0;
  /** `resumed` answers with `recovered:false`. */
  gaps = 0;
  readonly errors = new Map<string, number>();
  readonly cursors = new Map<string, string>();
  /** Open and every stream confirmed on the current connection. */
  ready = false;
  /** The current connection's id, once a `pong` has said it. */
  connectionId: string | undefined;

  readonly #options: Required<Omit<ResumingClientOptions, 'topics'>> & { topics: string[] };
  #ws: WebSocket | undefined;
  #streams = new Map<string, StreamState>();
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #retryDelayMs = 100;
  #awayUntil = 0;
  #listeners: ((r: Received) => void)[] = [];
  /** The server's epoch, from its last pong. */
  #epoch: string | undefined;

  constructor(options: ResumingClientOptions) {
    this.#options = {
      topics: [],
      pingIntervalMs: 1_000,
      library: true,
      gapRetries: 2,
      ...options,
    };
  }

  /**
   * Connects; resolves once the first connection is open and every topic is
   * subscribed. With `retryAfterMs`, a connection not ready by then (an
   * answer lost by an overloaded emulator) is dropped and made again.
   */
  async start(timeoutMs = 30_000, retryAfterMs = timeoutMs): Promise<void> {
    this.#timer = setInterval(() => this.#tick(), this.#options.pingIntervalMs);
    void this.#connect();
    const deadline = Date.now() + timeoutMs;
    let retryAt = Date.now() + retryAfterMs;
    while (!this.ready) {
      if (Date.now() > deadline) throw new Error(`client not ready within ${timeoutMs} ms`);
      if (Date.now() > retryAt) {
        retryAt = Date.now() + retryAfterMs;
        this.drop();
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Resolves with the message of this id once it arrives (now or later). */
  waitFor(id: string, timeoutMs: number): Promise<Received | undefined> {
    const seen = this.received.get(id);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((l) => l !== listener);
        resolve(undefined);
      }, timeoutMs);
      const listener = (r: Received) => {
        if (r.id !== id) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== listener);
        resolve(r);
      };
      this.#listeners.push(listener);
    });
  }

  /**
   * Drops the current connection as a lost network would (no close
   * handshake); it reconnects, after `awayMs` when given.
   */
  drop(awayMs = 0): void {
    this.#awayUntil = Date.now() + awayMs;
    this.#ws?.terminate();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close();
    });
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const connection = ++this.connections;
    const first = connection === 1;
    const query: Record<string, string> = { token: await this.#options.token() };
    const userCursor = this.cursors.get(USER_STREAM);
    // A stream never heard from is resumed from the start of its history
    // (the server's epoch, as its pong says: nothing there is older; `0`
    // before any pong): dedupe by id makes that safe, and nothing published
    // meanwhile is lost.
    if (!first) query['since'] = userCursor ?? this.#start();
    this.ready = false;
    this.connectionId = undefined;
    this.#streams = new Map();
    const ws = new WebSocket(this.#options.url(query));
    this.#ws = ws;
    ws.on('open', () => {
      this.#retryDelayMs = 100;
      // The first frame: answers pong and triggers the `?since=` replay.
      const ping = JSON.stringify({ action: 'ping' });
      checkClientMessage(ping);
      ws.send(ping);
      this.#streams.set(USER_STREAM, {
        confirmed: first,
        askedAt: Date.now(),
        awaiting: 'resumed',
        gapRetries: 0,
      });
      for (const topic of this.#options.topics) this.#subscribe(topic, !first);
      this.#updateReady();
    });
    ws.on('message', (raw) => {
      this.#onFrame(JSON.parse(raw.toString()) as Frame, connection);
      checkServerMessage(raw.toString());
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (this.#ws !== ws) return;
      this.ready = false;
      if (this.#stopped) return;
      // Full jitter, growing while the server keeps refusing (Redis down: 500s).
      const jitter = Math.floor(Math.random() * this.#retryDelayMs) + 20;
      const delay = Math.max(jitter, this.#awayUntil - Date.now());
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, 2_000);
      setTimeout(() => void this.#connect(), delay);
    });
  }

  #subscribe(topic: string, resume: boolean): void {
    const since = this.cursors.get(topic) ?? this.#start();
    this.#send(resume ? { action: 'subscribe', topic, since } : { action: 'subscribe', topic });
    const awaiting = resume ? 'resumed' : 'subscribed';
    const state = this.#streams.get(topic);
    if (state) {
      state.askedAt = Date.now();
      state.awaiting = awaiting;
    } else {
      this.#streams.set(topic, { confirmed: false, askedAt: Date.now(), awaiting, gapRetries: 0 });
    }
  }

  #send(frame: unknown): void {
    const text = JSON.stringify(frame);
    checkClientMessage(text);
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(text);
  }

  /** A stream's starting cursor from `subscribed`/`pong`, kept only while it has no other. */
  #startAt(stream: string, cursor: unknown): void {
    if (typeof cursor === 'string' && !this.cursors.has(stream)) this.cursors.set(stream, cursor);
  }

  #onFrame(frame: Frame, connection: number): void {
    switch (frame.type) {
      case 'batch':
        // A replay may carry several history messages in one post, in order.
        for (const message of frame['messages'] as Frame[]) this.#onFrame(message, connection);
        return;
      case 'message': {
        const id = frame['id'] as string;
        const stream = (frame['topic'] as string | undefined) ?? USER_STREAM;
        const cursor = frame['cursor'] as string | undefined;
        if (cursor !== undefined) {
          const known = this.cursors.get(stream);
          if (known === undefined || compareCursors(cursor, known) > 0) {
            this.cursors.set(stream, cursor);
          }
        }
        if (this.received.has(id)) {
          this.wireDuplicates++;
          return;
        }
        const received: Received = {
          id,
          stream,
          data: frame['data'],
          connection,
          ...(cursor !== undefined && { cursor }),
        };
        this.received.set(id, received);
        for (const listener of [...this.#listeners]) listener(received);
        return;
      }
      case 'subscribed':
      case 'resumed': {
        const stream = (frame['topic'] as string | undefined) ?? USER_STREAM;
        // Where the stream stood when this client joined it (WIRE.md): its
        // starting cursor when it has none, so a resume is exact (no false gap).
        if (frame.type === 'subscribed') this.#startAt(stream, frame['cursor']);
        const state = this.#streams.get(stream);
        if (!state) return;
        if (frame.type === 'resumed' && frame['recovered'] === false) {
          this.gaps++;
          // The replay did not reach back (or was cut short): ask again, a
          // few times; history may still hold it (a replay that failed).
          if (state.gapRetries < this.#options.gapRetries) {
            state.gapRetries++;
            state.confirmed = false;
            this.#resume(stream);
            return;
          }
        }
        // A resuming subscribe answers `subscribed` first, `resumed` when done.
        if (frame.type === 'subscribed' && state.awaiting === 'resumed') return;
        state.confirmed = true;
        this.#updateReady();
        return;
      }
      case 'pong':
        if (typeof frame['connectionId'] === 'string') this.connectionId = frame['connectionId'];
        if (typeof frame['epoch'] === 'string') this.#epoch = frame['epoch'];
        this.#startAt(USER_STREAM, frame['cursor']);
        return;
      case 'error': {
        const code = String(frame['code']);
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        if (this.#options.library && (code === 'unknown_connection' || code === 'token_expired')) {
          // The server no longer knows this connection: start again with the cursors.
          this.#ws?.terminate();
        }
        return;
      }
      default:
        return;
    }
  }

  #resume(stream: string): void {
    if (stream === USER_STREAM) {
      this.#send({ action: 'resume', since: this.cursors.get(USER_STREAM) ?? this.#start() });
      const state = this.#streams.get(USER_STREAM);
      if (state) state.askedAt = Date.now();
    } else this.#subscribe(stream, true);
  }

  /** Where a stream never heard from resumes: the server's epoch, or the beginning. */
  #start(): string {
    return this.#epoch === undefined ? '0' : `${this.#epoch}-0`;
  }

  #updateReady(): void {
    this.ready = this.open && [...this.#streams.values()].every((s) => s.confirmed);
  }

  /**
   * Pings. A stream left unconfirmed (its subscribe or resume answered with
   * an error, or not at all) is not asked again: the library will not either
   * (it surfaces errors as events), so a server that leaves a client
   * half-subscribed shows up in the fault suite as lost messages.
   */
  #tick(): void {
    if (this.open) this.#send({ action: 'ping' });
  }
}
