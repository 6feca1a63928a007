import { MAX_MESSAGE_BYTES } from '../constants.js';
import { splitFrame } from '../delivery/parts.js';
import type { Gateway } from '../gateway/gateway.js';
import { normalizeCursor } from '../registry/cursor.js';
import type { Audience, Recipient } from '../registry/keys.js';
import type { ConnectionRegistry } from '../registry/types.js';

export interface ResumeDeps {
  registry: ConnectionRegistry;
  gateway: Gateway;
  /** History entries read (and posted at most) per step. */
  batch?: number;
  now?: () => number;
  /** No post runs past this (ms since 1970): the invocation's end less its answer's time. */
  callsEndBy?: number;
}

export interface ResumeOutcome {
  /** Every message after `since` was still in history and has been replayed. */
  recovered: boolean;
  /**
   * The replay caught up and handed the connection to live delivery. False
   * when it failed or ran out of time: the connection is live all the same,
   * and `cursor` says where a new resume should start.
   */
  complete: boolean;
  /** The last cursor replayed (or `since`): everything up to it has been posted. */
  cursor: string;
  replayed: number;
  /** The connection vanished during replay (and has been pruned). */
  gone: boolean;
  /** Why an incomplete replay stopped: 'deadline', or what was thrown. */
  stoppedBy?: unknown;
}

/** Steps that each read all that remained before the replay stops waiting for an empty read. */
const TAILS_BEFORE_FITS = 2;

/** Bytes of a `batch` frame around its messages: `{"type":"batch","messages":[` … `]}`. */
const BATCH_OVERHEAD = 64;

/**
 * What a `message` frame adds to a stored entry `{"id":…,"data":…}`:
 * `"type":"message",` (17), `"cursor":"…",` (12 + the cursor, counted apart),
 * `"topic":"…",` (11 + the name), and a comma between frames in a batch.
 */
const entryOverhead = (topic?: string) => 32 + (topic === undefined ? 0 : topic.length + 11);

/**
 * Replays an audience's history after `since` to one connection, in order,
 * then makes it live. The connection must already be resuming under a lease
 * (registry.beginResume or a resuming subscribe/register) that ends after
 * `deadline`: from then on live publishes skip it and land in the history it
 * is reading, and the step that returns the last batch moves it to live
 * atomically, so nothing is missed or doubled.
 *
 * Batches: each post carries every entry one step read (a `batch` frame; a
 * lone entry goes as a plain `message` frame), up to what a 128 KB message
 * holds. Posts go one at a time, each awaited, so they arrive in order; the
 * throughput is a batch per post latency (~100 messages per 20-50 ms on AWS),
 * far above what a busy topic publishes, so the backlog shrinks each step.
 *
 * Hand-off (see resume.lua): first exact, going live only at a read that
 * finds nothing left, so the replay's last post has landed before any live
 * post starts. An audience that never leaves one post's time without a
 * publish would keep that from happening; so after TAILS_BEFORE_FITS steps
 * that each held all that remained, or half-way to the deadline, the replay
 * goes live with the batch that holds the rest. That always converges; its
 * last post may then be in flight together with the first live posts (as two
 * publishes close together are anyway), so API Gateway may deliver those few
 * in either order; each carries its cursor.
 *
 * Bounded: no step starts after `deadline`. A replay that runs out of time
 * or fails (a post or a Redis call throws) gives up: it makes the connection
 * live again and reports itself incomplete, with the cursor it reached. If
 * even that fails (Redis unreachable), the lease runs out and the next
 * publish or frame makes the connection live.
 */
