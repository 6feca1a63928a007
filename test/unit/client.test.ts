/**
 * The client's state machine, driven through a fake socket and fake timers:
 * connecting and pinging, reconnecting (backoff with full jitter, one quick
 * retry of a refused handshake, dead sockets, server-side errors), resuming
 * every stream from its cursor, exactly-once hand-over, and cursors kept per user.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  compareCursors,
  type Events,
  type Options,
  Pushwire,
  type SocketLike,
  type StorageLike,
} from '../../client/pushwire.js';
import { partFrames } from '../../lib/delivery/parts.js';
import { checkClientMessage } from '../helpers/contract.js';

class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  onopen: unknown = null;
  onmessage: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  /** Frames sent, without their `ref` (kept in `refs`, by action). */
  readonly sent: Record<string, unknown>[] = [];
  readonly refs: { action: unknown; ref: unknown }[] = [];
  closedByClient = false;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(data: string): void {
    // Every frame the client sends must be one docs/asyncapi.yaml describes.
    checkClientMessage(data);
    const { ref, ...frame } = JSON.parse(data) as Record<string, unknown>;
    this.sent.push(frame);
    if (ref !== undefined) this.refs.push({ action: frame['action'], ref });
  }

  close(): void {
    this.closedByClient = true;
  }

  // The server's side.
  open(): void {
    (this.onopen as () => void)();
  }

  receive(frame: Record<string, unknown>): void {
    (this.onmessage as (e: { data: unknown }) => void)({ data: JSON.stringify(frame) });
  }

  drop(): void {
    (this.onerror as () => void)();
    (this.onclose as () => void)();
  }

  /** Opens and answers the first ping, as the server does. */
  accept(connectionId = 'c1'): void {
    this.open();
    this.receive({ type: 'pong', connectionId });
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
}

const sockets = () => FakeSocket.all;
const last = (): FakeSocket => FakeSocket.all.at(-1) as FakeSocket;

/** A JWT-shaped token (the client reads `sub` without verifying). */
const jwt = (sub: string, n = 0) =>
  `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub, n })).toString('base64url')}.sig`;

class MapStorage implements StorageLike {
  readonly map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
}

function client(options: Partial<Options> = {}) {
  let tokens = 0;
  const events: { [K in keyof Events]: Events[K][] } = {
    message: [],
    state: [],
    gap: [],
    error: [],
    presence: [],
    dismiss: [],
  };
  const pw = new Pushwire({
    url: 'ws://push.test',
    token: () => jwt('alice', ++tokens),
    WebSocket: FakeSocket,
    storage: null,
    ...options,
  });
  pw.on('message', (m) => events.message.push(m));
  pw.on('state', (s) => events.state.push(s));
  pw.on('gap', (g) => events.gap.push(g));
  pw.on('error', (e) => events.error.push(e));
  pw.on('presence', (p) => events.presence.push(p));
  pw.on('dismiss', (d) => events.dismiss.push(d));
  return { pw, events, tokens: () => tokens };
}

