import * as v from 'valibot';
import { MAX_MESSAGE_BYTES } from '../constants.js';
import { ValidationError } from '../errors.js';
import { describeIssues } from '../protocol/frames.js';
import type { Recipient } from '../registry/keys.js';
import type { ChunkLimits, Message } from './chunks.js';
import {
  type DeliveryCounts,
  type DeliveryJob,
  type DeliveryReport,
  deliver,
  emptyCounts,
  type FanoutDeps,
} from './fanout.js';
import { messageFrame, metaFields } from './frame.js';

/**
 * A batch publish's delivery (lib/delivery/batch.ts): the frames one
 * connection receives, and the chunks `deliver` workers take. Here apart
 * from batch.ts so the `deliver` bundle carries only what it runs.
 */

/** Most messages in one `batch` frame (PW-R8). */
export const MAX_FRAME_MESSAGES = 100;

/** `{"type":"batch","messages":[` … `]}` around the messages (their commas are counted apart). */
const BATCH_OVERHEAD = Buffer.byteLength('{"type":"batch","messages":[]}');

/** A message of a batch, with its place in the batch. */
export interface BatchMessage extends Message {
  /** Its index in the batch request. */
  n: number;
}

/** One message a connection receives: which (by batch index), under which cursor. */
export interface Item {
  n: number;
  cursor?: string | undefined;
}

/** Connections that receive the same messages, in the same order, under the same cursors. */
export interface Group {
  items: Item[];
  recipients: Recipient[];
}

/**
 * Message frames packed, in order, into as few WebSocket messages as the
 * 128 KB limit (and 100 messages a frame) allows: several as one `batch`
 * frame, a lone one as its plain `message` frame. Greedy, which is the
 * fewest frames for a fixed order. Each text must fit a frame on its own
 * (publish checks every message against MAX_MESSAGE_BYTES).
 */
export function packFrames(texts: readonly string[], maxBytes = MAX_MESSAGE_BYTES): string[] {
  const out: string[] = [];
  let group: string[] = [];
  let size = BATCH_OVERHEAD;
  const flush = () => {
    if (group.length === 0) return;
    out.push(
      group.length === 1
        ? (group[0] as string)
        : `{"type":"batch","messages":[${group.join(',')}]}`,
    );
    group = [];
    size = BATCH_OVERHEAD;
  };
  for (const text of texts) {
    const bytes = Buffer.byteLength(text);
    if (bytes > maxBytes) throw new Error(`a message frame of ${bytes} bytes cannot be delivered`);
    const added = bytes + (group.length > 0 ? 1 : 0);
    if (group.length >= MAX_FRAME_MESSAGES || (group.length > 0 && size + added > maxBytes)) {
      flush();
      size += bytes;
    } else {
      size += added;
    }
    group.push(text);
  }
  flush();
  return out;
}

/** The frames of a group's items, built from the batch's messages. */
export function itemFrames(items: readonly Item[], byN: (n: number) => Message): Uint8Array[] {
  const texts = items.map(({ n, cursor }) => {
    const m = byN(n);
    return messageFrame(m.id, m.dataJson, cursor, m.topic, m);
  });
  return packFrames(texts).map((text) => Buffer.from(text));
}

/**
 * A group as a delivery job: its frames posted in order to each recipient,
 * and each recipient's outcome counted for every message it carries.
 */
export function groupJob(
  items: readonly Item[],
  recipients: Recipient[],
  byN: (n: number) => Message,
  count: (n: number, outcome: keyof DeliveryCounts) => void,
): DeliveryJob {
  const frames = itemFrames(items, byN);
  return {
    frame: frames[0] as Uint8Array,
    ...(frames.length > 1 && { frames }),
    recipients,
    tally: (outcome) => {
      for (const { n } of items) count(n, outcome);
    },
  };
}

// ---- chunks for `deliver` workers ----

/**
 * What a `deliver` worker receives for a batch: the messages its jobs use
 * (each once, data as the JSON it is) and the jobs, each a list of items and
 * its recipients. `{"batch":[{"n":0,"id":…,"data":…}],"jobs":[{"items":[[0,"<cursor>"]],"recipients":[["<id>","<endpoint>"]]}]}`
 */
