/**
 * Audiences, end to end: topics (with token scopes), broadcast, presence,
 * idempotent publish and kick, through serverless-offline with real
 * WebSocket clients and a private Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKeys } from '../../lib/registry/keys.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { type Frame, TestClient } from '../helpers/client.js';
import { type Offline, startOffline } from '../helpers/offline.js';
import { untilPasses } from '../helpers/stack.js';

const keys = createKeys('pw:');

let redisServer: RedisServer;
let redis: Redis;
let offline: Offline;
let open: TestClient[] = [];

beforeAll(async () => {
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  offline = await startOffline(redisServer.url);
});
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await offline?.stop();
  redis?.disconnect();
  await redisServer?.stop();
});
// Every test starts with nobody connected, so counts (broadcast recipients,
// presence) are exact; this also checks that $disconnect cleans up.
beforeEach(({ onTestFailed }) =>
  onTestFailed(() =>
    console.error(`serverless-offline output (tail):\n${offline.output().slice(-4000)}`),
  ),
);
afterEach(async () => {
  await Promise.all(open.map((c) => c.close()));
  open = [];
  await untilPasses(async () => expect(await redis.zcard(keys.all())).toBe(0));
});

interface PublishResult {
  id: string;
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  stored: boolean;
  cursor?: string;
  duplicate?: true;
}
interface PresenceResult {
  users?: Record<string, { online: boolean; connections: number }>;
  topic?: { name: string; members: number };
}
interface KickResult {
  connections: number;
  closed: number;
  gone: number;
  failed: number;
}

const publish = (payload: unknown) => offline.invoke<PublishResult>('publish', payload);
const presence = (payload: unknown) => offline.invoke<PresenceResult>('presence', payload);
const kick = (payload: unknown) => offline.invoke<KickResult>('kick', payload);

/** The connection ids in a user's live set. */
async function liveConnections(userId: string): Promise<string[]> {
  const members = await redis.zrange(keys.audience('user', userId).keys.live, 0, -1);
  return members.map((m) => m.slice(0, m.indexOf('|'))).sort();
}

/**
 * Connects a client of `userId`, waits until it is registered (a ping answered)
 * and finds its connection id: the one its user's live set gained.
 */
async function connect(
  userId: string,
  topics?: string[],
): Promise<{ client: TestClient; connectionId: string }> {
  const before = new Set(await liveConnections(userId));
  const token = await devToken(userId, topics ? { topics } : {});
  const client = await TestClient.connect(offline.wsUrl({ token }));
  open.push(client);
  await client.request({ action: 'ping' }, (f) => f.type === 'pong');
  const added = (await liveConnections(userId)).filter((id) => !before.has(id));
  expect(added).toHaveLength(1);
  return { client, connectionId: added[0] as string };
}

/**
 * A ping round trip. The publish invocation returns only after each post was
 * handed to its socket, so once the pong (sent after the ping, on the same
 * socket) is in, every frame of earlier publishes is in too.
 */
async function settle(...clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.request({ action: 'ping' }, (f) => f.type === 'pong')));
}

const messages = (client: TestClient): Frame[] => client.messages();

