/**
 * Delta topics (issue 17, docs/protocol.md PW-D): the server's delta
 * (lib/delivery/delta.ts) against the client's applier (client/delta.ts,
 * `pushwire/delta`), the frames a chunk makes of it, and the library's
 * handling: whole messages to the app, and a refetch (never corrupt data)
 * when the base is not the one it holds or the delta does not apply.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { series } from '../../bench/delta-doc.js';
import { fossilDelta } from '../../client/delta.js';
import {
  type Frame,
  type Message,
  type Options,
  Pushwire,
  type SocketLike,
} from '../../client/pushwire.js';
import {
  chunkJobs,
  parseDeliverChunk,
  serializeChunk,
  toChunks,
} from '../../lib/delivery/chunks.js';
import { deltaOf } from '../../lib/delivery/delta.js';
import { bundleClient, DELTA_SOURCE, gzipSize } from '../../scripts/build-client.js';
import { checkClientMessage, checkServerMessage } from '../helpers/contract.js';

const entry = (data: unknown) => `{"id":"m0","data":${JSON.stringify(data)}}`;

/** What the client gets: a delta frame as the server builds it (via a chunk), parsed. */
function wireFrame(
  base: unknown,
  next: unknown,
  baseCursor = '1-0',
  cursor = '2-0',
  id = 'm1',
): Frame {
  const delta = deltaOf(entry(base), JSON.stringify(next));
  if (delta === undefined) throw new Error('no delta');
  const message = {
    id,
    dataJson: JSON.stringify(next),
    topic: 'doc:1',
    delta: { base: baseCursor, data: delta },
  };
  const [job] = [
    ...chunkJobs({ message, jobs: [{ cursor, delta: true, recipients: [['c1', 'https://x/y']] }] }),
  ];
  const text = Buffer.from(job?.frame ?? '').toString();
  checkServerMessage(text);
  return JSON.parse(text) as Frame;
}

/** The applier holding `base` at cursor 1-0 (as after a whole message). */
function holding(base: unknown) {
  const apply = fossilDelta();
  expect(apply({ type: 'message', id: 'm0', topic: 'doc:1', cursor: '1-0', data: base })).toBe(
    true,
  );
  return apply;
}

