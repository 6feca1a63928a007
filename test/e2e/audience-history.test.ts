/**
 * History and resume, end to end: messages published while a user is away are
 * stored and replayed in order when it comes back (`?since=` at connect, the
 * `resume` frame, `subscribe` with `since`), live delivery is held back while
 * it replays, and a history too short to cover the gap says recovered:false.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKeys } from '../../lib/registry/keys.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { type Frame, HandshakeRefused, TestClient } from '../helpers/client.js';
import { type Offline, startOffline } from '../helpers/offline.js';
import { untilPasses } from '../helpers/stack.js';

const keys = createKeys('pw:');

interface PublishResult {
  id: string;
  recipients: number;
  delivered: number;
  stored: boolean;
  cursor?: string;
}

/** One serverless-offline with its own Redis, and the tools the tests use on it. */
class Stack {
  readonly clients: TestClient[] = [];
  private constructor(
    readonly redisServer: RedisServer,
    readonly redis: Redis,
    readonly offline: Offline,
  ) {}

  static async start(env: Record<string, string> = {}): Promise<Stack> {
    const redisServer = await startRedisServer();
    const offline = await startOffline(redisServer.url, env);
    return new Stack(redisServer, new Redis(redisServer.url), offline);
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    await this.offline.stop();
    this.redis.disconnect();
    await this.redisServer.stop();
  }

  publish(payload: unknown): Promise<PublishResult> {
    return this.offline.invoke<PublishResult>('publish', payload);
  }

  async connect(userId: string, query: Record<string, string> = {}, topics?: string[]) {
    const token = await devToken(userId, topics ? { topics } : {});
    const client = await TestClient.connect(this.offline.wsUrl({ token, ...query }));
    this.clients.push(client);
    return client;
  }

  /** Members of a user's or topic's live and resuming sets. */
  async members(kind: 'user' | 'topic', name: string) {
    const k = keys.audience(kind, name).keys;
    const [live, resuming] = await Promise.all([
      this.redis.zcard(k.live),
      this.redis.zcard(k.resuming),
    ]);
    return { live, resuming };
  }

  /** Closes a client and waits until $disconnect has taken it out of every set. */
  async leave(client: TestClient, userId: string, topic?: string): Promise<void> {
    await client.close();
    await untilPasses(async () => {
      expect(await this.members('user', userId)).toEqual({ live: 0, resuming: 0 });
      if (topic) expect(await this.members('topic', topic)).toEqual({ live: 0, resuming: 0 });
    });
  }

  /** A client of `userId` receives one live message and leaves: its cursor is "where it was". */
  async lastSeen(userId: string): Promise<string> {
    const client = await this.connect(userId);
    await client.request({ action: 'ping' }, (f) => f.type === 'pong');
    const result = await this.publish({ userId, data: 'seen' });
    const seen = await client.next((f) => f.type === 'message');
    expect(seen['cursor']).toBe(result.cursor);
    await this.leave(client, userId);
    return result.cursor as string;
  }

  /** Publishes `data` to the user, who has no live connection: stored, delivered to nobody. */
  async publishAway(target: { userId: string } | { topic: string }, data: unknown) {
    const result = await this.publish({ ...target, data });
    expect(result).toMatchObject({ recipients: 0, delivered: 0, stored: true });
    expect(result.cursor).toMatch(/^\d+-\d+$/);
    return result;
  }
}

/** The message frame a publish result stands for. */
function message(result: PublishResult, data: unknown, topic?: string): Frame {
  return {
    type: 'message',
    id: result.id,
    ...(topic !== undefined && { topic }),
    cursor: result.cursor,
    data,
  };
}

/** Sends a frame and returns every frame from then until (and with) the first matching `until`. */
async function exchange(
  client: TestClient,
  frame: unknown,
  until: (f: Frame) => boolean,
): Promise<Frame[]> {
  const from = client.frames.length;
  client.send(frame);
  const last = await client.next(until, 10_000, from);
  return client.frames.slice(from, client.frames.indexOf(last, from) + 1);
}

/** After a ping round trip every frame of earlier publishes is in (see audience-delivery). */
async function settle(client: TestClient): Promise<void> {
  await client.request({ action: 'ping' }, (f) => f.type === 'pong');
}

