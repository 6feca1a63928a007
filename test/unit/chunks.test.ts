import {
  ApiGatewayManagementApiClient,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type Batch,
  type ChunkInvoker,
  type ChunkLimits,
  chunkJobs,
  type DeliverChunk,
  type DispatchDeps,
  dispatch,
  type Message,
  parseDeliverChunk,
  serializeChunk,
  toChunks,
} from '../../lib/delivery/chunks.js';
import type { DeliveryReport, FanoutLogger } from '../../lib/delivery/fanout.js';
import { messageFrame } from '../../lib/delivery/frame.js';
import { ValidationError } from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import type { Recipient } from '../../lib/registry/keys.js';

const EP = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
const EP_B = 'https://bbb.execute-api.us-east-1.amazonaws.com/prod';
const MSG: Message = { id: 'm1', dataJson: '{"n":1}' };
const limits = (chunkSize: number, chunkMaxBytes = 5 * 1024 * 1024): ChunkLimits => ({
  chunkSize,
  chunkMaxBytes,
});

const api = mockClient(ApiGatewayManagementApiClient);

const recipients = (prefix: string, count: number, endpoint = EP): Recipient[] =>
  Array.from({ length: count }, (_, i) => ({ connectionId: `${prefix}${i}`, endpoint }));

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

/** The (cursor, connectionId) pairs of chunks, flattened in order. */
const pairs = (chunks: DeliverChunk[]) =>
  chunks.flatMap((c) => c.jobs.flatMap((j) => j.recipients.map(([id]) => `${j.cursor}:${id}`)));

/** A worker payload read back as the `deliver` function reads it. */
const parsed = (payload: string) => parseDeliverChunk(JSON.parse(payload));
const sizeOf = (payload: string) =>
  parsed(payload).jobs.reduce((n, j) => n + j.recipients.length, 0);
const report = (delivered: number, gone = 0, failed = 0): DeliveryReport => ({
  delivered,
  gone,
  failed,
  failures: [],
});

function recordingLogger() {
  const warnings: { message: string; extra: Record<string, unknown> }[] = [];
  const logger: FanoutLogger = { warn: (message, extra) => warnings.push({ message, extra }) };
  return { logger, warnings };
}

function deps(overrides: Partial<DispatchDeps> = {}) {
  const { logger, warnings } = recordingLogger();
  const pruned: string[] = [];
  const sleeps: number[] = [];
  const base: DispatchDeps = {
    gateway: new AwsGateway({ region: 'us-east-1', sleep: async () => undefined }),
    prune: async (id) => {
      pruned.push(id);
    },
    logger,
    concurrency: 4,
    chunkSize: 3,
    chunkMaxBytes: 5 * 1024 * 1024,
    parallelChunks: 2,
    deliverAttempts: 2,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...overrides,
  };
  return { deps: base, warnings, pruned, sleeps };
}

beforeEach(() => {
  api.reset();
  api.on(PostToConnectionCommand).resolves({});
});