describe('delta create (server) and apply (pushwire/delta)', () => {
  it('round-trips a ~100 KB document changed by ~1 %, as the same JSON', () => {
    const [a, b] = series(2) as [string, string];
    const frame = wireFrame(JSON.parse(a), JSON.parse(b));
    expect(Buffer.byteLength(JSON.stringify(frame.data))).toBeLessThan(b.length / 20);

    expect(holding(JSON.parse(a))(frame)).toBe(true);

    expect(JSON.stringify(frame.data)).toBe(b);
    expect(frame.delta).toBeUndefined();
  });

  it('round-trips non-ASCII text, where a delta cuts multi-byte characters', () => {
    const base = { text: 'héllo wörld 👋🏽 '.repeat(200), n: 1 };
    const next = {
      text: `${'héllo wörld 👋🏽 '.repeat(100)}ça 🎉 ${'héllo wörld 👋🏽 '.repeat(100)}`,
      n: 2,
    };
    const frame = wireFrame(base, next);

    expect(holding(base)(frame)).toBe(true);

    expect(frame.data).toEqual(next);
  });

  it('chains: each applied message is the next base', () => {
    const docs = series(4).map((d) => JSON.parse(d) as unknown);
    const apply = holding(docs[0]);
    for (let i = 1; i < docs.length; i++) {
      const frame = wireFrame(docs[i - 1], docs[i], `${i}-0`, `${i + 1}-0`);
      expect(apply(frame)).toBe(true);
      expect(frame.data).toEqual(docs[i]);
    }
  });

  it('refuses a delta against another base, a delta with no base held, and a corrupt one', () => {
    const [a, b] = series(2).map((d) => JSON.parse(d) as unknown);
    // Another base cursor than the one held.
    expect(holding(a)(wireFrame(a, b, '0-5'))).toBe(false);
    // Nothing held for the topic.
    expect(fossilDelta()(wireFrame(a, b))).toBe(false);
    // One byte changed: the checksum (or the commands) fail.
    const corrupt = wireFrame(a, b);
    const text = corrupt.data as string;
    const at = text.length - 20;
    corrupt.data = `${text.slice(0, at)}${text[at] === 'x' ? 'y' : 'x'}${text.slice(at + 1)}`;
    expect(holding(a)(corrupt)).toBe(false);
    // Truncated, not a byte string, not a string.
    const cut = wireFrame(a, b);
    cut.data = (cut.data as string).slice(0, 10);
    expect(holding(a)(cut)).toBe(false);
    const wide = wireFrame(a, b);
    wide.data = `${wide.data as string}\u0100`;
    expect(holding(a)(wide)).toBe(false);
    const object = wireFrame(a, b);
    object.data = { not: 'a delta' };
    expect(holding(a)(object)).toBe(false);
  });

  it('keeps the newest message as the base, whatever order messages arrive in', () => {
    const [a, b, c] = series(3).map((d) => JSON.parse(d) as unknown);
    const apply = holding(a);
    expect(apply({ type: 'message', id: 'm2', topic: 'doc:1', cursor: '3-0', data: c })).toBe(true);
    // Late whole message: handed over, but the base stays the newer one.
    expect(apply({ type: 'message', id: 'm1', topic: 'doc:1', cursor: '2-0', data: b })).toBe(true);
    expect(apply(wireFrame(c, a, '3-0', '4-0'))).toBe(true);
  });

  it('leaves ephemeral and cursor-less messages alone and never takes them as a base', () => {
    const [a, b] = series(2).map((d) => JSON.parse(d) as unknown);
    const apply = holding(a);
    expect(
      apply({ type: 'message', id: 'e', topic: 'doc:1', data: { typing: true }, ephemeral: true }),
    ).toBe(true);
    expect(apply({ type: 'message', id: 'u', data: 1 })).toBe(true);
    expect(apply(wireFrame(a, b))).toBe(true);
  });

  it('sends the whole message when a delta would not be smaller, or the base is unreadable', () => {
    expect(deltaOf(entry({ a: 1 }), JSON.stringify({ b: 'completely different' }))).toBeUndefined();
    expect(deltaOf('not json', '{"a":1}')).toBeUndefined();
  });
});