const isPong = (f: Frame) => f.type === 'pong';
/** The reply to a ping (it carries the connection's id). */
const PONG = {
  type: 'pong',
  connectionId: expect.any(String),
  epoch: expect.any(String),
  cursor: expect.stringMatching(/^\d+-\d+$/),
};

describe('history and resume (HISTORY_SIZE 100)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(({ onTestFailed }) =>
    onTestFailed(() =>
      console.error(`serverless-offline output (tail):\n${stack.offline.output().slice(-4000)}`),
    ),
  );

  it('replays what a user missed at its first frame after connecting with ?since, then goes live', async () => {
    const since = await stack.lastSeen('h-ann');
    const missed = [];
    for (const n of [1, 2, 3]) missed.push(await stack.publishAway({ userId: 'h-ann' }, { n }));

    const client = await stack.connect('h-ann', { since });
    // Connected, but held back from live delivery until it has replayed.
    await untilPasses(async () =>
      expect(await stack.members('user', 'h-ann')).toEqual({ live: 0, resuming: 1 }),
    );
    missed.push(await stack.publishAway({ userId: 'h-ann' }, { n: 4 }));
    expect(client.messages()).toEqual([]);

    const frames = await exchange(client, { action: 'ping' }, isPong);
    expect(frames).toEqual([
      ...missed.map((r, i) => message(r, { n: i + 1 })),
      { type: 'resumed', recovered: true },
      PONG,
    ]);
    expect(await stack.members('user', 'h-ann')).toEqual({ live: 1, resuming: 0 });

    // Live now, and the replay is not repeated at later frames.
    const from = client.frames.length;
    const live = await stack.publish({ userId: 'h-ann', data: { n: 5 } });
    expect(live).toMatchObject({ recipients: 1, delivered: 1, stored: true });
    await settle(client);
    expect(client.frames.slice(from)).toEqual([message(live, { n: 5 }), PONG]);
    expect(client.messages().map((m) => m['data'])).toEqual([1, 2, 3, 4, 5].map((n) => ({ n })));
  });

  it('replays ?since exactly once when the first frames arrive together', async () => {
    // A client commonly sends several frames right after connecting (ping,
    // subscribes); they are handled concurrently, and only one may replay.
    const since = await stack.lastSeen('h-bob');
    const missed = [];
    for (const n of [1, 2, 3]) missed.push(await stack.publishAway({ userId: 'h-bob' }, { n }));
    // serverless-offline runs concurrent invocations in separate workers and
    // starts one per extra concurrent frame: warm several up first, so the
    // frames below are really handled side by side, not behind cold starts.
    const warm = await stack.connect('h-warm');
    for (let round = 0; round < 2; round++) {
      const from = warm.frames.length;
      for (let i = 0; i < 4; i++) warm.send({ action: 'ping' });
      await untilPasses(async () =>
        expect(warm.frames.slice(from).filter((f) => f.type === 'pong')).toHaveLength(4),
      );
    }
    await stack.leave(warm, 'h-warm');

    const client = await stack.connect('h-bob', { since });
    for (let i = 0; i < 4; i++) client.send({ action: 'ping' });
    await untilPasses(async () =>
      expect(client.frames.filter((f) => f.type === 'pong')).toHaveLength(4),
    );
    await settle(client);
    expect(client.messages()).toEqual(missed.map((r, i) => message(r, { n: i + 1 })));
    expect(client.frames.filter((f) => f.type === 'resumed')).toEqual([
      { type: 'resumed', recovered: true },
    ]);
    const resumedAt = client.frames.findIndex((f) => f.type === 'resumed');
    const lastMessageAt = client.frames.findLastIndex((f) => f.type === 'message');
    expect(resumedAt).toBeGreaterThan(lastMessageAt);
  });

  it('answers resumes of one stream sent together without errors, and stays live', async () => {
    // Say a client library re-subscribes every topic after reconnecting while
    // the application subscribes too, or retries a resume: the requests are
    // handled side by side. Each is answered (replaying what it asked for);
    // none may call the healthy connection unknown.
    const topic = 'h-twice';
    const warm = await stack.connect('h-warm2');
    for (let round = 0; round < 2; round++) {
      const from = warm.frames.length;
      for (let i = 0; i < 4; i++) warm.send({ action: 'ping' });
      await untilPasses(async () =>
        expect(warm.frames.slice(from).filter((f) => f.type === 'pong')).toHaveLength(4),
      );
    }
    await stack.leave(warm, 'h-warm2');

    const client = await stack.connect('h-eve', {}, [topic]);
    await settle(client);
    const userSeen = await stack.publish({ userId: 'h-eve', data: 'u0' });
    await client.request({ action: 'subscribe', topic }, (f) => f.type === 'subscribed');
    const topicSeen = await stack.publish({ topic, data: 't0' });
    for (const n of [1, 2]) {
      await stack.publish({ userId: 'h-eve', data: `u${n}` });
      await stack.publish({ topic, data: `t${n}` });
    }
    await settle(client);
    const from = client.frames.length;
    for (let i = 0; i < 2; i++) {
      client.send({ action: 'subscribe', topic, since: topicSeen.cursor });
      client.send({ action: 'resume', since: userSeen.cursor });
    }
    await untilPasses(async () =>
      expect(client.frames.slice(from).filter((f) => f.type === 'resumed')).toHaveLength(4),
    );
    await settle(client);
    const frames = client.frames.slice(from);
    expect(frames.filter((f) => f.type === 'error')).toEqual([]);
    expect(frames.filter((f) => f.type === 'resumed')).toEqual(
      expect.arrayContaining([
        { type: 'resumed', recovered: true },
        { type: 'resumed', topic, recovered: true },
      ]),
    );
    expect(await stack.members('user', 'h-eve')).toEqual({ live: 1, resuming: 0 });
    expect(await stack.members('topic', topic)).toEqual({ live: 1, resuming: 0 });

    const next = client.frames.length;
    await stack.publish({ userId: 'h-eve', data: 'u3' });
    await stack.publish({ topic, data: 't3' });
    await settle(client);
    expect(
      client
        .messages()
        .slice(-2)
        .map((m) => m['data']),
    ).toEqual(['u3', 't3']);
    expect(client.frames.slice(next).filter((f) => f.type === 'message')).toHaveLength(2);
  });

  it('replays after the cursor of a resume frame on a live connection', async () => {
    const since = await stack.lastSeen('h-ben');
    const missed = [];
    for (const n of [1, 2, 3]) missed.push(await stack.publishAway({ userId: 'h-ben' }, { n }));

    const client = await stack.connect('h-ben');
    // Without since, nothing is replayed.
    expect(await exchange(client, { action: 'ping' }, isPong)).toEqual([PONG]);

    const frames = await exchange(client, { action: 'resume', since }, (f) => f.type === 'resumed');
    expect(frames).toEqual([
      ...missed.map((r, i) => message(r, { n: i + 1 })),
      { type: 'resumed', recovered: true },
    ]);
    expect(await stack.members('user', 'h-ben')).toEqual({ live: 1, resuming: 0 });

    // Resuming from the newest cursor replays nothing; live delivery goes on, once.
    const newest = missed[2]?.cursor as string;
    expect(
      await exchange(client, { action: 'resume', since: newest }, (f) => f.type === 'resumed'),
    ).toEqual([{ type: 'resumed', recovered: true }]);
    const live = await stack.publish({ userId: 'h-ben', data: { n: 4 } });
    expect(live).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(client);
    expect(client.messages().map((m) => m['data'])).toEqual([1, 2, 3, 4].map((n) => ({ n })));
  });

  it('replays a topic after the cursor of a subscribe with since', async () => {
    const topic = 'h-topic';
    const first = await stack.connect('h-cat', {}, [topic]);
    await first.request({ action: 'subscribe', topic }, (f) => f.type === 'subscribed');
    const seen = await stack.publish({ topic, data: { n: 0 } });
    expect(await first.next((f) => f.type === 'message')).toEqual(message(seen, { n: 0 }, topic));
    await stack.leave(first, 'h-cat', topic);

    const missed = [];
    for (const n of [1, 2, 3]) missed.push(await stack.publishAway({ topic }, { n }));

    const client = await stack.connect('h-cat', {}, [topic]);
    await settle(client);
    const frames = await exchange(
      client,
      { action: 'subscribe', topic, since: seen.cursor },
      (f) => f.type === 'resumed',
    );
    expect(frames).toEqual([
      { type: 'subscribed', topic },
      ...missed.map((r, i) => message(r, { n: i + 1 }, topic)),
      { type: 'resumed', topic, recovered: true },
    ]);
    expect(await stack.members('topic', topic)).toEqual({ live: 1, resuming: 0 });

    const live = await stack.publish({ topic, data: { n: 4 } });
    expect(live).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(client);
    expect(client.messages().map((m) => m['data'])).toEqual([1, 2, 3, 4].map((n) => ({ n })));
  });

  it('refuses a malformed since: at connect with 400, in frames with invalid_cursor', async () => {
    const records = (await stack.redis.keys('pw:c:*')).length;
    const refused = stack.connect('h-dan', { since: 'yesterday' });
    await expect(refused).rejects.toBeInstanceOf(HandshakeRefused);
    await expect(refused).rejects.toMatchObject({ status: 400 });
    expect((await stack.redis.keys('pw:c:*')).length).toBe(records);
    expect(await stack.members('user', 'h-dan')).toEqual({ live: 0, resuming: 0 });

    const client = await stack.connect('h-dan', {}, ['x']);
    expect(await client.request({ action: 'resume', since: 'later' }, () => true)).toMatchObject({
      type: 'error',
      code: 'invalid_cursor',
    });
    expect(
      await client.request({ action: 'subscribe', topic: 'x', since: '1-2-3' }, () => true),
    ).toMatchObject({ type: 'error', code: 'invalid_cursor' });
    expect(await stack.members('user', 'h-dan')).toEqual({ live: 1, resuming: 0 });
    expect(await stack.members('topic', 'x')).toEqual({ live: 0, resuming: 0 });
    await stack.leave(client, 'h-dan');
  });
});

