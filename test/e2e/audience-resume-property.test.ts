/**
 * The delivery guarantee, as a property, end to end: a client whose
 * connection drops at random moments (politely or abruptly, even in the middle
 * of a replay) and comes back with the cursors it last saw — `?since=` plus a
 * first frame for its user stream, `subscribe` with `since` for its topic —
 * ends up with every message of both streams exactly once and in order, while
 * a publisher keeps sending numbered messages to the user and to the topic
 * (in order as the server promises it: see `ordered` for the one exception,
 * a replay's hand-off to live delivery).
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareCursors } from '../../lib/registry/cursor.js';
import { createKeys } from '../../lib/registry/keys.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { type Frame, TestClient } from '../helpers/client.js';
import { type Offline, startOffline } from '../helpers/offline.js';

const MESSAGES_PER_RUN = 200;
const RUNS = 3;

const keys = createKeys('pw:');
let redisServer: RedisServer;
let redis: Redis;
let offline: Offline;

beforeAll(async () => {
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  offline = await startOffline(redisServer.url);
});
afterAll(async () => {
  await offline?.stop();
  redis?.disconnect();
  await redisServer?.stop();
});

interface PublishResult {
  id: string;
  recipients: number;
  stored: boolean;
  cursor?: string;
}

interface Drop {
  /** Publishes sent before the connection drops (at the earliest). */
  at: number;
  /** A further random pause before dropping, so drops land mid-delivery. */
  delayMs: number;
  /** Publishes sent while the client is away. */
  away: number;
  /** Close without a close handshake (a lost network) rather than politely. */
  abrupt: boolean;
  /** Do not wait for the resume to finish: the next drop may cut the replay short. */
  interrupt: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const schedule = fc.record({
  // true: message i goes to the user; false: to the topic.
  targets: fc.array(fc.boolean(), {
    minLength: MESSAGES_PER_RUN,
    maxLength: MESSAGES_PER_RUN,
  }),
  drops: fc.array(
    fc.record({
      at: fc.nat({ max: MESSAGES_PER_RUN - 1 }),
      delayMs: fc.nat({ max: 25 }),
      away: fc.nat({ max: 8 }),
      abrupt: fc.boolean(),
      interrupt: fc.boolean(),
    }),
    { minLength: 2, maxLength: 6 },
  ),
});

let run = 0;
/** The last run's frames by connection, in short (printed when a run fails). */
let lastTrace = (): string => '';