/** Lets the async parts (token, storage) of an attempt run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

async function connected(options: Partial<Options> = {}) {
  const made = client(options);
  made.pw.connect();
  await settle();
  last().accept();
  return made;
}

const message = (id: string, cursor?: string, topic?: string) => ({
  type: 'message',
  id,
  data: { id },
  ...(cursor && { cursor }),
  ...(topic && { topic }),
});

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers({ now: 1_800_000_000_000 });
  vi.spyOn(Math, 'random').mockReturnValue(1);
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

describe('connecting', () => {
  it('opens with a fresh token, pings first, and is connected once the pong names the connection', async () => {
    // Prepare
    const { pw, events, tokens } = client();

    // Act
    pw.connect();
    await settle();
    const socket = last();
    socket.open();

    // Assess
    expect(tokens()).toBe(1);
    expect(socket.query.get('token')).toBe(jwt('alice', 1));
    expect(socket.query.has('since')).toBe(false);
    expect(socket.sent).toEqual([{ action: 'ping' }]);
    expect(pw.state).toBe('connecting');
    socket.receive({ type: 'pong', connectionId: 'conn-1' });
    expect(pw.state).toBe('connected');
    expect(pw.connectionId).toBe('conn-1');
    expect(events.state).toEqual(['connecting', 'connected']);
  });

  it('keeps the query string of the URL', async () => {
    const { pw } = client({ url: 'ws://push.test/prod?region=eu' });
    pw.connect();
    await settle();
    expect(last().query.get('region')).toBe('eu');
    expect(last().query.get('token')).toBe(jwt('alice', 1));
  });

  it('accepts a plain string token', async () => {
    const { pw } = client({ token: jwt('bob') });
    pw.connect();
    await settle();
    expect(last().query.get('token')).toBe(jwt('bob'));
  });

  it('pings every pingInterval while pongs come back', async () => {
    await connected({ pingInterval: 10_000 });
    const socket = last();
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(9_999);
      expect(socket.sent.filter((f) => f['action'] === 'ping')).toHaveLength(i + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(socket.sent.filter((f) => f['action'] === 'ping')).toHaveLength(i + 2);
      socket.receive({ type: 'pong', connectionId: 'c1' });
    }
    expect(sockets()).toHaveLength(1);
  });
});

describe('reconnecting', () => {
  it('comes back after a drop within minDelay (full jitter), with a fresh token', async () => {
    // Prepare
    vi.mocked(Math.random).mockReturnValue(0.5);
    const { pw, events, tokens } = await connected({ minDelay: 1_000 });

    // Act
    last().drop();

    // Assess
    expect(pw.state).toBe('disconnected');
    expect(pw.connectionId).toBeUndefined();
    await vi.advanceTimersByTimeAsync(499);
    expect(sockets()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets()).toHaveLength(2);
    expect(tokens()).toBe(2);
    expect(last().query.get('token')).toBe(jwt('alice', 2));
    last().accept('c2');
    expect(pw.connectionId).toBe('c2');
    expect(events.state).toEqual([
      'connecting',
      'connected',
      'disconnected',
      'connecting',
      'connected',
    ]);
  });

  it('retries a refused handshake once at once, then backs off exponentially up to maxDelay', async () => {
    // Prepare: Math.random() = 1 makes each delay its upper bound.
    const { pw, tokens } = client({ minDelay: 1_000, maxDelay: 5_000 });
    pw.connect();
    await settle();

    // Act + Assess: each attempt is refused (closes before opening).
    const delays: number[] = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      const before = sockets().length;
      last().drop();
      let waited = 0;
      while (sockets().length === before) {
        await vi.advanceTimersByTimeAsync(waited === 0 ? 0 : 250);
        waited += 250;
        if (waited > 60_000) throw new Error('no reconnection');
      }
      delays.push(waited - 250);
    }
    expect(delays).toEqual([0, 1_000, 2_000, 4_000, 5_000, 5_000]);
    expect(tokens()).toBe(7);

    // A connection that works resets the backoff.
    last().accept();
    last().drop();
    await vi.advanceTimersByTimeAsync(999);
    expect(sockets()).toHaveLength(7);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets()).toHaveLength(8);
  });

  it('treats a ping unanswered within pongTimeout as a dead socket', async () => {
    const { pw } = await connected({ pingInterval: 10_000, pongTimeout: 3_000, minDelay: 100 });
    const socket = last();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.sent.at(-1)).toEqual({ action: 'ping' });
    await vi.advanceTimersByTimeAsync(2_999);
    expect(pw.state).toBe('connected');
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.closedByClient).toBe(true);
    expect(pw.state).toBe('disconnected');
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets()).toHaveLength(2);
  });

  it('gives up an attempt whose handshake does not finish within connectTimeout', async () => {
    const { pw } = client({ connectTimeout: 5_000, minDelay: 100 });
    pw.connect();
    await settle();
    expect(sockets()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(sockets()[0]?.closedByClient).toBe(false);
    expect(pw.state).toBe('connecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets()[0]?.closedByClient).toBe(true);
    // A failed attempt: one immediate retry, which opens and pings at once.
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets()).toHaveLength(2);
    last().open();
    expect(last().sent[0]).toEqual({ action: 'ping' });
    // Open in time: the timer is the pong's now, not the handshake's.
    last().receive({ type: 'pong', connectionId: 'c2' });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(pw.state).toBe('connected');
    expect(last().closedByClient).toBe(false);
  });

  it('a first ping unanswered also counts as dead', async () => {
    const { pw } = client({ pongTimeout: 3_000 });
    pw.connect();
    await settle();
    last().open();
    await vi.advanceTimersByTimeAsync(3_000);
    expect(sockets()[0]?.closedByClient).toBe(true);
    // A failed attempt: one immediate retry (a timer of 0 ms).
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets()).toHaveLength(2);
    expect(pw.state).toBe('connecting');
  });

  it.each(['unknown_connection', 'token_expired'])(
    'reconnects with a fresh token on %s',
    async (code) => {
      const { pw, events, tokens } = await connected({ minDelay: 100 });
      const socket = last();
      socket.receive({ type: 'error', code, message: 'go away' });
      expect(socket.closedByClient).toBe(true);
      expect(pw.state).toBe('disconnected');
      await vi.advanceTimersByTimeAsync(100);
      expect(sockets()).toHaveLength(2);
      expect(tokens()).toBe(2);
      expect(events.error).toEqual([]);
      // The old socket's late frames are ignored.
      socket.receive(message('late', '5-0'));
      expect(events.message).toEqual([]);
    },
  );

  it('reports other errors and keeps the connection', async () => {
    const { pw, events } = await connected();
    last().receive({
      type: 'error',
      code: 'forbidden',
      message: 'your token does not allow topic "x"',
    });
    expect(events.error).toEqual([
      { code: 'forbidden', message: 'your token does not allow topic "x"' },
    ]);
    expect(pw.state).toBe('connected');
    expect(last().closedByClient).toBe(false);
  });

  it('reports a failing token() and tries again', async () => {
    let calls = 0;
    const { pw, events } = client({
      token: async () => {
        calls++;
        if (calls < 3) throw new Error('auth server down');
        return jwt('alice');
      },
      minDelay: 1_000,
    });
    pw.connect();
    // The first failure is retried at once, the second after minDelay.
    await settle();
    expect(events.error).toEqual([
      { code: 'token_failed', message: 'Error: auth server down' },
      { code: 'token_failed', message: 'Error: auth server down' },
    ]);
    expect(sockets()).toHaveLength(0);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(3);
    expect(sockets()).toHaveLength(1);
  });

  it('close() ends in closed and stops reconnecting; connect() starts again', async () => {
    const { pw, events } = await connected();
    const socket = last();
    pw.close();
    expect(socket.closedByClient).toBe(true);
    expect(pw.state).toBe('closed');
    expect(pw.connectionId).toBeUndefined();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(sockets()).toHaveLength(1);
    expect(events.state.at(-1)).toBe('closed');

    pw.connect();
    await settle();
    expect(sockets()).toHaveLength(2);
    expect(pw.state).toBe('connecting');
  });

  it('close() during a backoff or while the token is fetched stops everything', async () => {
    let release: (t: string) => void = () => undefined;
    const { pw } = client({ token: () => new Promise<string>((r) => (release = r)) });
    pw.connect();
    await settle();
    pw.close();
    release(jwt('alice'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(0);
    expect(pw.state).toBe('closed');
  });

  it('connect() while waiting to reconnect tries at once (an app back in the foreground)', async () => {
    const { pw } = await connected({ minDelay: 10_000 });
    last().drop();
    await settle();
    expect(sockets()).toHaveLength(1);
    pw.connect();
    await settle();
    expect(sockets()).toHaveLength(2);
    pw.connect(); // already connecting: nothing more
    await settle();
    expect(sockets()).toHaveLength(2);
  });

  it('comes back at once when the browser is online again or the page visible; offline drops', async () => {
    // Prepare: a browser-like host.
    const listeners = new Map<string, () => void>();
    const add = (type: string, fn: () => void) => listeners.set(type, fn);
    const document = {
      visibilityState: 'visible',
      addEventListener: add,
      removeEventListener() {},
    };
    vi.stubGlobal('addEventListener', add);
    vi.stubGlobal('removeEventListener', () => undefined);
    vi.stubGlobal('document', document);
    const { pw } = await connected({ minDelay: 10_000 });

    // Act + Assess: back online while waiting.
    last().drop();
    listeners.get('online')?.();
    await settle();
    expect(sockets()).toHaveLength(2);
    last().accept();

    // Visible again while connected: a ping checks the socket is alive.
    const pings = () => last().sent.filter((f) => f['action'] === 'ping').length;
    expect(pings()).toBe(1);
    listeners.get('visibilitychange')?.();
    expect(pings()).toBe(2);

    // Offline: the socket is dead; visible again (not hidden) tries at once.
    listeners.get('offline')?.();
    expect(sockets()[1]?.closedByClient).toBe(true);
    expect(pw.state).toBe('disconnected');
    document.visibilityState = 'hidden';
    listeners.get('visibilitychange')?.();
    await settle();
    expect(sockets()).toHaveLength(2);
    document.visibilityState = 'visible';
    listeners.get('visibilitychange')?.();
    await settle();
    expect(sockets()).toHaveLength(3);
  });
});

describe('ref and retryAfter (docs/protocol.md PW-F3, PW-E3)', () => {
  it("tags each subscribe with a ref, and an error carrying it names the subscribe's topic", async () => {
    // Prepare
    const { pw } = await connected();
    const errors: Events['error'][] = [];
    pw.on('error', (e) => errors.push(e));

    // Act
    pw.subscribe('news');
    pw.subscribe('secret');
    const [news, secret] = last().refs.filter((r) => r.action === 'subscribe');
    last().receive({ type: 'error', code: 'forbidden', message: 'no', ref: secret?.ref });

    // Assess
    expect(news?.ref).not.toEqual(secret?.ref);
    expect(errors).toEqual([{ code: 'forbidden', message: 'no', topic: 'secret' }]);
  });

  it('a rate_limited subscribe is sent again after retryAfter seconds, not before', async () => {
    // Prepare
    const { pw } = await connected();
    const errors: Events['error'][] = [];
    pw.on('error', (e) => errors.push(e));
    pw.subscribe('news');
    const subscribes = () => last().sent.filter((f) => f['action'] === 'subscribe').length;
    const ref = last().refs.at(-1)?.ref;

    // Act
    last().receive({ type: 'error', code: 'rate_limited', message: 'wait', retryAfter: 30, ref });
    await vi.advanceTimersByTimeAsync(29_000);
    const before = subscribes();
    // retryAfter, then the library's own backoff (full jitter, at most maxDelay).
    await vi.advanceTimersByTimeAsync(31_000);

    // Assess
    expect(errors).toEqual([
      { code: 'rate_limited', message: 'wait', topic: 'news', retryAfter: 30 },
    ]);
    expect(before).toBe(1);
    expect(subscribes()).toBe(2);
  });
});

describe('resuming', () => {
  it('resumes the user stream with ?since= and re-makes every subscription from its cursor', async () => {
    // Prepare
    const start = Date.now();
    const { pw } = client({ minDelay: 1 });
    pw.subscribe('news');
    pw.connect();
    await settle();
    last().accept();
    expect(last().sent).toEqual([{ action: 'ping' }, { action: 'subscribe', topic: 'news' }]);
    vi.setSystemTime(start + 60_000);
    pw.subscribe('sport');
    expect(last().sent.at(-1)).toEqual({ action: 'subscribe', topic: 'sport' });
    last().receive(message('u1', '1800000000100-0'));
    last().receive(message('n1', '1800000000200-3', 'news'));

    // Act
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().open();

    // Assess: ping first (it starts the user replay), then every topic from
    // reorderWindow (5 s) before its newest cursor; a topic with no message yet
    // resumes from just before it was joined.
    expect(last().query.get('since')).toBe('1799999995100-0');
    expect(last().sent).toEqual([
      { action: 'ping' },
      { action: 'subscribe', topic: 'news', since: '1799999995200-0' },
      { action: 'subscribe', topic: 'sport', since: `${start + 60_000 - 300_000}-0` },
    ]);
  });

  it('a stream with no message yet resumes from before it was first joined', async () => {
    const start = Date.now();
    const { pw } = await connected({ minDelay: 1 });
    vi.setSystemTime(start + 5_000);
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    expect(last().query.get('since')).toBe(`${start - 300_000}-0`);
    expect(pw.state).toBe('connecting');
  });

  it("resumes from no earlier than the server's epoch, unless what it last saw is older", async () => {
    // Prepare: a new server (its epoch 2 s after the client joined), a topic
    // with a message 1 s after the epoch, another with none yet.
    const start = Date.now();
    const epoch = start + 2_000;
    const { pw } = client({ minDelay: 1 });
    pw.subscribe('news');
    pw.subscribe('sport');
    pw.connect();
    await settle();
    last().open();
    last().receive({ type: 'pong', connectionId: 'c1', epoch: String(epoch) });
    last().receive(message('n1', `${epoch + 1_000}-0`, 'news'));

    // Act
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().open();

    // Assess: the floors (5 min back) and the news point (5 s back) start at the epoch.
    expect(last().query.get('since')).toBe(`${epoch}-0`);
    expect(last().sent).toEqual([
      { action: 'ping' },
      { action: 'subscribe', topic: 'news', since: `${epoch}-0` },
      { action: 'subscribe', topic: 'sport', since: `${epoch}-0` },
    ]);

    // The server lost its data: a later epoch. What was seen before it is
    // not moved up (the server answers recovered:false from there); a stream
    // with nothing seen still is.
    const later = epoch + 60_000;
    last().receive({ type: 'pong', connectionId: 'c2', epoch: String(later) });
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().open();
    expect(last().query.get('since')).toBe(`${later}-0`);
    expect(last().sent).toEqual([
      { action: 'ping' },
      { action: 'subscribe', topic: 'news', since: `${epoch + 1_000 - 5_000}-0` },
      { action: 'subscribe', topic: 'sport', since: `${later}-0` },
    ]);
  });

  it('unsubscribe sends the frame, forgets the cursor and ignores the topic from then on', async () => {
    const { pw, events } = await connected({ minDelay: 1 });
    pw.subscribe('news');
    last().receive(message('n1', '10-0', 'news'));
    pw.unsubscribe('news');
    expect(last().sent.at(-1)).toEqual({ action: 'unsubscribe', topic: 'news' });
    last().receive(message('n2', '11-0', 'news'));
    last().receive({ type: 'resumed', topic: 'news', recovered: false });
    expect(events.message.map((m) => m.id)).toEqual(['n1']);
    expect(events.gap).toEqual([]);
    expect(pw.topics).toEqual([]);
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().open();
    expect(last().sent).toEqual([{ action: 'ping' }]);
  });

  it('refuses a topic name the server would refuse, at once', async () => {
    const { pw } = await connected();
    for (const bad of ['', 'has space', 'x'.repeat(129), 'a/b']) {
      expect(() => pw.subscribe(bad)).toThrow(TypeError);
    }
    pw.subscribe('team:42_a.b@c=d-e');
    expect(pw.topics).toEqual(['team:42_a.b@c=d-e']);
  });

  it('connects without cursors when storage cannot be read, and says so once', async () => {
    const storage: StorageLike = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => undefined,
    };
    const { pw, events } = client({ storage });
    pw.connect();
    await settle();
    expect(sockets()).toHaveLength(1);
    expect(events.error).toEqual([{ code: 'storage_failed', message: 'Error: SecurityError' }]);
    expect(pw.state).toBe('connecting');
  });

  it('emits gap when the server says a stream was not recovered', async () => {
    const { pw, events } = await connected();
    pw.subscribe('news');
    last().receive({ type: 'resumed', recovered: true });
    last().receive({ type: 'resumed', topic: 'news', recovered: true });
    expect(events.gap).toEqual([]);
    last().receive({ type: 'resumed', recovered: false });
    last().receive({ type: 'resumed', topic: 'news', recovered: false });
    expect(events.gap).toEqual([{}, { topic: 'news' }]);
  });
});

describe('replays that come in batches or stop early (issue 7)', () => {
  it('delivers each message of a replay batch, in order, with the usual dedupe', async () => {
    // Prepare
    const { events } = await connected();

    // Act
    last().receive(message('u1', '5-0'));
    last().receive({
      type: 'batch',
      messages: [message('u1', '5-0'), message('u2', '6-0'), message('u3', '7-0')],
    });

    // Assess
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'u2', 'u3']);
  });

  it('resumes again from the cursor of a replay that stopped early, without a gap event', async () => {
    // Prepare
    const { pw, events } = await connected();
    pw.subscribe('news');
    const s = last();
    s.receive(message('u1', '5-0'));
    s.receive(message('n1', '5-0', 'news'));

    // Act: both replays stopped after 5-0 and 9-0; live messages came on meanwhile.
    s.receive(message('u9', '20-0'));
    s.receive({ type: 'resumed', recovered: false, cursor: '5-0' });
    s.receive({ type: 'resumed', topic: 'news', recovered: false, cursor: '9-0' });

    // Assess
    expect(events.gap).toEqual([]);
    expect(s.sent.slice(-2)).toEqual([
      { action: 'resume', since: '5-0' },
      { action: 'subscribe', topic: 'news', since: '9-0' },
    ]);
    // The rest of the user's stream arrives, then what came live before is dropped by id.
    s.receive({ type: 'batch', messages: [message('u6', '6-0'), message('u9', '20-0')] });
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'n1', 'u9', 'u6']);
  });
});

describe('messages over 128 KB, in parts (PW-F6)', () => {
  /** A message's part frames, cut small (`max` bytes each) so there are several. */
  const partsOf = (frame: Record<string, unknown>, max = 120) =>
    (partFrames(String(frame['id']), '', JSON.stringify(frame), 0, max) ?? []).map(
      (p) => JSON.parse(p.toString()) as Record<string, unknown>,
    );
  const big = (id: string, cursor: string) => ({
    type: 'message',
    id,
    cursor,
    data: { id, text: 'é😀"\\'.repeat(30) },
  });

  it('hands the app one message when its last part comes, with frames of other messages between its parts', async () => {
    // Prepare
    const { events } = await connected();
    const a = partsOf(big('a', '5-0'));
    const b = partsOf(big('b', '6-0'));
    expect(a.length).toBeGreaterThan(3);

    // Act: a's parts, with b's parts and a whole message among them, one part twice
    const s = last();
    s.receive(a[0] as Record<string, unknown>);
    s.receive(b[0] as Record<string, unknown>);
    s.receive(message('m', '5-5'));
    s.receive(a[1] as Record<string, unknown>);
    s.receive(a[1] as Record<string, unknown>);
    for (const part of a.slice(2)) s.receive(part);
    for (const part of b.slice(1)) s.receive(part);
    for (const part of a) s.receive(part); // the same message again (a retried post): dropped by id

    // Assess
    expect(events.message.map((m) => m.id)).toEqual(['m', 'a', 'b']);
    expect(events.message[1]).toMatchObject({ cursor: '5-0', data: big('a', '5-0').data });
    expect(events.message[2]?.data).toEqual(big('b', '6-0').data);
  });

  it('discards an incomplete message at a drop; the resume brings it whole, handed over once', async () => {
    // Prepare
    const { pw, events } = await connected();
    const x = partsOf(big('x', '7-0'));
    const first = last();
    first.receive(message('u1', '5-0'));
    first.receive(x[0] as Record<string, unknown>);
    first.receive(x[1] as Record<string, unknown>);

    // Act: the drop; the new connection resumes and gets the rest of x's parts only, then all of them
    first.drop();
    await vi.advanceTimersByTimeAsync(60_000);
    const second = last();
    expect(second).not.toBe(first);
    second.accept('c2');
    for (const part of x.slice(2)) second.receive(part);
    const before = events.message.map((m) => m.id);
    for (const part of x) second.receive(part);

    // Assess: the halves of two connections never made a message; the whole one came once
    expect(before).toEqual(['u1']);
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'x']);
    expect(events.message[1]?.data).toEqual(big('x', '7-0').data);
    pw.close();
  });
});