describe('history shorter than the gap (HISTORY_SIZE 3)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ HISTORY_SIZE: '3' });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(({ onTestFailed }) =>
    onTestFailed(() =>
      console.error(`serverless-offline output (tail):\n${stack.offline.output().slice(-4000)}`),
    ),
  );

  it('replays the last 3 of 5 missed user messages and says recovered:false', async () => {
    const since = await stack.lastSeen('s-ann');
    const missed = [];
    for (const n of [1, 2, 3, 4, 5])
      missed.push(await stack.publishAway({ userId: 's-ann' }, { n }));
    expect(await stack.redis.xlen(keys.audience('user', 's-ann').keys.history)).toBe(3);

    const client = await stack.connect('s-ann', { since });
    expect(await exchange(client, { action: 'ping' }, isPong)).toEqual([
      ...missed.slice(2).map((r, i) => message(r, { n: i + 3 })),
      { type: 'resumed', recovered: false },
      PONG,
    ]);

    // From the newest trimmed message on, nothing is missing: recovered.
    const trimmed = missed[1]?.cursor as string;
    expect(
      await exchange(client, { action: 'resume', since: trimmed }, (f) => f.type === 'resumed'),
    ).toEqual([
      ...missed.slice(2).map((r, i) => message(r, { n: i + 3 })),
      { type: 'resumed', recovered: true },
    ]);
    // One before it was trimmed away: not recovered.
    const older = missed[0]?.cursor as string;
    expect(
      await exchange(client, { action: 'resume', since: older }, (f) => f.type === 'resumed'),
    ).toEqual([
      ...missed.slice(2).map((r, i) => message(r, { n: i + 3 })),
      { type: 'resumed', recovered: false },
    ]);
  });

  it('replays the last 3 of 5 missed topic messages and says recovered:false', async () => {
    const topic = 's-topic';
    const first = await stack.connect('s-ben', {}, [topic]);
    await first.request({ action: 'subscribe', topic }, (f) => f.type === 'subscribed');
    const seen = await stack.publish({ topic, data: { n: 0 } });
    await first.next((f) => f.type === 'message');
    await stack.leave(first, 's-ben', topic);

    const missed = [];
    for (const n of [1, 2, 3, 4, 5]) missed.push(await stack.publishAway({ topic }, { n }));

    const client = await stack.connect('s-ben', {}, [topic]);
    await settle(client);
    expect(
      await exchange(
        client,
        { action: 'subscribe', topic, since: seen.cursor },
        (f) => f.type === 'resumed',
      ),
    ).toEqual([
      { type: 'subscribed', topic },
      ...missed.slice(2).map((r, i) => message(r, { n: i + 3 }, topic)),
      { type: 'resumed', topic, recovered: false },
    ]);
  });
});
