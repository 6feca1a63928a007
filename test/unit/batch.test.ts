import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../lib/constants.js';
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  parseBatchRequest,
} from '../../lib/delivery/batch.js';
import {
  type BatchMessage,
  deliverBatchChunk,
  type Group,
  packFrames,
  parseBatchChunk,
  serializeBatchChunk,
  toBatchChunks,
} from '../../lib/delivery/batch-frames.js';
import { type DeliveryJob, deliver, type FanoutDeps } from '../../lib/delivery/fanout.js';
import { messageFrame } from '../../lib/delivery/publish.js';
import { PushwireError, TooLargeError, ValidationError } from '../../lib/errors.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';

const EP = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
const BATCH_OVERHEAD = Buffer.byteLength('{"type":"batch","messages":[]}');

/** A message frame of exactly `size` bytes. */
function frameOf(id: string, size: number): string {
  const empty = messageFrame(id, '""');
  const text = messageFrame(id, JSON.stringify('x'.repeat(size - Buffer.byteLength(empty))));
  expect(Buffer.byteLength(text)).toBe(size);
  return text;
}

const parsed = (frame: string) =>
  JSON.parse(frame) as { type: string; id?: string; messages?: { id: string }[] };
const idsIn = (frames: string[]) =>
  frames.flatMap((f) => {
    const p = parsed(f);
    return p.type === 'batch' ? (p.messages ?? []).map((m) => m.id) : [p.id as string];
  });

describe('packFrames', () => {
  it('sends a lone message as its plain frame', () => {
    const only = frameOf('a', 500);
    expect(packFrames([only])).toEqual([only]);
  });

  it('fills a batch frame to exactly 128 KB, and starts another at one byte over', () => {
    // Two messages that, with the batch envelope and one comma, make exactly MAX_MESSAGE_BYTES.
    const first = frameOf('a', 60_000);
    const exact = MAX_MESSAGE_BYTES - BATCH_OVERHEAD - 1 - 60_000;
    const fits = packFrames([first, frameOf('b', exact)]);
    expect(fits).toHaveLength(1);
    expect(Buffer.byteLength(fits[0] as string)).toBe(MAX_MESSAGE_BYTES);
    expect(idsIn(fits)).toEqual(['a', 'b']);

    const over = packFrames([first, frameOf('b', exact + 1), frameOf('c', 100)]);
    // a alone (plain), then b and c together: order kept, nothing over the limit.
    expect(over).toHaveLength(2);
    expect(parsed(over[0] as string).type).toBe('message');
    expect(idsIn(over)).toEqual(['a', 'b', 'c']);
    for (const f of over) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  });

  it('carries a message of exactly 128 KB alone, and refuses one byte more', () => {
    const full = frameOf('big', MAX_MESSAGE_BYTES);
    expect(packFrames([frameOf('a', 100), full, frameOf('b', 100)])).toEqual([
      frameOf('a', 100),
      full,
      frameOf('b', 100),
    ]);
    expect(() => packFrames([frameOf('big', MAX_MESSAGE_BYTES + 1)])).toThrow(
      /cannot be delivered/,
    );
  });

  it('puts at most 100 messages in a frame and keeps their order', () => {
    const texts = Array.from({ length: 230 }, (_, i) => frameOf(`m${i}`, 200));
    const frames = packFrames(texts);
    expect(frames.map((f) => parsed(f).messages?.length ?? 1)).toEqual([100, 100, 30]);
    expect(idsIn(frames)).toEqual(texts.map((_, i) => `m${i}`));
  });

  it('packs multi-byte characters by their UTF-8 bytes', () => {
    // 3 bytes each: 20,000 of them is 60,000 bytes, not 20,000.
    const wide = messageFrame('w', JSON.stringify('€'.repeat(20_000)));
    const frames = packFrames([wide, wide, wide]);
    expect(frames).toHaveLength(2);
    for (const f of frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  });
});

describe('parseBatchRequest', () => {
  const ok = { userId: 'u1', data: { a: 1 } };

  function refusal(input: unknown): PushwireError {
    try {
      parseBatchRequest(input);
    } catch (error) {
      if (error instanceof PushwireError) return error;
      throw error;
    }
    throw new Error('expected a refusal');
  }

  it('accepts up to 100 messages of mixed targets', () => {
    const messages = [
      { id: 'a', userId: 'u1', data: 1 },
      { topic: 'news', data: 2 },
      { userIds: ['u1', 'u2'], data: 3 },
      { connectionIds: ['c1='], data: 4 },
      { broadcast: true, data: 5, ephemeral: true },
      ...Array.from({ length: MAX_BATCH_MESSAGES - 5 }, () => ok),
    ];
    expect(parseBatchRequest({ messages }).messages).toHaveLength(MAX_BATCH_MESSAGES);
  });

  it.each([
    ['not an array', { messages: 'x' }, /messages must be an array/],
    ['empty', { messages: [] }, /must not be empty/],
    ['101 messages', { messages: Array(101).fill(ok) }, /101 messages; a batch holds at most 100/],
    ['a field beside messages', { messages: [ok], id: 'x' }, /unknown field "id"/],
    [
      'a bad message, by index',
      { messages: [ok, ok, { data: 1 }] },
      /^messages\[2\]: .*exactly one target/,
    ],
    [
      'a repeated id',
      { messages: [{ ...ok, id: 'x' }, ok, { ...ok, id: 'x' }] },
      /messages\[2\]: id "x" is also messages\[0\]'s/,
    ],
    [
      'more than 10,000 users in all',
      {
        messages: [
          { userIds: Array.from({ length: 6000 }, (_, i) => `a${i}`), data: 1 },
          { userIds: Array.from({ length: 5000 }, (_, i) => `b${i}`), data: 1 },
        ],
      },
      /names 11000 users and connections; at most 10000/,
    ],
  ])('refuses the whole batch: %s', (_label, input, pattern) => {
    const error = refusal(input);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(pattern);
  });

  it('refuses a message over 128 KB, and a batch over 1 MiB, as too_large', () => {
    const big = { userId: 'u1', data: 'x'.repeat(MAX_MESSAGE_BYTES) };
    const one = refusal({ messages: [ok, big] });
    expect(one).toBeInstanceOf(TooLargeError);
    expect(one.message).toMatch(/^messages\[1\]: message is \d+ bytes/);

    const part = { userId: 'u1', data: 'x'.repeat(120_000) };
    const all = refusal({ messages: Array(9).fill(part) });
    expect(all).toBeInstanceOf(TooLargeError);
    expect(all.message).toMatch(new RegExp(`a batch is at most ${MAX_BATCH_BYTES}`));
  });
});

const message = (n: number, size = 10, topic?: string): BatchMessage => ({
  n,
  id: `m${n}`,
  dataJson: JSON.stringify('d'.repeat(size)),
  ...(topic !== undefined && { topic }),
});
const recipients = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({ connectionId: `${prefix}${i}=`, endpoint: EP }));

