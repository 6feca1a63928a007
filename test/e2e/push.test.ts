import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import type { PublishResult } from '../../lib/delivery/publish.js';
import { DEV_JWT_SECRET } from '../../scripts/local-env.js';
import { devToken } from '../../scripts/token.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { eventually, type TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, messageIds, publishOk, useStack } from '../helpers/stack.js';

/**
 * The core push path end to end: real WebSocket clients against pushwire run
 * by `npm start`'s script under serverless-offline, publishes through the
 * Lambda Invoke API, and the registry inspected in a private Redis.
 */

const TTL_SECONDS = 30;

const stack = useStack({ env: { CONNECTION_TTL_SECONDS: String(TTL_SECONDS) } });

const publish = (payload: unknown) => publishOk(stack.offline, payload);

async function connectAs(userId: string, topics?: string[]): Promise<TrackedClient> {
  return connectTracked(
    stack,
    stack.offline,
    userId,
    await devToken(userId, topics ? { topics } : {}),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Publishes a sentinel and waits until every client has it. Posts to one
 * socket arrive in order, so whatever was published to these clients before
 * it has arrived by then: counting afterwards proves "exactly once" and
 * "nothing" without a fixed sleep.
 */
async function sentinel(target: object, clients: TrackedClient[]): Promise<PublishResult> {
  const result = await publish({ ...target, data: 'sentinel' });
  await Promise.all(clients.map((c) => c.client.next(isMessage(result.id))));
  return result;
}

describe('push, end to end through serverless-offline', () => {
  it('delivers a user publish to each device of that user exactly once, and to nobody else', async () => {
    const alice1 = await connectAs('alice');
    const alice2 = await connectAs('alice');
    const bob = await connectAs('bob');
    expect(alice1.connectionId).not.toBe(alice2.connectionId);

    const first = await publish({ userId: 'alice', data: { n: 1 } });
    expect(first).toMatchObject({
      recipients: 2,
      delivered: 2,
      gone: 0,
      failed: 0,
      chunks: 0,
      stored: true,
    });
    expect(first.cursor).toMatch(/^\d+-\d+$/);

    const last = await sentinel({ userId: 'alice' }, [alice1, alice2]);
    expect(last).toMatchObject({ recipients: 2, delivered: 2, gone: 0, failed: 0 });
    for (const device of [alice1, alice2]) {
      expect(device.client.messages()).toEqual([
        { type: 'message', id: first.id, cursor: first.cursor, data: { n: 1 } },
        { type: 'message', id: last.id, cursor: last.cursor, data: 'sentinel' },
      ]);
    }
    // bob got nothing of alice's: his own sentinel is the only message he has.
    const bobOnly = await sentinel({ userId: 'bob' }, [bob]);
    expect(messageIds(bob)).toEqual([bobOnly.id]);

    const both = await publish({ userIds: ['alice', 'bob'], data: { n: 3 } });
    expect(both).toMatchObject({ recipients: 3, delivered: 3, gone: 0, failed: 0, stored: true });
    // A cursor belongs to one user's history: none for several users.
    expect(both.cursor).toBeUndefined();
    await sentinel({ userIds: ['alice', 'bob'] }, [alice1, alice2, bob]);
    for (const device of [alice1, alice2, bob]) {
      expect(messageIds(device).filter((id) => id === both.id)).toHaveLength(1);
      const frame = device.client.messages().find((m) => m['id'] === both.id);
      expect(frame?.['data']).toEqual({ n: 3 });
      // Each user's copy carries that user's history cursor.
      expect(frame?.['cursor']).toMatch(/^\d+-\d+$/);
    }
    expect(alice1.client.messages()).toHaveLength(4);
    expect(bob.client.messages()).toHaveLength(3);
  });

  it('refuses bad tokens with HTTP 401 and stores nothing', async () => {
    await stack.probe.waitUntilNoConnections();
    const sizeBefore = await stack.probe.redis.dbsize();
    const keysBefore = await stack.probe.scanKeys();

    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setIssuedAt(now - 7200)
      .setExpirationTime(now - 3600)
      .sign(new TextEncoder().encode(process.env['JWT_SECRET'] ?? DEV_JWT_SECRET));
    const cases: [string, Record<string, string>, string][] = [
      ['missing', {}, 'missing token'],
      ['malformed', { token: 'not-a-jwt' }, 'malformed or unverifiable token'],
      [
        'signed with another secret',
        { token: await devToken('mallory', { secret: 'some-other-secret' }) },
        'bad token signature',
      ],
      ['expired', { token: expired }, 'token expired'],
    ];
    for (const [name, query, reason] of cases) {
      const attempt = TestClient.connect(stack.offline.wsUrl(query));
      await expect(attempt, name).rejects.toBeInstanceOf(HandshakeRefused);
      await expect(attempt, name).rejects.toMatchObject({ status: 401 });
      // Refused for the reason this case is about (the handler logs it).
      await eventually(() => stack.offline.output().includes(reason), 10_000, `log of "${reason}"`);
    }

    expect(await stack.probe.redis.dbsize()).toBe(sizeBefore);
    expect(await stack.probe.scanKeys()).toEqual(keysBefore);
    expect(await stack.probe.userLive('mallory')).toEqual(new Map());

    // The control: the same user with a good token is let in and recorded.
    const mallory = await connectAs('mallory');
    expect(await stack.probe.redis.dbsize()).toBeGreaterThan(sizeBefore);
    expect(
      await stack.probe.redis.hget(stack.probe.keys.connection(mallory.connectionId), 'userId'),
    ).toBe('mallory');
  });

  it('answers ping with pong and renews the connection TTLs', async () => {
    const carol = await connectAs('carol');
    const key = stack.probe.keys.connection(carol.connectionId);
    const live = stack.probe.keys.audience('user', 'carol').keys.live;
    const all = stack.probe.keys.all();

    const ttlAtConnect = await stack.probe.redis.pttl(key);
    // CONNECTION_TTL_SECONDS reached the functions.
    expect(ttlAtConnect).toBeGreaterThan((TTL_SECONDS - 5) * 1000);
    expect(ttlAtConnect).toBeLessThanOrEqual(TTL_SECONDS * 1000);
    const score0 = Number(await stack.probe.redis.zscore(live, carol.member));
    const all0 = Number(await stack.probe.redis.zscore(all, carol.member));
    expect(score0).toBeGreaterThan(Date.now());

    await sleep(1_200);
    const ttlBefore = await stack.probe.redis.pttl(key);
    const liveTtlBefore = await stack.probe.redis.pttl(live);
    expect(ttlBefore).toBeLessThan(TTL_SECONDS * 1000 - 1_000);

    const reply = await carol.client.request({ action: 'ping' }, () => true);
    expect(reply).toEqual({
      type: 'pong',
      connectionId: carol.connectionId,
      epoch: expect.any(String),
      cursor: expect.stringMatching(/^\d+-\d+$/),
    });

    expect(await stack.probe.redis.pttl(key)).toBeGreaterThan(ttlBefore + 900);
    expect(await stack.probe.redis.pttl(live)).toBeGreaterThan(liveTtlBefore + 900);
    expect(Number(await stack.probe.redis.zscore(live, carol.member))).toBeGreaterThan(
      score0 + 1_000,
    );
    expect(Number(await stack.probe.redis.zscore(all, carol.member))).toBeGreaterThan(all0 + 1_000);
  });

  it('answers malformed frames with error frames, changes nothing, and keeps the connection', async () => {
    const dave = await connectAs('dave');
    const key = stack.probe.keys.connection(dave.connectionId);
    const live = stack.probe.keys.audience('user', 'dave').keys.live;
    const record = await stack.probe.redis.hgetall(key);
    const score = await stack.probe.redis.zscore(live, dave.member);
    const allScore = await stack.probe.redis.zscore(stack.probe.keys.all(), dave.member);
    const keys = await stack.probe.scanKeys();
    const ttl = await stack.probe.redis.pttl(key);
    // Time passes, so a renewal (which bad frames must not cause) would show in the TTL.
    await sleep(500);

    const cases: [string, string][] = [
      ['{"action": "ping"', 'invalid_json'],
      ['not json at all', 'invalid_json'],
      [JSON.stringify({ action: 'dance' }), 'unknown_action'],
      [JSON.stringify({ topic: 'news' }), 'unknown_action'],
      [JSON.stringify({ action: 'ping', pad: 'x'.repeat(33 * 1024) }), 'too_large'],
      ['[1,2,3]', 'invalid_frame'],
      ['42', 'invalid_frame'],
      ['"ping"', 'invalid_frame'],
      ['null', 'invalid_frame'],
      [JSON.stringify({ action: 'ping', extra: true }), 'invalid_frame'],
    ];
    for (const [raw, code] of cases) {
      const reply = await dave.client.request(raw, () => true);
      expect(reply, raw.slice(0, 40)).toEqual({
        type: 'error',
        code,
        message: expect.any(String),
      });
    }

    expect(await stack.probe.redis.hgetall(key)).toEqual(record);
    expect(await stack.probe.redis.zscore(live, dave.member)).toBe(score);
    expect(await stack.probe.redis.zscore(stack.probe.keys.all(), dave.member)).toBe(allScore);
    expect(await stack.probe.redis.pttl(key)).toBeLessThan(ttl - 400);
    expect(await stack.probe.scanKeys()).toEqual(keys);

    expect(await dave.client.request({ action: 'ping' }, () => true)).toEqual({
      type: 'pong',
      connectionId: dave.connectionId,
      epoch: expect.any(String),
      cursor: expect.stringMatching(/^\d+-\d+$/),
    });
    expect(Number(await stack.probe.redis.zscore(live, dave.member))).toBeGreaterThan(
      Number(score),
    );
    // One reply per frame, nothing more.
    expect(dave.client.frames).toHaveLength(cases.length + 1);
    expect(dave.client.closed).toBe(false);
  });

  it('counts dead connections as gone and prunes the records a lost $disconnect left', async () => {
    const nope = await publish({ connectionIds: ['nope'], data: 1 });
    expect(nope).toMatchObject({ recipients: 1, delivered: 0, gone: 1, failed: 0 });

    const ghost = await connectAs('erin');
    const device = await connectAs('erin');
    const key = stack.probe.keys.connection(ghost.connectionId);
    const live = stack.probe.keys.audience('user', 'erin').keys.live;
    const all = stack.probe.keys.all();
    const record = await stack.probe.redis.hgetall(key);
    const score = Number(await stack.probe.redis.zscore(live, ghost.member));
    expect(record['userId']).toBe('erin');

    await ghost.client.close();
    await eventually(
      async () =>
        (await stack.probe.redis.exists(key)) === 0 &&
        (await stack.probe.userLive('erin')).size === 1,
      20_000,
      '$disconnect to remove the closed connection',
    );
    // A lost $disconnect: the socket is gone but its records are back.
    const restore = () =>
      stack.probe.redis
        .multi()
        .hset(key, record)
        .expire(key, TTL_SECONDS)
        .zadd(live, score, ghost.member)
        .zadd(all, score, ghost.member)
        .exec();
    const pruned = async () => {
      expect(await stack.probe.redis.exists(key)).toBe(0);
      expect(await stack.probe.redis.zscore(live, ghost.member)).toBeNull();
      expect(await stack.probe.redis.zscore(all, ghost.member)).toBeNull();
      // The live device is untouched.
      expect(await stack.probe.redis.exists(stack.probe.keys.connection(device.connectionId))).toBe(
        1,
      );
      expect(await stack.probe.redis.zscore(live, device.member)).not.toBeNull();
    };

    await restore();
    expect(await stack.probe.userLive('erin')).toHaveProperty('size', 2);
    const byUser = await publish({ userId: 'erin', data: { n: 1 } });
    expect(byUser).toMatchObject({ recipients: 2, delivered: 1, gone: 1, failed: 0 });
    await pruned();

    await restore();
    const byId = await publish({
      connectionIds: [ghost.connectionId, device.connectionId],
      data: { n: 2 },
    });
    expect(byId).toMatchObject({ recipients: 2, delivered: 1, gone: 1, failed: 0 });
    await pruned();

    await sentinel({ userId: 'erin' }, [device]);
    expect(device.client.messages().map((m) => m['data'])).toEqual([
      { n: 1 },
      { n: 2 },
      'sentinel',
    ]);
  });

  it('refuses invalid and oversize publishes, sending and storing nothing', async () => {
    const frank = await connectAs('frank');
    const history = stack.probe.keys.audience('user', 'frank').keys.history;
    const invalid: [unknown, string][] = [
      [{ data: { n: 1 } }, 'exactly one target is required'],
      [{ userId: 'frank', broadcast: true, data: { n: 2 } }, 'exactly one target is required'],
      [{ userId: 'frank', connectionIds: [frank.connectionId], data: 3 }, 'exactly one target'],
      [{ userId: 'frank' }, 'data is required'],
    ];
    for (const [payload, problem] of invalid) {
      const reply = await stack.offline.invoke('publish', payload);
      expect(reply, JSON.stringify(payload)).toEqual({
        error: { code: 'invalid_request', message: expect.stringContaining(problem) },
      });
    }

    const tooLarge = await stack.offline.invoke('publish', {
      userId: 'frank',
      data: 'x'.repeat(1024 * 1024), // 2 bytes over MAX_PUBLISH_BYTES as JSON
    });
    expect(tooLarge).toEqual({
      error: { code: 'too_large', message: expect.stringContaining('bytes') },
    });
    expect(await stack.probe.redis.exists(history)).toBe(0);

    const last = await sentinel({ userId: 'frank' }, [frank]);
    expect(messageIds(frank)).toEqual([last.id]);
    // The sentinel is the only entry in frank's history.
    expect(await stack.probe.redis.xlen(history)).toBe(1);
  });

  it('delivers a message of exactly 128 KB as a frame whole; a byte more as two parts (PW-F6)', async () => {
    const ivy = await connectAs('ivy');
    const frameBytes = (id: string, cursor: string, data: string) =>
      Buffer.byteLength(JSON.stringify({ type: 'message', id, cursor, data }));

    // Cursors of one stream grow by a digit at most: publish once to learn the length.
    const probe = await publish({ id: 'big-0', userId: 'ivy', data: 0 });
    const cursor = probe.cursor as string;
    const fill = 128 * 1024 - frameBytes('big-1', cursor, '');
    const fits = await publish({ id: 'big-1', userId: 'ivy', data: 'x'.repeat(fill) });
    expect(fits).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });
    expect(frameBytes('big-1', fits.cursor as string, 'x'.repeat(fill))).toBe(128 * 1024);
    const whole = await ivy.client.next(isMessage('big-1'));
    expect(whole['data']).toBe('x'.repeat(fill));
    expect(ivy.client.reassembled.has(whole)).toBe(false);

    const over = await publish({ id: 'big-2', userId: 'ivy', data: 'x'.repeat(fill + 1) });
    expect(over).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });
    const parted = await ivy.client.next(isMessage('big-2'));
    expect(parted['data']).toBe('x'.repeat(fill + 1));
    expect(ivy.client.reassembled.has(parted)).toBe(true);
    expect(ivy.client.parts.filter((p) => p.id === 'big-2').map((p) => p.n)).toEqual([0, 1]);
    expect(ivy.client.parts.every((p) => p.bytes <= 128 * 1024)).toBe(true);
    const last = await sentinel({ userId: 'ivy' }, [ivy]);
    expect(messageIds(ivy)).toEqual(['big-0', 'big-1', 'big-2', last.id]);
  });

  it('delivers a publish id once: a retry gets the first result, marked duplicate, and sends nothing', async () => {
    const jay = await connectAs('jay');
    const first = await publish({ id: 'order-42', userId: 'jay', data: { n: 1 } });
    expect(first).toMatchObject({ id: 'order-42', recipients: 1, delivered: 1 });
    expect(first.duplicate).toBeUndefined();
    const retry = await publish({ id: 'order-42', userId: 'jay', data: { n: 1 } });
    expect(retry).toEqual({ ...first, duplicate: true });

    const last = await sentinel({ userId: 'jay' }, [jay]);
    expect(messageIds(jay)).toEqual(['order-42', last.id]);
    expect(
      await stack.probe.redis.xlen(stack.probe.keys.audience('user', 'jay').keys.history),
    ).toBe(2);
  });

  it('removes every record of a connection once its client closes', async () => {
    await stack.probe.waitUntilNoConnections();
    const clients = [
      await connectAs('gina', ['news']),
      await connectAs('gina', ['news']),
      await connectAs('hank'),
    ];
    for (const c of clients.slice(0, 2)) {
      expect(await c.client.request({ action: 'subscribe', topic: 'news' }, () => true)).toEqual({
        type: 'subscribed',
        topic: 'news',
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
    }
    const state = await stack.probe.connectionState();
    for (const c of clients) expect(state).toContain(stack.probe.keys.connection(c.connectionId));
    expect(state).toContain(stack.probe.keys.connectionTopics(clients[0]?.connectionId ?? ''));
    expect(state).toContain(stack.probe.keys.audience('topic', 'news').keys.live);
    expect(state).toContain(stack.probe.keys.audience('user', 'gina').keys.live);
    expect(state).toContain(stack.probe.keys.all());

    await Promise.all(clients.map((c) => c.client.close()));
    await stack.probe.waitUntilNoConnections();
    expect(await stack.probe.redis.zcard(stack.probe.keys.all())).toBe(0);
    expect(await stack.probe.userLive('gina')).toEqual(new Map());
  });

  it('leaves no connection record behind after every client of this file closed', async () => {
    await Promise.all(stack.open.map((c) => c.close()));
    await stack.probe.waitUntilNoConnections();
    expect(await stack.probe.scanKeys(`${stack.probe.prefix}c:*`)).toEqual([]);
    expect(await stack.probe.scanKeys(`${stack.probe.prefix}u:*:c`)).toEqual([]);
  });
});
