import {
  ApiGatewayManagementApiClient,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type Batch,
  type ChunkInvoker,
  chunkJobs,
  type DeliverChunk,
  type DispatchDeps,
  dispatch,
  parseDeliverChunk,
  toChunks,
} from '../../lib/delivery/chunks.js';
import type { FanoutLogger } from '../../lib/delivery/fanout.js';
import { ValidationError } from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import type { Recipient } from '../../lib/registry/keys.js';

const EP = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
const EP_B = 'https://bbb.execute-api.us-east-1.amazonaws.com/prod';

const api = mockClient(ApiGatewayManagementApiClient);

const recipients = (prefix: string, count: number, endpoint = EP): Recipient[] =>
  Array.from({ length: count }, (_, i) => ({ connectionId: `${prefix}${i}`, endpoint }));

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

/** The (frame, connectionId) pairs of chunks, flattened in order. */
const pairs = (chunks: DeliverChunk[]) =>
  chunks.flatMap((c) => c.jobs.flatMap((j) => j.recipients.map(([id]) => `${j.frame}:${id}`)));

function recordingLogger() {
  const warnings: { message: string; extra: Record<string, unknown> }[] = [];
  const logger: FanoutLogger = { warn: (message, extra) => warnings.push({ message, extra }) };
  return { logger, warnings };
}

function deps(overrides: Partial<DispatchDeps> = {}) {
  const { logger, warnings } = recordingLogger();
  const pruned: string[] = [];
  const base: DispatchDeps = {
    gateway: new AwsGateway({ region: 'us-east-1', sleep: async () => undefined }),
    prune: async (id) => {
      pruned.push(id);
    },
    logger,
    concurrency: 4,
    chunkSize: 3,
    parallelChunks: 2,
    ...overrides,
  };
  return { deps: base, warnings, pruned };
}

beforeEach(() => {
  api.reset();
  api.on(PostToConnectionCommand).resolves({});
});

describe('toChunks', () => {
  it('cuts one batch into chunks of at most N recipients, in order', async () => {
    // Prepare
    const batch: Batch = { frame: 'f', recipients: recipients('c', 7) };

    // Act
    const chunks = await collect(toChunks([batch], 3));

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([3, 3, 1]);
    expect(chunks[0]?.jobs).toEqual([
      {
        frame: 'f',
        recipients: [
          ['c0', EP],
          ['c1', EP],
          ['c2', EP],
        ],
      },
    ]);
    expect(pairs(chunks)).toEqual(['f:c0', 'f:c1', 'f:c2', 'f:c3', 'f:c4', 'f:c5', 'f:c6']);
  });

  it('fills a chunk across batches, keeping each recipient with its own frame', async () => {
    // Prepare
    const batches: Batch[] = [
      { frame: 'one', recipients: recipients('a', 2) },
      { frame: 'two', recipients: recipients('b', 3, EP_B) },
      { frame: 'three', recipients: recipients('c', 1) },
    ];

    // Act
    const chunks = await collect(toChunks(batches, 4));

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([4, 2]);
    expect(chunks[0]?.jobs.map((j) => j.frame)).toEqual(['one', 'two']);
    expect(chunks[1]?.jobs.map((j) => j.frame)).toEqual(['two', 'three']);
    expect(chunks[1]?.jobs[0]?.recipients).toEqual([['b2', EP_B]]);
    expect(pairs(chunks)).toEqual(['one:a0', 'one:a1', 'two:b0', 'two:b1', 'two:b2', 'three:c0']);
  });

  it('reads an async source and skips batches without recipients', async () => {
    // Prepare
    async function* source(): AsyncGenerator<Batch> {
      yield { frame: 'x', recipients: [] };
      yield { frame: 'y', recipients: recipients('y', 2) };
      yield { frame: 'z', recipients: [] };
    }

    // Act
    const chunks = await collect(toChunks(source(), 5));

    // Assess
    expect(chunks).toEqual([
      {
        jobs: [
          {
            frame: 'y',
            recipients: [
              ['y0', EP],
              ['y1', EP],
            ],
          },
        ],
        size: 2,
      },
    ]);
  });

  it('yields nothing for an empty source', async () => {
    // Act
    const chunks = await collect(toChunks([], 5));

    // Assess
    expect(chunks).toEqual([]);
  });

  it('makes exact chunks when the recipients are a multiple of N (no empty tail)', async () => {
    // Act
    const chunks = await collect(toChunks([{ frame: 'f', recipients: recipients('c', 6) }], 3));

    // Assess
    expect(chunks.map((c) => c.size)).toEqual([3, 3]);
  });

  it('gives each chunk a size equal to the recipients it holds', async () => {
    // Prepare
    const batches: Batch[] = [
      { frame: 'a', recipients: recipients('a', 5) },
      { frame: 'b', recipients: recipients('b', 4) },
    ];

    // Act
    const chunks = await collect(toChunks(batches, 2));

    // Assess
    for (const chunk of chunks) {
      const held = chunk.jobs.reduce((n, j) => n + j.recipients.length, 0);
      expect(chunk.size).toBe(held);
      expect(held).toBeLessThanOrEqual(2);
    }
    expect(chunks.reduce((n, c) => n + c.size, 0)).toBe(9);
  });
});