describe('toBatchChunks', () => {
  const messages = [message(0, 100), message(1, 200, 'news'), message(2, 5000)];
  const byN = (n: number) => messages[n] as BatchMessage;

  it('counts the bytes of every chunk exactly, splits groups, and carries only the messages a chunk uses', async () => {
    const groups: Group[] = [
      {
        items: [
          { n: 0, cursor: '1-0' },
          { n: 1, cursor: '5-1' },
        ],
        recipients: recipients('a', 7),
      },
      { items: [{ n: 2 }], recipients: recipients('b', 4) },
    ];
    const chunks = [];
    for await (const c of toBatchChunks(byN, groups, { chunkSize: 5, chunkMaxBytes: 1_000_000 }))
      chunks.push(c);
    expect(chunks.map((c) => c.size)).toEqual([5, 5, 1]);
    expect(chunks.map((c) => c.batch.map((m) => m.n))).toEqual([[0, 1], [0, 1, 2], [2]]);
    for (const c of chunks) expect(c.bytes).toBe(Buffer.byteLength(serializeBatchChunk(c)));
  });

  it('cuts by bytes, and each chunk reads back as it was written', async () => {
    const groups: Group[] = [
      { items: [{ n: 2 }, { n: 0, cursor: '17-3' }], recipients: recipients('c', 30) },
      { items: [{ n: 1, cursor: '18-0' }], recipients: recipients('d', 20) },
    ];
    const limit = 8_000;
    const chunks = [];
    for await (const c of toBatchChunks(byN, groups, { chunkSize: 1000, chunkMaxBytes: limit }))
      chunks.push(c);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.reduce((s, c) => s + c.size, 0)).toBe(50);
    for (const c of chunks) {
      const text = serializeBatchChunk(c);
      expect(c.bytes).toBe(Buffer.byteLength(text));
      expect(c.bytes).toBeLessThanOrEqual(limit);
      const { size: _s, bytes: _b, ...plain } = c;
      expect(parseBatchChunk(JSON.parse(text))).toEqual(plain);
    }
  });

  it('refuses a worker chunk whose item names a message it does not carry', () => {
    expect(() =>
      parseBatchChunk({
        batch: [{ n: 0, id: 'a', data: 1 }],
        jobs: [{ items: [[1]], recipients: [['c=', EP]] }],
      }),
    ).toThrow(/no message 1/);
  });
});