/** One run: a publisher and a dropping, resuming client, side by side. */
async function check({ targets, drops }: { targets: boolean[]; drops: Drop[] }): Promise<void> {
  run++;
  const userId = `prop-${run}`;
  const topic = `prop-topic-${run}`;
  const token = await devToken(userId, { topics: ['prop-topic-*'] });

  // Every connection's frames, in connection order: connections never overlap
  // (the next opens after the previous has closed), so this is arrival order.
  const connections: TestClient[] = [];
  const received = () => connections.flatMap((c) => c.messages());
  // What each connection got (u/t: user/topic message n, b: in a batch; R: resumed), printed on failure.
  lastTrace = () =>
    connections
      .map(
        (c, i) =>
          `#${i}: ` +
          c.frames
            .map((f) =>
              f.type === 'message'
                ? `${f['topic'] ? 't' : 'u'}${(f['data'] as { n: number }).n}${c.batched.has(f) ? 'b' : ''}`
                : f.type === 'resumed'
                  ? `R${f['topic'] ? 't' : 'u'}`
                  : f.type,
            )
            .join(' '),
      )
      .join('\n');
  const lastCursor = (stream: 'user' | 'topic'): string | undefined =>
    received()
      .filter((m) => (stream === 'topic') === (m['topic'] !== undefined))
      .at(-1)?.['cursor'] as string | undefined;
  const resumes: Frame[] = [];

  let published = 0;
  const progress: (() => void)[] = [];
  const publishedAtLeast = (n: number) =>
    new Promise<void>((resolve) => {
      const target = Math.min(n, targets.length);
      if (published >= target) resolve();
      else progress.push(() => published >= target && resolve());
    });

  // First connection: live from the start, nothing to resume.
  let client = await TestClient.connect(offline.wsUrl({ token }));
  connections.push(client);
  await client.request({ action: 'subscribe', topic }, (f) => f.type === 'subscribed');
  // A stream not heard from yet resumes from the start of this Redis's data
  // (its epoch, marked at the first $connect): everything it holds.
  const start = `${await redis.get(keys.epoch())}-0`;

  /** Reconnects with the last cursors seen; resolves when both streams have resumed (or the socket closed). */
  async function reconnect(): Promise<{ done: Promise<void> }> {
    const userSince = lastCursor('user') ?? start;
    const topicSince = lastCursor('topic') ?? start;
    client = await TestClient.connect(offline.wsUrl({ token, since: userSince }));
    connections.push(client);
    const current = client;
    // Back to back, as a client library would: the first frame triggers the
    // user replay, the subscribe the topic replay.
    current.send({ action: 'ping' });
    current.send({ action: 'subscribe', topic, since: topicSince });
    const closed = new Promise<void>((resolve) => current.ws.once('close', () => resolve()));
    const resumed = Promise.all([
      current.next((f) => f.type === 'resumed' && f['topic'] === undefined, 30_000),
      current.next((f) => f.type === 'resumed' && f['topic'] === topic, 30_000),
      current.next((f) => f.type === 'pong', 30_000),
    ]).then(([user, topicResumed]) => {
      resumes.push(user, topicResumed);
    });
    return { done: Promise.race([resumed, closed]) };
  }

  async function drop(abrupt: boolean): Promise<void> {
    const current = client;
    if (current.closed) return;
    const closed = new Promise<void>((resolve) => current.ws.once('close', () => resolve()));
    if (abrupt) current.ws.terminate();
    else current.ws.close();
    await closed;
  }

  const clientTask = (async () => {
    const sorted = [...drops].sort((a, b) => a.at - b.at);
    let pending: Promise<void> = Promise.resolve();
    for (const [i, d] of sorted.entries()) {
      await publishedAtLeast(d.at);
      await sleep(d.delayMs);
      await drop(d.abrupt);
      await publishedAtLeast(published + d.away);
      const { done } = await reconnect();
      pending = done;
      if (!d.interrupt || i === sorted.length - 1) await done;
    }
    await pending;
  })();
  // Awaited below; until then a failure must not count as unhandled.
  clientTask.catch(() => undefined);

  const results: PublishResult[] = [];
  for (const [n, toUser] of targets.entries()) {
    const result = await offline.invoke<PublishResult>(
      'publish',
      toUser ? { userId, data: { n } } : { topic, data: { n } },
    );
    expect(result).toMatchObject({ stored: true });
    results.push(result);
    published++;
    for (const notify of progress) notify();
  }
  await clientTask;

  // Every publish has returned, so every live post has reached the socket; a
  // ping round trip brings it all in. A final resume of both streams from the
  // last cursors must then find nothing left: live delivery lost nothing.
  await client.request({ action: 'ping' }, (f) => f.type === 'pong');
  const before = received().length;
  const finalUser = await client.request(
    { action: 'resume', since: lastCursor('user') ?? start },
    (f) => f.type === 'resumed' && f['topic'] === undefined,
  );
  const finalTopic = await client.request(
    { action: 'subscribe', topic, since: lastCursor('topic') ?? start },
    (f) => f.type === 'resumed' && f['topic'] === topic,
  );
  expect(received().length, 'the final resume replayed messages live delivery had lost').toBe(
    before,
  );
  resumes.push(finalUser, finalTopic);

  // Every resume had the whole gap in history.
  for (const r of resumes) expect(r['recovered']).toBe(true);

  const messages = received();
  const inStream = (isTopic: boolean) => (f: Frame) =>
    f.type === 'message' && (isTopic ? f['topic'] === topic : f['topic'] === undefined);
  const isResumed = (isTopic: boolean) => (f: Frame) =>
    f.type === 'resumed' && (isTopic ? f['topic'] === topic : f['topic'] === undefined);
  /**
   * A stream's messages in the order the server promises: arrival order,
   * except among those that came on a reconnection before the stream's
   * `resumed`, which are taken in cursor order. A replay catching up with a
   * stream that does not pause for one post's time (this publisher sends the
   * next message as soon as the last one returned) goes live together with
   * the read of its last batch, so that batch's post is in flight with the
   * first live posts and may land after them (docs/protocol.md,
   * "Catching up under load"; lib/session/resume.ts). Order is still checked
   * everywhere else, and exactly-once everywhere.
   */
  const ordered = (isTopic: boolean): Frame[] =>
    connections.flatMap((c, i) => {
      const frames = c.frames.filter((f) => inStream(isTopic)(f) || isResumed(isTopic)(f));
      const end = frames.findIndex(isResumed(isTopic));
      const replay = frames.slice(0, i === 0 ? 0 : end === -1 ? frames.length : end);
      const live = frames.slice(replay.length).filter(inStream(isTopic));
      const byCursor = [...replay].sort((a, b) =>
        compareCursors(a['cursor'] as string, b['cursor'] as string),
      );
      return [...byCursor, ...live];
    });
  const userMessages = ordered(false);
  const topicMessages = ordered(true);
  expect(userMessages.length + topicMessages.length).toBe(messages.length);
  const expectedUser = targets.flatMap((toUser, n) => (toUser ? [n] : []));
  const expectedTopic = targets.flatMap((toUser, n) => (toUser ? [] : [n]));
  expect(userMessages.map((m) => (m['data'] as { n: number }).n)).toEqual(expectedUser);
  expect(topicMessages.map((m) => (m['data'] as { n: number }).n)).toEqual(expectedTopic);
  // The frames are the published ones: same ids and cursors.
  expect(userMessages.map((m) => [m['id'], m['cursor']])).toEqual(
    expectedUser.map((n) => [results[n]?.id, results[n]?.cursor]),
  );
  expect(topicMessages.map((m) => [m['id'], m['cursor']])).toEqual(
    expectedTopic.map((n) => [results[n]?.id, results[n]?.cursor]),
  );

  // What the run exercised: frames that came by replay (before their
  // stream's resumed frame on a reconnection) and those that came live.
  const replayed = connections.slice(1).reduce((sum, c) => {
    const userEnd = c.frames.findIndex((f) => f.type === 'resumed' && f['topic'] === undefined);
    const topicEnd = c.frames.findIndex((f) => f.type === 'resumed' && f['topic'] === topic);
    const count = (end: number, isTopic: boolean) =>
      c.frames
        .slice(0, end === -1 ? c.frames.length : end)
        .filter((f) => f.type === 'message' && (f['topic'] !== undefined) === isTopic).length;
    return sum + count(userEnd, false) + count(topicEnd, true);
  }, 0);
  console.log(
    `resume property run ${run}: ${connections.length - 1} reconnections ` +
      `(${drops.filter((d) => d.abrupt).length} abrupt), ${messages.length} messages, ` +
      `${replayed} during resumes, ${messages.length - replayed} live`,
  );

  await client.close();
  await expect
    .poll(async () => redis.zcard(keys.audience('user', userId).keys.live), { timeout: 15_000 })
    .toBe(0);
}

describe('resume after random drops', () => {
  it('delivers every user and topic message exactly once, in order', async () => {
    const seed = Number(process.env['AUDIENCE_SEED'] ?? Date.now() % 2 ** 31);
    try {
      await fc.assert(fc.asyncProperty(schedule, check), {
        numRuns: RUNS,
        seed,
        endOnFailure: true,
      });
    } catch (error) {
      console.error(
        `resume property failed; rerun with AUDIENCE_SEED=${seed}\n` +
          `frames by connection:\n${lastTrace()}\n` +
          `serverless-offline output (tail):\n${offline.output().slice(-4000)}`,
      );
      throw error;
    }
  }, 240_000);
});
