import { describe, expect, it } from 'vitest';
import { publish } from '../../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import { encodeMember } from '../../lib/registry/keys.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import { PRUNE_DELAY_MS } from '../../lib/registry/redis.js';
import { replay } from '../../lib/session/resume.js';
import { sleep, TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import {
  type BatchFrame,
  connection,
  type Frame,
  noDedup,
  publishDeps,
  RecordingGateway,
  unpack,
} from './support.js';

const envs = useTopologies();

interface Arrival {
  frame: Frame;
  /** Which path posted it: the replay, or a live publish. */
  source: 'replay' | 'live';
}

/**
 * A management API stand-in that takes the time a real post takes (20-50 ms
 * on AWS) and records what each connection receives, in the order posts were
 * made. It counts posts to one connection that overlap a replay post (where
 * API Gateway, which does not order concurrent posts, could reorder them).
 */
class SlowGateway {
  readonly arrivals = new Map<string, Arrival[]>();
  readonly inFlight = new Map<string, { replay: number; live: number }>();
  overlaps = 0;
  replayPosts = 0;
  fail: ((source: Arrival['source']) => Error | undefined) | undefined;

  constructor(readonly latency: () => number = () => 20 + Math.random() * 30) {}

  /** The Gateway one path posts through. */
  port(source: Arrival['source']): Gateway {
    return {
      post: (_endpoint, connectionId, data) => this.#post(source, connectionId, data),
      close: async (): Promise<GatewayResult> => 'ok',
    };
  }

  async #post(
    source: Arrival['source'],
    connectionId: string,
    data: Uint8Array,
  ): Promise<GatewayResult> {
    const error = this.fail?.(source);
    if (error) {
      await sleep(this.latency());
      throw error;
    }
    // Received in the order posts were made: the best API Gateway does. Posts
    // in flight together could arrive in either order there: counted below.
    const flight = this.inFlight.get(connectionId) ?? { replay: 0, live: 0 };
    this.inFlight.set(connectionId, flight);
    if (source === 'replay') this.replayPosts++;
    if ((source === 'replay' && flight.live > 0) || (source === 'live' && flight.replay > 0)) {
      this.overlaps++;
    }
    flight[source]++;
    const frames = unpack(JSON.parse(Buffer.from(data).toString('utf8')) as Frame | BatchFrame);
    const list = this.arrivals.get(connectionId) ?? [];
    this.arrivals.set(connectionId, list);
    for (const frame of frames) list.push({ frame, source });
    await sleep(this.latency());
    flight[source]--;
    return 'ok';
  }

  received(connectionId: string): Arrival[] {
    return this.arrivals.get(connectionId) ?? [];
  }
}

/** Ids as a client that dedupes by id sees them: [unique ids in order, how many arrived twice]. */
function dedupe(arrivals: Arrival[]): { ids: string[]; doubled: number } {
  const seen = new Set<string>();
  let doubled = 0;
  for (const { frame } of arrivals) {
    if (seen.has(frame.id)) doubled++;
    else seen.add(frame.id);
  }
  return { ids: [...seen], doubled };
}