describe('pushwire/delta as apps get it (client/dist/delta.js)', () => {
  it('is one dependency-free ES module exporting fossilDelta, fossil-delta inside', async () => {
    const code = await bundleClient(DELTA_SOURCE);
    const gzip = gzipSize(code);
    console.log(
      `pushwire/delta: ${Buffer.byteLength(code)} bytes minified, ${gzip} bytes min+gzip`,
    );
    expect(code).not.toMatch(/\bimport\s*[({"'\w*]|\brequire\s*\(/);
    expect(code).not.toMatch(/#|static\s*\{|\bprocess\.|\bBuffer\b|TextDecoder/);
    expect(code).toMatch(/export\s*\{[^}]*fossilDelta/);
    // Apps pay this only with delta topics; keep it small all the same.
    expect(gzip).toBeLessThan(2_500);
  });
});

describe('delta chunks (lib/delivery/chunks.ts)', () => {
  it('carries the delta once, marks the jobs that get it, and counts its bytes exactly', async () => {
    const [a, b] = series(2) as [string, string];
    const delta = deltaOf(entry(JSON.parse(a)), b) as string;
    const message = { id: 'm1', dataJson: b, topic: 'doc:1', delta: { base: '1-0', data: delta } };
    const chunks = [];
    for await (const chunk of toChunks(
      message,
      [
        { cursor: '2-0', recipients: [{ connectionId: 'w', endpoint: 'https://x/y' }] },
        {
          cursor: '2-0',
          delta: true,
          recipients: [{ connectionId: 'd', endpoint: 'https://x/y' }],
        },
      ],
      { chunkSize: 10, chunkMaxBytes: 1_000_000 },
    ))
      chunks.push(chunk);

    expect(chunks).toHaveLength(1);
    const payload = serializeChunk(chunks[0] as (typeof chunks)[0]);
    expect(Buffer.byteLength(payload)).toBe(chunks[0]?.bytes);
    // What a deliver worker reads back makes the same frames.
    const parsed = parseDeliverChunk(JSON.parse(payload));
    const frames = [...chunkJobs(parsed)].map((j) => JSON.parse(Buffer.from(j.frame).toString()));
    expect(frames[0]).toEqual({
      type: 'message',
      id: 'm1',
      topic: 'doc:1',
      cursor: '2-0',
      data: JSON.parse(b),
    });
    expect(frames[1]).toEqual({
      type: 'message',
      id: 'm1',
      topic: 'doc:1',
      cursor: '2-0',
      delta: { base: '1-0' },
      data: delta,
    });
  });

  it('a batch marked delta gets whole frames when the message has no delta', async () => {
    const message = { id: 'm1', dataJson: '{"a":1}', topic: 'doc:1' };
    const chunks = [];
    for await (const c of toChunks(
      message,
      [
        {
          cursor: '2-0',
          delta: true,
          recipients: [{ connectionId: 'd', endpoint: 'https://x/y' }],
        },
      ],
      { chunkSize: 10, chunkMaxBytes: 1_000_000 },
    ))
      chunks.push(c);
    expect(chunks[0]?.jobs[0]?.delta).toBeUndefined();
    const frame = JSON.parse(
      Buffer.from([...chunkJobs(chunks[0] as (typeof chunks)[0])][0]?.frame ?? '').toString(),
    );
    expect(frame.data).toEqual({ a: 1 });
  });
});

// The library, through a fake socket (as test/unit/client.test.ts drives it).
class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  onopen: unknown = null;
  onmessage: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  readonly sent: Record<string, unknown>[] = [];
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    checkClientMessage(data);
    const { ref: _ref, ...frame } = JSON.parse(data) as Record<string, unknown>;
    this.sent.push(frame);
  }
  close(): void {}
  receive(frame: object): void {
    const text = JSON.stringify(frame);
    checkServerMessage(text);
    (this.onmessage as (e: { data: unknown }) => void)({ data: text });
  }
}
const socket = () => FakeSocket.all.at(-1) as FakeSocket;
const jwt = (sub: string) =>
  `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub })).toString('base64url')}.sig`;

async function library(withDelta = true) {
  const options: Options = {
    url: 'ws://push.test',
    token: jwt('alice'),
    WebSocket: FakeSocket,
    storage: null,
  };
  const pw = new Pushwire(withDelta ? { ...options, delta: fossilDelta } : options);
  const messages: Message[] = [];
  pw.on('message', (m) => messages.push(m));
  pw.connect();
  await vi.advanceTimersByTimeAsync(0);
  (socket().onopen as () => void)();
  socket().receive({ type: 'pong', connectionId: 'c1' });
  pw.subscribe('doc:1');
  socket().receive({
    type: 'subscribed',
    topic: 'doc:1',
    cursor: '1799999999000-0',
    delta: 'fossil',
  });
  return { pw, messages };
}

const subscribes = () => socket().sent.filter((f) => f['action'] === 'subscribe');

describe('the library with pushwire/delta', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers({ now: 1_800_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const docs = series(3).map((d) => JSON.parse(d) as unknown);
  const whole = (id: string, cursor: string, data: unknown) => ({
    type: 'message',
    id,
    topic: 'doc:1',
    cursor,
    data,
  });
  const c = (n: number) => `1800000000${String(n).padStart(3, '0')}-0`;

  it('asks for deltas and hands the app whole messages', async () => {
    const { messages } = await library();
    expect(subscribes()).toEqual([{ action: 'subscribe', topic: 'doc:1', delta: 'fossil' }]);

    socket().receive(whole('m1', c(1), docs[0]));
    socket().receive(wireFrame(docs[0], docs[1], c(1), c(2), 'm2'));
    socket().receive(wireFrame(docs[1], docs[2], c(2), c(3), 'm3'));

    expect(messages.map((m) => m.data)).toEqual(docs);
    expect(messages.map((m) => m.cursor)).toEqual([c(1), c(2), c(3)]);
    expect(messages.every((m) => !('delta' in m))).toBe(true);
  });

  it('a delta against a base it does not hold: nothing handed over, the message fetched whole', async () => {
    const { messages } = await library();
    socket().receive(whole('m1', c(1), docs[0]));

    // The base the server names is not the last message this library has.
    const mismatch = wireFrame(docs[0], docs[1], c(0), c(2), 'm2');
    socket().receive(mismatch);

    expect(messages).toHaveLength(1);
    const refetch = subscribes().at(-1);
    expect(refetch).toMatchObject({ action: 'subscribe', topic: 'doc:1', delta: 'fossil' });
    expect(typeof refetch?.['since']).toBe('string');
    // The replay brings it whole (and m1 again, dropped as a duplicate).
    socket().receive({ type: 'subscribed', topic: 'doc:1', delta: 'fossil' });
    socket().receive({
      type: 'batch',
      messages: [whole('m1', c(1), docs[0]), whole('m2', c(2), docs[1])],
    });
    socket().receive({ type: 'resumed', topic: 'doc:1', recovered: true });
    expect(messages.map((m) => [m.id, m.data])).toEqual([
      ['m1', docs[0]],
      ['m2', docs[1]],
    ]);
    // And the next delta applies against it.
    socket().receive(wireFrame(docs[1], docs[2], c(2), c(3), 'm3'));
    expect(messages.at(-1)?.data).toEqual(docs[2]);
  });

  it('a corrupt delta is never handed over: the library refetches', async () => {
    const { messages } = await library();
    socket().receive(whole('m1', c(1), docs[0]));
    const corrupt = wireFrame(docs[0], docs[1], c(1), c(2), 'm2');
    corrupt.data = (corrupt.data as string).replace(/.$/, '#');
    const before = subscribes().length;

    socket().receive(corrupt);

    expect(messages).toHaveLength(1);
    expect(subscribes()).toHaveLength(before + 1);
  });

  it('one fetch at a time: deltas refused while the replay runs are fetched once, after its resumed', async () => {
    const { messages } = await library();
    socket().receive(whole('m1', c(1), docs[0]));
    socket().receive(wireFrame(docs[0], docs[1], c(0), c(2), 'm2'));
    const fetches = subscribes().length;

    // The replay has not ended: more deltas it cannot apply send nothing more.
    socket().receive(wireFrame(docs[1], docs[2], c(2), c(3), 'm3'));
    socket().receive(wireFrame(docs[1], docs[2], c(2), c(3), 'm3'));
    expect(subscribes()).toHaveLength(fetches);

    // The replay brings m2; m3 came live at its end (PW-R7): one more fetch.
    socket().receive(whole('m2', c(2), docs[1]));
    socket().receive({ type: 'resumed', topic: 'doc:1', recovered: true });
    expect(subscribes()).toHaveLength(fetches + 1);
    socket().receive(whole('m3', c(3), docs[2]));
    socket().receive({ type: 'resumed', topic: 'doc:1', recovered: true });
    expect(subscribes()).toHaveLength(fetches + 1);
    expect(messages.map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
  });

  it('without pushwire/delta it asks for none, and drops (and refetches) a delta frame', async () => {
    const { messages } = await library(false);
    expect(subscribes()[0]).toEqual({ action: 'subscribe', topic: 'doc:1' });
    socket().receive(whole('m1', c(1), docs[0]));
    socket().receive(wireFrame(docs[0], docs[1], c(1), c(2), 'm2'));
    expect(messages).toHaveLength(1);
    expect(subscribes()).toHaveLength(2);
  });
});