describe('exactly once, in order', () => {
  it('drops repeated ids; hands over a message older than one already delivered (overtaken) late', async () => {
    // Prepare
    const { pw, events } = await connected();
    pw.subscribe('news');

    // Act
    const s = last();
    s.receive(message('u1', '9-0'));
    s.receive(message('u1', '9-0')); // a retried publish: same id
    s.receive(message('u2', '10-0')); // numerically after 9-0 (not as text)
    s.receive(message('u0', '9-5')); // behind the stream, new id: overtaken, delivered late
    s.receive(message('u0', '9-5'));
    s.receive(message('n1', '1-0', 'news')); // another stream
    s.receive(message('n2', '1-10', 'news'));
    s.receive(message('n3', '1-9', 'news'));
    s.receive(message('n2', '1-10', 'news'));
    s.receive(message('b1')); // a broadcast: no cursor, deduped by id
    s.receive(message('b1'));

    // Assess
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'u2', 'u0', 'n1', 'n2', 'n3', 'b1']);
    expect(events.message[3]).toEqual({
      id: 'n1',
      data: { id: 'n1' },
      topic: 'news',
      cursor: '1-0',
    });
    expect(events.message[6]).toEqual({ id: 'b1', data: { id: 'b1' } });
  });

  it('remembers ids over a bounded window', async () => {
    const { events } = await connected({ dedupeWindow: 2 });
    for (const id of ['a', 'b', 'a', 'c', 'a']) last().receive(message(id));
    // 'a' was forgotten once 'b' and 'c' came after it.
    expect(events.message.map((m) => m.id)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('ignores frames that are not JSON or carry no id', async () => {
    const { events } = await connected();
    (last().onmessage as (e: { data: unknown }) => void)({ data: 'not json' });
    last().receive({ type: 'message', data: 1 });
    expect(events.message).toEqual([]);
  });

  it('a listener that throws does not stop delivery to the others', async () => {
    const { pw, events } = await connected();
    pw.on('message', () => {
      throw new Error('app bug');
    });
    last().receive(message('m1', '1-0'));
    last().receive(message('m2', '2-0'));
    expect(events.message.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(() => vi.runOnlyPendingTimers()).toThrow('app bug');
  });

  it('off() and the function on() returns both unsubscribe', async () => {
    const { pw } = await connected();
    const seen: string[] = [];
    const a = (m: { id: string }) => seen.push(`a:${m.id}`);
    const stop = pw.on('message', (m) => seen.push(`b:${m.id}`));
    pw.on('message', a);
    last().receive(message('m1'));
    pw.off('message', a);
    stop();
    last().receive(message('m2'));
    expect(seen).toEqual(['b:m1', 'a:m1']);
  });
});

describe('cursors kept per user', () => {
  it('a restart resumes where the last run left off; another user starts afresh', async () => {
    // Prepare: one run of alice's app.
    const storage = new MapStorage();
    const first = await connected({ storage, minDelay: 1 });
    first.pw.subscribe('news');
    last().receive(message('u1', '1800000000007-0'));
    last().receive(message('n1', '1800000000008-2', 'news'));
    first.pw.close();

    // Act: the app restarts (a page reload) as alice, then bob uses the device.
    const again = client({ storage });
    again.pw.subscribe('news');
    again.pw.connect();
    await settle();
    const alice = last();
    alice.open();
    alice.receive(message('u1', '1800000000007-0')); // a duplicate (the ids are kept too)
    alice.receive(message('n1', '1800000000008-2', 'news'));
    again.pw.close();

    const bob = client({ storage, token: () => jwt('bob') });
    bob.pw.subscribe('news');
    bob.pw.connect();
    await settle();
    last().open();
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(alice.query.get('since')).toBe('1799999995007-0');
    expect(alice.sent).toContainEqual({
      action: 'subscribe',
      topic: 'news',
      since: '1799999995008-0',
    });
    expect(again.events.message).toEqual([]);
    expect(last().query.has('since')).toBe(false);
    expect(last().sent).toContainEqual({ action: 'subscribe', topic: 'news' });
    expect([...storage.map.keys()].sort()).toEqual([
      'pushwire:ws://push.test:alice',
      'pushwire:ws://push.test:bob',
    ]);
  });

  it('works with an async storage (React Native AsyncStorage)', async () => {
    const map = new Map<string, string>();
    const storage: StorageLike = {
      getItem: async (key) => map.get(key) ?? null,
      setItem: async (key, value) => void map.set(key, value),
    };
    const first = await connected({ storage });
    last().receive(message('u1', '1800000000042-1'));
    first.pw.close();
    await settle();

    const again = client({ storage });
    again.pw.connect();
    await settle();
    expect(last().query.get('since')).toBe('1799999995042-0');
  });

  it('a storage read that finishes after close() and connect() is ignored; the new one is used', async () => {
    // Prepare: a slow async storage that holds a cursor.
    const reads: ((value: string) => void)[] = [];
    const storage: StorageLike = {
      getItem: () => new Promise<string>((resolve) => reads.push(resolve)),
      setItem: () => undefined,
    };
    const saved = JSON.stringify({ c: { '': '42-0' } });
    const { pw } = client({ storage });

    // Act
    pw.connect();
    await settle();
    pw.close();
    pw.connect();
    await settle();
    reads[0]?.(saved);
    await settle();
    const afterStale = sockets().length;
    reads[1]?.(saved);
    await settle();

    // Assess
    expect(reads).toHaveLength(2);
    expect(afterStale).toBe(0);
    expect(sockets()).toHaveLength(1);
    expect(last().query.get('since')).toBe('42-0');
  });

  it('the user option names the owner when the token is opaque; a token switch to another user switches cursors', async () => {
    const storage = new MapStorage();
    let user = 'carol';
    const made = await connected({ storage, user: 'carol', minDelay: 1 });
    last().receive(message('c1', '1800000000003-0'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(storage.map.has('pushwire:ws://push.test:carol')).toBe(true);
    made.pw.close();

    // Without the option: the token's sub decides, at every attempt.
    const switching = client({ storage, token: () => jwt(user), minDelay: 1 });
    switching.pw.connect();
    await settle();
    expect(last().query.get('since')).toBe('1799999995003-0');
    last().accept();
    user = 'dave';
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    expect(last().query.has('since')).toBe(false);
  });

  it('ignores stored values that are not cursors', async () => {
    const storage = new MapStorage();
    storage.setItem('pushwire:ws://push.test:alice', JSON.stringify({ c: { '': 'DROP TABLE' } }));
    const { pw } = client({ storage });
    pw.connect();
    await settle();
    expect(last().query.has('since')).toBe(false);
  });
});

describe('compareCursors', () => {
  it('compares both parts as numbers of any length', () => {
    expect(compareCursors('9-0', '10-0')).toBeLessThan(0);
    expect(compareCursors('10-0', '9-9')).toBeGreaterThan(0);
    expect(compareCursors('5-10', '5-9')).toBeGreaterThan(0);
    expect(compareCursors('5', '5-0')).toBe(0);
    expect(compareCursors('9007199254740993-0', '9007199254740992-0')).toBeGreaterThan(0);
    expect(compareCursors('0', '1-0')).toBeLessThan(0);
  });
});

describe('concurrent publishes: messages out of cursor order', () => {
  /** A cursor `ms` after the fake clock's start (Redis stream ids are `<ms>-<seq>`). */
  const at = (ms: number, seq = 0) => `${1_800_000_000_000 + ms}-${seq}`;
  const reconnect = async () => {
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().open();
  };

  it('hands over every live message once, in arrival order, whatever its cursor', async () => {
    // Prepare
    const { pw, events } = await connected();
    pw.subscribe('news');
    const s = last();

    // Act: publishes side by side overtake each other; some frames come twice.
    s.receive(message('u1', at(100)));
    s.receive(message('u3', at(300)));
    s.receive(message('u2', at(200))); // overtaken by u3
    s.receive(message('u3', at(300)));
    s.receive(message('n2', at(100, 1), 'news'));
    s.receive(message('n1', at(100, 0), 'news')); // same ms, lower seq
    s.receive(message('u0', at(50))); // overtaken by all of them
    s.receive(message('u2', at(200)));
    s.receive(message('n1', at(100, 0), 'news'));

    // Assess
    expect(events.message.map((m) => [m.id, m.cursor])).toEqual([
      ['u1', at(100)],
      ['u3', at(300)],
      ['u2', at(200)],
      ['n2', at(100, 1)],
      ['n1', at(100, 0)],
      ['u0', at(50)],
    ]);
  });

  it('a drop right after an overtaking message resumes early enough to get the overtaken one', async () => {
    // Prepare: u2 (200) is still on its way when u3 (300) arrives, and the socket drops.
    const { pw, events } = await connected({ minDelay: 1 });
    pw.subscribe('news');
    last().receive(message('u1', at(100)));
    last().receive(message('u3', at(300)));
    last().receive(message('n3', at(300), 'news'));

    // Act
    await reconnect();

    // Assess: both streams resume reorderWindow (5 s) before their newest cursor,
    // so the replay includes what was overtaken: only it is new.
    const since = last().query.get('since') as string;
    expect(since).toBe(at(300 - 5_000));
    expect(compareCursors(since, at(200))).toBeLessThan(0);
    expect(last().sent).toContainEqual({ action: 'subscribe', topic: 'news', since });
    last().receive({
      type: 'batch',
      messages: [message('u1', at(100)), message('u2', at(200)), message('u3', at(300))],
    });
    last().receive({ type: 'resumed', recovered: true });
    last().receive({
      type: 'batch',
      messages: [message('n2', at(200), 'news'), message('n3', at(300), 'news')],
    });
    last().receive({ type: 'resumed', topic: 'news', recovered: true });
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'u3', 'n3', 'u2', 'n2']);
    expect(events.gap).toEqual([]);
  });

  it('the reorder window is an option', async () => {
    const { events } = await connected({ minDelay: 1, reorderWindow: 250 });
    last().receive(message('u3', at(300)));
    await reconnect();
    expect(last().query.get('since')).toBe(at(50));
    last().receive(message('u2', at(200)));
    expect(events.message.map((m) => m.id)).toEqual(['u3', 'u2']);
  });

  it('the duplicates a widened resume replays are dropped, however many and however small dedupeWindow', async () => {
    // Prepare: 50 messages within the reorder window; ids remembered: only 10.
    const { events } = await connected({ minDelay: 1, dedupeWindow: 10 });
    const sent = Array.from({ length: 50 }, (_, n) => message(`u${n}`, at(1_000 + n * 10)));
    for (const m of sent.filter((_, n) => n !== 25)) last().receive(m); // u25 overtaken

    // Act
    await reconnect();
    last().receive({ type: 'batch', messages: sent });
    last().receive({ type: 'resumed', recovered: true });

    // Assess
    const ids = events.message.map((m) => m.id);
    expect(ids).toHaveLength(50);
    expect(new Set(ids).size).toBe(50);
    expect(ids.at(-1)).toBe('u25');
  });

  it('across a restart too: the ids after the resume point are kept in storage', async () => {
    // Prepare
    const storage = new MapStorage();
    const first = await connected({ storage });
    first.pw.subscribe('news');
    last().receive(message('n1', at(100), 'news'));
    last().receive(message('n3', at(300), 'news'));
    first.pw.close();

    // Act
    const again = client({ storage });
    again.pw.subscribe('news');
    again.pw.connect();
    await settle();
    last().open();
    last().receive({
      type: 'batch',
      messages: [
        message('n1', at(100), 'news'),
        message('n2', at(200), 'news'),
        message('n3', at(300), 'news'),
      ],
    });

    // Assess
    expect(last().sent).toContainEqual({ action: 'subscribe', topic: 'news', since: at(-4_700) });
    expect(again.events.message.map((m) => m.id)).toEqual(['n2']);
  });

  it('forgets ids once the resume point has passed them', async () => {
    const storage = new MapStorage();
    await connected({ storage });
    last().receive(message('u1', at(100)));
    last().receive(message('u2', at(200)));
    last().receive(message('u3', at(5_150)));
    await vi.advanceTimersByTimeAsync(1_000);
    const saved = JSON.parse(storage.map.get('pushwire:ws://push.test:alice') as string);
    // The resume point is 150: u1 (100) is behind it, u2 and u3 are not.
    expect(saved.s[''][0]).toBe(at(150));
    expect(Object.keys(saved.s[''][2])).toEqual(['u2', 'u3']);
  });

  it('while a replay is under way the resume point stays where it started; then it moves on', async () => {
    // Prepare
    const { events } = await connected({ minDelay: 1 });
    last().receive(message('u1', at(100)));
    await reconnect(); // resumes from at(-4_900)

    // Act: the replay brings messages far ahead, then the socket drops before `resumed`.
    last().receive({
      type: 'batch',
      messages: [message('u2', at(20_000)), message('u3', at(30_000))],
    });
    await reconnect();
    const duringReplay = last().query.get('since');
    last().receive({
      type: 'batch',
      messages: [message('u2', at(20_000)), message('u3', at(30_000))],
    });
    last().receive({ type: 'resumed', recovered: true });
    await reconnect();

    // Assess
    expect(duringReplay).toBe(at(-4_900));
    expect(last().query.get('since')).toBe(at(25_000));
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'u2', 'u3']);
  });

  it('a replay that stopped early resumes from its cursor, and again from there after a drop', async () => {
    // Prepare
    const { events } = await connected({ minDelay: 1 });
    last().receive(message('u1', at(100)));
    await reconnect();
    last().receive({ type: 'batch', messages: [message('u2', at(20_000))] });

    // Act: it stopped at u2; a live message came in the meantime; the socket drops.
    last().receive(message('u9', at(90_000)));
    last().receive({ type: 'resumed', recovered: false, cursor: at(20_000) });
    expect(last().sent.at(-1)).toEqual({ action: 'resume', since: at(20_000) });
    last().receive(message('u10', at(91_000)));
    await reconnect();

    // Assess: what was between u2 and u9 is still to come.
    expect(last().query.get('since')).toBe(at(20_000));
    last().receive({
      type: 'batch',
      messages: [message('u3', at(30_000)), message('u9', at(90_000)), message('u10', at(91_000))],
    });
    expect(events.message.map((m) => m.id)).toEqual(['u1', 'u2', 'u9', 'u10', 'u3']);
    expect(events.gap).toEqual([]);
  });
});