describe('chunkJobs', () => {
  it('turns a chunk back into delivery jobs with byte frames and recipient objects', () => {
    // Act
    const jobs = chunkJobs({ jobs: [{ frame: 'héllo', recipients: [['c1', EP]] }] });

    // Assess
    expect(jobs).toHaveLength(1);
    expect(Buffer.from(jobs[0]?.frame ?? []).toString('utf8')).toBe('héllo');
    expect(jobs[0]?.recipients).toEqual([{ connectionId: 'c1', endpoint: EP }]);
  });
});

describe('dispatch', () => {
  it('delivers in-process, without invoking a worker, when the audience fits one chunk', async () => {
    // Prepare
    const invoked: DeliverChunk[] = [];
    const { deps: d } = deps({
      chunkSize: 5,
      invokeChunk: async (chunk) => {
        invoked.push(chunk);
        return { delivered: 0, gone: 0, failed: 0 };
      },
    });

    // Act
    const result = await dispatch([{ frame: 'f', recipients: recipients('c', 5) }], d);

    // Assess
    expect(invoked).toEqual([]);
    expect(result).toEqual({ delivered: 5, gone: 0, failed: 0, recipients: 5, chunks: 0 });
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(5);
  });

  it('returns zero counts and posts nothing for an empty audience', async () => {
    // Prepare
    const { deps: d } = deps();

    // Act
    const result = await dispatch([{ frame: 'f', recipients: [] }], d);

    // Assess
    expect(result).toEqual({ delivered: 0, gone: 0, failed: 0, recipients: 0, chunks: 0 });
    expect(api.send.callCount).toBe(0);
  });

  it('prunes a gone connection when delivering in-process', async () => {
    // Prepare
    api
      .on(PostToConnectionCommand, { ConnectionId: 'c1' })
      .rejects(new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } }));
    const { deps: d, pruned } = deps();

    // Act
    const result = await dispatch([{ frame: 'f', recipients: recipients('c', 3) }], d);

    // Assess
    expect(pruned).toEqual(['c1']);
    expect(result).toEqual({ delivered: 2, gone: 1, failed: 0, recipients: 3, chunks: 0 });
  });

  it('hands every chunk to a worker when the audience spans several chunks, and adds their counts', async () => {
    // Prepare
    const invoked: DeliverChunk[] = [];
    const invokeChunk: ChunkInvoker = async (chunk) => {
      invoked.push(chunk);
      const n = chunk.jobs.reduce((sum, j) => sum + j.recipients.length, 0);
      return { delivered: n - 1, gone: 1, failed: 0 };
    };
    const { deps: d } = deps({ chunkSize: 3, invokeChunk });

    // Act
    const result = await dispatch([{ frame: 'f', recipients: recipients('c', 8) }], d);

    // Assess
    expect(invoked).toHaveLength(3);
    expect(pairs(invoked).sort()).toEqual(
      ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'].map((id) => `f:${id}`).sort(),
    );
    expect(result).toEqual({ delivered: 5, gone: 3, failed: 0, recipients: 8, chunks: 3 });
    expect(api.send.callCount).toBe(0);
  });

  it('sends workers only the jobs, not the internal size field', async () => {
    // Prepare
    const invoked: DeliverChunk[] = [];
    const { deps: d } = deps({
      chunkSize: 1,
      invokeChunk: async (chunk) => {
        invoked.push(chunk);
        return { delivered: 1, gone: 0, failed: 0 };
      },
    });

    // Act
    await dispatch([{ frame: 'f', recipients: recipients('c', 2) }], d);

    // Assess
    expect(invoked).toEqual([
      { jobs: [{ frame: 'f', recipients: [['c0', EP]] }] },
      { jobs: [{ frame: 'f', recipients: [['c1', EP]] }] },
    ]);
  });

  it('runs at most parallelChunks workers at once', async () => {
    // Prepare
    let running = 0;
    let peak = 0;
    const invokeChunk: ChunkInvoker = async (chunk) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return { delivered: chunk.jobs[0]?.recipients.length ?? 0, gone: 0, failed: 0 };
    };
    const { deps: d } = deps({ chunkSize: 2, parallelChunks: 3, invokeChunk });

    // Act
    const result = await dispatch([{ frame: 'f', recipients: recipients('c', 20) }], d);

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
        yield { frame: 'f', recipients: recipients(`b${i}-`, 1) };
      }
    }
    const readAtInvoke: number[] = [];
    const invokeChunk: ChunkInvoker = async () => {
      readAtInvoke.push(read);
      await new Promise((resolve) => setImmediate(resolve));
      return { delivered: 1, gone: 0, failed: 0 };
    };
    const { deps: d } = deps({ chunkSize: 1, parallelChunks: 2, invokeChunk });

    // Act
    const result = await dispatch(source(), d);

    // Assess: the n-th worker starts before more than n + parallelChunks batches were read
    expect(result.chunks).toBe(20);
    expect(readAtInvoke).toHaveLength(20);
    readAtInvoke.forEach((readSoFar, i) => {
      expect(readSoFar).toBeLessThanOrEqual(i + 1 + 2);
    });
  });

  it("counts a failed worker's recipients as failed, logs it, and keeps the other workers' counts", async () => {
    // Prepare
    let call = 0;
    const invokeChunk: ChunkInvoker = async (chunk) => {
      call++;
      if (call === 2) throw new Error('worker crashed');
      return { delivered: chunk.jobs[0]?.recipients.length ?? 0, gone: 0, failed: 0 };
    };
    const { deps: d, warnings } = deps({ chunkSize: 3, parallelChunks: 1, invokeChunk });

    // Act
    const result = await dispatch([{ frame: 'f', recipients: recipients('c', 7) }], d);

    // Assess: chunks of 3, 3, 1; the second one failed
    expect(result).toEqual({ delivered: 4, gone: 0, failed: 3, recipients: 7, chunks: 3 });
    expect(warnings).toEqual([
      {
        message: 'deliver worker failed',
        extra: { recipients: 3, reason: 'Error: worker crashed' },
      },
    ]);
  });

  it('delivers every chunk in-process, in turn, when there is no worker to invoke', async () => {
    // Prepare
    const { deps: d } = deps({ chunkSize: 2 });
    const batches: Batch[] = [
      { frame: 'a', recipients: recipients('a', 3) },
      { frame: 'b', recipients: recipients('b', 4) },
    ];

    // Act
    const result = await dispatch(batches, d);

    // Assess
    expect(result).toEqual({ delivered: 7, gone: 0, failed: 0, recipients: 7, chunks: 0 });
    expect(
      api.commandCalls(PostToConnectionCommand).map((c) => c.args[0].input.ConnectionId),
    ).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'b3']);
  });
});