export interface BatchChunk {
  batch: BatchMessage[];
  jobs: { items: Item[]; recipients: [connectionId: string, endpoint: string][] }[];
}

export interface SizedBatchChunk extends BatchChunk {
  size: number;
  bytes: number;
}

/** What a worker answers for a batch chunk: the counts, and per message (in `batch` order). */
export interface BatchChunkReport extends DeliveryReport {
  messages: (DeliveryCounts & { n: number })[];
}

const bytes = (text: string) => Buffer.byteLength(text);

const messageJson = (m: BatchMessage) => {
  const topic = m.topic === undefined ? '' : `,"topic":${JSON.stringify(m.topic)}`;
  return `{"n":${m.n},"id":${JSON.stringify(m.id)}${topic}${metaFields(m)},"data":${m.dataJson}}`;
};

const itemsJson = (items: readonly Item[]) =>
  JSON.stringify(items.map(({ n, cursor }) => (cursor === undefined ? [n] : [n, cursor])));

const jobOpening = (items: readonly Item[]) => `{"items":${itemsJson(items)},"recipients":[`;

export function serializeBatchChunk(chunk: BatchChunk): string {
  const job = (j: BatchChunk['jobs'][number]) =>
    `${jobOpening(j.items)}${j.recipients.map((r) => JSON.stringify(r)).join(',')}]}`;
  return `{"batch":[${chunk.batch.map(messageJson).join(',')}],"jobs":[${chunk.jobs.map(job).join(',')}]}`;
}

/**
 * Cuts a stream of groups into chunks of at most `chunkSize` recipients and
 * `chunkMaxBytes` serialised bytes (exact, as toChunks), each carrying the
 * messages its jobs use. A group larger than a chunk continues in the next
 * one, as another job of the same items.
 */
export async function* toBatchChunks(
  messages: (n: number) => BatchMessage,
  groups: AsyncIterable<Group> | Iterable<Group>,
  limits: ChunkLimits,
): AsyncGenerator<SizedBatchChunk> {
  const base = bytes('{"batch":[],"jobs":[]}');
  const sizes = new Map<number, number>();
  const sizeOf = (n: number) => {
    let size = sizes.get(n);
    if (size === undefined) {
      size = bytes(messageJson(messages(n)));
      sizes.set(n, size);
    }
    return size;
  };
  let current: SizedBatchChunk & { has: Set<number> };
  const fresh = () => ({ batch: [], jobs: [], size: 0, bytes: base, has: new Set<number>() });
  current = fresh();
  /** Bytes a new job of `items` adds to the current chunk: the messages it lacks, the job's frame. */
  const jobCost = (items: readonly Item[], opening: number) => {
    let cost = opening + 2 + (current.jobs.length > 0 ? 1 : 0);
    let count = current.batch.length;
    for (const { n } of items) {
      if (current.has.has(n)) continue;
      cost += sizeOf(n) + (count++ > 0 ? 1 : 0);
    }
    return cost;
  };
  const finish = (chunk: typeof current): SizedBatchChunk => {
    const { has: _has, ...rest } = chunk;
    return rest;
  };
  for await (const { items, recipients } of groups) {
    const opening = bytes(jobOpening(items));
    let job: BatchChunk['jobs'][number] | undefined;
    for (const { connectionId, endpoint } of recipients) {
      const tuple: [string, string] = [connectionId, endpoint];
      const tupleBytes = bytes(JSON.stringify(tuple));
      let cost = job ? tupleBytes + 1 : tupleBytes + jobCost(items, opening);
      if (
        current.size > 0 &&
        (current.size >= limits.chunkSize || current.bytes + cost > limits.chunkMaxBytes)
      ) {
        yield finish(current);
        current = fresh();
        job = undefined;
        cost = tupleBytes + jobCost(items, opening);
      }
      if (!job) {
        for (const { n } of items) {
          if (current.has.has(n)) continue;
          current.has.add(n);
          current.batch.push(messages(n));
        }
        job = { items: [...items], recipients: [] };
        current.jobs.push(job);
      }
      job.recipients.push(tuple);
      current.bytes += cost;
      current.size++;
      if (current.bytes > limits.chunkMaxBytes) {
        throw new Error(
          `a batch chunk of one recipient is ${current.bytes} bytes, over FANOUT_CHUNK_MAX_BYTES (${limits.chunkMaxBytes})`,
        );
      }
    }
  }
  if (current.size > 0) yield finish(current);
}