describe('toChunks', () => {
  it('cuts one batch into chunks of at most N recipients, in order', async () => {
    // Prepare
    const batch: Batch = { cursor: 'f', recipients: recipients('c', 7) };

    // Act
    const chunks = await collect(toChunks(MSG, [batch], limits(3)));

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([3, 3, 1]);
    expect(chunks[0]?.jobs).toEqual([
      {
        cursor: 'f',
        recipients: [
          ['c0', EP],
          ['c1', EP],
          ['c2', EP],
        ],
      },
    ]);
    expect(pairs(chunks)).toEqual(['f:c0', 'f:c1', 'f:c2', 'f:c3', 'f:c4', 'f:c5', 'f:c6']);
  });

  it('fills a chunk across batches, keeping each recipient with its own cursor', async () => {
    // Prepare
    const batches: Batch[] = [
      { cursor: 'one', recipients: recipients('a', 2) },
      { cursor: 'two', recipients: recipients('b', 3, EP_B) },
      { cursor: 'three', recipients: recipients('c', 1) },
    ];

    // Act
    const chunks = await collect(toChunks(MSG, batches, limits(4)));

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([4, 2]);
    expect(chunks[0]?.jobs.map((j) => j.cursor)).toEqual(['one', 'two']);
    expect(chunks[1]?.jobs.map((j) => j.cursor)).toEqual(['two', 'three']);
    expect(chunks[1]?.jobs[0]?.recipients).toEqual([['b2', EP_B]]);
    expect(pairs(chunks)).toEqual(['one:a0', 'one:a1', 'two:b0', 'two:b1', 'two:b2', 'three:c0']);
  });

  it('reads an async source and skips batches without recipients', async () => {
    // Prepare
    async function* source(): AsyncGenerator<Batch> {
      yield { cursor: 'x', recipients: [] };
      yield { cursor: 'y', recipients: recipients('y', 2) };
      yield { cursor: 'z', recipients: [] };
    }

    // Act
    const chunks = await collect(toChunks(MSG, source(), limits(5)));

    // Assess
    expect(chunks).toEqual([
      {
        message: MSG,
        jobs: [
          {
            cursor: 'y',
            recipients: [
              ['y0', EP],
              ['y1', EP],
            ],
          },
        ],
        size: 2,
        bytes: Buffer.byteLength(serializeChunk(chunks[0] as DeliverChunk)),
      },
    ]);
  });

  it('yields nothing for an empty source', async () => {
    // Act
    const chunks = await collect(toChunks(MSG, [], limits(5)));

    // Assess
    expect(chunks).toEqual([]);
  });

  it('makes exact chunks when the recipients are a multiple of N (no empty tail)', async () => {
    // Act
    const chunks = await collect(
      toChunks(MSG, [{ cursor: 'f', recipients: recipients('c', 6) }], limits(3)),
    );

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([3, 3]);
  });

  it('gives each chunk a size equal to the recipients it holds', async () => {
    // Prepare
    const batches: Batch[] = [
      { cursor: 'a', recipients: recipients('a', 5) },
      { cursor: 'b', recipients: recipients('b', 4) },
    ];

    // Act
    const chunks = await collect(toChunks(MSG, batches, limits(2)));

    // Assess
    for (const chunk of chunks) {
      const held = chunk.jobs.reduce((n, j) => n + j.recipients.length, 0);
      expect(chunk.size).toBe(held);
      expect(held).toBeLessThanOrEqual(2);
    }
    expect(chunks.reduce((n, c) => n + c.size, 0)).toBe(9);
  });

  it('counts the exact bytes of the serialised payload, for any message, cursors and recipients', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          id: fc.string({ minLength: 1, maxLength: 20 }),
          data: fc.jsonValue(),
          topic: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
        }),
        fc.array(
          fc.record({
            cursor: fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
            ids: fc.array(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 6 }),
          }),
          { maxLength: 6 },
        ),
        fc.integer({ min: 1, max: 5 }),
        async ({ id, data, topic }, groups, chunkSize) => {
          const message: Message = {
            id,
            dataJson: JSON.stringify(data),
            ...(topic !== undefined && { topic }),
          };
          const batches: Batch[] = groups.map((g) => ({
            cursor: g.cursor,
            recipients: g.ids.map((connectionId) => ({ connectionId, endpoint: EP })),
          }));
          const chunks = await collect(toChunks(message, batches, limits(chunkSize)));
          for (const chunk of chunks) {
            const payload = serializeChunk(chunk);
            expect(chunk.bytes).toBe(Buffer.byteLength(payload));
            // The payload is JSON the deliver function reads back into the same chunk.
            expect(parsed(payload)).toEqual({ message, jobs: chunk.jobs });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('closes a chunk before it would outgrow chunkMaxBytes, and carries the data once per chunk', async () => {
    // Prepare: a 100 KB message to 400 users, one cursor each; at most 120 KB per chunk
    const data = 'x'.repeat(100_000);
    const message: Message = { id: 'big', dataJson: JSON.stringify(data) };
    const batches: Batch[] = Array.from({ length: 400 }, (_, i) => ({
      cursor: `1732752000000-${i}`,
      recipients: recipients(`u${i}-`, 1),
    }));

    // Act
    const chunks = await collect(toChunks(message, batches, limits(1_000, 120_000)));

    // Assess
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      const payload = serializeChunk(chunk);
      expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(120_000);
      expect(payload.split(data).length - 1).toBe(1);
    }
    expect(pairs(chunks)).toEqual(batches.map((b, i) => `${b.cursor}:u${i}-0`));
  });

  it('refuses a limit too small for the message and one recipient, rather than make an oversized chunk', async () => {
    // Act
    const chunks = collect(
      toChunks(
        { id: 'm', dataJson: '"1234567890"' },
        [{ recipients: recipients('c', 1) }],
        limits(5, 40),
      ),
    );

    // Assess
    await expect(chunks).rejects.toThrow(/over FANOUT_CHUNK_MAX_BYTES \(40\)/);
  });
});

