import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET } from '../../scripts/local-env.js';
import { devToken } from '../../scripts/token.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { eventually } from '../helpers/offline.js';
import { connectTracked, publishOk, useStack } from '../helpers/stack.js';

/**
 * Every refusal of issue 9, end to end: `npm start`'s serverless-offline,
 * real WebSocket clients, a private Redis; the limits set low so each is
 * reached with a handful of frames.
 */

const stack = useStack({
  env: {
    MAX_TOPICS_PER_CONNECTION: '2',
    MAX_CONNECTIONS_PER_USER: '2',
    REPLAYS_PER_MINUTE: '2',
  },
});

const secret = new TextEncoder().encode(process.env['JWT_SECRET'] ?? DEV_JWT_SECRET);
const nowSeconds = () => Math.floor(Date.now() / 1000);

async function token(sub: string, claims: { iat?: number; exp?: number; topics?: string[] } = {}) {
  const iat = claims.iat ?? nowSeconds();
  return new SignJWT(claims.topics ? { topics: claims.topics } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(claims.exp ?? iat + 600)
    .sign(secret);
}

async function open(jwt: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.offline.wsUrl({ token: jwt }));
  stack.open.push(client);
  return client;
}

const refusedWith = async (jwt: string) =>
  TestClient.connect(stack.offline.wsUrl({ token: jwt })).then(
    (c) => {
      stack.open.push(c);
      return 'accepted';
    },
    (e: unknown) => (e instanceof HandshakeRefused ? e.status : `error ${String(e)}`),
  );

const isType = (type: string) => (f: { type: string }) => f.type === type;

describe('tokens', () => {
  it('an expired token stops delivery and its next frame gets token_expired and a close; auth refreshes in place', async () => {
    // Prepare: two connections whose tokens expire in 4 s; one refreshes first
    const exp = nowSeconds() + 4;
    const expiring = await open(await token('exp-a', { exp }));
    const refreshing = await open(await token('exp-b', { exp }));
    expect(await expiring.request({ action: 'ping' }, isType('pong'))).toMatchObject({
      type: 'pong',
    });
    const fresh = await token('exp-b', { exp: nowSeconds() + 600 });
    const other = await token('someone-else');

    // Act
    const refreshed = await refreshing.request(
      { action: 'auth', token: fresh },
      isType('authenticated'),
    );
    const foreign = await refreshing.request({ action: 'auth', token: other }, isType('error'));
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, exp * 1000 - Date.now()) + 1_000),
    );
    const toExpired = await publishOk(stack.offline, { userId: 'exp-a', data: 'late' });
    const toRefreshed = await publishOk(stack.offline, { userId: 'exp-b', data: 'still here' });
    const answer = await expiring.request({ action: 'ping' }, isType('error'));

    // Assess
    expect(refreshed['expiresAt']).toBeGreaterThan(exp * 1000);
    expect(foreign).toMatchObject({ code: 'forbidden' });
    expect(toExpired.recipients).toBe(0);
    expect(toRefreshed.delivered).toBe(1);
    await refreshing.next((f) => f.type === 'message' && f['data'] === 'still here');
    expect(expiring.messages()).toEqual([]);
    expect(answer).toMatchObject({ type: 'error', code: 'token_expired' });
    await eventually(async () => expiring.closed, 10_000, 'the expired connection to be closed');
  });

  it('kick with revoke closes the user and refuses its older tokens at $connect; a newer token connects', async () => {
    // Prepare
    const old = await token('rev-u', { iat: nowSeconds() - 2 });
    const client = await open(old);

    // Act
    const kicked = await stack.offline.invoke<Record<string, unknown>>('kick', {
      userId: 'rev-u',
      revoke: true,
    });
    await eventually(async () => client.closed, 10_000, 'the kicked connection to be closed');
    const reuse = await refusedWith(old);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const newer = await refusedWith(await token('rev-u'));

    // Assess
    expect(kicked).toMatchObject({ revoked: true, connections: 1, closed: 1 });
    // PW-X2: the close carries no code (API Gateway cannot), so a last frame says why.
    expect(client.frames.at(-1)).toMatchObject({ type: 'error', code: 'revoked' });
    expect(reuse).toBe(401);
    await eventually(
      () => stack.offline.output().includes('token revoked'),
      10_000,
      'the refusal log',
    );
    expect(newer).toBe('accepted');
  });

  it.each([
    [
      'without exp',
      async () =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('x')
          .setIssuedAt()
          .sign(secret),
    ],
    ['living longer than JWT_MAX_TOKEN_AGE', async () => token('x', { exp: nowSeconds() + 7_200 })],
    ['with a sub holding {', async () => token('x{y}')],
    [
      'granting team:42* (a prefix grant ends at a separator)',
      async () => token('x', { topics: ['team:42*'] }),
    ],
  ])('refuses a token %s with 401', async (_label, make) => {
    // Act
    const status = await refusedWith(await make());

    // Assess
    expect(status).toBe(401);
  });
});

