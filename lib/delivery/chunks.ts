import pMap from 'p-map';
import * as v from 'valibot';
import { describeIssues } from '../edge/protocol.js';
import { ValidationError } from '../errors.js';
import type { Recipient } from '../registry/keys.js';
import { addCounts, type DeliveryCounts, deliver, emptyCounts, type FanoutDeps } from './fanout.js';

/** A frame (as text) and who gets it: the unit a publish produces. */
export interface Batch {
  frame: string;
  recipients: Recipient[];
}

/**
 * What one `deliver` worker invocation receives. Recipients are tuples to keep
 * the invocation payload small: 2,000 of them stay far under Lambda's 6 MB.
 */
export interface DeliverChunk {
  jobs: { frame: string; recipients: [connectionId: string, endpoint: string][] }[];
}

export type ChunkInvoker = (chunk: DeliverChunk) => Promise<DeliveryCounts>;

export interface DispatchDeps extends FanoutDeps {
  chunkSize: number;
  parallelChunks: number;
  /** Runs a chunk in a `deliver` worker; when absent, chunks are delivered in-process. */
  invokeChunk?: ChunkInvoker;
}

export interface DispatchResult extends DeliveryCounts {
  recipients: number;
  /** Chunks handed to `deliver` workers (0 when delivered in-process). */
  chunks: number;
}

/** Cuts a stream of batches into chunks of at most `size` recipients, lazily. */
export async function* toChunks(
  source: AsyncIterable<Batch> | Iterable<Batch>,
  size: number,
): AsyncGenerator<DeliverChunk & { size: number }> {
  let current: DeliverChunk & { size: number } = { jobs: [], size: 0 };
  for await (const { frame, recipients } of source) {
    let offset = 0;
    while (offset < recipients.length) {
      const take = recipients.slice(offset, offset + size - current.size);
      offset += take.length;
      current.jobs.push({ frame, recipients: take.map((r) => [r.connectionId, r.endpoint]) });
      current.size += take.length;
      if (current.size >= size) {
        yield current;
        current = { jobs: [], size: 0 };
      }
    }
  }
  if (current.size > 0) yield current;
}

export function chunkJobs(chunk: DeliverChunk) {
  return chunk.jobs.map(({ frame, recipients }) => ({
    frame: Buffer.from(frame),
    recipients: recipients.map(([connectionId, endpoint]) => ({ connectionId, endpoint })),
  }));
}

/**
 * Delivers everything a publish produced. An audience that fits in one chunk
 * is delivered here, in this invocation; a larger one is streamed chunk by
 * chunk into parallel `deliver` workers, at most `parallelChunks` at a time,
 * so the publishing process never holds the whole audience.
 */
export async function dispatch(
  source: AsyncIterable<Batch> | Iterable<Batch>,
  deps: DispatchDeps,
): Promise<DispatchResult> {
  const chunks = toChunks(source, deps.chunkSize);
  const first = await chunks.next();
  if (first.done) return { ...emptyCounts(), recipients: 0, chunks: 0 };
  const second = await chunks.next();
  // The stream again, with the two chunks already read in front.
  async function* all(): AsyncGenerator<DeliverChunk & { size: number }> {
    yield first.value as DeliverChunk & { size: number };
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
        yield* chunkJobs(chunk);
      }
    }
    const counts = await deliver(jobs(), deps);
    return { ...counts, recipients, chunks: 0 };
  }

  let total = emptyCounts();
  let recipients = 0;
  let count = 0;
  await pMap(
    all(),
    async (chunk) => {
      count++;
      recipients += chunk.size;
      let counts: DeliveryCounts;
      try {
        counts = await invoke({ jobs: chunk.jobs });
      } catch (error) {
        // A worker that failed as a whole: we cannot know which of its posts
        // landed, so its recipients count as failed rather than retried (a
        // retry could deliver twice).
        deps.logger.warn('deliver worker failed', {
          recipients: chunk.size,
          reason: String(error),
        });
        counts = { delivered: 0, gone: 0, failed: chunk.size };
      }
      total = addCounts(total, counts);
    },
    { concurrency: deps.parallelChunks },
  );
  return { ...total, recipients, chunks: count };
}

const DeliverChunkSchema = v.object({
  jobs: v.array(
    v.object({
      frame: v.string(),
      recipients: v.array(
        v.tuple([v.pipe(v.string(), v.minLength(1)), v.pipe(v.string(), v.url())]),
      ),
    }),
  ),
});

export function parseDeliverChunk(input: unknown): DeliverChunk {
  const parsed = v.safeParse(DeliverChunkSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid deliver event: ${describeIssues(parsed.issues)}`);
  return parsed.output;
}

/**
 * `deliver` signs its posts with its role and must not be made to sign and
 * send requests to hosts its invoker picked: every endpoint in a chunk must
 * be this API's (`allowed`: WS_API_ENDPOINT, WS_CALLBACK_URL) or one the
 * registry recorded a connection with (another API sharing this Redis). A
 * chunk naming any other is refused whole, before anything is sent.
 */
export async function checkChunkEndpoints(
  chunk: DeliverChunk,
  allowed: readonly string[],
  known: (endpoints: readonly string[]) => Promise<boolean>,
): Promise<void> {
  const ours = new Set(allowed);
  const others = new Set<string>();
  for (const job of chunk.jobs) {
    for (const [, endpoint] of job.recipients) if (!ours.has(endpoint)) others.add(endpoint);
  }
  if (others.size > 0 && !(await known([...others]))) {
    throw new ValidationError(
      "invalid deliver event: a recipient's endpoint is neither this API's nor one a connection was recorded with",
    );
  }
}
