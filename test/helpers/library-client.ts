import WebSocket from 'ws';
import { Pushwire } from '../../client/dist/pushwire.js';
import { checkClientMessage, checkServerMessage } from './contract.js';
import { type Received, USER_STREAM } from './resuming-client.js';

/**
 * The real client library (client/dist/pushwire.js, built by `npm install`)
 * behind the same surface as ResumingClient, so the fault suite can count
 * what an app using it receives. Its WebSocket class is `ws` wrapped to
 * watch the wire (connections, replies, frames seen twice) and to let a test
 * drop the connection as a lost network would.
 */
export class LibraryClient {
  readonly received = new Map<string, Received>();
  /** Frames whose id had already arrived on the wire (the library drops them). */
  wireDuplicates = 0;
  connections = 0;
  gaps = 0;
  /**
   * Of `gaps`, those on a stream this client had received nothing from yet:
   * it resumed from the library's floor (its join time minus a clock-skew
   * margin), and with no history left the server cannot tell whether anything
   * was published (and expired) since then.
   */
  gapsBeforeAnyMessage = 0;
  /**
   * Every `gap`: when, on which stream, the cursor the resume that reported
   * it started from, and whether nothing had come from that stream yet.
   */
  readonly gapLog: {
    at: number;
    stream: string;
    since: string | undefined;
    beforeAnyMessage: boolean;
  }[] = [];
  /** Per stream, the `since` of the last resume asked for (URL or frame). */
  readonly #since = new Map<string, string | undefined>();
  readonly errors = new Map<string, number>();
  /**
   * With `trace`: what happened on the wire, in order (drops, opens, closes,
   * frames sent, message ids and cursors, every other reply), so a soak can
   * show what a client went through around a message it lost.
   */
  readonly trace: { at: number; event: string }[] = [];
  readonly #tracing: boolean;
  readonly #pw: Pushwire;
  readonly #topics: string[];
  #socket: WebSocket | undefined;
  /** The newest socket, open or still connecting. */
  #latest: WebSocket | undefined;
  #awayUntil = 0;
  #confirmed = new Set<string>();
  #seenOnWire = new Set<string>();
  #listeners: ((r: Received) => void)[] = [];