describe('serializeChunk and chunkJobs', () => {
  it('embeds the data as JSON, not as an escaped string', () => {
    // Act
    const payload = serializeChunk({
      message: { id: 'm1', dataJson: '{"q":"\\"quoted\\""}', topic: 'news' },
      jobs: [{ cursor: '5-0', recipients: [['c1', EP]] }, { recipients: [['c2', EP]] }],
    });

    // Assess
    expect(JSON.parse(payload)).toEqual({
      message: { id: 'm1', topic: 'news', data: { q: '"quoted"' } },
      jobs: [{ cursor: '5-0', recipients: [['c1', EP]] }, { recipients: [['c2', EP]] }],
    });
  });

  it('rebuilds from a payload exactly the frames publish would send', () => {
    // Prepare
    const data = { text: 'héllo "world"', n: [1, 2.5, -0, 1e21], nested: { a: null } };
    const message: Message = { id: 'm9', dataJson: JSON.stringify(data), topic: 'room:1' };
    const payload = serializeChunk({
      message,
      jobs: [{ cursor: '7-1', recipients: [['c1', EP]] }, { recipients: [['c2', EP_B]] }],
    });

    // Act
    const jobs = [...chunkJobs(parsed(payload))];

    // Assess
    expect(jobs.map((j) => Buffer.from(j.frame).toString('utf8'))).toEqual([
      messageFrame('m9', message.dataJson, '7-1', 'room:1'),
      messageFrame('m9', message.dataJson, undefined, 'room:1'),
    ]);
    expect(jobs.map((j) => j.recipients)).toEqual([
      [{ connectionId: 'c1', endpoint: EP }],
      [{ connectionId: 'c2', endpoint: EP_B }],
    ]);
  });
});

