/**
 * Presence members and join/leave (issue 16) against real Redis, standalone
 * and Cluster: users listed once however many devices, pages by cursor, the
 * info claim, joins on the first device and leaves on the last (removed,
 * unsubscribed, refused by a refresh, or expired: a lost $disconnect), the
 * sweep finding expired devices, coalesced diffs, and the fan-out of the
 * events to the topic's members in order.
 */
import { describe, expect, it } from 'vitest';
import { diffFrames, presenceEvents } from '../../lib/presence/events.js';
import { listMembers } from '../../lib/presence/members.js';
import { RedisPresenceSweeper } from '../../lib/registry/presence-sweep.js';
import type { PresenceOptions } from '../../lib/registry/redis.js';
import { TOPOLOGIES, testClock, useTopologies } from '../helpers/redis-matrix.js';
import { connection, publishDeps, RecordingGateway } from './support.js';

const envs = useTopologies();

describe.each(TOPOLOGIES)('presence on %s Redis', (topology) => {
  const env = envs[topology];

  function setup(presence: Partial<PresenceOptions> = {}, ttl = 660) {
    const clock = testClock();
    const nudges: { topic: string; delayMs: number }[] = [];
    const registry = env.registry({
      connectionTtlSeconds: ttl,
      now: clock.now,
      presence: {
        eventTopics: ['room:*'],
        coalesceAbove: 0,
        intervalMs: 1_000,
        nudge: async (topic, delayMs) => {
          nudges.push({ topic, delayMs });
        },
        ...presence,
      },
    });
    const sweeper = new RedisPresenceSweeper(env.redis, registry, clock.now);
    const events = (topic: string) => env.redis.lrange(registry.keys.presence(topic).events, 0, -1);
    return { clock, nudges, registry, sweeper, events };
  }

  async function joined(
    registry: ReturnType<typeof setup>['registry'],
    userId: string,
    topics: string[],
    extra: { info?: string } = {},
  ) {
    const c = connection(userId, extra);
    await registry.register(c);
    for (const topic of topics) expect(await registry.subscribe(c, topic)).toBe('subscribed');
    return c;
  }

  it('lists each user once however many devices, with the info of the newest, in pages', async () => {
    // Prepare: 25 users, alice on three devices.
    const { registry } = setup();
    const topic = 'room:pages';
    await joined(registry, 'alice', [topic], { info: '{"name":"Alice"}' });
    await joined(registry, 'alice', [topic]);
    await joined(registry, 'alice', [topic], { info: '{"name":"Alice 3"}' });
    for (let i = 0; i < 24; i++)
      await joined(registry, `user${String(i).padStart(2, '0')}`, [topic]);

    // Act: pages of 10.
    const seen: { userId: string; info?: Record<string, unknown> }[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listMembers(registry, topic, { cursor, limit: 10 });
      expect(page.count).toBe(25);
      expect(page.members.length).toBeLessThanOrEqual(10);
      seen.push(...page.members);
      cursor = page.next;
      pages++;
    } while (cursor !== undefined);

    // Assess
    expect(pages).toBe(3);
    expect(seen.map((m) => m.userId)).toEqual([
      'alice',
      ...Array.from({ length: 24 }, (_, i) => `user${String(i).padStart(2, '0')}`),
    ]);
    expect(seen[0]).toEqual({ userId: 'alice', info: { name: 'Alice 3' } });
    expect(seen[1]).toEqual({ userId: 'user00' });
    // Devices are counted by the topic's audience, users here.
    expect(await registry.countConnected(registry.topicAudience(topic))).toBe(27);
  });

  it('refuses a cursor that is not a page cursor', async () => {
    const { registry } = setup();
    await expect(listMembers(registry, 'room:x', { cursor: '!!' })).rejects.toMatchObject({
      code: 'invalid_cursor',
    });
  });

  it('records a join for the first device and a leave for the last, on opted-in topics only', async () => {
    // Prepare
    const { registry, events, nudges } = setup();
    // Act
    const phone = await joined(registry, 'bob', ['room:1', 'news'], { info: '{"n":1}' });
    const laptop = await joined(registry, 'bob', ['room:1']);
    await registry.unsubscribe(phone, 'room:1');
    const afterOne = await events('room:1');
    await registry.remove(laptop.connectionId);
    // Assess
    // The join names the device that joined, the leave the last that left.
    expect(afterOne).toEqual([`+bob ${phone.connectionId} {"n":1}`]);
    expect(await events('room:1')).toEqual([
      `+bob ${phone.connectionId} {"n":1}`,
      `-bob ${laptop.connectionId}`,
    ]);
    expect(await events('news')).toEqual([]);
    // Listed on `news` all the same (members are kept for every topic).
    expect((await registry.members('news', undefined, 10)).members).toEqual([
      { userId: 'bob', info: '{"n":1}' },
    ]);
    expect(nudges).toEqual([
      { topic: 'room:1', delayMs: 0 },
      { topic: 'room:1', delayMs: 0 },
    ]);
    expect((await registry.members('room:1', undefined, 10)).count).toBe(0);
  });

  it('a refresh whose grants drop the topic makes the user leave it', async () => {
    const { registry, events } = setup();
    const c = await joined(registry, 'carl', ['room:2']);
    expect(
      await registry.refreshToken(c.connectionId, {
        expiresAt: Date.now() + 3_600_000,
        issuedAt: Date.now(),
        topics: ['news'],
      }),
    ).toBe(true);
    expect(await events('room:2')).toEqual([`+carl ${c.connectionId} `, `-carl ${c.connectionId}`]);
  });

  it('a device whose $disconnect was lost expires: the sweep finds it and its user leaves', async () => {
    // Prepare: dora on two devices, eve on one; dora's phone and eve go silent.
    const { registry, sweeper, events, clock } = setup({}, 60);
    const phone = await joined(registry, 'dora', ['room:3']);
    const eve = await joined(registry, 'eve', ['room:3']);
    clock.advance(30_000);
    const laptop = await joined(registry, 'dora', ['room:3']);
    await registry.touch(laptop.connectionId); // renews the laptop only
    // The joins were fanned out (their events taken); nothing has expired
    // yet: the sweep finds nothing to send.
    await env.redis.del(registry.keys.presence('room:3').events);
    expect(await sweeper.sweepPresence(100)).toEqual([]);

    // Act: past the first devices' expiry (60 s), not the laptop's.
    clock.advance(31_000);
    const waiting = await sweeper.sweepPresence(100);

    // Assess: eve left; dora is still there on her laptop.
    expect(waiting).toEqual(['room:3']);
    expect(await events('room:3')).toEqual([`-eve ${eve.connectionId}`]);
    const page = await registry.members('room:3', undefined, 10);
    expect(page.members.map((m) => m.userId)).toEqual(['dora']);
    // The phone's record is still there (its TTL has not run out): a late
    // $disconnect or prune finds its presence already gone and records nothing.
    await registry.remove(phone.connectionId);
    expect(await events('room:3')).toEqual([`-eve ${eve.connectionId}`]);
    // The topic stays due by the laptop's expiry: swept again when it lapses.
    clock.advance(61_000);
    expect(await sweeper.sweepPresence(100)).toEqual(['room:3']);
    expect(await events('room:3')).toEqual([
      `-eve ${eve.connectionId}`,
      `-dora ${laptop.connectionId}`,
    ]);
    // Due again until its events are taken; then, with no device left, never.
    await env.redis.del(registry.keys.presence('room:3').events);
    clock.advance(6_000);
    expect(await sweeper.sweepPresence(100)).toEqual([]);
    expect(await env.redis.zscore(registry.keys.presenceDue(), 'room:3')).toBeNull();
  });

  it('a member list read after a lost $disconnect does not show the expired user', async () => {
    const { registry, clock } = setup({}, 60);
    await joined(registry, 'finn', ['room:4']);
    clock.advance(61_000);
    expect(await registry.members('room:4', undefined, 10)).toEqual({
      count: 0,
      members: [],
      more: false,
    });
  });

  it('above the coalescing size, one nudge per interval, delayed; the drain sends one diff', async () => {
    // Prepare: coalesce above 2 users.
    const { registry, nudges, sweeper } = setup({ coalesceAbove: 2, intervalMs: 5_000 });
    const topic = 'room:big';
    const a = await joined(registry, 'a', [topic]);
    await joined(registry, 'b', [topic]);
    const watcher = await joined(registry, 'c', [topic]);
    await joined(registry, 'd', [topic]);
    await registry.remove(a.connectionId);
    const e = await joined(registry, 'e', [topic]);
    await registry.remove(e.connectionId); // joined and left within the interval: not in the diff

    // Assess the nudges: a, b plain; c makes 3 users (> 2): one delayed nudge for the rest.
    expect(nudges).toEqual([
      { topic, delayMs: 0 },
      { topic, delayMs: 0 },
      { topic, delayMs: 5_000 },
    ]);

    // Act: the delayed drain (no sleeping here).
    const gateway = new RecordingGateway();
    const result = await presenceEvents(
      { topic, delayMs: 5_000 },
      {
        ...publishDeps(registry, gateway, {
          claim: async () => ({ state: 'claimed', token: '' }),
          complete: async () => undefined,
          release: async () => undefined,
        }),
        sweeper,
        coalesceAbove: 2,
        sleep: async () => undefined,
      },
    );

    // Assess: every event was taken, as one diff to each live member.
    expect(result.events).toBe(7);
    const frames = gateway.posts
      .filter((p) => p.connectionId === watcher.connectionId)
      .map((p) => JSON.parse(p.frame));
    expect(frames).toEqual([
      {
        type: 'presence_diff',
        topic,
        joined: [{ userId: 'b' }, { userId: 'c' }, { userId: 'd' }],
        left: [],
      },
    ]);
  });

  it('drains plain events in order, one drain per topic at a time', async () => {
    const { registry, sweeper } = setup();
    const topic = 'room:order';
    const watcher = await joined(registry, 'w', [topic]);
    const g = await joined(registry, 'g', [topic], { info: '{"x":1}' });
    await registry.remove(g.connectionId);
    // Another drain holds the topic: this one takes nothing.
    expect(await sweeper.takePresenceEvents(topic, 'other', 10)).toEqual([
      `+w ${watcher.connectionId} `,
      `+g ${g.connectionId} {"x":1}`,
      `-g ${g.connectionId}`,
    ]);
    expect(await sweeper.takePresenceEvents(topic, 'mine', 10)).toBeNull();
    // The holder finds none left: the lock is free again.
    expect(await sweeper.takePresenceEvents(topic, 'other', 10)).toEqual([]);
    const h = await joined(registry, 'h', [topic]);
    const gateway = new RecordingGateway();
    const lifecycle: { type: string; detail: unknown }[] = [];
    await presenceEvents(
      { topic },
      {
        ...publishDeps(registry, gateway, {
          claim: async () => ({ state: 'claimed', token: '' }),
          complete: async () => undefined,
          release: async () => undefined,
        }),
        sweeper,
        coalesceAbove: 0,
        events: { emit: (type, detail) => lifecycle.push({ type, detail }) },
      },
    );
    // And once as a lifecycle event (EventBridge), naming the device.
    expect(lifecycle).toEqual([
      { type: 'presence.join', detail: { connectionId: h.connectionId, userId: 'h', topic } },
    ]);
    expect(gateway.framesTo(watcher.connectionId)).toEqual([{ type: 'join', topic, userId: 'h' }]);
  });

  it('keeps every presence key in the topic slot and with a TTL', async () => {
    const { registry } = setup({}, 60);
    await joined(registry, 'ida', ['room:ttl'], { info: '{"a":1}' });
    const k = registry.keys.presence('room:ttl');
    for (const key of [k.devices, k.users, k.counts, k.events])
      expect(await env.redis.ttl(key), key).toBeGreaterThan(60);
    const slots = new Set(
      [
        k.devices,
        k.users,
        k.counts,
        k.events,
        k.flush,
        k.lock,
        registry.topicAudience('room:ttl').keys.live,
      ].map((key) => key.slice(key.indexOf('{') + 1, key.indexOf('}'))),
    );
    expect(slots.size).toBe(1);
  });
});

describe('presence_diff', () => {
  it('is net over the interval and cut at 100 users per frame', () => {
    const events = ['+a c1 ', '-b c2', '+b c3 {"v":2}', '+c c4 ', '-c c4', '-d c5'];
    expect(diffFrames('t', events).map((f) => JSON.parse(f))).toEqual([
      {
        type: 'presence_diff',
        topic: 't',
        joined: [{ userId: 'a' }, { userId: 'b', info: { v: 2 } }],
        left: ['d'],
      },
    ]);
    const many = Array.from({ length: 250 }, (_, i) => `+u${i} c${i} `);
    expect(diffFrames('t', many).map((f) => JSON.parse(f).joined.length)).toEqual([100, 100, 50]);
  });
});