describe('limits', () => {
  it('refuses a third connection of one user with 429', async () => {
    // Prepare
    await open(await token('many'));
    await open(await token('many'));

    // Act
    const third = await refusedWith(await token('many'));

    // Assess
    expect(third).toBe(429);
  });

  it('refuses a topic over the limit with too_many_topics and keeps the connection working', async () => {
    // Prepare
    const client = await open(await token('topics', { topics: ['*'] }));
    await client.request({ action: 'subscribe', topic: 'a' }, isType('subscribed'));
    await client.request({ action: 'subscribe', topic: 'b' }, isType('subscribed'));

    // Act
    const third = await client.request({ action: 'subscribe', topic: 'c' }, isType('error'));
    const again = await client.request({ action: 'subscribe', topic: 'a' }, isType('subscribed'));
    const pong = await client.request({ action: 'ping' }, isType('pong'));

    // Assess
    expect(third).toMatchObject({ code: 'too_many_topics' });
    expect(again).toMatchObject({ topic: 'a' });
    expect(pong.type).toBe('pong');
  });

  it("refuses a third counted replay in a minute with rate_limited (a stream's first is free)", async () => {
    // Prepare
    const client = await open(await devToken('replayer'));
    await publishOk(stack.offline, { userId: 'replayer', data: 1 });

    // Act: the first replay of a stream on a connection is not counted (a
    // reconnection resubscribing every topic from its cursor must not be
    // refused); the next two are (REPLAYS_PER_MINUTE 2), the one after is refused.
    const free = await client.request({ action: 'resume', since: '0-0' }, isType('resumed'));
    const first = await client.request({ action: 'resume', since: '0-0' }, isType('resumed'));
    const second = await client.request({ action: 'resume', since: '0-0' }, isType('resumed'));
    const third = await client.request(
      { action: 'resume', since: '0-0', ref: 'third' },
      (f) => f.type === 'error',
    );

    // Assess
    expect(free.type).toBe('resumed');
    expect(first.type).toBe('resumed');
    expect(second.type).toBe('resumed');
    // PW-E3, PW-F3: how long to wait, and which frame it answers.
    expect(third).toMatchObject({ code: 'rate_limited', retryAfter: 60, ref: 'third' });
  });
});