/**
 * A chunk's jobs, each group's frames built when its turn comes, counting
 * outcomes into `counts` (by batch index).
 */
export function* batchChunkJobs(
  chunk: BatchChunk,
  count: (n: number, outcome: keyof DeliveryCounts) => void,
): Generator<DeliveryJob> {
  const byN = new Map(chunk.batch.map((m) => [m.n, m]));
  const get = (n: number) => byN.get(n) as BatchMessage;
  for (const { items, recipients } of chunk.jobs) {
    yield groupJob(
      items,
      recipients.map(([connectionId, endpoint]) => ({ connectionId, endpoint })),
      get,
      count,
    );
  }
}

const Index = v.pipe(v.number(), v.integer(), v.minValue(0));

const BatchChunkSchema = v.strictObject({
  batch: v.pipe(
    v.array(
      v.object({
        n: Index,
        id: v.pipe(v.string(), v.minLength(1)),
        topic: v.optional(v.string()),
        from: v.optional(v.string()),
        ephemeral: v.optional(v.literal(true)),
        data: v.unknown(),
      }),
    ),
    v.minLength(1),
  ),
  jobs: v.array(
    v.object({
      items: v.pipe(
        v.array(
          // Strict: a plain tuple would match [n, cursor] as [n] and drop the cursor.
          v.union([
            v.strictTuple([Index]),
            v.strictTuple([Index, v.pipe(v.string(), v.minLength(1))]),
          ]),
        ),
        v.minLength(1),
      ),
      recipients: v.array(
        v.tuple([v.pipe(v.string(), v.minLength(1)), v.pipe(v.string(), v.url())]),
      ),
    }),
  ),
});

/** Whether a `deliver` event is a batch chunk (it has `batch`, a single message's has `message`). */
export const isBatchChunk = (input: unknown): boolean =>
  typeof input === 'object' && input !== null && 'batch' in input;

/** Reads a batch chunk (the parsed payload of serializeBatchChunk); every item must name a message it carries. */
export function parseBatchChunk(input: unknown): BatchChunk {
  const parsed = v.safeParse(BatchChunkSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid deliver event: ${describeIssues(parsed.issues)}`);
  const batch: BatchMessage[] = parsed.output.batch.map((m) => {
    if (m.data === undefined) throw new ValidationError('invalid deliver event: no data');
    return {
      n: m.n,
      id: m.id,
      dataJson: JSON.stringify(m.data),
      ...(m.topic !== undefined && { topic: m.topic }),
      ...(m.from !== undefined && { from: m.from }),
      ...(m.ephemeral && { ephemeral: true }),
    };
  });
  const known = new Set(batch.map((m) => m.n));
  if (known.size !== batch.length) throw new ValidationError('invalid deliver event: repeated n');
  const jobs = parsed.output.jobs.map((job) => ({
    items: job.items.map(([n, cursor]) => {
      if (!known.has(n)) throw new ValidationError(`invalid deliver event: no message ${n}`);
      return cursor === undefined ? { n } : { n, cursor };
    }),
    recipients: job.recipients,
  }));
  return { batch, jobs };
}

/** A `deliver` worker's work on a batch chunk: its report, with the counts of each message. */
export async function deliverBatchChunk(
  chunk: BatchChunk,
  deps: FanoutDeps,
): Promise<BatchChunkReport> {
  const counts = new Map(chunk.batch.map((m) => [m.n, emptyCounts()]));
  const report = await deliver(
    batchChunkJobs(chunk, (n, outcome) => {
      const c = counts.get(n);
      if (c) c[outcome]++;
    }),
    deps,
  );
  return { ...report, messages: [...counts].map(([n, c]) => ({ n, ...c })) };
}