describe.each(TOPOLOGIES)('replay under faults on %s Redis', (topology) => {
  const env = envs[topology];

  it('catches up with a topic that publishes 200 messages/s, every message once, in order', async () => {
    const registry = env.registry({ historySize: 2_000 });
    const gateway = new SlowGateway();
    const deps = publishDeps(registry, gateway.port('live'), noDedup);
    const topic = 'room:busy';
    const audience = registry.topicAudience(topic);
    const client = connection('busy');
    await registry.register(client);

    // The publisher: 200 messages/s, each publish started on time whatever
    // the previous ones are doing (as independent services would).
    const published: { id: string; cursor: string }[] = [];
    const pending: Promise<unknown>[] = [];
    let n = 0;
    let stop = false;
    const started = Date.now();
    const publisher = (async () => {
      while (!stop) {
        const due = started + n * 5;
        if (Date.now() < due) await sleep(due - Date.now());
        const id = `b${String(n++).padStart(5, '0')}`;
        pending.push(
          publish({ id, topic, data: { id } }, deps).then((r) =>
            published.push({ id, cursor: r.cursor as string }),
          ),
        );
      }
    })();

    // The client was away for 2 s (~400 messages), and its last cursor is the first one.
    // (the first publish's answer, however long a loaded machine takes to give it)
    await sleep(50);
    while (published.length === 0) await sleep(5);
    const since = published[0]?.cursor as string;
    await sleep(2_000);
    const window = Date.now();
    expect(await registry.subscribe(client, topic, window + 7_000)).toBe('subscribed');
    const backlog = n;
    const outcome = await replay(
      audience,
      client,
      since,
      { registry, gateway: gateway.port('replay') },
      window + 5_000,
    );
    const catchUpMs = Date.now() - window;
    // Live for another second, then stop and let the last posts land.
    await sleep(1_000);
    stop = true;
    await publisher;
    await Promise.all(pending);

    const arrivals = gateway.received(client.connectionId);
    const { ids, doubled } = dedupe(arrivals);
    const expected = published
      .filter((p) => compareCursors(p.cursor, since) > 0)
      .sort((a, b) => compareCursors(a.cursor, b.cursor))
      .map((p) => p.id);
    const lost = expected.filter((id) => !ids.includes(id)).length;
    // For the report (BENCHMARKS-style numbers, not a speed assertion).
    console.info(
      `[${topology}] 200 msg/s: backlog ${backlog} at resume, caught up in ${catchUpMs} ms ` +
        `with ${gateway.replayPosts} replay posts (${outcome.replayed} messages); ` +
        `published ${expected.length} after the cursor, lost ${lost}, doubled ${doubled}, ` +
        `posts overlapping a replay post ${gateway.overlaps}`,
    );

    expect(outcome).toMatchObject({ complete: true, recovered: true, gone: false });
    expect(lost).toBe(0);
    expect(doubled).toBe(0);
    expect(arrivals.map((a) => a.frame.id)).toEqual(expected);
    // The replay did the catching up, then handed over to live delivery.
    const firstLive = arrivals.findIndex((a) => a.source === 'live');
    expect(firstLive).toBeGreaterThan(0);
    expect(arrivals.slice(firstLive).every((a) => a.source === 'live')).toBe(true);
    expect(await env.redis.zscore(audience.keys.live, encodeMember(client))).not.toBeNull();
    expect(await env.redis.zcard(audience.keys.resuming)).toBe(0);
    expect(await env.redis.zcard(audience.keys.leases)).toBe(0);
  }, 30_000);

  it('one message per post (no batches) cannot keep up: it stops at the budget, live again, and says where to resume', async () => {
    const registry = env.registry({ historySize: 2_000 });
    const gateway = new SlowGateway();
    const deps = publishDeps(registry, gateway.port('live'), noDedup);
    const topic = 'room:single';
    const audience = registry.topicAudience(topic);
    const client = connection('single');
    await registry.register(client);
    const since = (await publish({ id: 's0', topic, data: 0 }, deps)).cursor as string;
    for (let i = 1; i <= 300; i++) await publish({ id: `s${i}`, topic, data: i }, deps);

    const window = Date.now();
    await registry.subscribe(client, topic, window + 1_500);
    const outcome = await replay(
      audience,
      client,
      since,
      { registry, gateway: gateway.port('replay'), batch: 1 },
      window + 1_000,
    );
    const elapsed = Date.now() - window;

    expect(outcome).toMatchObject({ complete: false, recovered: false, gone: false });
    expect(outcome.replayed).toBeGreaterThan(0);
    expect(outcome.replayed).toBeLessThan(300);
    // Bounded: it stopped within one step of the deadline.
    expect(elapsed).toBeLessThan(1_000 + 500);
    const got = gateway.received(client.connectionId).map((a) => a.frame);
    expect(outcome.cursor).toBe(got.at(-1)?.cursor);
    // Live again at once: the next publish reaches it.
    const next = await publish({ id: 'after', topic, data: 'after' }, deps);
    expect(next.recipients).toBe(1);

    // Resuming again from the cursor it was given fetches exactly the rest.
    await registry.subscribe(client, topic, Date.now() + 7_000);
    const again = await replay(
      audience,
      client,
      outcome.cursor,
      { registry, gateway: gateway.port('replay') },
      Date.now() + 5_000,
    );
    expect(again).toMatchObject({ complete: true, recovered: true });
    const { ids, doubled } = dedupe(gateway.received(client.connectionId));
    expect(ids.sort()).toEqual(
      ['after', ...Array.from({ length: 300 }, (_, i) => `s${i + 1}`)].sort(),
    );
    // 'after' arrived live and again in the second replay: the one copy dedupe by id removes.
    expect(doubled).toBe(1);
  }, 30_000);

  it('a post that fails mid-replay leaves the connection live; what was published meanwhile is fetched by resuming from the cursor', async () => {
    const registry = env.registry();
    const gateway = new SlowGateway(() => 2);
    const deps = publishDeps(registry, gateway.port('live'), noDedup);
    const audience = registry.userAudience('flaky');
    const client = connection('flaky');
    await registry.register(client);
    const since = (await publish({ id: 'f0', userId: 'flaky', data: 0 }, deps)).cursor as string;

    expect(await registry.beginResume(audience, client, Date.now() + 7_000)).toBe(true);
    for (let i = 1; i <= 5; i++) await publish({ id: `f${i}`, userId: 'flaky', data: i }, deps);
    let replayPosts = 0;
    gateway.fail = (source) =>
      source === 'replay' && ++replayPosts === 2
        ? Object.assign(new Error('internal'), { $metadata: { httpStatusCode: 500 } })
        : undefined;
    const outcome = await replay(
      audience,
      client,
      since,
      { registry, gateway: gateway.port('replay'), batch: 2 },
      Date.now() + 5_000,
    );
    gateway.fail = undefined;

    expect(outcome).toMatchObject({ complete: false, recovered: false, replayed: 2 });
    expect(outcome.cursor).toBe(gateway.received(client.connectionId).at(-1)?.frame.cursor);
    expect(outcome.stoppedBy).toBeInstanceOf(Error);
    const member = encodeMember(client);
    expect(await env.redis.zscore(audience.keys.live, member)).not.toBeNull();
    expect(await env.redis.zscore(audience.keys.resuming, member)).toBeNull();
    expect(await env.redis.zscore(audience.keys.leases, member)).toBeNull();

    // Meanwhile, live again: f6 arrives live.
    await publish({ id: 'f6', userId: 'flaky', data: 6 }, deps);
    // The client resumes from the cursor it was told.
    await registry.beginResume(audience, client, Date.now() + 7_000);
    const again = await replay(
      audience,
      client,
      outcome.cursor,
      { registry, gateway: gateway.port('replay') },
      Date.now() + 5_000,
    );
    expect(again).toMatchObject({ complete: true, recovered: true });
    const { ids, doubled } = dedupe(gateway.received(client.connectionId));
    expect(ids.sort()).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
    expect(doubled).toBe(1); // f6: live, then in the second replay; dedupe by id removes it
  });

  it('a replay that died (function killed) strands nobody past its lease: the next publish reaches the member', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('killed');
    const client = connection('killed');
    await registry.register(client);

    // A replay began (lease of 300 ms) and its function died: no step, no endResume.
    expect(await registry.beginResume(audience, client, Date.now() + 300)).toBe(true);
    const during = await publish({ id: 'k1', userId: 'killed', data: 1 }, deps);
    expect(during.recipients).toBe(0);

    await sleep(350);
    const after = await publish({ id: 'k2', userId: 'killed', data: 2 }, deps);
    expect(after).toMatchObject({ recipients: 1, delivered: 1 });
    expect(gateway.framesTo(client.connectionId).map((f) => f.id)).toEqual(['k2']);
    const member = encodeMember(client);
    expect(await env.redis.zscore(audience.keys.resuming, member)).toBeNull();
    expect(await env.redis.zscore(audience.keys.leases, member)).toBeNull();
    // Its expiry score came along: it still expires with its record.
    expect(Number(await env.redis.zscore(audience.keys.live, member))).toBeGreaterThan(Date.now());
  });

  it('a replay that died is also healed by the connection’s next frame (touch), with nobody publishing', async () => {
    const registry = env.registry();
    const topicAudience = registry.topicAudience('room:quiet');
    const client = connection('quiet');
    await registry.register(client);
    await registry.subscribe(client, 'room:quiet', Date.now() + 200);
    const member = encodeMember(client);

    // Within the lease, a frame renews but does not make it live (a replay may be running).
    await registry.touch(client.connectionId);
    expect(await env.redis.zscore(topicAudience.keys.resuming, member)).not.toBeNull();

    await sleep(250);
    await registry.touch(client.connectionId);
    expect(await env.redis.zscore(topicAudience.keys.resuming, member)).toBeNull();
    expect(await env.redis.zscore(topicAudience.keys.live, member)).not.toBeNull();
  });

  it('a connection registered with ?since that never sends its first frame is live once the lease ends', async () => {
    const registry = env.registry({ pendingLeaseMs: 200 });
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const client = connection('mute', { pendingSince: '0' });
    await registry.register(client);
    expect((await publish({ userId: 'mute', data: 1 }, deps)).recipients).toBe(0);
    await sleep(250);
    expect((await publish({ userId: 'mute', data: 2 }, deps)).recipients).toBe(1);
  });
});