describe('parseDeliverChunk', () => {
  it('accepts a well-formed chunk and returns it', () => {
    // Prepare
    const event = { jobs: [{ frame: '{"type":"message"}', recipients: [['c1', EP]] }] };

    // Act
    const chunk = parseDeliverChunk(event);

    // Assess
    expect(chunk).toEqual(event);
  });

  it.each([
    ['no jobs field', {}, /^invalid deliver event: jobs/],
    ['not an object', 'jobs', /^invalid deliver event: /],
    ['a numeric frame', { jobs: [{ frame: 1, recipients: [] }] }, /jobs\.0\.frame/],
    [
      'an empty connection id',
      { jobs: [{ frame: 'f', recipients: [['', EP]] }] },
      /jobs\.0\.recipients\.0\.0/,
    ],
    [
      'an endpoint that is not a URL',
      { jobs: [{ frame: 'f', recipients: [['c1', 'not a url']] }] },
      /jobs\.0\.recipients\.0\.1: Invalid URL/,
    ],
    [
      'a recipient object instead of a tuple',
      { jobs: [{ frame: 'f', recipients: [{ connectionId: 'c1', endpoint: EP }] }] },
      /jobs\.0\.recipients\.0/,
    ],
  ])('rejects %s with a ValidationError that says where', (_label, event, message) => {
    // Act
    const parse = () => parseDeliverChunk(event);

    // Assess
    expect(parse).toThrow(ValidationError);
    expect(parse).toThrow(message);
  });
});
