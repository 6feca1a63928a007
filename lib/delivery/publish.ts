import { randomUUID } from 'node:crypto';
import pMap from 'p-map';
import * as v from 'valibot';
import { type AckOption, AckOptionSchema } from '../acks/options.js';
import type { AckTimeoutMessage } from '../acks/queue.js';
import type { OpenAck } from '../acks/store.js';
import { MAX_TARGETS } from '../constants.js';
import { PublishInProgressError, TooLargeError, ValidationError } from '../errors.js';
import { describeIssues, Topic, UserId } from '../protocol/frames.js';
import type { Audience, Recipient } from '../registry/keys.js';
import type { ConnectionRegistry } from '../registry/types.js';
import {
  type Batch,
  type DispatchDeps,
  type DispatchResult,
  dispatch,
  type Message,
} from './chunks.js';
import type { DedupStore } from './dedup.js';
import { type MessageMeta, messageFrame, metaFields } from './frame.js';

export { messageFrame };

const ConnectionId = v.pipe(
  v.string('connection ids are strings'),
  v.minLength(1),
  v.maxLength(128),
  v.regex(/^[^|\s]+$/),
);
const targets = ['userId', 'userIds', 'connectionIds', 'topic', 'broadcast'] as const;

const PublishRequestSchema = v.pipe(
  v.strictObject(
    {
      id: v.optional(
        v.pipe(
          v.string('id must be a string'),
          v.regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'id must be 1-128 characters of A-Z a-z 0-9 _ . : -'),
        ),
      ),
      userId: v.optional(UserId),
      userIds: v.optional(
        v.pipe(
          v.array(UserId),
          v.minLength(1, 'userIds must not be empty'),
          v.maxLength(MAX_TARGETS),
        ),
      ),
      connectionIds: v.optional(
        v.pipe(
          v.array(ConnectionId),
          v.minLength(1, 'connectionIds must not be empty'),
          v.maxLength(MAX_TARGETS),
        ),
      ),
      topic: v.optional(Topic),
      broadcast: v.optional(v.literal(true, 'broadcast must be true when given')),
      exceptConnectionId: v.optional(ConnectionId),
      ephemeral: v.optional(v.boolean('ephemeral must be true or false')),
      /** Acknowledged message (issue 18, docs/acks.md): user targets only. */
      ack: v.optional(AckOptionSchema),
      data: v.unknown(),
    },
    // One message for three issues: a key not in the schema, a required key
    // missing (only `data`), and an input that is not an object at all.
    (issue) =>
      issue.expected === 'never'
        ? `unknown field ${JSON.stringify(issue.path?.[0]?.key)}`
        : issue.path
          ? `${String(issue.path[0]?.key)} is required (any JSON value)`
          : 'a publish request must be a JSON object',
  ),
  v.check((r) => r.data !== undefined, 'data is required (any JSON value)'),
  v.check(
    (r) => targets.filter((t) => r[t] !== undefined).length === 1,
    `exactly one target is required: ${targets.join(', ')}`,
  ),
  v.check(
    (r) => r.ack === undefined || r.userId !== undefined || r.userIds !== undefined,
    'ack needs a userId or userIds target: acknowledgement is per user (a topic, broadcast or connection ids have no users to ack)',
  ),
  v.check(
    (r) => r.ack === undefined || !r.ephemeral,
    'ack cannot be ephemeral: an acknowledged message is stored, so a device that resumes gets it',
  ),
);

export type PublishRequest = v.InferOutput<typeof PublishRequestSchema>;

export interface PublishResult {
  id: string;
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  /** Chunks delivered by `deliver` workers (0: all delivered by `publish` itself). */
  chunks: number;
  /** The message is in history (user or topic targets), so a client can resume to it. */
  stored: boolean;
  /** History cursor, for a single user or a topic. */
  cursor?: string;
  /** Each user's history cursor, for `userIds` (cursors of different streams differ). */
  cursors?: Record<string, string>;
  /** This id was published (and completed) before; nothing was sent, the counts are the first publish's. */
  duplicate?: true;
}