function waitClosed(client: TestClient, timeoutMs = 10_000): Promise<void> {
  if (client.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the socket was not closed')), timeoutMs);
    client.ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Every member, live or resuming, of the given topics. */
async function topicMembers(...topics: string[]): Promise<string[]> {
  const sets = topics.flatMap((t) => {
    const k = keys.audience('topic', t).keys;
    return [k.live, k.resuming];
  });
  return (await Promise.all(sets.map((set) => redis.zrange(set, 0, -1)))).flat();
}

describe('topics', () => {
  it('delivers a topic publish to its subscribers only, exactly once, with id, topic and cursor', async () => {
    const { client: sub1 } = await connect('t-ann', ['news']);
    const { client: sub2 } = await connect('t-ben', ['news']);
    const { client: other } = await connect('t-cat', ['news']);
    for (const sub of [sub1, sub2]) {
      expect(await sub.request({ action: 'subscribe', topic: 'news' }, () => true)).toEqual({
        type: 'subscribed',
        topic: 'news',
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
    }
    expect(await presence({ topic: 'news' })).toEqual({ topic: { name: 'news', members: 2 } });

    const result = await publish({ topic: 'news', data: { headline: 'hello' } });
    expect(result).toMatchObject({ recipients: 2, delivered: 2, gone: 0, failed: 0, stored: true });
    expect(result.cursor).toMatch(/^\d+-\d+$/);
    await settle(sub1, sub2, other);
    const expected = {
      type: 'message',
      id: result.id,
      topic: 'news',
      cursor: result.cursor,
      data: { headline: 'hello' },
    };
    expect(messages(sub1)).toEqual([expected]);
    expect(messages(sub2)).toEqual([expected]);
    expect(messages(other)).toEqual([]);
  });

  it('stops delivering after unsubscribe', async () => {
    const { client, connectionId } = await connect('t-dan', ['sports']);
    await client.request({ action: 'subscribe', topic: 'sports' }, (f) => f.type === 'subscribed');
    await publish({ topic: 'sports', data: 1 });
    await client.next((f) => f.type === 'message');

    expect(await client.request({ action: 'unsubscribe', topic: 'sports' }, () => true)).toEqual({
      type: 'unsubscribed',
      topic: 'sports',
    });
    expect(await redis.smembers(keys.connectionTopics(connectionId))).toEqual([]);
    expect(await redis.zcard(keys.audience('topic', 'sports').keys.live)).toBe(0);
    const result = await publish({ topic: 'sports', data: 2 });
    expect(result).toMatchObject({ recipients: 0, delivered: 0, stored: true });
    await settle(client);
    expect(messages(client).map((m) => m['data'])).toEqual([1]);
  });

  it('answers a malformed topic name with invalid_frame and subscribes nothing', async () => {
    const { client, connectionId } = await connect('t-eve', ['*']);
    for (const topic of ['', 'has space', 'star*', 'x'.repeat(129), 42]) {
      const reply = await client.request({ action: 'subscribe', topic }, () => true);
      expect(reply).toMatchObject({ type: 'error', code: 'invalid_frame' });
    }
    expect(await redis.exists(keys.connectionTopics(connectionId))).toBe(0);
    expect(await topicMembers('has space', 'star*')).toEqual([]);
  });

  it('refuses topics outside the token scope with forbidden and changes nothing in Redis', async () => {
    const { client, connectionId } = await connect('t-fay', ['news', 'team:42:*']);
    for (const topic of ['team:43:x', 'secret', 'team:42', 'newsroom']) {
      const reply = await client.request({ action: 'subscribe', topic }, () => true);
      expect(reply).toMatchObject({ type: 'error', code: 'forbidden' });
      // Nor does a since-subscribe sneak in through the resuming set.
      const withSince = await client.request(
        { action: 'subscribe', topic, since: '0' },
        () => true,
      );
      expect(withSince).toMatchObject({ type: 'error', code: 'forbidden' });
    }
    expect(await redis.exists(keys.connectionTopics(connectionId))).toBe(0);
    expect(await topicMembers('team:43:x', 'secret', 'team:42', 'newsroom')).toEqual([]);
    const leaked = await publish({ topic: 'secret', data: 'classified' });
    expect(leaked.recipients).toBe(0);

    for (const topic of ['team:42:anything', 'news']) {
      expect(await client.request({ action: 'subscribe', topic }, () => true)).toEqual({
        type: 'subscribed',
        topic,
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
    }
    expect((await redis.smembers(keys.connectionTopics(connectionId))).sort()).toEqual([
      'news',
      'team:42:anything',
    ]);
    const result = await publish({ topic: 'team:42:anything', data: 'ok' });
    expect(result).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(client);
    expect(messages(client).map((m) => m['data'])).toEqual(['ok']);
  });
});

describe('broadcast', () => {
  it('reaches every connected client of every user once, and skips exceptConnectionId', async () => {
    const clients = [
      await connect('b-ann'),
      await connect('b-ann'),
      await connect('b-ben', ['news']),
      await connect('b-cat'),
    ];
    const all = clients.map((c) => c.client);

    const first = await publish({ broadcast: true, data: 'everyone' });
    expect(first).toMatchObject({ recipients: 4, delivered: 4, gone: 0, failed: 0, stored: false });
    expect(first.cursor).toBeUndefined();
    await settle(...all);
    for (const client of all) {
      expect(messages(client)).toEqual([{ type: 'message', id: first.id, data: 'everyone' }]);
    }

    const skipped = clients[1] as (typeof clients)[number];
    const second = await publish({
      broadcast: true,
      data: 'all but one',
      exceptConnectionId: skipped.connectionId,
    });
    expect(second).toMatchObject({ recipients: 3, delivered: 3 });
    await settle(...all);
    for (const { client, connectionId } of clients) {
      expect(messages(client).map((m) => m['data'])).toEqual(
        connectionId === skipped.connectionId ? ['everyone'] : ['everyone', 'all but one'],
      );
    }
  });

  it('exceptConnectionId also filters user and topic audiences', async () => {
    const a = await connect('x-ann', ['room']);
    const b = await connect('x-ann', ['room']);
    for (const { client } of [a, b]) {
      await client.request({ action: 'subscribe', topic: 'room' }, (f) => f.type === 'subscribed');
    }
    const toUser = await publish({
      userId: 'x-ann',
      data: 'u',
      exceptConnectionId: a.connectionId,
    });
    expect(toUser).toMatchObject({ recipients: 1, delivered: 1 });
    const toTopic = await publish({ topic: 'room', data: 't', exceptConnectionId: b.connectionId });
    expect(toTopic).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(a.client, b.client);
    expect(messages(a.client).map((m) => m['data'])).toEqual(['t']);
    expect(messages(b.client).map((m) => m['data'])).toEqual(['u']);
  });
});

describe('presence', () => {
  it('counts connections per user and members per topic, and drops them on close', async () => {
    const a1 = await connect('p-ann', ['lobby']);
    const a2 = await connect('p-ann', ['lobby']);
    const b1 = await connect('p-ben', ['lobby']);
    for (const { client } of [a1, b1]) {
      await client.request({ action: 'subscribe', topic: 'lobby' }, (f) => f.type === 'subscribed');
    }
    expect(await presence({ userIds: ['p-ann', 'p-ben', 'p-cat'], topic: 'lobby' })).toEqual({
      users: {
        'p-ann': { online: true, connections: 2 },
        'p-ben': { online: true, connections: 1 },
        'p-cat': { online: false, connections: 0 },
      },
      topic: { name: 'lobby', members: 2 },
    });

    await a1.client.close();
    await untilPasses(async () =>
      expect(await presence({ userIds: ['p-ann', 'p-ben'], topic: 'lobby' })).toEqual({
        users: {
          'p-ann': { online: true, connections: 1 },
          'p-ben': { online: true, connections: 1 },
        },
        topic: { name: 'lobby', members: 1 },
      }),
    );
    await Promise.all([a2.client.close(), b1.client.close()]);
    await untilPasses(async () =>
      expect(await presence({ userIds: ['p-ann', 'p-ben'], topic: 'lobby' })).toEqual({
        users: {
          'p-ann': { online: false, connections: 0 },
          'p-ben': { online: false, connections: 0 },
        },
        topic: { name: 'lobby', members: 0 },
      }),
    );
  });

  it('rejects a request with neither userIds nor topic', async () => {
    expect(await presence({})).toMatchObject({ error: { code: 'invalid_request' } });
  });
});

describe('idempotent publish', () => {
  it('delivers and stores a repeated id once; the repeat says duplicate with the first result', async () => {
    const { client } = await connect('i-ann');
    const first = await publish({ id: 'order-17', userId: 'i-ann', data: { total: 5 } });
    expect(first).toMatchObject({ id: 'order-17', recipients: 1, delivered: 1, stored: true });
    expect(first.duplicate).toBeUndefined();
    const second = await publish({ id: 'order-17', userId: 'i-ann', data: { total: 5 } });
    expect(second).toMatchObject({ id: 'order-17', duplicate: true, cursor: first.cursor });
    // Even with another payload or target, the id has been used.
    const third = await publish({ id: 'order-17', broadcast: true, data: 'other' });
    expect(third).toMatchObject({ id: 'order-17', duplicate: true });

    await settle(client);
    expect(messages(client)).toEqual([
      { type: 'message', id: 'order-17', cursor: first.cursor, data: { total: 5 } },
    ]);
    expect(await redis.xlen(keys.audience('user', 'i-ann').keys.history)).toBe(1);

    // Another id is another message.
    const other = await publish({ id: 'order-18', userId: 'i-ann', data: { total: 6 } });
    expect(other.duplicate).toBeUndefined();
    await settle(client);
    expect(messages(client).map((m) => m['id'])).toEqual(['order-17', 'order-18']);
  });
});

describe('kick', () => {
  async function gone(connectionId: string): Promise<void> {
    expect(await redis.exists(keys.connection(connectionId))).toBe(0);
    expect(await redis.exists(keys.connectionTopics(connectionId))).toBe(0);
    const members = await redis.zrange(keys.all(), 0, -1);
    expect(members.filter((m) => m.startsWith(`${connectionId}|`))).toEqual([]);
  }

  it('by userId closes every socket of the user and removes their records', async () => {
    const a1 = await connect('k-ann', ['feed']);
    const a2 = await connect('k-ann', ['feed']);
    const bystander = await connect('k-ben', ['feed']);
    for (const { client } of [a1, a2, bystander]) {
      await client.request({ action: 'subscribe', topic: 'feed' }, (f) => f.type === 'subscribed');
    }

    expect(await kick({ userId: 'k-ann' })).toEqual({
      connections: 2,
      closed: 2,
      gone: 0,
      failed: 0,
    });
    await Promise.all([waitClosed(a1.client), waitClosed(a2.client)]);
    await gone(a1.connectionId);
    await gone(a2.connectionId);
    expect(await redis.zcard(keys.audience('user', 'k-ann').keys.live)).toBe(0);
    expect(await presence({ userIds: ['k-ann', 'k-ben'], topic: 'feed' })).toEqual({
      users: {
        'k-ann': { online: false, connections: 0 },
        'k-ben': { online: true, connections: 1 },
      },
      topic: { name: 'feed', members: 1 },
    });

    expect(bystander.client.closed).toBe(false);
    const result = await publish({ topic: 'feed', data: 'still here' });
    expect(result).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(bystander.client);
    expect(messages(bystander.client).map((m) => m['data'])).toEqual(['still here']);
  });

  it('by connectionIds closes only that connection', async () => {
    const a1 = await connect('k-cat');
    const a2 = await connect('k-cat');
    expect(await kick({ connectionIds: [a1.connectionId] })).toEqual({
      connections: 1,
      closed: 1,
      gone: 0,
      failed: 0,
    });
    await waitClosed(a1.client);
    await gone(a1.connectionId);
    expect(await liveConnections('k-cat')).toEqual([a2.connectionId]);
    expect(a2.client.closed).toBe(false);
    const result = await publish({ userId: 'k-cat', data: 'survivor' });
    expect(result).toMatchObject({ recipients: 1, delivered: 1 });
    await settle(a2.client);
    expect(messages(a2.client).map((m) => m['data'])).toEqual(['survivor']);
    // A second kick of the same id finds nothing.
    expect(await kick({ connectionIds: [a1.connectionId] })).toMatchObject({
      connections: 1,
      closed: 0,
      gone: 1,
    });
  });

  it('by userId also closes a socket that is still replaying history (connected with ?since)', async () => {
    // Connected with ?since and no frame sent yet: the connection waits in
    // its user's resuming set. A log-out or ban must close it all the same.
    const token = await devToken('k-dan');
    const client = await TestClient.connect(offline.wsUrl({ token, since: '0' }));
    open.push(client);
    await untilPasses(async () =>
      expect(await redis.zcard(keys.audience('user', 'k-dan').keys.resuming)).toBe(1),
    );
    const result = await kick({ userId: 'k-dan' });
    expect(result).toMatchObject({ connections: 1, closed: 1 });
    await waitClosed(client);
    expect(await redis.zcard(keys.audience('user', 'k-dan').keys.resuming)).toBe(0);
    expect(await redis.keys('pw:c:*')).toEqual([]);
  });
});
