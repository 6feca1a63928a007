import pMap from 'p-map';
import * as v from 'valibot';
import { MAX_MESSAGE_BYTES } from '../constants.js';
import { ValidationError } from '../errors.js';
import { defaultSleep } from '../gateway/gateway.js';
import { describeIssues } from '../protocol/frames.js';
import type { Recipient } from '../registry/keys.js';
import {
  addReports,
  type DeliveryJob,
  type DeliveryReport,
  deliver,
  emptyReport,
  type FanoutDeps,
  logFailures,
} from './fanout.js';
import { type MessageMeta, messageHead, metaFields } from './frame.js';
import { PART_BYTES, partFrames } from './parts.js';

/**
 * The message one publish sends. Every frame of it carries this id, data and
 * topic; only the cursor differs, one per history stream (a `userIds` publish
 * stores the message in each user's stream).
 */
export interface Message extends MessageMeta {
  id: string;
  /** `data` as JSON text, serialised once per publish. */
  dataJson: string;
  topic?: string;
  /**
   * A whole frame as JSON text, sent as it is instead of a message frame
   * (presence events: join, leave, presence_diff). Never stored, no cursor.
   */
  frame?: string;
  /**
   * A delta topic's message as a fossil delta (lib/delivery/delta.ts):
   * `base`, the cursor of the entry it applies to; `data`, the delta text.
   * Sent to the jobs marked `delta`; everyone else gets the whole message.
   */
  delta?: { base: string; data: string };
}

/** Who gets the message, with the cursor their frame carries: the unit a publish produces. */
export interface Batch {
  cursor?: string | undefined;
  recipients: Recipient[];
  /** These recipients get the message's delta (PW-D3) instead of the whole message. */
  delta?: true;
}

/** Recipients of one cursor inside a chunk; tuples keep the payload small. */
export interface ChunkJob {
  cursor?: string;
  /** These recipients get the delta frame (see Message.delta). */
  delta?: true;
  recipients: [connectionId: string, endpoint: string][];
}

/**
 * What one `deliver` worker invocation receives: the message once, then the
 * recipients by cursor; the worker rebuilds each frame. A `userIds` publish of
 * a 120 KB message to 2,000 users is one copy of the data and 2,000 cursors,
 * not 2,000 frames.
 */
export interface DeliverChunk {
  message: Message;
  jobs: ChunkJob[];
}

export interface SizedChunk extends DeliverChunk {
  /** Recipients in the chunk. */
  size: number;
  /** Bytes of serializeChunk(chunk): what Lambda counts against its invoke payload limit. */
  bytes: number;
}

/** Runs a serialised chunk in a `deliver` worker and answers its report. */
export type ChunkInvoker = (payload: string) => Promise<DeliveryReport>;

export interface ChunkLimits {
  /** Most recipients per chunk (FANOUT_CHUNK). */
  chunkSize: number;
  /** Most bytes per serialised chunk (FANOUT_CHUNK_MAX_BYTES; Lambda's sync invoke limit is 6 MB). */
  chunkMaxBytes: number;
}

export interface DispatchDeps extends FanoutDeps, ChunkLimits {
  parallelChunks: number;
  /** Attempts at a chunk in a worker before it is delivered here instead (DELIVER_ATTEMPTS). */
  deliverAttempts: number;
  /** Runs a chunk in a `deliver` worker; when absent, chunks are delivered in-process. */
  invokeChunk?: ChunkInvoker;
  /** Waits between worker attempts; tests hand in their own. */
  sleep?: (ms: number) => Promise<void>;
}

export interface DispatchResult extends DeliveryReport {
  recipients: number;
  /** Chunks handed to `deliver` workers (0 when delivered in-process). */
  chunks: number;
}

const bytes = (text: string) => Buffer.byteLength(text);

function header(message: Message): string {
  const topic = message.topic === undefined ? '' : `,"topic":${JSON.stringify(message.topic)}`;
  const frame = message.frame === undefined ? '' : `,"frame":${message.frame}`;
  const delta = message.delta === undefined ? '' : `,"delta":${JSON.stringify(message.delta)}`;
  return `{"message":{"id":${JSON.stringify(message.id)}${topic}${metaFields(message)}${frame}${delta},"data":${message.dataJson}},"jobs":[`;
}