describe('races (issue 21, item 6)', () => {
  it('opens at most MAX_CONNECTIONS_PER_USER sockets when 16 connects of one user race, cold or warm', async () => {
    // Prepare: a first burst starts 16 `$connect` instances (cold); the
    // second finds them idle (warm), so its handlers run side by side.
    const jwt = await token('crowd');
    const burst = async () => {
      const clients = await Promise.all(
        Array.from({ length: 16 }, () =>
          TestClient.connect(stack.offline.wsUrl({ token: jwt })).then(
            (c) => c,
            (e: unknown) => (e instanceof HandshakeRefused ? e.status : `error ${String(e)}`),
          ),
        ),
      );
      const live = (await stack.probe.userLive('crowd')).size;
      const opened = clients.filter((c): c is TestClient => c instanceof TestClient);
      await Promise.all(opened.map((c) => c.close()));
      await eventually(
        async () => (await stack.probe.userLive('crowd')).size === 0,
        20_000,
        'the burst to disconnect',
      );
      return { opened: opened.length, refused: clients.filter((c) => c === 429).length, live };
    };

    // Act
    const cold = await burst();
    const warm = await burst();

    // Assess
    expect(cold).toEqual({ opened: 2, refused: 14, live: 2 });
    expect(warm).toEqual({ opened: 2, refused: 14, live: 2 });
  });

  it('never keeps a topic subscribed back to back with an auth whose token no longer grants it', async () => {
    for (let round = 0; round < 8; round++) {
      // Prepare: granted both topics; the refreshed token grants only the second
      const user = `regrant-${round}`;
      const topic = `regrant:${round}:a`;
      const tracked = await connectTracked(
        stack,
        stack.offline,
        user,
        await token(user, { topics: [topic, 'regrant:b'] }),
      );
      const narrower = await token(user, { topics: ['regrant:b'] });
      const replied = (f: { type: string }) =>
        ['authenticated', 'subscribed', 'unsubscribed', 'error'].includes(f.type);

      // Act: sent back to back, as a plain WebSocket client may
      tracked.client.send({ action: 'auth', token: narrower });
      tracked.client.send({ action: 'subscribe', topic });
      await eventually(
        () => tracked.client.frames.filter(replied).length >= 2,
        10_000,
        'both replies',
      );
      const published = await publishOk(stack.offline, { topic, data: round });
      const listed = await stack.probe.redis.sismember(
        stack.probe.keys.connectionTopics(tracked.connectionId),
        topic,
      );

      // Assess
      expect(tracked.client.frames.filter(replied).map((f) => f.type)).toContain('authenticated');
      expect(published.recipients).toBe(0);
      expect(listed).toBe(0);
      await tracked.client.close();
    }
  });

  it('refuses at $connect a token past its exp by less than the clock tolerance, storing nothing', async () => {
    // Prepare: jose forgives 30 s; the first frame would call it expired
    const iat = nowSeconds() - 60;

    // Act
    const status = await refusedWith(await token('just-expired', { iat, exp: nowSeconds() - 5 }));

    // Assess
    expect(status).toBe(401);
    expect(await stack.probe.scanKeys('*just-expired*')).toEqual([]);
  });
});

describe('the backend API refuses user ids no token could carry', () => {
  it.each([
    ['publish', { userId: 'x space', data: 1 }],
    ['publish', { userIds: ['ok', 'x|pipe'], data: 1 }],
    ['presence', { userIds: ['x{tag}'] }],
    ['kick', { userId: 'x\u0000' }],
  ])('%s %j', async (fn, payload) => {
    // Act
    const reply = await stack.offline.invoke<{ error?: { code: string } }>(fn, payload);

    // Assess
    expect(reply.error?.code).toBe('invalid_request');
    expect(await stack.probe.scanKeys()).not.toContainEqual(
      expect.stringMatching(/x space|x\|pipe|x\{tag\}/),
    );
  });
});

describe('deliver', () => {
  it("refuses a chunk naming an endpoint that is neither this API's nor recorded", async () => {
    // Act
    const reply = await stack.offline.invoke<{ error?: { code: string; message: string } }>(
      'deliver',
      {
        message: { id: 'm1', data: { steal: true } },
        jobs: [{ recipients: [['c1', 'http://127.0.0.1:9/steal']] }],
      },
    );

    // Assess
    expect(reply.error).toMatchObject({ code: 'invalid_request' });
    expect(reply.error?.message).toMatch(
      /neither this API's nor a peer's nor one a connection was recorded with/,
    );
  });
});