describe.each(TOPOLOGIES)('nothing stale on %s Redis', (topology) => {
  const env = envs[topology];

  async function keysOf(registry: RedisRegistry, topic: string, member: string) {
    const k = registry.topicAudience(topic).keys;
    const [live, resuming, leases] = await Promise.all([
      env.redis.zscore(k.live, member),
      env.redis.zscore(k.resuming, member),
      env.redis.zscore(k.leases, member),
    ]);
    return { live, resuming, leases };
  }

  it('a subscribe, resume or touch after the connection was removed creates nothing', async () => {
    const registry = env.registry();
    const client = connection('late');
    await registry.register(client);
    const snapshot = registry.userAudience('late');
    await registry.remove(client.connectionId);
    const member = encodeMember(client);

    expect(await registry.subscribe(client, 'room:late')).toBe('gone');
    expect(await registry.subscribe(client, 'room:late', Date.now() + 5_000)).toBe('gone');
    expect(await registry.beginResume(snapshot, client, Date.now() + 5_000)).toBe(false);
    expect(await registry.touch(client.connectionId)).toBeNull();

    expect(await keysOf(registry, 'room:late', member)).toEqual({
      live: null,
      resuming: null,
      leases: null,
    });
    expect(await env.redis.zscore(snapshot.keys.resuming, member)).toBeNull();
    expect(await env.redis.zscore(snapshot.keys.live, member)).toBeNull();
    expect(await env.redis.exists(registry.keys.connectionTopics(client.connectionId))).toBe(0);
    expect(await env.redis.exists(registry.keys.connection(client.connectionId))).toBe(0);
  });

  it('a subscribe racing a removal never leaves a member behind', async () => {
    const registry = env.registry();
    let leftBehind = 0;
    let subscribedFirst = 0;
    for (let i = 0; i < 40; i++) {
      const client = connection('racer');
      await registry.register(client);
      // Let the two start in either order, together or a little apart
      // (a subscribe is three round trips; a removal, three steps too).
      const gap = i % 5;
      const [ok] = await Promise.all([
        sleep(gap === 1 ? 1 : 0).then(() =>
          registry.subscribe(client, 'room:race', i % 2 ? Date.now() + 5_000 : undefined),
        ),
        sleep(gap >= 2 ? gap - 1 : 0).then(() => registry.remove(client.connectionId)),
      ]);
      if (ok === 'subscribed') subscribedFirst++;
      const k = await keysOf(registry, 'room:race', encodeMember(client));
      if (k.live !== null || k.resuming !== null) leftBehind++;
    }
    expect(leftBehind).toBe(0);
    // Both orders happened (else the test proved nothing about the race).
    expect(subscribedFirst).toBeGreaterThan(0);
    expect(subscribedFirst).toBeLessThan(40);
  });

  it('a record marked closing by a removal that died half-way refuses subscribes and touches', async () => {
    const registry = env.registry();
    const client = connection('halfway');
    await registry.register(client);
    await env.redis.hset(registry.keys.connection(client.connectionId), 'closing', '1');

    expect(await registry.touch(client.connectionId)).toBeNull();
    expect(await registry.subscribe(client, 'room:h')).toBe('gone');
    expect(await keysOf(registry, 'room:h', encodeMember(client))).toEqual({
      live: null,
      resuming: null,
      leases: null,
    });
    // The next removal finishes the job.
    expect(await registry.remove(client.connectionId)).not.toBeNull();
    expect(await env.redis.exists(registry.keys.connection(client.connectionId))).toBe(0);
    expect(await env.redis.zcard(registry.keys.all())).toBe(0);
  });

  it('prunes expired members of the resuming and broadcast sets', async () => {
    let clock = Date.now();
    const registry = env.registry({ connectionTtlSeconds: 10, now: () => clock });
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.topicAudience('room:old');
    const old = connection('old');
    await registry.register(old);
    await registry.subscribe(old, 'room:old', clock + 60_000); // resuming, long lease

    // Its $disconnect never came; its TTL has passed, and the time the events
    // relay has to report it (PRUNE_DELAY_MS) too.
    clock += 11_000 + PRUNE_DELAY_MS;
    const fresh = connection('fresh');
    await registry.register(fresh);
    expect(await env.redis.zrange(registry.keys.all(), 0, -1)).toEqual([encodeMember(fresh)]);

    await publish({ topic: 'room:old', data: 1 }, deps);
    expect(await env.redis.zcard(audience.keys.resuming)).toBe(0);
  });
});

describe.each(TOPOLOGIES)('half-lost records on %s Redis', (topology) => {
  const env = envs[topology];

  it('a record whose user membership was lost (a failover lost that slot) is forgotten at its next frame', async () => {
    const registry = env.registry();
    const client = connection('halflost');
    await registry.register(client);
    await registry.subscribe(client, 'room:hl');
    const user = registry.userAudience('halflost').keys;
    // The user's slot lost its data; the record's slot did not.
    await env.redis.del(user.live, user.resuming, user.leases);

    expect(await registry.touch(client.connectionId)).toBeNull();
    expect(await env.redis.exists(registry.keys.connection(client.connectionId))).toBe(0);
    expect(await env.redis.zcard(registry.topicAudience('room:hl').keys.live)).toBe(0);
    expect(await env.redis.zcard(registry.keys.all())).toBe(0);
  });

  it('a healthy record survives its frames, live or resuming', async () => {
    const registry = env.registry();
    const live = connection('healthy');
    const resuming = connection('healthy2', { pendingSince: '0' });
    await Promise.all([registry.register(live), registry.register(resuming)]);
    expect(await registry.touch(live.connectionId)).not.toBeNull();
    expect(await registry.touch(resuming.connectionId)).not.toBeNull();
  });
});