function jobOpening(cursor: string | undefined, delta?: true): string {
  return `{${cursor === undefined ? '' : `"cursor":${JSON.stringify(cursor)},`}${delta ? '"delta":true,' : ''}"recipients":[`;
}

/**
 * A delta message frame (docs/protocol.md PW-D3): the message frame with
 * `delta: {base}` and the delta text as `data`.
 */
export function deltaFrame(message: Message, cursor: string | undefined): string {
  const { id, topic, delta } = message;
  return (
    `{"type":"message","id":${JSON.stringify(id)}` +
    (topic === undefined ? '' : `,"topic":${JSON.stringify(topic)}`) +
    (cursor ? `,"cursor":${JSON.stringify(cursor)}` : '') +
    metaFields(message) +
    `,"delta":{"base":${JSON.stringify(delta?.base)}},"data":${JSON.stringify(delta?.data)}}`
  );
}

/**
 * The invoke payload of a chunk. The data is embedded as the JSON text it
 * already is (not as a string, which would escape every quote in it).
 */
export function serializeChunk(chunk: DeliverChunk): string {
  const job = ({ cursor, delta, recipients }: ChunkJob) =>
    `${jobOpening(cursor, delta)}${recipients.map((r) => JSON.stringify(r)).join(',')}]}`;
  return `${header(chunk.message)}${chunk.jobs.map(job).join(',')}]}`;
}

/**
 * Cuts a stream of batches into chunks of at most `chunkSize` recipients and
 * at most `chunkMaxBytes` serialised bytes, lazily. The byte count is exact
 * (tested against serializeChunk), so no chunk can outgrow Lambda's limit
 * whatever the message size, cursor count or endpoint lengths.
 */
export async function* toChunks(
  message: Message,
  source: AsyncIterable<Batch> | Iterable<Batch>,
  limits: ChunkLimits,
): AsyncGenerator<SizedChunk> {
  const base = bytes(header(message)) + 2; // + ']}'
  const fresh = (): SizedChunk => ({ message, jobs: [], size: 0, bytes: base });
  let current = fresh();
  for await (const { cursor, recipients, delta: batchDelta } of source) {
    // Only a message that has a delta sends it.
    const delta = batchDelta && message.delta ? batchDelta : undefined;
    const opening = bytes(jobOpening(cursor, delta)) + 2; // + ']}'
    let job: ChunkJob | undefined;
    for (const { connectionId, endpoint } of recipients) {
      const tuple: [string, string] = [connectionId, endpoint];
      const tupleBytes = bytes(JSON.stringify(tuple));
      // A new job costs its opening and closing, plus a comma after a previous job.
      const cost = job ? tupleBytes + 1 : tupleBytes + opening + (current.jobs.length > 0 ? 1 : 0);
      if (
        current.size > 0 &&
        (current.size >= limits.chunkSize || current.bytes + cost > limits.chunkMaxBytes)
      ) {
        yield current;
        current = fresh();
        job = undefined;
      }
      if (!job) {
        job = {
          ...(cursor !== undefined && { cursor }),
          ...(delta && { delta }),
          recipients: [],
        };
        current.jobs.push(job);
        current.bytes += opening + (current.jobs.length > 1 ? 1 : 0);
      } else {
        current.bytes += 1;
      }
      job.recipients.push(tuple);
      current.bytes += tupleBytes;
      current.size++;
      if (current.bytes > limits.chunkMaxBytes) {
        throw new Error(
          `a chunk of one recipient is ${current.bytes} bytes, over FANOUT_CHUNK_MAX_BYTES (${limits.chunkMaxBytes})`,
        );
      }
    }
  }
  if (current.size > 0) yield current;
}

/**
 * A chunk's delivery jobs, each frame built only when its turn comes (memory
 * stays bounded by the concurrency). A frame over 128 KB goes as `part`
 * frames (PW-F6), cut once per chunk: its jobs differ only in the cursor.
 */
