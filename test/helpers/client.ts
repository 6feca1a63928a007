import WebSocket from 'ws';
import { checkServerMessage } from './contract.js';

export type Frame = Record<string, unknown> & { type: string };

/**
 * A real WebSocket client that records every frame, so a test can wait for
 * the next one matching a predicate, or assert that none arrived.
 */
export class TestClient {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  #waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      let received = JSON.parse(data.toString()) as Frame;
      if (received.type === 'part') {
        // A message over 128 KB (PW-F6), reassembled as docs/clients.md tells a plain client to.
        checkServerMessage(data.toString());
        this.parts.push({
          id: String(received['id']),
          n: Number(received['n']),
          bytes: Buffer.byteLength(data.toString()),
        });
        const text = this.#part(received);
        if (text === undefined) return;
        received = JSON.parse(text) as Frame;
        checkServerMessage(text);
        this.reassembled.add(received);
        this.#receive(received);
        return;
      }
      // A replay `batch` carries several messages in one WebSocket message:
      // recorded as the message frames it carries, in order (counted apart).
      if (received.type === 'batch') this.batches++;
      const frames = received.type === 'batch' ? (received['messages'] as Frame[]) : [received];
      if (received.type === 'batch') for (const frame of frames) this.batched.add(frame);
      for (const frame of frames) this.#receive(frame);
      // Every frame the server sends must be one docs/asyncapi.yaml describes
      // (checked once recorded, so the test goes on to fail in useStack's afterEach).
      checkServerMessage(data.toString());
    });
    ws.on('close', () => {
      this.closed = true;
    });
  }

  /** Opens a connection; rejects with the HTTP status when the handshake is refused. */
  static connect(url: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('open', () => resolve(new TestClient(ws)));
      ws.once('unexpected-response', (_req, res) =>
        reject(new HandshakeRefused(res.statusCode ?? 0)),
      );
      ws.once('error', reject);
    });
  }

  /** The `part` frames that arrived (their messages are in `frames` once whole). */
  readonly parts: { id: string; n: number; bytes: number }[] = [];
  /** The message frames that were reassembled from parts. */
  readonly reassembled = new WeakSet<Frame>();
  #pending = new Map<string, string[]>();
  /** Parts out of order (none should be). */
  readonly partErrors: string[] = [];

  /** Keeps a part; answers the message frame's text when it was the last of its message. */
  #part(part: Frame): string | undefined {
    const id = String(part['id']);
    const got = this.#pending.get(id) ?? [];
    // Posted one after another to a connection: they arrive in order.
    if (part['n'] !== got.length) {
      this.partErrors.push(`part ${part['n']} of ${id} after ${got.length}`);
      return undefined;
    }
    got.push(part['data'] as string);
    this.#pending.set(id, got);
    if (got.length < (part['of'] as number)) return undefined;
    this.#pending.delete(id);
    return got.join('');
  }

  /** How many replay `batch` frames arrived (their messages are in `frames`). */
  batches = 0;
  /** The message frames that arrived inside a `batch`. */
  readonly batched = new WeakSet<Frame>();

  #receive(frame: Frame): void {
    this.frames.push(frame);
    const index = this.frames.length - 1;
    this.#waiters = this.#waiters.filter((w) => {
      if (index >= w.from && w.match(frame)) {
        w.resolve(frame);
        return false;
      }
      return true;
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The first frame (already received or still to come) matching `match`, counting from index `from`. */
  next(match: (f: Frame) => boolean = () => true, timeoutMs = 10_000, from = 0): Promise<Frame> {
    const seen = this.frames.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`,
            ),
          ),
        timeoutMs,
      );
      this.#waiters.push({
        match,
        from,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** Sends a frame and waits for the first frame after it matching `match`. */
  async request(frame: unknown, match: (f: Frame) => boolean): Promise<Frame> {
    const from = this.frames.length;
    this.send(frame);
    return this.next(match, 10_000, from);
  }

  messages(): Frame[] {
    return this.frames.filter((f) => f.type === 'message');
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

export class HandshakeRefused extends Error {
  constructor(readonly status: number) {
    super(`handshake refused with HTTP ${status}`);
  }
}
