import { randomUUID } from 'node:crypto';
import pMap from 'p-map';
import { MAX_MESSAGE_BYTES, MAX_TARGETS } from '../constants.js';
import { PushwireError, TooLargeError, ValidationError } from '../errors.js';
import type { Audience, Recipient } from '../registry/keys.js';
import {
  type BatchChunkReport,
  type BatchMessage,
  batchChunkJobs,
  type Group,
  type Item,
  type SizedBatchChunk,
  serializeBatchChunk,
  toBatchChunks,
} from './batch-frames.js';
import { type ChunkKind, dispatchChunks } from './chunks.js';
import { type DeliveryCounts, emptyCounts } from './fanout.js';
import { type MessageMeta, messageFrame, metaFields } from './frame.js';
import {
  MAX_CURSOR,
  type PublishDeps,
  type PublishRequest,
  type PublishResult,
  parsePublishRequest,
} from './publish.js';

/**
 * Batch publish: `{"messages":[<publish request>, …]}`, many messages to many
 * audiences in one call. Each message is what a publish of it alone would be
 * (its own target, id and dedupe, history entry and cursor); the difference
 * is on the wire: every connection receives the messages meant for it in as
 * few WebSocket messages as the 128 KB limit allows (`batch` frames, PW-R8),
 * and connections receiving the same messages share frames built once.
 */

/** Most messages in a batch: what one `batch` frame holds (PW-R8), and 100 history appends. */
export const MAX_BATCH_MESSAGES = 100;
/**
 * Most bytes of a batch, counted as its messages' frames: 1 MiB (eight full
 * 128 KB frames to a connection that receives them all), well inside
 * Lambda's 6 MB invoke payload, the HTTP API's 10 MB, and a `deliver` chunk,
 * which carries the messages its connections receive (so never more than
 * half of FANOUT_CHUNK_MAX_BYTES: the rest is for recipients).
 */
export const MAX_BATCH_BYTES = 1024 * 1024;
/** Most users and connection ids named in a batch, all messages together (a single publish's bound). */
export const MAX_BATCH_TARGETS = MAX_TARGETS;
/**
 * Most (connection, message) pairs joined in memory to combine messages per
 * connection across audiences. Past it, an audience is streamed from Redis
 * in chunks (its messages are combined with each other, not with others').
 */
export const JOIN_LIMIT = 50_000;

export interface BatchRequest {
  messages: PublishRequest[];
}

/** One message's outcome, in the order of the request. */
export type BatchMessageResult =
  | Omit<PublishResult, 'chunks'>
  | { id: string; error: { code: string; message: string } };

export interface BatchResult {
  /** Each message's result, in request order: what a publish of it alone would answer, or its error. */
  messages: BatchMessageResult[];
  /** Connections posted to (one connection receiving five messages in one frame counts once per group). */
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  /** Chunks delivered by `deliver` workers (0: all delivered by `publish` itself). */
  chunks: number;
}

/** Whether a publish input is a batch (`{"messages":[…]}`) rather than one message. */
export const isBatchRequest = (input: unknown): boolean =>
  typeof input === 'object' && input !== null && !Array.isArray(input) && 'messages' in input;

/** A message of the batch, prepared. */
interface Slot {
  n: number;
  request: PublishRequest;
  message: BatchMessage;
  /** The history entry (null: ephemeral, or not a stream target). */
  entry: string | null;
  /** Claimed under this token (a caller-given id). */
  token?: string;
  /** The result of a duplicate, or the error: nothing is sent for it. */
  done?: BatchMessageResult;
  counts: DeliveryCounts;
  recipients: number;
  stored: boolean;
  cursor?: string;
  cursors?: Record<string, string>;
}

/**
 * Validates a whole batch before anything is stored or sent: a batch with
 * one bad message is refused whole, naming it (`messages[3]: …`), so a
 * caller never has to find out which half went out.
 */