/**
 * Who published, when it was not a service: a client's publish (relayed by
 * `$default`) carries its user as `from` in every frame and history entry.
 * Its `id` is the client's, scoped to that user for deduplication (and for
 * the stream's publish ids): no client can claim, or pre-empt, another
 * user's or a service's id.
 */
export interface PublishOrigin {
  from?: string;
}

/** What an acknowledged publish needs (issue 18): the state store and the timeout queue. */
export interface PublishAckDeps {
  open(userId: string, id: string, o: OpenAck): Promise<boolean>;
  schedule(message: AckTimeoutMessage, delaySeconds: number): Promise<void>;
  /** The longest timeout (HISTORY_TTL_SECONDS: the state lives as long as history). */
  maxTimeoutSeconds: number;
}

export interface PublishDeps extends DispatchDeps {
  registry: ConnectionRegistry;
  dedup: DedupStore;
  /** Largest `data` as JSON bytes (MAX_PUBLISH_BYTES); DEFAULT_MAX_PUBLISH_BYTES when absent. */
  maxPublishBytes?: number;
  /** Without it, a publish with `ack` is refused (ACK_QUEUE_URL not set). */
  acks?: PublishAckDeps | undefined;
}

/** MAX_PUBLISH_BYTES's default: 1 MiB of data, 9 parts (PW-S1.1). */
export const DEFAULT_MAX_PUBLISH_BYTES = 1024 * 1024;

