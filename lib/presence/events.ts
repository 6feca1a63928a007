import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import * as v from 'valibot';
import { type DispatchDeps, type DispatchResult, dispatch } from '../delivery/chunks.js';
import { ValidationError } from '../errors.js';
import type { EventSink } from '../events/types.js';
import { describeIssues, Topic } from '../protocol/frames.js';
import type { ConnectionRegistry, PresenceSweeper } from '../registry/types.js';

/**
 * The `presenceEvents` function: fans out the join and leave events that
 * presence.lua recorded (in order, one drain per topic at a time), and on
 * its schedule sweeps devices that expired without a `$disconnect`.
 *
 * Invoked (asynchronously, InvocationType Event) by `$default` and
 * `$disconnect` right after they recorded an event: `{ topic, delayMs }`.
 * With `delayMs` (a topic above PRESENCE_COALESCE_ABOVE users) it waits that
 * long, then sends everything gathered as `presence_diff` frames: one post
 * per member per interval rather than one per join or leave.
 * Every minute (a schedule; `npm start` every PRESENCE_SWEEP_MS) it runs
 * with any other event: the sweep.
 */
export interface PresenceEventsDeps extends DispatchDeps {
  registry: ConnectionRegistry;
  sweeper: PresenceSweeper;
  /** Above this many users, a topic's events go out as presence_diff. */
  coalesceAbove: number;
  sleep?: (ms: number) => Promise<void>;
  /** Lifecycle events (EventBridge): presence.join and presence.leave, once each. */
  events?: EventSink;
  /** Whether there is time for another round (the invocation's deadline). */
  keepGoing?: () => boolean;
}

export interface PresenceEventsResult {
  topics: number;
  events: number;
  frames: number;
  delivered: number;
  gone: number;
  failed: number;
}

const Nudge = v.strictObject({
  topic: Topic,
  delayMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(60_000))),
});

/** Events taken per round: plain ones go out one frame each, in order. */
const TAKE = 100;
/** Most users in one presence_diff (info is at most 1 KB: a frame stays far below 128 KB). */
export const DIFF_MAX = 100;
/** Topics one sweep round visits. */
const SWEEP_TOPICS = 100;

export async function presenceEvents(
  event: unknown,
  deps: PresenceEventsDeps,
): Promise<PresenceEventsResult> {
  const total: PresenceEventsResult = {
    topics: 0,
    events: 0,
    frames: 0,
    delivered: 0,
    gone: 0,
    failed: 0,
  };
  const isNudge = typeof event === 'object' && event !== null && 'topic' in event;
  if (isNudge) {
    const parsed = v.safeParse(Nudge, event);
    if (!parsed.success)
      throw new ValidationError(`invalid presence event: ${describeIssues(parsed.issues)}`);
    const { topic, delayMs = 0 } = parsed.output;
    if (delayMs > 0) await (deps.sleep ?? ((ms: number) => delay(ms)))(delayMs);
    await drain(topic, delayMs > 0, deps, total);
    return total;
  }
  // The schedule (any other event): sweep, then send what the sweep found
  // and what nudges that failed left behind.
  const keepGoing = deps.keepGoing ?? (() => true);
  let topics: string[];
  do {
    topics = await deps.sweeper.sweepPresence(SWEEP_TOPICS);
    for (const topic of topics) {
      const { count } = await deps.registry.members(topic, undefined, 1);
      await drain(topic, deps.coalesceAbove > 0 && count > deps.coalesceAbove, deps, total);
    }
  } while (topics.length === SWEEP_TOPICS && keepGoing());
  return total;
}

/**
 * Sends a topic's waiting events. One drain per topic at a time (the
 * registry's lock), so plain joins and leaves arrive in the order they
 * happened; a drain that finds the topic held leaves its events to the
 * holder, which takes until none are left.
 */