export function parseBatchRequest(input: unknown, maxBytes = MAX_BATCH_BYTES): BatchRequest {
  if (!isBatchRequest(input)) throw new ValidationError('a batch is {"messages":[…]}');
  const extra = Object.keys(input as object).filter((k) => k !== 'messages');
  if (extra.length > 0) {
    throw new ValidationError(
      `invalid batch: unknown field ${JSON.stringify(extra[0])}; a batch is {"messages":[…]} and each message carries its own id and target`,
    );
  }
  const { messages } = input as { messages: unknown };
  if (!Array.isArray(messages))
    throw new ValidationError('invalid batch: messages must be an array of publish requests');
  if (messages.length === 0) throw new ValidationError('invalid batch: messages must not be empty');
  if (messages.length > MAX_BATCH_MESSAGES) {
    throw new ValidationError(
      `invalid batch: ${messages.length} messages; a batch holds at most ${MAX_BATCH_MESSAGES}`,
    );
  }
  const requests = messages.map((m, n) => {
    try {
      return parsePublishRequest(m);
    } catch (error) {
      throw error instanceof PushwireError
        ? new ValidationError(`messages[${n}]: ${error.message}`, error.code)
        : error;
    }
  });
  const ids = new Map<string, number>();
  let total = 0;
  let targets = 0;
  for (const [n, r] of requests.entries()) {
    // An acknowledged message schedules its own timeout and keeps ack state
    // (lib/acks/): it is published on its own, not in a batch.
    if (r.ack !== undefined) {
      throw new ValidationError(
        `messages[${n}]: ack is not allowed in a batch; publish an acknowledged message on its own`,
      );
    }
    if (r.id !== undefined) {
      const first = ids.get(r.id);
      if (first !== undefined) {
        throw new ValidationError(
          `messages[${n}]: id ${JSON.stringify(r.id)} is also messages[${first}]'s; each message needs its own id`,
        );
      }
      ids.set(r.id, n);
    }
    const size = Buffer.byteLength(
      messageFrame(
        r.id ?? '00000000-0000-0000-0000-000000000000',
        JSON.stringify(r.data),
        r.ephemeral ? undefined : MAX_CURSOR,
        r.topic,
        r.ephemeral ? { ephemeral: true } : undefined,
      ),
    );
    if (size > MAX_MESSAGE_BYTES) {
      throw new TooLargeError(
        `messages[${n}]: message is ${size} bytes as a frame; a batch message is at most ${MAX_MESSAGE_BYTES} (publish a larger one on its own)`,
      );
    }
    total += size;
    targets += r.userIds?.length ?? r.connectionIds?.length ?? (r.userId === undefined ? 0 : 1);
  }
  if (total > maxBytes) {
    throw new TooLargeError(
      `the batch is ${total} bytes as frames; a batch is at most ${maxBytes} (split it)`,
    );
  }
  if (targets > MAX_BATCH_TARGETS) {
    throw new ValidationError(
      `invalid batch: it names ${targets} users and connections; at most ${MAX_BATCH_TARGETS} in all`,
    );
  }
  return { messages: requests };
}

/** The byte bound of a batch under the chunk limit of this deployment. */
export const batchByteLimit = (chunkMaxBytes: number) =>
  Math.min(MAX_BATCH_BYTES, Math.floor(chunkMaxBytes / 2));

/**
 * Publishes a batch: validates it whole, claims each given id (a message
 * already published answers `duplicate`, one whose first attempt still runs
 * answers its `in_progress` error; neither is sent), stores each in history
 * (per stream in request order, so cursors follow it), then delivers every
 * connection its messages combined. A failure of the whole (Redis) gives
 * every claimed id back and throws, so a retry of the batch delivers.
 */
export async function publishBatch(
  input: unknown,
  deps: PublishDeps,
  /** `joinLimit`: JOIN_LIMIT, for tests of what lies past it. */
  options: { joinLimit?: number } = {},
): Promise<BatchResult> {
  const { messages } = parseBatchRequest(input, batchByteLimit(deps.chunkMaxBytes));
  const slots: Slot[] = messages.map((request, n) => {
    const id = request.id ?? randomUUID();
    const meta: MessageMeta = request.ephemeral ? { ephemeral: true } : {};
    const dataJson = JSON.stringify(request.data);
    return {
      n,
      request,
      message: {
        n,
        id,
        dataJson,
        ...(request.topic !== undefined && { topic: request.topic }),
        ...meta,
      },
      entry:
        meta.ephemeral || request.broadcast || request.connectionIds
          ? null
          : `{"id":${JSON.stringify(id)}${metaFields(meta)},"data":${dataJson}}`,
      counts: emptyCounts(),
      recipients: 0,
      stored: false,
    };
  });

  const claimed: Slot[] = [];
  const giveBack = () =>
    Promise.all(
      claimed.map((s) =>
        deps.dedup.release(s.message.id, s.token as string).catch(() => undefined),
      ),
    );
  try {
    await pMap(
      slots.filter((s) => s.request.id !== undefined),
      async (slot) => {
        const claim = await deps.dedup.claim(slot.message.id);
        if (claim.state === 'claimed') {
          slot.token = claim.token;
          claimed.push(slot);
        } else if (claim.state === 'done') {
          const first = (claim.first ?? {}) as Partial<PublishResult>;
          const { chunks: _chunks, ...rest } = { ...first };
          slot.done = { ...emptyResult(slot.message.id), ...rest, duplicate: true };
        } else {
          slot.done = {
            id: slot.message.id,
            error: {
              code: 'in_progress',
              message: `a publish with id ${JSON.stringify(slot.message.id)} is still in progress; retry later for its result`,
            },
          };
        }
      },
      // Every claim settles before a failure is thrown, so each one made is given back.
      { concurrency: 32, stopOnError: false },
    ).catch((error: unknown) => {
      throw error instanceof AggregateError ? error.errors[0] : error;
    });
    const active = slots.filter((s) => s.done === undefined);
    const totals =
      active.length > 0
        ? await run(active, slots, deps, options.joinLimit ?? JOIN_LIMIT)
        : emptyTotals();
    const results = slots.map((s) => s.done ?? resultOf(s));
    await pMap(
      claimed,
      (s) => deps.dedup.complete(s.message.id, { ...results[s.n], chunks: totals.chunks }),
      { concurrency: 32 },
    );
    return { messages: results, ...totals };
  } catch (error) {
    await giveBack();
    throw error;
  }
}