describe('no silent loss, no false alarm (issue 21)', () => {
  const KEY = 'pushwire:ws://push.test:alice';

  it('retries a subscribe refused as rate_limited after retryAfter (with backoff), and reports it', async () => {
    // Prepare: Math.random() = 1, so the retry comes at retryAfter + minDelay.
    const { pw, events } = await connected({ minDelay: 1_000 });
    pw.subscribe('news');
    const socket = last();

    // Act
    socket.receive({
      type: 'error',
      code: 'rate_limited',
      message: 'too many replays',
      retryAfter: 5,
      topic: 'news',
    });
    await vi.advanceTimersByTimeAsync(5_999);
    const before = socket.sent.filter((f) => f['action'] === 'subscribe').length;
    await vi.advanceTimersByTimeAsync(1);
    const after = socket.sent.filter((f) => f['action'] === 'subscribe').length;

    // Assess
    expect(events.error).toEqual([
      { code: 'rate_limited', message: 'too many replays', topic: 'news', retryAfter: 5 },
    ]);
    expect([before, after]).toEqual([1, 2]);
    expect(socket.sent.at(-1)).toMatchObject({ action: 'subscribe', topic: 'news' });
  });

  it('a topic joined afresh starts from the cursor `subscribed` gives, so a message published before the join is never replayed after later ones (item 7)', async () => {
    // Prepare: news joined without since; message 0 went out before the member
    // was written (not delivered), 1..8 came live, within the reorder window.
    const { pw, events } = await connected({ minDelay: 1 });
    pw.subscribe('news');
    last().receive({ type: 'subscribed', topic: 'news', cursor: '1800000000100-0' });
    for (let n = 1; n <= 8; n++) last().receive(message(`n${n}`, `18000000001${n}0-0`, 'news'));

    // Act: a drop; the resubscribe must not reach back before the join.
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().accept('c2');

    // Assess
    expect(last().sent).toContainEqual({
      action: 'subscribe',
      topic: 'news',
      since: '1800000000100-0',
    });
    expect(events.message.map((m) => m.id)).toEqual([
      'n1',
      'n2',
      'n3',
      'n4',
      'n5',
      'n6',
      'n7',
      'n8',
    ]);
  });

  it('a topic heard nothing from resumes from its `subscribed` cursor, not the 5-minute floor (no false gap)', async () => {
    const { pw } = await connected({ minDelay: 1 });
    pw.subscribe('quiet');
    last().receive({ type: 'subscribed', topic: 'quiet', cursor: '1700000000000-3' });
    last().drop();
    await vi.advanceTimersByTimeAsync(1);
    last().accept('c2');
    expect(last().sent).toContainEqual({
      action: 'subscribe',
      topic: 'quiet',
      since: '1700000000000-3',
    });
  });

  it("the user's stream heard nothing from resumes from the first pong's cursor, less the time the connection took", async () => {
    // Prepare
    const { pw } = client({ minDelay: 1 });
    pw.connect();
    await settle();
    await vi.advanceTimersByTimeAsync(2_000);
    last().open();
    last().receive({ type: 'pong', connectionId: 'c1', cursor: '1800000005000-7' });

    // Act
    last().drop();
    await vi.advanceTimersByTimeAsync(1);

    // Assess: 5000 - 2000 (socket made to pong) - 1000 (margin).
    expect(last().query.get('since')).toBe('1800000002000-0');
    expect(pw.state).toBe('connecting');
  });

  it('gives up a token() that never settles after connectTimeout, reports it and tries again', async () => {
    // Prepare
    let calls = 0;
    const { pw, events } = client({
      token: () => {
        calls++;
        return new Promise<string>(() => undefined);
      },
      connectTimeout: 10_000,
      minDelay: 1,
    });

    // Act
    pw.connect();
    await vi.advanceTimersByTimeAsync(10_000);
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    expect(events.error[0]).toMatchObject({ code: 'token_failed' });
    expect(events.state).toEqual(['connecting', 'disconnected', 'connecting']);
    expect(calls).toBe(2);
  });

  it('connects without storage when storage.getItem never settles, and reports it', async () => {
    // Prepare
    const storage: StorageLike = {
      getItem: () => new Promise<string>(() => undefined),
      setItem: vi.fn(),
    };
    const { pw, events } = client({ storage, connectTimeout: 10_000 });

    // Act
    pw.connect();
    await vi.advanceTimersByTimeAsync(10_000);
    last().accept();
    last().receive(message('u1', '1800000000001-0'));
    await vi.advanceTimersByTimeAsync(5_000);

    // Assess
    expect(pw.state).toBe('connected');
    expect(events.error).toEqual([
      { code: 'storage_failed', message: 'Error: storage.getItem did not settle within 10000 ms' },
    ]);
    expect(storage.setItem).not.toHaveBeenCalled();
  });

  it('reports a failing setItem once, as an error, and goes on delivering', async () => {
    // Prepare
    const storage: StorageLike = {
      getItem: () => null,
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
    };
    const { events } = await connected({ storage });

    // Act
    for (let n = 0; n < 5; n++) {
      last().receive(message(`u${n}`, `180000000000${n}-0`));
      await vi.advanceTimersByTimeAsync(1_000);
    }

    // Assess
    expect(events.message).toHaveLength(5);
    expect(events.error).toEqual([
      { code: 'storage_failed', message: 'Error: QuotaExceededError' },
    ]);
  });

  it('writes its state at a bounded rate, not once per message (item 8)', async () => {
    // Prepare
    const storage = new MapStorage();
    const setItem = vi.spyOn(storage, 'setItem');
    await connected({ storage });

    // Act: 1,000 messages within one second.
    for (let n = 0; n < 1_000; n++) last().receive(message(`u${n}`, `${1_800_000_000_000 + n}-0`));
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(setItem.mock.calls.length).toBeLessThanOrEqual(2);
    expect(JSON.parse(storage.map.get(KEY) as string).s[''][1]).toBe('1800000000999-0');
  });

  it("two tabs on one storage keep each other's streams; a reloaded tab resumes its topic (item 5)", async () => {
    // Prepare: tab A on topic a, tab B on topic b, one storage.
    const storage = new MapStorage();
    const a = await connected({ storage });
    a.pw.subscribe('a');
    const socketA = last();
    const b = await connected({ storage });
    b.pw.subscribe('b');
    const socketB = last();

    // Act: both receive and write, B after A, A after B; then B reloads.
    socketA.receive(message('a1', '1800000000010-0', 'a'));
    socketB.receive(message('b1', '1800000000020-0', 'b'));
    await vi.advanceTimersByTimeAsync(1_000);
    socketA.receive(message('a2', '1800000000030-0', 'a'));
    await vi.advanceTimersByTimeAsync(1_000);
    b.pw.close();
    const reloaded = client({ storage });
    reloaded.pw.subscribe('b');
    reloaded.pw.connect();
    await settle();
    last().accept('c3');

    // Assess
    const saved = JSON.parse(storage.map.get(KEY) as string).s;
    expect(Object.keys(saved).sort()).toEqual(['', 'a', 'b']);
    expect(last().sent).toContainEqual({
      action: 'subscribe',
      topic: 'b',
      since: '1799999995020-0',
    });
    a.pw.close();
  });

  it('a topic left and joined again resumes, after a reload that came before `subscribed`, from where it was left, not from the time floor (model, seed 720000088)', async () => {
    // Prepare: a page that got n1 on news, then left news, then reloaded.
    const storage = new MapStorage();
    const first = await connected({ storage });
    first.pw.subscribe('news');
    last().receive({ type: 'subscribed', topic: 'news', cursor: '1800000000000-0' });
    last().receive(message('n1', '1800000000010-0', 'news'));
    await vi.advanceTimersByTimeAsync(1_000);
    first.pw.unsubscribe('news');
    first.pw.close();
    const second = await connected({ storage });

    // Act: the next page joins news again and reloads before `subscribed` comes.
    second.pw.subscribe('news');
    expect(last().sent.at(-1)).toMatchObject({ action: 'subscribe', topic: 'news' });
    expect(last().sent.at(-1)).not.toHaveProperty('since');
    second.pw.close();
    const third = client({ storage });
    third.pw.subscribe('news');
    third.pw.connect();
    await settle();
    last().accept();

    // Assess: from n1's cursor (what came after it is new), not 300 s back (n1 again).
    expect(last().sent).toContainEqual({
      action: 'subscribe',
      topic: 'news',
      since: '1800000000010-0',
    });
    third.pw.close();
  });

  it('an unsubscribed topic leaves storage, even though another tab stored it before', async () => {
    const storage = new MapStorage();
    const { pw } = await connected({ storage });
    pw.subscribe('gone');
    last().receive(message('g1', '1800000000010-0', 'gone'));
    await vi.advanceTimersByTimeAsync(1_000);
    pw.unsubscribe('gone');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(Object.keys(JSON.parse(storage.map.get(KEY) as string).s)).toEqual(['']);
  });

  it('drops from storage streams not subscribed to and idle longer than keepFor; keeps subscribed ones', async () => {
    // Prepare: stored state of three topics, last active 2 days ago.
    const storage = new MapStorage();
    const old = Date.now() - 2 * 86_400_000;
    storage.setItem(
      KEY,
      JSON.stringify({
        s: {
          kept: ['1700000000000-0', '', {}, old],
          stale: ['1700000000000-0', '', {}, old],
          fresh: ['1700000000000-0', '', {}, Date.now() - 1_000],
        },
      }),
    );
    const { pw } = client({ storage });
    pw.subscribe('kept');

    // Act
    pw.connect();
    await settle();
    last().accept();
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(Object.keys(JSON.parse(storage.map.get(KEY) as string).s).sort()).toEqual([
      '',
      'fresh',
      'kept',
    ]);
  });
});