/** A gateway port that records posts, and fails or finds gone what it is told to. */
class Port implements Gateway {
  readonly posts: { connectionId: string; frame: string }[] = [];
  readonly closed: string[] = [];
  failAt = new Map<string, number>();
  goneAt = new Map<string, number>();
  async post(_e: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    const k = this.posts.filter((p) => p.connectionId === connectionId).length;
    if (this.goneAt.get(connectionId) === k) return 'gone';
    if (this.failAt.get(connectionId) === k) throw new Error('boom');
    this.posts.push({ connectionId, frame: Buffer.from(data).toString() });
    return 'ok';
  }
  async close(_e: string, connectionId: string): Promise<GatewayResult> {
    this.closed.push(connectionId);
    return 'ok';
  }
}

const fanoutDeps = (gateway: Gateway): FanoutDeps => ({
  gateway,
  prune: async () => undefined,
  logger: { warn: () => undefined },
  concurrency: 4,
});

describe('deliver with several frames per connection', () => {
  it('posts them in order to each connection and counts each connection once', async () => {
    const port = new Port();
    const frames = ['f0', 'f1', 'f2'].map((f) => Buffer.from(f));
    const outcomes: string[] = [];
    const job: DeliveryJob = {
      frame: frames[0] as Uint8Array,
      frames,
      recipients: recipients('a', 3),
      tally: (o) => outcomes.push(o),
    };
    port.failAt.set('a1=', 1);
    port.goneAt.set('a2=', 2);
    const report = await deliver([job], fanoutDeps(port));
    expect(report).toMatchObject({ delivered: 1, gone: 1, failed: 1 });
    expect(outcomes.sort()).toEqual(['delivered', 'failed', 'gone']);
    expect(port.posts.filter((p) => p.connectionId === 'a0=').map((p) => p.frame)).toEqual([
      'f0',
      'f1',
      'f2',
    ]);
    // The failed one got its first frame only and is closed, so it resumes.
    expect(port.posts.filter((p) => p.connectionId === 'a1=').map((p) => p.frame)).toEqual(['f0']);
    expect(port.closed).toEqual(['a1=']);
  });

  it('counts a worker chunk per message', async () => {
    const port = new Port();
    port.goneAt.set('b1=', 0);
    const chunk = {
      batch: [message(0), message(1, 10, 'news')],
      jobs: [
        {
          items: [
            { n: 0, cursor: '1-0' },
            { n: 1, cursor: '2-0' },
          ],
          recipients: [
            ['b0=', EP],
            ['b1=', EP],
          ] as [string, string][],
        },
        { items: [{ n: 1, cursor: '2-0' }], recipients: [['b2=', EP]] as [string, string][] },
      ],
    };
    const report = await deliverBatchChunk(chunk, fanoutDeps(port));
    expect(report).toMatchObject({ delivered: 2, gone: 1, failed: 0 });
    expect(report.messages).toEqual([
      { n: 0, delivered: 1, gone: 1, failed: 0 },
      { n: 1, delivered: 2, gone: 1, failed: 0 },
    ]);
    const toB0 = parsed(port.posts.find((p) => p.connectionId === 'b0=')?.frame as string);
    expect(toB0.type).toBe('batch');
    expect(toB0.messages).toEqual([
      { type: 'message', id: 'm0', cursor: '1-0', data: 'dddddddddd' },
      { type: 'message', id: 'm1', topic: 'news', cursor: '2-0', data: 'dddddddddd' },
    ]);
    expect(parsed(port.posts.find((p) => p.connectionId === 'b2=')?.frame as string).type).toBe(
      'message',
    );
  });
});