const emptyResult = (id: string): Omit<PublishResult, 'chunks'> => ({
  id,
  recipients: 0,
  delivered: 0,
  gone: 0,
  failed: 0,
  stored: false,
});

const emptyTotals = (): Omit<BatchResult, 'messages'> => ({
  recipients: 0,
  delivered: 0,
  gone: 0,
  failed: 0,
  chunks: 0,
});

function resultOf(s: Slot): Omit<PublishResult, 'chunks'> {
  return {
    id: s.message.id,
    recipients: s.recipients,
    ...s.counts,
    stored: s.stored,
    ...(s.cursor !== undefined && { cursor: s.cursor }),
    ...(s.cursors !== undefined && Object.keys(s.cursors).length > 0 && { cursors: s.cursors }),
  };
}

/** A user's or a topic's history stream and the messages of the batch stored in it, in order. */
interface Stream {
  audience: Audience;
  user?: string;
  slots: Slot[];
}

/** Messages sent to every member of an audience streamed from Redis (too large to join). */
interface Pass {
  audience: Audience | 'all';
  items: Item[];
}

/** Who receives what: each connection's messages (batch index and cursor), for audiences joined in memory. */
class Join {
  readonly byConnection = new Map<string, { endpoint: string; items: Item[] }>();
  /** Pairs still allowed (may go below 0 by a stream's later messages; then no new stream is joined). */
  left: number;

  constructor(limit: number) {
    this.left = limit;
  }

  add(recipient: Recipient, item: Item): void {
    const entry = this.byConnection.get(recipient.connectionId);
    if (entry) entry.items.push(item);
    else
      this.byConnection.set(recipient.connectionId, {
        endpoint: recipient.endpoint,
        items: [item],
      });
    this.left--;
  }

  /** Connections that receive the same items in the same order, together; the join is emptied. */
  groups(): Group[] {
    const bySignature = new Map<string, Group>();
    for (const [connectionId, { endpoint, items }] of this.byConnection) {
      items.sort((a, b) => a.n - b.n);
      const signature = items.map(({ n, cursor }) => `${n}@${cursor ?? ''}`).join(',');
      const group = bySignature.get(signature);
      if (group) group.recipients.push({ connectionId, endpoint });
      else bySignature.set(signature, { items, recipients: [{ connectionId, endpoint }] });
    }
    this.byConnection.clear();
    return [...bySignature.values()];
  }
}