describe('dispatch', () => {
  it('delivers in-process, without invoking a worker, when the audience fits one chunk', async () => {
    // Prepare
    const invoked: string[] = [];
    const { deps: d } = deps({
      chunkSize: 5,
      invokeChunk: async (payload) => {
        invoked.push(payload);
        return report(0);
      },
    });

    // Act
    const result = await dispatch(MSG, [{ cursor: '1-0', recipients: recipients('c', 5) }], d);

    // Assess
    expect(invoked).toEqual([]);
    expect(result).toEqual({ ...report(5), recipients: 5, chunks: 0 });
    const frames = api
      .commandCalls(PostToConnectionCommand)
      .map((c) => Buffer.from(c.args[0].input.Data as Uint8Array).toString());
    expect(frames).toEqual(Array(5).fill(messageFrame('m1', '{"n":1}', '1-0')));
  });

  it('returns zero counts and posts nothing for an empty audience', async () => {
    // Prepare
    const { deps: d } = deps();

    // Act
    const result = await dispatch(MSG, [{ recipients: [] }], d);

    // Assess
    expect(result).toEqual({ ...report(0), recipients: 0, chunks: 0 });
    expect(api.send.callCount).toBe(0);
  });

  it('prunes a gone connection when delivering in-process', async () => {
    // Prepare
    api
      .on(PostToConnectionCommand, { ConnectionId: 'c1' })
      .rejects(new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } }));
    const { deps: d, pruned } = deps();

    // Act
    const result = await dispatch(MSG, [{ recipients: recipients('c', 3) }], d);

    // Assess
    expect(pruned).toEqual(['c1']);
    expect(result).toEqual({ ...report(2, 1), recipients: 3, chunks: 0 });
  });

  it('hands every chunk to a worker when the audience spans several chunks, and adds their counts', async () => {
    // Prepare
    const invoked: DeliverChunk[] = [];
    const invokeChunk: ChunkInvoker = async (payload) => {
      invoked.push(parsed(payload));
      return report(sizeOf(payload) - 1, 1);
    };
    const { deps: d } = deps({ chunkSize: 3, invokeChunk });

    // Act
    const result = await dispatch(MSG, [{ cursor: 'f', recipients: recipients('c', 8) }], d);

    // Assess
    expect(invoked).toHaveLength(3);
    expect(invoked.every((c) => c.message.id === 'm1' && c.message.dataJson === '{"n":1}')).toBe(
      true,
    );
    expect(pairs(invoked).sort()).toEqual(
      ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'].map((id) => `f:${id}`).sort(),
    );
    expect(result).toEqual({ ...report(5, 3), recipients: 8, chunks: 3 });
    expect(api.send.callCount).toBe(0);
  });

  it('runs at most parallelChunks workers at once', async () => {
    // Prepare
    let running = 0;
    let peak = 0;
    const invokeChunk: ChunkInvoker = async (payload) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return report(sizeOf(payload));
    };
    const { deps: d } = deps({ chunkSize: 2, parallelChunks: 3, invokeChunk });

    // Act
    const result = await dispatch(MSG, [{ recipients: recipients('c', 20) }], d);

    // Assess
    expect(result.chunks).toBe(10);
    expect(result.delivered).toBe(20);
    expect(peak).toBe(3);
  });

  it('streams the audience to workers instead of reading it all first', async () => {
    // Prepare: a source that counts how many batches have been read
    let read = 0;
    async function* source(): AsyncGenerator<Batch> {
      for (let i = 0; i < 20; i++) {
        read++;
        yield { recipients: recipients(`b${i}-`, 1) };
      }
    }
    const readAtInvoke: number[] = [];
    const invokeChunk: ChunkInvoker = async () => {
      readAtInvoke.push(read);
      await new Promise((resolve) => setImmediate(resolve));
      return report(1);
    };
    const { deps: d } = deps({ chunkSize: 1, parallelChunks: 2, invokeChunk });

    // Act
    const result = await dispatch(MSG, source(), d);

    // Assess: the n-th worker starts before more than n + parallelChunks batches were read
    expect(result.chunks).toBe(20);
    expect(readAtInvoke).toHaveLength(20);
    readAtInvoke.forEach((readSoFar, i) => {
      expect(readSoFar).toBeLessThanOrEqual(i + 1 + 2);
    });
  });

  it('invokes a failed worker again with the same payload and counts only the attempt that answered', async () => {
    // Prepare
    const payloads: string[] = [];
    const invokeChunk: ChunkInvoker = async (payload) => {
      payloads.push(payload);
      // The second chunk's first attempt fails after its posts may have landed.
      if (payloads.length === 2) throw new Error('worker crashed');
      return report(sizeOf(payload));
    };
    const { deps: d, warnings, sleeps } = deps({ chunkSize: 3, parallelChunks: 1, invokeChunk });

    // Act
    const result = await dispatch(MSG, [{ recipients: recipients('c', 7) }], d);

    // Assess: chunks of 3, 3, 1; every recipient counted once
    expect(result).toEqual({ ...report(7), recipients: 7, chunks: 3 });
    expect(payloads).toHaveLength(4);
    expect(payloads[2]).toBe(payloads[1]);
    expect(sleeps).toEqual([100]);
    expect(warnings).toEqual([
      {
        message: 'deliver worker failed',
        extra: {
          attempt: 1,
          of: 2,
          recipients: 3,
          bytes: Buffer.byteLength(payloads[1] as string),
          reason: 'worker crashed',
        },
      },
    ]);
    expect(api.send.callCount).toBe(0);
  });

  it('delivers a chunk here when every worker attempt failed, with exact counts', async () => {
    // Prepare: the worker always fails; c4 is gone and c5 fails for good (403)
    api
      .on(PostToConnectionCommand, { ConnectionId: 'c4' })
      .rejects(new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } }));
    api.on(PostToConnectionCommand, { ConnectionId: 'c5' }).rejects(
      Object.assign(new Error('Forbidden'), {
        name: 'ForbiddenException',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    let invocations = 0;
    const invokeChunk: ChunkInvoker = async () => {
      invocations++;
      throw new Error('Task timed out after 120.00 seconds');
    };
    const {
      deps: d,
      warnings,
      pruned,
    } = deps({
      chunkSize: 3,
      parallelChunks: 1,
      deliverAttempts: 3,
      invokeChunk,
    });

    // Act
    const result = await dispatch(MSG, [{ cursor: '1-0', recipients: recipients('c', 6) }], d);

    // Assess
    expect(invocations).toBe(6);
    expect(result).toMatchObject({ delivered: 4, gone: 1, failed: 1, recipients: 6, chunks: 2 });
    expect(result.failures).toEqual([
      { connectionId: 'c5', endpoint: EP, reason: 'ForbiddenException (HTTP 403): Forbidden' },
    ]);
    // c4 pruned as gone; c5 pruned and closed (it resumes from its cursor)
    expect(pruned.sort()).toEqual(['c4', 'c5']);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(6);
    expect(warnings.filter((w) => w.message === 'deliver worker failed')).toHaveLength(6);
    expect(warnings.at(-1)).toEqual({
      message: 'publish: connections that did not get the message',
      extra: { failed: 1, connections: result.failures },
    });
  });

  it('does not trust a worker answer that does not account for its chunk', async () => {
    // Prepare: the first answer counts 1 of 3 recipients
    let call = 0;
    const invokeChunk: ChunkInvoker = async (payload) => {
      call++;
      return call === 1 ? report(1) : report(sizeOf(payload));
    };
    const { deps: d, warnings } = deps({ chunkSize: 3, parallelChunks: 1, invokeChunk });

    // Act
    const result = await dispatch(MSG, [{ recipients: recipients('c', 4) }], d);

    // Assess
    expect(result).toMatchObject({ delivered: 4, failed: 0, recipients: 4, chunks: 2 });
    expect(warnings[0]?.extra['reason']).toBe('the worker accounted for 1 of 3 recipients');
  });

  it('delivers every chunk in-process, in turn, when there is no worker to invoke', async () => {
    // Prepare
    const { deps: d } = deps({ chunkSize: 2 });
    const batches: Batch[] = [
      { cursor: 'a', recipients: recipients('a', 3) },
      { cursor: 'b', recipients: recipients('b', 4) },
    ];

    // Act
    const result = await dispatch(MSG, batches, d);

    // Assess
    expect(result).toEqual({ ...report(7), recipients: 7, chunks: 0 });
    expect(
      api.commandCalls(PostToConnectionCommand).map((c) => c.args[0].input.ConnectionId),
    ).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'b3']);
  });
});