export function* chunkJobs(chunk: DeliverChunk): Generator<DeliveryJob> {
  const { id, dataJson, topic, frame } = chunk.message;
  const tail = `,"data":${dataJson}}`;
  const tailBytes = Buffer.byteLength(tail);
  const memo = new Map<number, [number, Buffer[]]>();
  for (const { cursor, delta, recipients } of chunk.jobs) {
    const to = recipients.map(([connectionId, endpoint]) => ({ connectionId, endpoint }));
    if (frame !== undefined) {
      yield { frame: Buffer.from(frame), recipients: to };
      continue;
    }
    // A delta subscriber's frame (PW-D3); one that would not fit a message
    // goes whole (as parts), which a delta subscriber takes as well.
    if (delta && chunk.message.delta) {
      const text = deltaFrame(chunk.message, cursor);
      if (Buffer.byteLength(text) <= MAX_MESSAGE_BYTES) {
        yield { frame: Buffer.from(text), recipients: to };
        continue;
      }
    }
    const head = messageHead(id, cursor, topic, chunk.message);
    const parts =
      Buffer.byteLength(head) + tailBytes > MAX_MESSAGE_BYTES &&
      partFrames(id, head, tail, MAX_MESSAGE_BYTES, PART_BYTES, memo);
    yield parts
      ? { frame: parts[0] as Buffer, frames: parts, recipients: to }
      : { frame: Buffer.from(head + tail), recipients: to };
  }
}

/** Whether a worker's answer accounts for every recipient of its chunk exactly once. */
const accountsFor = (report: DeliveryReport, chunk: Counted) =>
  report.delivered + report.gone + report.failed === chunk.size;

/**
 * Delivers everything a publish produced. An audience that fits in one chunk
 * is delivered here, in this invocation; a larger one is streamed chunk by
 * chunk into parallel `deliver` workers, at most `parallelChunks` at a time,
 * so the publishing process never holds the whole audience.
 *
 * A worker that fails as a whole (throws, times out, answers nonsense) is
 * invoked again, up to `deliverAttempts` in all; if every attempt fails, the
 * chunk is delivered here. Re-running a chunk may post to some connections
 * twice (at-least-once; clients dedupe by message id), but only the attempt
 * that answered is counted, so every recipient is counted once and `failed`
 * is exactly the connections that did not get the message.
 */
export async function dispatch(
  message: Message,
  source: AsyncIterable<Batch> | Iterable<Batch>,
  deps: DispatchDeps,
): Promise<DispatchResult> {
  return dispatchChunks<SizedChunk>(
    toChunks(message, source, deps),
    { serialize: serializeChunk, jobs: chunkJobs },
    deps,
  );
}

/** A chunk of any kind: its recipients and serialised bytes. */
export interface Counted {
  size: number;
  bytes: number;
}

/** How to hand a kind of chunk to a worker, and to deliver it here. */
export interface ChunkKind<C extends Counted> {
  serialize(chunk: C): string;
  jobs(chunk: C): Iterable<DeliveryJob>;
  /** Checks a worker's answer beyond its counts, and takes what else it reports; throws to refuse it. */
  accept?(chunk: C, report: DeliveryReport): void;
}

/**
 * The chunks of one publish, delivered: here when there is one (or no worker
 * to hand them to), else each in a `deliver` worker, retried, and delivered
 * here when every attempt failed (see dispatch).
 */
export async function dispatchChunks<C extends Counted>(
  chunks: AsyncGenerator<C>,
  kind: ChunkKind<C>,
  deps: DispatchDeps,
): Promise<DispatchResult> {
  const first = await chunks.next();
  if (first.done) return { ...emptyReport(), recipients: 0, chunks: 0 };
  const second = await chunks.next();
  // The stream again, with the two chunks already read in front.
  async function* all(): AsyncGenerator<C> {
    yield first.value as C;
    if (second.done) return;
    yield second.value;
    yield* chunks;
  }
  const invoke = deps.invokeChunk;
  if (second.done || !invoke) {
    // One chunk, or no worker to hand chunks to (tests, benchmarks): deliver
    // here, streaming chunk after chunk through one concurrency bound.
    let recipients = 0;
    async function* jobs() {
      for await (const chunk of all()) {
        recipients += chunk.size;
        yield* kind.jobs(chunk);
      }
    }
    const report = await deliver(jobs(), deps);
    return { ...report, recipients, chunks: 0 };
  }

  const sleep = deps.sleep ?? defaultSleep;
  let total = emptyReport();
  let recipients = 0;
  let count = 0;
  await pMap(
    all(),
    async (chunk) => {
      count++;
      recipients += chunk.size;
      const payload = kind.serialize(chunk);
      let report: DeliveryReport | undefined;
      for (let attempt = 1; attempt <= deps.deliverAttempts && !report; attempt++) {
        try {
          const answer = await invoke(payload);
          if (!accountsFor(answer, chunk)) {
            throw new Error(
              `the worker accounted for ${answer.delivered + answer.gone + answer.failed} of ${chunk.size} recipients`,
            );
          }
          kind.accept?.(chunk, answer);
          report = answer;
        } catch (error) {
          deps.logger.warn('deliver worker failed', {
            attempt,
            of: deps.deliverAttempts,
            recipients: chunk.size,
            bytes: chunk.bytes,
            reason: error instanceof Error ? error.message : String(error),
          });
          if (attempt < deps.deliverAttempts) await sleep(100 * 2 ** (attempt - 1));
        }
      }
      // Every attempt failed: this invocation delivers the chunk itself, so
      // its counts are known connection by connection rather than guessed.
      report ??= await deliver(kind.jobs(chunk), deps);
      total = addReports(total, report);
    },
    { concurrency: deps.parallelChunks },
  );
  // Workers logged their own failures; this line names them for the publish.
  logFailures(deps.logger, 'publish: connections that did not get the message', total);
  return { ...total, recipients, chunks: count };
}