async function run(
  active: Slot[],
  all: Slot[],
  deps: PublishDeps,
  joinLimit: number,
): Promise<Omit<BatchResult, 'messages'>> {
  const { registry } = deps;
  const join = new Join(joinLimit);
  const passes: Pass[] = [];

  // History streams, each with its messages in request order.
  const streams = new Map<string, Stream>();
  const streamOf = (key: string, audience: () => Audience, user?: string) => {
    let stream = streams.get(key);
    if (!stream) {
      stream = { audience: audience(), ...(user !== undefined && { user }), slots: [] };
      streams.set(key, stream);
    }
    return stream;
  };
  const broadcast: Item[] = [];
  const direct: Slot[] = [];
  for (const slot of active) {
    const r = slot.request;
    if (r.topic !== undefined) {
      const topic = r.topic;
      streamOf(`t|${topic}`, () => registry.topicAudience(topic)).slots.push(slot);
    } else if (r.userId !== undefined || r.userIds !== undefined) {
      for (const user of new Set(r.userIds ?? [r.userId as string])) {
        streamOf(`u|${user}`, () => registry.userAudience(user), user).slots.push(slot);
      }
    } else if (r.broadcast) broadcast.push({ n: slot.n });
    else direct.push(slot);
  }

  const keep = (slot: Slot, r: Recipient) => r.connectionId !== slot.request.exceptConnectionId;

  // Streams side by side; one stream's messages one after another, so their
  // cursors follow the request. The first append decides whether a stream is
  // joined (its members came inline, within what the join may still hold)
  // or streamed.
  await pMap(
    streams.values(),
    async (stream) => {
      let joined = false;
      const items: Item[] = [];
      for (const [k, slot] of stream.slots.entries()) {
        const reserve =
          k > 0 ? (joined ? deps.chunkSize : 0) : Math.max(0, Math.min(deps.chunkSize, join.left));
        if (k === 0) join.left -= reserve;
        const step = await registry.publish(
          stream.audience,
          slot.entry,
          reserve,
          slot.request.id !== undefined ? slot.message.id : undefined,
        );
        if (k === 0) {
          joined = step.members !== undefined;
          join.left += reserve;
        }
        const cursor = step.cursor || undefined;
        if (cursor !== undefined) {
          slot.stored = true;
          if (stream.user === undefined || slot.request.userId !== undefined) slot.cursor = cursor;
          else {
            slot.cursors ??= {};
            slot.cursors[stream.user] = cursor;
          }
        }
        const item: Item = cursor === undefined ? { n: slot.n } : { n: slot.n, cursor };
        if (!joined) {
          items.push(item);
          continue;
        }
        // A joined stream whose audience grew past the inline bound since its
        // first message (rare): read it whole, it is just past FANOUT_CHUNK.
        let members = step.members;
        if (members === undefined) {
          members = [];
          for await (const batch of registry.scan(stream.audience, deps.chunkSize))
            members.push(...batch);
        }
        for (const m of members) if (keep(slot, m)) join.add(m, item);
      }
      if (!joined) passes.push({ audience: stream.audience, items });
    },
    { concurrency: 32 },
  );

  // Connection ids: looked up once for the whole batch.
  if (direct.length > 0) {
    const ids = [...new Set(direct.flatMap((s) => s.request.connectionIds ?? []))];
    const found = await pMap(ids, (c) => registry.get(c), { concurrency: 64 });
    const known = new Map<string, string>();
    for (const c of found) if (c) known.set(c.connectionId, c.endpoint);
    for (const slot of direct) {
      for (const connectionId of new Set(slot.request.connectionIds)) {
        if (connectionId === slot.request.exceptConnectionId) continue;
        const endpoint = known.get(connectionId);
        // An id with no record is a connection that no longer exists: gone.
        if (endpoint === undefined) {
          slot.recipients++;
          slot.counts.gone++;
        } else join.add({ connectionId, endpoint }, { n: slot.n });
      }
    }
  }
  if (broadcast.length > 0) passes.push({ audience: 'all', items: broadcast });

  const slotOf = (n: number) => all[n] as Slot;
  /** A group leaves here: each of its messages is counted as sent to its recipients. */
  const counted = (group: Group): Group => {
    for (const { n } of group.items) slotOf(n).recipients += group.recipients.length;
    return group;
  };
  async function* groups(): AsyncGenerator<Group> {
    for (const group of join.groups()) yield counted(group);
    for (const pass of passes) {
      const excepting = pass.items.filter((i) => slotOf(i.n).request.exceptConnectionId);
      for await (const batch of registry.scan(pass.audience, deps.chunkSize)) {
        const plain: Recipient[] = [];
        for (const { connectionId, endpoint } of batch) {
          const r = { connectionId, endpoint };
          if (!excepting.some((i) => slotOf(i.n).request.exceptConnectionId === connectionId)) {
            plain.push(r);
            continue;
          }
          const items = pass.items.filter((i) => keep(slotOf(i.n), r));
          if (items.length > 0) yield counted({ items, recipients: [r] });
        }
        if (plain.length > 0) yield counted({ items: pass.items, recipients: plain });
      }
    }
  }

  const tally = (n: number, outcome: keyof DeliveryCounts) => {
    slotOf(n).counts[outcome]++;
  };
  const kind: ChunkKind<SizedBatchChunk> = {
    serialize: serializeBatchChunk,
    jobs: (chunk) => batchChunkJobs(chunk, tally),
    accept(chunk, report) {
      const { messages } = report as Partial<BatchChunkReport>;
      if (
        !Array.isArray(messages) ||
        messages.length !== chunk.batch.length ||
        messages.some((m, i) => m?.n !== chunk.batch[i]?.n)
      ) {
        throw new Error('the worker did not count each message of its batch chunk');
      }
      for (const m of messages) {
        const counts = slotOf(m.n).counts;
        counts.delivered += m.delivered;
        counts.gone += m.gone;
        counts.failed += m.failed;
      }
    },
  };
  const result = await dispatchChunks(
    toBatchChunks((n) => slotOf(n).message, groups(), deps),
    kind,
    deps,
  );
  const { failures: _failures, ...totals } = result;
  return totals;
}