describe('names that are also Object.prototype members (found by the model test, issue 21)', () => {
  it('subscribes to and resumes topics named like prototype members, and hands over ids like them', async () => {
    const storage = new MapStorage();
    const { pw, events } = await connected({ storage });
    // Legal topic names and publish ids ([\w.:@=-]), and JSON keys of saved state.
    const names = ['valueOf', 'constructor', '__proto__', 'toString', 'hasOwnProperty'];
    for (const name of names) pw.subscribe(name);
    const subscribes = last().sent.filter((f) => f['action'] === 'subscribe');
    expect(subscribes.map((f) => f['topic'])).toEqual(names);
    for (const f of subscribes) expect(f['since']).toBeUndefined();
    for (const [i, name] of names.entries()) {
      last().receive(message(name, `18000000${i}0000-0`, name));
      last().receive(message(`${name}-u`, `18000000${i}0000-0`));
    }
    expect(events.message.map((m) => m.id)).toEqual(names.flatMap((name) => [name, `${name}-u`]));
    // After a drop, every topic resumes from its own cursor (minus reorderWindow).
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().accept('c2');
    const again = last().sent.filter((f) => f['action'] === 'subscribe');
    expect(again.map((f) => [f['topic'], f['since']])).toEqual(
      names.map((name, i) => [name, `${18000000 * 10 ** 5 + i * 10 ** 4 - 5000}-0`]),
    );
  });
});