const DeliverEventSchema = v.object({
  message: v.object({
    id: v.pipe(v.string(), v.minLength(1)),
    topic: v.optional(v.string()),
    from: v.optional(v.string()),
    ephemeral: v.optional(v.literal(true)),
    ack: v.optional(v.literal(true)),
    frame: v.optional(v.looseObject({ type: v.picklist(['join', 'leave', 'presence_diff']) })),
    delta: v.optional(v.object({ base: v.string(), data: v.string() })),
    data: v.unknown(),
  }),
  jobs: v.array(
    v.object({
      cursor: v.optional(v.string()),
      delta: v.optional(v.literal(true)),
      recipients: v.array(
        v.tuple([v.pipe(v.string(), v.minLength(1)), v.pipe(v.string(), v.url())]),
      ),
    }),
  ),
});

/**
 * Reads a `deliver` event (the parsed payload of serializeChunk). The data is
 * serialised again once per chunk: JSON.stringify of parsed JSON.stringify
 * output gives the same text, so frames match what publish would send.
 */
export function parseDeliverChunk(input: unknown): DeliverChunk {
  const parsed = v.safeParse(DeliverEventSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid deliver event: ${describeIssues(parsed.issues)}`);
  const { message, jobs } = parsed.output;
  if (message.data === undefined) throw new ValidationError('invalid deliver event: no data');
  return {
    message: {
      id: message.id,
      dataJson: JSON.stringify(message.data),
      ...(message.topic !== undefined && { topic: message.topic }),
      ...(message.from !== undefined && { from: message.from }),
      ...(message.ephemeral && { ephemeral: true }),
      ...(message.ack && { ack: true }),
      ...(message.frame !== undefined && { frame: JSON.stringify(message.frame) }),
      ...(message.delta !== undefined && { delta: message.delta }),
    },
    jobs: jobs.map((job) => ({
      ...(job.cursor !== undefined && { cursor: job.cursor }),
      ...(job.delta && { delta: true as const }),
      recipients: job.recipients,
    })),
  };
}

/**
 * `deliver` signs its posts with its role and must not be made to sign and
 * send requests to hosts its invoker picked: every endpoint in a chunk must
 * be one `allowed` names (this API's, WS_CALLBACK_URL, the peers of
 * WS_PEERS: exactly the APIs the role may post to) or, given `known`, one the
 * registry recorded a connection with (`npm start`; WS_PEERS=account, whose
 * role may post to any API of the account). A chunk naming any other is
 * refused whole, before anything is sent.
 */
export async function checkChunkEndpoints(
  chunk: { jobs: { recipients: [string, string][] }[] },
  allowed: readonly string[],
  known?: (endpoints: readonly string[]) => Promise<boolean>,
): Promise<void> {
  const ours = new Set(allowed);
  const others = new Set<string>();
  for (const job of chunk.jobs) {
    for (const [, endpoint] of job.recipients) if (!ours.has(endpoint)) others.add(endpoint);
  }
  if (others.size > 0 && !(await known?.([...others]))) {
    throw new ValidationError(
      `invalid deliver event: a recipient's endpoint is neither this API's nor a peer's${known ? ' nor one a connection was recorded with' : ' (WS_PEERS)'}`,
    );
  }
}