  constructor(options: {
    url: string;
    token: () => string | Promise<string>;
    user: string;
    topics: string[];
    pingIntervalMs?: number;
    trace?: boolean;
  }) {
    this.#topics = options.topics;
    this.#tracing = options.trace ?? false;
    const client = this;
    // What the library constructs for every attempt.
    class WatchedSocket extends WebSocket {
      constructor(url: string) {
        // Away (dropped for a while): an attempt that fails at once, as with no network.
        super(Date.now() < client.#awayUntil ? 'ws://127.0.0.1:9' : url);
        client.#watch(this);
      }
    }
    this.#pw = new Pushwire({
      url: options.url,
      token: options.token,
      user: options.user,
      storage: null,
      WebSocket: WatchedSocket as unknown as ConstructorParameters<
        typeof Pushwire
      >[0]['WebSocket'] &
        object,
      pingInterval: options.pingIntervalMs ?? 1_000,
      minDelay: 100,
      maxDelay: 2_000,
    });
    this.#pw.on('message', (m) => {
      if (this.received.has(m.id)) return;
      const received: Received = {
        id: m.id,
        stream: m.topic ?? USER_STREAM,
        data: m.data,
        connection: this.connections,
        ...(m.cursor !== undefined && { cursor: m.cursor }),
      };
      this.received.set(m.id, received);
      for (const listener of [...this.#listeners]) listener(received);
    });
    this.#pw.on('gap', (gap) => {
      this.gaps++;
      const stream = gap.topic ?? USER_STREAM;
      const beforeAnyMessage = ![...this.received.values()].some((r) => r.stream === stream);
      if (beforeAnyMessage) this.gapsBeforeAnyMessage++;
      this.gapLog.push({
        at: Date.now(),
        stream,
        since: this.#since.get(stream),
        beforeAnyMessage,
      });
      this.#note(`gap ${stream}`);
    });
    this.#pw.on('error', (e) => this.errors.set(e.code, (this.errors.get(e.code) ?? 0) + 1));
  }

  #note(event: string): void {
    if (this.#tracing) this.trace.push({ at: Date.now(), event });
  }

  #watch(socket: WebSocket): void {
    this.#latest = socket;
    socket.on('open', () => {
      this.#socket = socket;
      this.connections++;
      this.#confirmed = new Set();
      const since = new URL(socket.url).searchParams.get('since') ?? undefined;
      this.#since.set(USER_STREAM, since);
      this.#note(`open #${this.connections} since=${since ?? ''}`);
    });
    socket.on('close', (code) => this.#note(`close ${code}`));
    const send = socket.send.bind(socket);
    socket.send = ((data: unknown, ...rest: never[]) => {
      this.#note(`> ${String(data).slice(0, 200)}`);
      // Every action the library sends must be one docs/asyncapi.yaml describes
      // (recorded, and thrown outside the library, which would swallow it).
      queueMicrotask(() => checkClientMessage(String(data)));
      try {
        const frame = JSON.parse(String(data)) as {
          action?: string;
          topic?: string;
          since?: string;
        };
        if (frame.action === 'resume') this.#since.set(USER_STREAM, frame.since);
        if (frame.action === 'subscribe') this.#since.set(frame.topic ?? '', frame.since);
      } catch {
        // Not JSON: not ours to read.
      }
      return (send as (...args: unknown[]) => void)(data, ...rest);
    }) as typeof socket.send;
    socket.on('message', (raw) => {
      // After the library has had the frame too (listeners run in order).
      queueMicrotask(() => checkServerMessage(raw.toString()));
      let frame: { type?: string; id?: string; topic?: string; messages?: { id: string }[] };
      try {
        frame = JSON.parse(raw.toString());
      } catch {
        return;
      }
      if (this.#tracing) {
        const text = raw.toString();
        if (frame.type === 'message')
          this.#note(`message ${frame.id} ${text.match(/"cursor":"([^"]+)"/)?.[1] ?? ''}`);
        else if (frame.type === 'batch')
          this.#note(`batch ${frame.messages?.map((m) => m.id).join(',')}`);
        else this.#note(text.slice(0, 200));
      }
      const ids =
        frame.type === 'message' ? [frame.id] : frame.type === 'batch' ? frame.messages : [];
      for (const entry of ids ?? []) {
        const id = typeof entry === 'string' ? entry : entry?.id;
        if (id === undefined) continue;
        if (this.#seenOnWire.has(id)) this.wireDuplicates++;
        this.#seenOnWire.add(id);
      }
      if (frame.type === 'subscribed' || frame.type === 'resumed') {
        this.#confirmed.add(frame.topic ?? USER_STREAM);
      }
    });
  }

  get connectionId(): string | undefined {
    return this.#pw.connectionId;
  }

  /** Open, and every topic answered on this connection. */
  get ready(): boolean {
    return (
      this.#pw.state === 'connected' &&
      this.#socket?.readyState === WebSocket.OPEN &&
      this.#topics.every((t) => this.#confirmed.has(t))
    );
  }

  async start(timeoutMs = 30_000): Promise<void> {
    this.#pw.connect();
    for (const topic of this.#topics) this.#pw.subscribe(topic);
    const deadline = Date.now() + timeoutMs;
    while (!this.ready) {
      if (Date.now() > deadline) throw new Error(`library client not ready within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  waitFor(id: string, timeoutMs: number): Promise<Received | undefined> {
    const seen = this.received.get(id);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const listener = (r: Received) => {
        if (r.id !== id) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== listener);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((l) => l !== listener);
        resolve(undefined);
      }, timeoutMs);
      this.#listeners.push(listener);
    });
  }

  drop(awayMs = 0): void {
    this.#note('drop');
    this.#awayUntil = Date.now() + awayMs;
    // The attempt under way too, if any: a lost network fails it as well.
    (this.#latest ?? this.#socket)?.terminate();
  }

  async stop(): Promise<void> {
    this.#pw.close();
    const socket = this.#socket;
    if (socket && socket.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        setTimeout(resolve, 2_000);
      });
    }
  }
}