describe('publish (issue 16, docs/protocol.md PW-C)', () => {
  const publishes = (s: FakeSocket) => s.sent.filter((f) => f['action'] === 'publish');
  const refOf = (s: FakeSocket) => s.refs.filter((r) => r.action === 'publish').at(-1)?.ref;

  it('resolves with the ack; sends the same frame (same id) after ackTimeout and on the next connection', async () => {
    // Prepare
    const { pw } = await connected({ ackTimeout: 5_000 });
    const first = last();

    // Act: no ack within ackTimeout, then the connection drops, then the ack comes.
    const acked = pw.publish('chat:1', { text: 'hi' });
    await vi.advanceTimersByTimeAsync(5_000);
    first.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    last().accept('c2');
    const again = publishes(last());
    last().receive({
      type: 'published',
      topic: 'chat:1',
      id: again[0]?.['id'],
      cursor: '5-0',
      duplicate: true,
      ref: refOf(last()),
    });

    // Assess
    const [sent, resent] = publishes(first);
    expect(sent).toEqual({
      action: 'publish',
      topic: 'chat:1',
      data: { text: 'hi' },
      id: expect.any(String),
    });
    expect(resent).toEqual(sent);
    expect(again).toEqual([sent]);
    expect(await acked).toEqual({
      topic: 'chat:1',
      id: sent?.['id'],
      cursor: '5-0',
      duplicate: true,
    });
  });

  it('passes echo and ephemeral on, and takes the id given', async () => {
    const { pw } = await connected();
    void pw.publish('t', 1, { id: 'mine', echo: false, ephemeral: true });
    expect(publishes(last())).toEqual([
      { action: 'publish', topic: 't', data: 1, id: 'mine', echo: false, ephemeral: true },
    ]);
  });

  it('retries rate_limited after retryAfter; rejects a refusal with its code; drops an answer to a settled publish', async () => {
    // Prepare
    const { pw, events } = await connected();
    const limited = pw.publish('t', 1);
    const ref = refOf(last());

    // Act
    last().receive({
      type: 'error',
      code: 'rate_limited',
      message: 'wait',
      retryAfter: 2,
      topic: 't',
      ref,
    });
    await vi.advanceTimersByTimeAsync(1_900);
    const before = publishes(last()).length;
    await vi.advanceTimersByTimeAsync(5_000);
    const after = publishes(last()).length;
    last().receive({
      type: 'published',
      topic: 't',
      id: publishes(last())[0]?.['id'],
      cursor: '1-0',
      ref,
    });
    // A late answer to the earlier attempt: the publish is settled, nothing else happens.
    last().receive({ type: 'error', code: 'unavailable', message: 'late', ref });
    const refused = pw.publish('t', 2);
    last().receive({
      type: 'error',
      code: 'hook_denied',
      message: 'refused: no',
      ref: refOf(last()),
    });

    // Assess
    expect([before, after]).toEqual([1, 2]);
    expect(await limited).toMatchObject({ cursor: '1-0' });
    await expect(refused).rejects.toMatchObject({ code: 'hook_denied', message: 'refused: no' });
    // Neither the rate limit (no topic re-joined) nor the late error reached the app's error events.
    expect(events.error).toEqual([]);
    expect(last().sent.filter((f) => f['action'] === 'subscribe')).toEqual([]);
  });

  it('hands over from and ephemeral; an ephemeral message moves no cursor', async () => {
    const { pw, events } = await connected();
    pw.subscribe('room');
    last().receive({ type: 'subscribed', topic: 'room', cursor: '1800000000000-0' });
    last().receive({ ...message('m1', '1800000010000-0', 'room'), from: 'bob' });
    last().receive({
      type: 'message',
      id: 'e1',
      topic: 'room',
      from: 'bob',
      ephemeral: true,
      data: 'typing',
    });
    expect(events.message).toEqual([
      { id: 'm1', topic: 'room', cursor: '1800000010000-0', from: 'bob', data: { id: 'm1' } },
      { id: 'e1', topic: 'room', from: 'bob', ephemeral: true, data: 'typing' },
    ]);
    // The next connection resumes the topic from the stored message (less reorderWindow), not past it.
    last().drop();
    await vi.advanceTimersByTimeAsync(1_000);
    last().accept('c2');
    expect(last().sent.find((f) => f['action'] === 'subscribe')).toEqual({
      action: 'subscribe',
      topic: 'room',
      since: '1800000005000-0',
    });
    expect(pw.topics).toEqual(['room']);
  });

  it('rejects what is pending with closed at close()', async () => {
    const { pw } = await connected();
    const pending = pw.publish('t', 1);
    pw.close();
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('presence (issue 16)', () => {
  it('asks for a page with a ref and resolves with the page answering that ref', async () => {
    // Prepare
    const { pw } = await connected();
    pw.subscribe('room:1');

    // Act
    const first = pw.presence('room:1', { limit: 2 });
    const second = pw.presence('room:1', { cursor: 'Ym9i' });
    const [a, b] = last().refs.filter((r) => r.action === 'presence');
    last().receive({
      type: 'presence',
      topic: 'room:1',
      members: [{ userId: 'carol' }],
      count: 3,
      ref: b?.ref,
    });
    last().receive({
      type: 'presence',
      topic: 'room:1',
      members: [{ userId: 'alice', info: { name: 'Alice' } }, { userId: 'bob' }],
      count: 3,
      next: 'Ym9i',
      ref: a?.ref,
    });

    // Assess
    expect(last().sent.filter((f) => f['action'] === 'presence')).toEqual([
      { action: 'presence', topic: 'room:1', limit: 2 },
      { action: 'presence', topic: 'room:1', cursor: 'Ym9i' },
    ]);
    await expect(first).resolves.toEqual({
      members: [{ userId: 'alice', info: { name: 'Alice' } }, { userId: 'bob' }],
      count: 3,
      next: 'Ym9i',
    });
    await expect(second).resolves.toEqual({ members: [{ userId: 'carol' }], count: 3 });
  });

  it('rejects with the code of an error answering its ref, and when the connection drops or is not up', async () => {
    const { pw, events } = await connected();
    const refused = pw.presence('room:1');
    const ref = last().refs.find((r) => r.action === 'presence')?.ref;
    last().receive({ type: 'error', code: 'forbidden', message: 'no grant', ref });
    await expect(refused).rejects.toMatchObject({ code: 'forbidden', message: 'no grant' });
    // Answered by the promise, not also as an error event.
    expect(events.error).toEqual([]);

    const dropped = pw.presence('room:1');
    last().drop();
    await expect(dropped).rejects.toMatchObject({ code: 'disconnected' });
    await expect(pw.presence('room:1')).rejects.toMatchObject({ code: 'disconnected' });
  });

  it("request() resolves with whatever answers its ref, also a frame the library handles itself (a ping's pong)", async () => {
    const { pw } = await connected();
    const pong = pw.request({ action: 'ping' });
    const registered = pw.request({ action: 'push_register', webpush: {} });
    const [ping, register] = last().refs.filter(
      (r) => r.action === 'ping' || r.action === 'push_register',
    );
    last().receive({ type: 'pong', connectionId: 'c1', ref: ping?.ref });
    last().receive({ type: 'push_registered', id: 'w_1', expiresAt: 1, ref: register?.ref });
    await expect(pong).resolves.toMatchObject({ type: 'pong', connectionId: 'c1' });
    await expect(registered).resolves.toMatchObject({ type: 'push_registered', id: 'w_1' });
  });

  it('turns join, leave and presence_diff frames into one presence event', async () => {
    const { events } = await connected();
    last().receive({ type: 'join', topic: 'room:1', userId: 'alice', info: { name: 'Alice' } });
    last().receive({ type: 'leave', topic: 'room:1', userId: 'bob' });
    last().receive({
      type: 'presence_diff',
      topic: 'room:2',
      joined: [{ userId: 'carol' }],
      left: ['dave'],
    });
    expect(events.presence).toEqual([
      { topic: 'room:1', joined: [{ userId: 'alice', info: { name: 'Alice' } }], left: [] },
      { topic: 'room:1', joined: [], left: ['bob'] },
      { topic: 'room:2', joined: [{ userId: 'carol' }], left: ['dave'] },
    ]);
  });
});

describe('acknowledged messages (PW-K)', () => {
  const acked = (id: string, cursor: string, extra: Record<string, unknown> = {}) => ({
    ...message(id, cursor),
    ack: true,
    ...extra,
  });
  const ackFrames = () => last().sent.filter((f) => f['action'] === 'ack');

  it('acks what it handed over, the ids of one tick in one frame; plain messages are not acked', async () => {
    const { events } = await connected();
    last().receive(acked('a1', '1800000000000-0'));
    last().receive(message('plain', '1800000000000-1'));
    last().receive({
      type: 'batch',
      messages: [acked('a2', '1800000000000-2'), acked('a3', '1800000000000-3')],
    });
    expect(ackFrames()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ackFrames()).toEqual([{ action: 'ack', ids: ['a1', 'a2', 'a3'] }]);
    expect(events.message.map((m) => [m.id, m.ack])).toEqual([
      ['a1', true],
      ['plain', undefined],
      ['a2', true],
      ['a3', true],
    ]);
    // A duplicate (dropped by id) is not acked again.
    last().receive(acked('a1', '1800000000000-0'));
    await vi.advanceTimersByTimeAsync(1);
    expect(ackFrames()).toHaveLength(1);
  });

  it('with autoAck false acks only on ack(id); acks made while disconnected go once connected', async () => {
    const { pw } = await connected({ autoAck: false });
    last().receive(acked('b1', '1800000000000-0'));
    await vi.advanceTimersByTimeAsync(10);
    expect(ackFrames()).toEqual([]);
    pw.ack('b1');
    pw.ack('b2', 'b3');
    await vi.advanceTimersByTimeAsync(1);
    expect(ackFrames()).toEqual([{ action: 'ack', ids: ['b1', 'b2', 'b3'] }]);
    last().drop();
    pw.ack('b4');
    await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(sockets()).toHaveLength(2);
    expect(ackFrames()).toEqual([]);
    last().accept('c2');
    await vi.advanceTimersByTimeAsync(1);
    expect(ackFrames()).toEqual([{ action: 'ack', ids: ['b4'] }]);
  });

  it('splits more than 100 ids into frames of 100', async () => {
    const { pw } = await connected({ autoAck: false });
    pw.ack(...Array.from({ length: 150 }, (_, i) => `m${i}`));
    await vi.advanceTimersByTimeAsync(1);
    expect(ackFrames().map((f) => (f['ids'] as string[]).length)).toEqual([100, 50]);
  });

  it('emits dismiss for a dismiss frame, and marks a replayed dismissed message without acking it', async () => {
    const { events } = await connected();
    last().receive({ type: 'dismiss', id: 'ring-1' });
    last().receive(acked('ring-2', '1800000000000-0', { dismissed: true }));
    await vi.advanceTimersByTimeAsync(1);
    expect(events.dismiss).toEqual([{ id: 'ring-1' }, { id: 'ring-2' }]);
    expect(events.message.at(-1)).toMatchObject({ id: 'ring-2', ack: true, dismissed: true });
    expect(ackFrames()).toEqual([]);
  });
});