export async function replay(
  audience: Audience,
  connection: Recipient,
  since: string,
  deps: ResumeDeps,
  deadline: number,
): Promise<ResumeOutcome> {
  const { registry, gateway } = deps;
  const now = deps.now ?? Date.now;
  const topic = audience.kind === 'topic' ? audience.name : undefined;
  const limits = {
    entries: deps.batch ?? 100,
    bytes: MAX_MESSAGE_BYTES - BATCH_OVERHEAD,
    entryOverhead: entryOverhead(topic),
  };
  const halfway = now() + (deadline - now()) / 2;
  let tails = 0;
  let cursor = normalizeCursor(since);
  let recovered = false;
  let replayed = 0;
  let stoppedBy: unknown = 'deadline';
  const done = (complete: boolean, gone = false): ResumeOutcome => ({
    recovered: recovered && complete,
    complete,
    cursor,
    replayed,
    gone,
  });
  try {
    recovered = await registry.recoverable(audience, since);
    while (now() < deadline) {
      const handOffWhenFits = tails >= TAILS_BEFORE_FITS || now() >= halfway;
      const step = await registry.resumeStep(audience, connection, cursor, {
        ...limits,
        handOffWhenFits,
      });
      if (step.state === 'live') {
        // Made live by a replay side by side that caught up first: done. Unless
        // this step ran past the deadline: then the lease may have run out and
        // a publish made it live, skipping what this replay had yet to post.
        if (now() <= deadline) return done(true);
        stoppedBy = 'lease';
        break;
      }
      if (step.state === 'gone') return done(true, true);
      // Publishes go on during a replay and may trim history past our cursor.
      if (step.gap) recovered = false;
      for (const frame of frames(step.entries, topic)) {
        const result = await gateway.post(
          connection.endpoint,
          connection.connectionId,
          Buffer.from(frame.text),
          deps.callsEndBy,
        );
        if (result === 'gone') {
          await registry.remove(connection.connectionId);
          return done(true, true);
        }
        if (frame.count > 0) {
          replayed += frame.count;
          cursor = frame.last;
        }
      }
      if (step.state === 'last') return done(true);
      if (step.rest) tails++;
    }
  } catch (error) {
    stoppedBy = error;
  }
  // Out of time or failed: live again, told to resume from `cursor`.
  await registry.endResume(audience, connection).catch(() => undefined);
  return { ...done(false), stoppedBy };
}

/**
 * History entries as frames to post, in order: as many as fit one message
 * per frame (a `batch`), a lone one as a plain `message`, and one over 128 KB
 * as its `part` frames (PW-F6; `count` is 1 on the last part only, and the
 * replay's cursor moves past the message only once that one is posted).
 */
export function* frames(
  entries: { cursor: string; entry: string }[],
  topic?: string,
): Generator<{ text: string | Buffer; count: number; last: string }> {
  let group: string[] = [];
  let bytes = BATCH_OVERHEAD;
  let last = '';
  const flush = () => {
    const text =
      group.length === 1
        ? (group[0] as string)
        : `{"type":"batch","messages":[${group.join(',')}]}`;
    const out = { text, count: group.length, last };
    group = [];
    bytes = BATCH_OVERHEAD;
    return out;
  };
  for (const { cursor, entry } of entries) {
    // `from`: a client's publish (issue 16); ephemeral messages are never stored.
    // The frame as messageFrame builds it, written out here: `$default` does
    // not carry lib/delivery/frame.ts (its bundle is at its size target).
    // `ack`, `dismissed`: an acknowledged message, and one a first ack dismissed (issue 18, resume.lua).
    const { id, from, ack, dismissed, data } = JSON.parse(entry) as {
      id: string;
      from?: string;
      ack?: true;
      dismissed?: true;
      data: unknown;
    };
    const text =
      `{"type":"message","id":${JSON.stringify(id)}` +
      (topic === undefined ? '' : `,"topic":${JSON.stringify(topic)}`) +
      `,"cursor":${JSON.stringify(cursor)}` +
      (from === undefined ? '' : `,"from":${JSON.stringify(from)}`) +
      (ack ? ',"ack":true' : '') +
      (dismissed ? ',"dismissed":true' : '') +
      `,"data":${JSON.stringify(data)}}`;
    const size = Buffer.byteLength(text) + 1;
    if (size > MAX_MESSAGE_BYTES + 1) {
      if (group.length > 0) yield flush();
      const parts = splitFrame(id, text);
      for (const [n, part] of parts.entries())
        yield { text: part, count: n === parts.length - 1 ? 1 : 0, last: cursor };
      last = cursor;
      continue;
    }
    if (group.length > 0 && bytes + size > MAX_MESSAGE_BYTES) yield flush();
    group.push(text);
    bytes += size;
    last = cursor;
  }
  if (group.length > 0) yield flush();
}