export function parsePublishRequest(input: unknown): PublishRequest {
  const parsed = v.safeParse(PublishRequestSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid publish request: ${describeIssues(parsed.issues)}`);
  return parsed.output;
}

/** Longest cursor a frame can carry ("<16 digits>-<16 digits>"); used to size-check before storing. */
export const MAX_CURSOR = `${'9'.repeat(16)}-${'9'.repeat(16)}`;

/**
 * Publishes one message: validates it, claims its id (when given), stores it
 * in history (user and topic targets), resolves the audience and delivers.
 *
 * With an `id`, every attempt sends the same frame: the history append is
 * keyed by the id (publish.lua answers the cursor it was first stored under),
 * so a retry carries the same cursor and history holds the message once. An
 * attempt that throws gives the id back; one that dies holds it only for its
 * lease (PUBLISH_LEASE_SECONDS); a retry then delivers to the whole audience
 * again (at-least-once; clients dedupe by id).
 */
export async function publish(
  input: unknown,
  deps: PublishDeps,
  origin: PublishOrigin = {},
): Promise<PublishResult> {
  const request = parsePublishRequest(input);
  const id = request.id ?? randomUUID();
  const dataJson = JSON.stringify(request.data);
  const meta = metaOf(request, origin);
  if (request.ack) checkAck(request.ack, deps);
  // Over 128 KB a message goes as parts (PW-F6); the bound is the deployment's.
  const max = deps.maxPublishBytes ?? DEFAULT_MAX_PUBLISH_BYTES;
  const size = Buffer.byteLength(dataJson);
  if (size > max) {
    throw new TooLargeError(
      `data is ${size} bytes as JSON; this deployment publishes at most ${max} (MAX_PUBLISH_BYTES)`,
    );
  }
  if (request.id === undefined) return run(request, id, dataJson, meta, deps);

  const key = scopedId(id, origin);
  const claim = await deps.dedup.claim(key);
  if (claim.state === 'done') {
    const first = (claim.first ?? {}) as Partial<PublishResult>;
    return { ...emptyResult(id), ...first, id, duplicate: true };
  }
  if (claim.state === 'running') throw new PublishInProgressError(id);
  try {
    const result = await run(request, id, dataJson, meta, deps, key);
    await deps.dedup.complete(key, result);
    return result;
  } catch (error) {
    // Give the id back so a retry of this failed publish delivers.
    await deps.dedup.release(key, claim.token).catch(() => undefined);
    throw error;
  }
}

/** `from`, `ephemeral` and `ack` as frames carry them. */
const metaOf = (request: PublishRequest, origin: PublishOrigin): MessageMeta => ({
  ...(origin.from !== undefined && { from: origin.from }),
  ...(request.ephemeral && { ephemeral: true }),
  ...(request.ack && { ack: true }),
});

function checkAck(ack: AckOption, deps: PublishDeps): void {
  if (!deps.acks)
    throw new ValidationError(
      'acknowledged messages are not enabled here: ACK_QUEUE_URL is not set (docs/acks.md)',
    );
  if (ack.timeoutSeconds > deps.acks.maxTimeoutSeconds)
    throw new ValidationError(
      `ack.timeoutSeconds is at most ${deps.acks.maxTimeoutSeconds} (HISTORY_TTL_SECONDS: the ack state lives as long as history)`,
    );
}

/**
 * The key an id is deduplicated (and recorded per stream) under: a client's
 * is `<user>|<id>`, which no service id can equal (`|` is in neither alphabet).
 */
const scopedId = (id: string, origin: PublishOrigin) =>
  origin.from === undefined ? id : `${origin.from}|${id}`;

const emptyResult = (id: string): PublishResult => ({
  id,
  recipients: 0,
  delivered: 0,
  gone: 0,
  failed: 0,
  chunks: 0,
  stored: false,
});

/** A dispatch result as a publish result (the failures it names go to the log, not the caller). */
function counted(id: string, result: DispatchResult): PublishResult {
  const { failures: _failures, ...counts } = result;
  return { ...emptyResult(id), ...counts };
}

async function run(
  request: PublishRequest,
  id: string,
  dataJson: string,
  meta: MessageMeta,
  deps: PublishDeps,
  publishId?: string,
): Promise<PublishResult> {
  const { registry } = deps;
  const except = request.exceptConnectionId;
  const keep = (r: Recipient) => r.connectionId !== except;
  // An ephemeral message is not stored: no history entry, no cursor, never replayed.
  const entry = meta.ephemeral
    ? null
    : `{"id":${JSON.stringify(id)}${metaFields(meta)},"data":${dataJson}}`;
  // Only a caller-given id can be retried, so only that one is recorded per stream.
  const message: Message = { id, dataJson, ...meta };

  if (request.connectionIds) {
    const ids = [...new Set(request.connectionIds)].filter((c) => c !== except);
    const found = await pMap(ids, (c) => registry.get(c), { concurrency: 64 });
    const known = found
      .filter((c) => c !== null)
      .map((c) => ({ connectionId: c.connectionId, endpoint: c.endpoint }));
    const result = counted(id, await dispatch(message, [{ recipients: known }], deps));
    // An id with no record is a connection that no longer exists: gone.
    const unknown = ids.length - known.length;
    return { ...result, recipients: result.recipients + unknown, gone: result.gone + unknown };
  }

  if (request.broadcast) {
    const source = filtered(registry.scan('all', deps.chunkSize), undefined, keep);
    return counted(id, await dispatch(message, source, deps));
  }

  if (request.topic !== undefined) {
    const audience = registry.topicAudience(request.topic);
    const step = await registry.publish(audience, entry, deps.chunkSize, publishId);
    const cursor = step.cursor || undefined;
    // A delta topic: the delta against the entry this one follows, once per
    // publish, for the members that hold that entry (PW-D2).
    const previous = step.previous;
    const delta =
      previous && cursor
        ? (await import('./delta.js')).deltaOf(previous.entry, dataJson)
        : undefined;
    const topicMessage: Message = {
      ...message,
      topic: request.topic,
      ...(delta !== undefined && previous && { delta: { base: previous.cursor, data: delta } }),
    };
    const source =
      delta === undefined || !previous
        ? step.members
          ? [{ cursor, recipients: step.members.filter(keep) }]
          : filtered(registry.scan(audience, deps.chunkSize), cursor, keep)
        : step.members
          ? split(
              cursor,
              step.members,
              await registry.deltaFlags(audience, step.members, previous.cursor),
              keep,
            )
          : splitStream(registry, audience, deps.chunkSize, cursor, previous.cursor, keep);
    const result = await dispatch(topicMessage, source, deps);
    return {
      ...counted(id, result),
      stored: step.cursor !== '',
      ...(step.cursor && { cursor: step.cursor }),
    };
  }

  const users = [...new Set(request.userIds ?? [request.userId as string])];
  const ack = request.ack;
  const acks = ack && deps.acks;
  // Read once: a timeout that finds no state tells Redis data loss (a new epoch) from expiry.
  const epoch = acks ? await registry.epoch() : null;
  let stored = false;
  const cursors: Record<string, string> = {};
  // Each user's history append and member read is one atomic script; users
  // are independent, so they run side by side. A batch holds a cursor, not a
  // frame: 10,000 users of a 120 KB message are not 1.2 GB of frames.
  const batches = await pMap(
    users,
    async (userId): Promise<Batch | AsyncIterable<Batch>> => {
      const audience: Audience = registry.userAudience(userId);
      const step = await registry.publish(audience, entry, deps.chunkSize, publishId);
      if (step.cursor) {
        stored = true;
        cursors[userId] = step.cursor;
      }
      const cursor = step.cursor || undefined;
      const inline = step.members?.filter(keep);
      if (ack && acks) {
        // The state before the first post (an ack may come back at once),
        // the timeout before any post (no delivery without its fallback).
        await acks.open(userId, id, {
          cursor,
          connections: (inline ?? []).map((r) => r.connectionId),
          timeoutSeconds: ack.timeoutSeconds,
          dismissOthers: ack.dismissOthers === true,
          notify: ack.notify !== undefined,
          epoch,
        });
        await acks.schedule(
          {
            v: 1,
            userId,
            id,
            ...(cursor && { cursor }),
            dueAt: Date.now() + ack.timeoutSeconds * 1000,
            timeoutSeconds: ack.timeoutSeconds,
            ...(ack.notify && { notify: ack.notify }),
            ...(epoch !== null && { epoch }),
          },
          ack.timeoutSeconds,
        );
      }
      return inline
        ? { cursor, recipients: inline }
        : filtered(registry.scan(audience, deps.chunkSize), cursor, keep);
    },
    { concurrency: 32 },
  );
  const result = await dispatch(message, flatten(batches), deps);
  const single = request.userId === undefined ? undefined : cursors[request.userId];
  return {
    ...counted(id, result),
    stored,
    ...(single !== undefined && { cursor: single }),
    ...(request.userIds !== undefined && Object.keys(cursors).length > 0 && { cursors }),
  };
}

async function* filtered(
  source: AsyncIterable<Recipient[]>,
  cursor: string | undefined,
  keep: (r: Recipient) => boolean,
): AsyncGenerator<Batch> {
  for await (const recipients of source) yield { cursor, recipients: recipients.filter(keep) };
}

/** Members as two batches: those that get the delta, and the rest (whole messages). */
function split(
  cursor: string | undefined,
  members: Recipient[],
  flags: boolean[],
  keep: (r: Recipient) => boolean,
): Batch[] {
  const whole: Recipient[] = [];
  const delta: Recipient[] = [];
  members.forEach((m, i) => {
    if (keep(m)) (flags[i] ? delta : whole).push(m);
  });
  return [
    { cursor, recipients: whole },
    { cursor, recipients: delta, delta: true },
  ];
}

/** A large delta topic's members, batch by batch, each split as split() does (one HMGET per batch). */
async function* splitStream(
  registry: ConnectionRegistry,
  audience: Audience,
  batch: number,
  cursor: string | undefined,
  base: string,
  keep: (r: Recipient) => boolean,
): AsyncGenerator<Batch> {
  for await (const recipients of registry.scan(audience, batch)) {
    const flags = await registry.deltaFlags(audience, recipients, base);
    yield* split(cursor, recipients, flags, keep);
  }
}

async function* flatten(items: (Batch | AsyncIterable<Batch>)[]): AsyncGenerator<Batch> {
  for (const item of items) {
    if (Symbol.asyncIterator in item) yield* item;
    else yield item;
  }
}