async function drain(
  topic: string,
  coalesce: boolean,
  deps: PresenceEventsDeps,
  total: PresenceEventsResult,
): Promise<void> {
  const token = randomUUID();
  total.topics++;
  for (;;) {
    const taken = await deps.sweeper.takePresenceEvents(topic, token, coalesce ? 10 * TAKE : TAKE);
    if (taken === null || taken.length === 0) return;
    total.events += taken.length;
    for (const e of taken.map(parseEvent))
      deps.events?.emit(e.joined ? 'presence.join' : 'presence.leave', {
        connectionId: e.connectionId,
        userId: e.userId,
        topic,
      });
    const frames = coalesce ? diffFrames(topic, taken) : taken.map((e) => eventFrame(topic, e));
    for (const frame of frames) add(total, await send(topic, frame, deps));
  }
}

function add(total: PresenceEventsResult, result: DispatchResult): void {
  total.frames++;
  total.delivered += result.delivered;
  total.gone += result.gone;
  total.failed += result.failed;
}

/** One frame to every live member of the topic, through the fan-out (chunks to `deliver` when big). */
function send(topic: string, frame: string, deps: PresenceEventsDeps): Promise<DispatchResult> {
  const audience = deps.registry.topicAudience(topic);
  async function* source() {
    for await (const recipients of deps.registry.scan(audience, deps.chunkSize))
      yield { recipients };
  }
  return dispatch({ id: randomUUID(), dataJson: 'null', topic, frame }, source(), deps);
}

/**
 * A recorded event parsed: `+userId connectionId info` (a join, by that
 * device) or `-userId connectionId` (a leave, of the user's last device).
 */
export function parseEvent(event: string): {
  joined: boolean;
  userId: string;
  connectionId: string;
  info?: string;
} {
  const [userId = '', connectionId = ''] = event.slice(1).split(' ', 2);
  const joined = event.startsWith('+');
  const info = joined ? event.slice(1 + userId.length + 1 + connectionId.length + 1) : '';
  return info ? { joined, userId, connectionId, info } : { joined, userId, connectionId };
}

const member = (userId: string, info?: string) =>
  `{"userId":${JSON.stringify(userId)}${info ? `,"info":${info}` : ''}}`;

/** A join or leave frame as JSON text (info is stored as the JSON it already is). */
export function eventFrame(topic: string, event: string): string {
  const { joined, userId, info } = parseEvent(event);
  const t = JSON.stringify(topic);
  return joined
    ? `{"type":"join","topic":${t},"userId":${JSON.stringify(userId)}${info ? `,"info":${info}` : ''}}`
    : `{"type":"leave","topic":${t},"userId":${JSON.stringify(userId)}}`;
}

/**
 * What changed over the interval, net: a user who joined and left within it
 * is in neither list; one who left and came back is in `joined` (with the
 * info of the newest join), as a member list would show them now.
 */
export function diffFrames(topic: string, events: string[]): string[] {
  const first = new Map<string, boolean>();
  const last = new Map<string, { joined: boolean; info?: string }>();
  for (const event of events) {
    const e = parseEvent(event);
    if (!first.has(e.userId)) first.set(e.userId, e.joined);
    last.set(e.userId, e);
  }
  const joined: string[] = [];
  const left: string[] = [];
  for (const [userId, e] of last) {
    if (e.joined) joined.push(member(userId, e.info));
    else if (first.get(userId) === false) left.push(JSON.stringify(userId));
  }
  const frames: string[] = [];
  const t = JSON.stringify(topic);
  for (let j = 0, l = 0; j < joined.length || l < left.length; ) {
    const js = joined.slice(j, j + DIFF_MAX);
    const ls = left.slice(l, l + DIFF_MAX - js.length);
    j += js.length;
    l += ls.length;
    frames.push(
      `{"type":"presence_diff","topic":${t},"joined":[${js.join(',')}],"left":[${ls.join(',')}]}`,
    );
  }
  return frames;
}
