/**
 * Presence (issue 16) end to end through `npm start`: real WebSocket clients
 * and the client library against serverless-offline, the presenceEvents
 * function invoked by $default and $disconnect (Lambda Invoke, Event) and
 * swept by npm start's stand-in for the schedule, the registry in a private
 * Redis. Member lists across devices and pages, the grants, join and leave
 * (first device in, last device out, and a lost $disconnect found by the
 * sweep), coalesced presence_diff above the configured size, and the
 * service API's member pages.
 */
import { pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { DEV_JWT_SECRET } from '../../scripts/local-env.js';
import type { Frame } from '../helpers/client.js';
import type { TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, publishOk, untilPasses, useStack } from '../helpers/stack.js';

const stack = useStack({
  env: {
    PRESENCE_EVENTS_TOPICS: 'room:*',
    PRESENCE_COALESCE_ABOVE: '4',
    PRESENCE_INTERVAL_MS: '500',
    PRESENCE_SWEEP_MS: '500',
  },
});

let lib: typeof Client;
beforeAll(async () => {
  await writeClientBundle();
  lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
});

const token = (userId: string, claims: Record<string, unknown> = {}) =>
  new SignJWT({ topics: ['room:*', 'news'], presence: ['room:*'], ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(DEV_JWT_SECRET));

async function member(
  userId: string,
  topics: string[],
  claims: Record<string, unknown> = {},
): Promise<TrackedClient> {
  const c = await connectTracked(stack, stack.offline, userId, await token(userId, claims));
  for (const topic of topics)
    await c.client.request({ action: 'subscribe', topic }, (f) => f.type === 'subscribed');
  return c;
}

const list = (c: TrackedClient, topic: string, extra: object = {}) =>
  c.client.request({ action: 'presence', topic, ...extra }, (f) =>
    ['presence', 'error'].includes(String(f.type)),
  );

/** Publishes a sentinel to a topic and waits until `c` has it: frames posted before it have arrived. */
async function settled(c: TrackedClient, topic: string): Promise<Frame[]> {
  const { id } = await publishOk(stack.offline, { topic, data: 'sentinel' });
  await c.client.next(isMessage(id));
  return c.client.frames;
}

const presenceFrames = (frames: Frame[], topic: string) =>
  frames.filter(
    (f) => ['join', 'leave', 'presence_diff'].includes(String(f.type)) && f['topic'] === topic,
  );

describe('presence members', () => {
  it('lists each user once across devices, page by page, with their info', async () => {
    // Prepare: alice on two devices, bob, carol.
    const topic = 'room:list';
    const alice = await member('alice', [topic], { info: { name: 'Alice' } });
    await member('alice', [topic], { info: { name: 'Alice (phone)' } });
    await member('bob', [topic]);
    await member('carol', [topic], { info: { name: 'Carol' } });

    // Act: pages of two.
    const first = await list(alice, topic, { limit: 2, ref: 'p1' });
    const second = await list(alice, topic, { limit: 2, cursor: first['next'] });

    // Assess
    expect(first).toEqual({
      type: 'presence',
      topic,
      members: [{ userId: 'alice', info: { name: 'Alice (phone)' } }, { userId: 'bob' }],
      count: 3,
      next: expect.any(String),
      ref: 'p1',
    });
    expect(second).toEqual({
      type: 'presence',
      topic,
      members: [{ userId: 'carol', info: { name: 'Carol' } }],
      count: 3,
    });
    // The service API: the same page, and the device count beside it.
    const viaInvoke = await stack.offline.invoke('presence', { topic, members: true, limit: 2 });
    expect(viaInvoke).toEqual({
      topic: { name: topic, members: 4 },
      members: first['members'],
      count: 3,
      next: first['next'],
    });
  });

  it('refuses the list without the presence grant, or before subscribing, as forbidden', async () => {
    const noGrant = await member('dan', ['room:grant'], { presence: ['room:other:*'] });
    expect(await list(noGrant, 'room:grant')).toMatchObject({
      type: 'error',
      code: 'forbidden',
      message: expect.stringContaining('"presence" claim'),
    });
    const notSubscribed = await member('dan', []);
    expect(await list(notSubscribed, 'room:grant')).toMatchObject({
      type: 'error',
      code: 'forbidden',
      message: expect.stringContaining('subscribe to topic "room:grant" before'),
    });
  });

  it('refuses a handshake whose info is over 1 KB (401, nothing stored)', async () => {
    const big = await token('ed', { info: { n: 'x'.repeat(1_100) } });
    await expect(connectTracked(stack, stack.offline, 'ed', big)).rejects.toMatchObject({
      status: 401,
    });
    expect((await stack.probe.userLive('ed')).size).toBe(0);
  });
});

describe('join and leave', () => {
  it('joins with the first device, leaves with the last, in order, to every member', async () => {
    const topic = 'room:events';
    const watcher = await member('watcher', [topic]);

    // Act
    const phone = await member('fay', [topic], { info: { name: 'Fay' } });
    const laptop = await member('fay', [topic]);
    await phone.client.close();
    // The phone's $disconnect has run (its record is gone) before the laptop goes.
    await untilPasses(async () =>
      expect(await stack.probe.redis.exists(stack.probe.keys.connection(phone.connectionId))).toBe(
        0,
      ),
    );
    await laptop.client.close();

    // Assess
    await watcher.client.next((f) => f.type === 'leave' && f['userId'] === 'fay');
    // (The watcher's own join came first: events go to every member.)
    expect(presenceFrames(await settled(watcher, topic), topic)).toEqual([
      { type: 'join', topic, userId: 'watcher' },
      { type: 'join', topic, userId: 'fay', info: { name: 'Fay' } },
      { type: 'leave', topic, userId: 'fay' },
    ]);
    // Not on topics outside PRESENCE_EVENTS_TOPICS.
    const newsWatcher = await member('watcher', ['news']);
    await member('gus', ['news']);
    expect(presenceFrames(await settled(newsWatcher, 'news'), 'news')).toEqual([]);
  });

  it("a device whose $disconnect was lost expires, and the sweep sends its user's leave", async () => {
    // Prepare: hal subscribed; his socket closes and his $disconnect runs...
    const topic = 'room:lost';
    const watcher = await member('watcher', [topic]);
    const hal = await member('hal', [topic]);
    await watcher.client.next((f) => f.type === 'join' && f['userId'] === 'hal');
    const k = stack.probe.keys.presence(topic);
    const device = `${hal.connectionId}|hal`;
    await hal.client.close();
    await watcher.client.next((f) => f.type === 'leave' && f['userId'] === 'hal');
    // ...and now as if it never had: his presence is back, expiring in a second.
    const expiry = Date.now() + 1_000;
    await stack.probe.redis
      .multi()
      .zadd(k.devices, expiry, device)
      .zadd(k.users, 0, 'hal')
      .hset(k.counts, 'hal', '1 ')
      .zadd(stack.probe.keys.presenceDue(), expiry, topic)
      .exec();
    const from = watcher.client.frames.length;
    expect((await list(watcher, topic))['members']).toEqual([
      { userId: 'hal' },
      { userId: 'watcher' },
    ]);

    // Act: nothing but time and the sweep (npm start invokes it every 500 ms).
    const leave = await watcher.client.next(
      (f) => f.type === 'leave' && f['userId'] === 'hal',
      15_000,
      from,
    );

    // Assess
    expect(leave).toEqual({ type: 'leave', topic, userId: 'hal' });
    expect((await list(watcher, topic))['members']).toEqual([{ userId: 'watcher' }]);
    expect(await stack.probe.redis.zscore(k.devices, device)).toBeNull();
  });

  it('above PRESENCE_COALESCE_ABOVE users, changes come as one presence_diff per interval', async () => {
    // Prepare: the watcher and three more: four users, not above 4 yet.
    const topic = 'room:big';
    const watcher = await member('watcher', [topic]);
    for (const u of ['u1', 'u2', 'u3']) await member(u, [topic]);
    await watcher.client.next((f) => f.type === 'join' && f['userId'] === 'u3');
    const from = watcher.client.frames.length;

    // Act: two join, one leaves: above 4 users, coalesced.
    await member('u4', [topic]);
    const u5 = await member('u5', [topic]);
    await u5.client.close();
    await member('u6', [topic]);

    // Assess: u5 came and went within the interval (in neither list), or in
    // two diffs, or one; never a join or leave frame.
    await untilPasses(async () => {
      const diffs = watcher.client.frames.slice(from).filter((f) => f.type === 'presence_diff');
      const joined = diffs.flatMap((d) =>
        (d['joined'] as { userId: string }[]).map((m) => m.userId),
      );
      const left = diffs.flatMap((d) => d['left'] as string[]);
      expect(joined).toEqual(expect.arrayContaining(['u4', 'u6']));
      expect(joined.filter((u) => u === 'u5').length).toBe(left.filter((u) => u === 'u5').length);
    });
    expect(
      watcher.client.frames.slice(from).filter((f) => f.type === 'join' || f.type === 'leave'),
    ).toEqual([]);
  });
});

describe('the client library', () => {
  it('pages members with presence() and reports joins and leaves as presence events', async () => {
    const topic = 'room:lib';
    await member('ivy', [topic], { info: { name: 'Ivy' } });
    const changes: Client.PresenceChange[] = [];
    const pw = new lib.Pushwire({
      url: `ws://localhost:${stack.offline.wsPort}`,
      token: () => token('jon'),
      WebSocket: WebSocket as unknown as Client.SocketClass,
      storage: null,
    });
    pw.on('presence', (c) => changes.push(c));
    try {
      pw.subscribe(topic);
      pw.connect();
      await untilPasses(async () => expect(pw.state).toBe('connected'));
      // Listed once its own subscribe has gone through.
      await untilPasses(async () =>
        expect((await pw.presence(topic)).members.map((m) => m.userId)).toEqual(['ivy', 'jon']),
      );
      const page = await pw.presence(topic, { limit: 1 });
      expect(page).toEqual({
        members: [{ userId: 'ivy', info: { name: 'Ivy' } }],
        count: 2,
        next: expect.any(String),
      });
      expect(await pw.presence(topic, { cursor: page.next as string })).toEqual({
        members: [{ userId: 'jon' }],
        count: 2,
      });
      await expect(pw.presence('room:not-subscribed')).rejects.toMatchObject({ code: 'forbidden' });

      const kim = await member('kim', [topic]);
      await kim.client.close();
      await untilPasses(async () =>
        expect(changes).toEqual(
          expect.arrayContaining([
            { topic, joined: [{ userId: 'kim' }], left: [] },
            { topic, joined: [], left: ['kim'] },
          ]),
        ),
      );
    } finally {
      pw.close();
    }
  });
});