describe('parseDeliverChunk', () => {
  it('accepts a well-formed event and serialises its data once', () => {
    // Prepare
    const event = {
      message: { id: 'm1', topic: 'news', data: { a: [1, 'two'] } },
      jobs: [{ cursor: '1-0', recipients: [['c1', EP]] }, { recipients: [['c2', EP]] }],
    };

    // Act
    const chunk = parseDeliverChunk(event);

    // Assess
    expect(chunk).toEqual({
      message: { id: 'm1', topic: 'news', dataJson: '{"a":[1,"two"]}' },
      jobs: event.jobs,
    });
  });

  const message = { id: 'm1', data: 1 };
  it.each([
    ['no jobs field', { message }, /^invalid deliver event: jobs/],
    ['no message', { jobs: [] }, /^invalid deliver event: message/],
    ['a message without data', { message: { id: 'm1' }, jobs: [] }, /message\.data/],
    ['not an object', 'jobs', /^invalid deliver event: /],
    ['a numeric cursor', { message, jobs: [{ cursor: 1, recipients: [] }] }, /jobs\.0\.cursor/],
    [
      'an empty connection id',
      { message, jobs: [{ recipients: [['', EP]] }] },
      /jobs\.0\.recipients\.0\.0/,
    ],
    [
      'an endpoint that is not a URL',
      { message, jobs: [{ recipients: [['c1', 'not a url']] }] },
      /jobs\.0\.recipients\.0\.1: Invalid URL/,
    ],
    [
      'a recipient object instead of a tuple',
      { message, jobs: [{ recipients: [{ connectionId: 'c1', endpoint: EP }] }] },
      /jobs\.0\.recipients\.0/,
    ],
  ])('rejects %s with a ValidationError that says where', (_label, event, expected) => {
    // Act
    const parse = () => parseDeliverChunk(event);

    // Assess
    expect(parse).toThrow(ValidationError);
    expect(parse).toThrow(expected);
  });
});
