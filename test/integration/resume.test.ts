import { describe, expect, it } from 'vitest';
import { publish } from '../../lib/delivery/publish.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import { encodeMember } from '../../lib/registry/keys.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import { type ResumeDeps, replay } from '../../lib/session/resume.js';
import { sleep, TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, type Frame, noDedup, publishDeps, RecordingGateway } from './support.js';

const envs = useTopologies();

/** A lease and a deadline far enough away not to matter (tests of the bounds set their own). */
const lease = () => Date.now() + 60_000;
const run = (
  ...args: [Parameters<typeof replay>[0], Parameters<typeof replay>[1], string, ResumeDeps]
) => replay(...args, Date.now() + 30_000);

const ids = (frames: Frame[]) => frames.map((f) => f.id);
/** History entries a replay reads (and posts) per step in the racing tests. */
const REPLAY_BATCH = 3;

function expectCursorOrder(frames: Frame[]) {
  for (let i = 1; i < frames.length; i++) {
    const [a, b] = [frames[i - 1]?.cursor, frames[i]?.cursor];
    expect(a && b && compareCursors(b, a) > 0, `cursor ${b} after ${a}`).toBe(true);
  }
}

describe.each(TOPOLOGIES)('resume on %s Redis', (topology) => {
  const env = envs[topology];

  async function userWithTwoDevices(registry: RedisRegistry, userId: string) {
    const stays = connection(userId);
    const resumes = connection(userId);
    await Promise.all([registry.register(stays), registry.register(resumes)]);
    return { stays, resumes };
  }

  it('skips a resuming member in publish, replays exactly what it missed, then makes it live', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('alice');
    const { stays, resumes } = await userWithTwoDevices(registry, 'alice');

    await publish({ id: 'm1', userId: 'alice', data: 1 }, deps);
    const m2 = await publish({ id: 'm2', userId: 'alice', data: 2 }, deps);
    expect(m2.recipients).toBe(2);

    await registry.beginResume(audience, resumes, lease());
    const member = encodeMember(resumes);
    expect(await env.redis.zscore(audience.keys.live, member)).toBeNull();
    expect(await env.redis.zscore(audience.keys.resuming, member)).not.toBeNull();

    const m3 = await publish({ id: 'm3', userId: 'alice', data: 3 }, deps);
    const m4 = await publish({ id: 'm4', userId: 'alice', data: { four: 4 } }, deps);
    expect(m3).toMatchObject({ recipients: 1, delivered: 1 });
    expect(m4).toMatchObject({ recipients: 1, delivered: 1 });
    expect(ids(gateway.framesTo(resumes.connectionId))).toEqual(['m1', 'm2']);

    const outcome = await run(audience, resumes, m2.cursor as string, {
      registry,
      gateway,
      batch: 1,
    });
    expect(outcome).toMatchObject({ recovered: true, replayed: 2, gone: false });
    expect(await env.redis.zscore(audience.keys.live, member)).not.toBeNull();
    expect(await env.redis.zscore(audience.keys.resuming, member)).toBeNull();

    const m5 = await publish({ id: 'm5', userId: 'alice', data: 5 }, deps);
    expect(m5.recipients).toBe(2);

    const frames = gateway.framesTo(resumes.connectionId);
    expect(ids(frames)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expectCursorOrder(frames);
    // Replayed frames are ordinary message frames with their cursor.
    expect(frames[2]).toEqual({ type: 'message', id: 'm3', cursor: m3.cursor, data: 3 });
    expect(frames[3]).toEqual({ type: 'message', id: 'm4', cursor: m4.cursor, data: { four: 4 } });
    expect(ids(gateway.framesTo(stays.connectionId))).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
  });

  it('replays a topic in batches, with the topic in each frame', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.topicAudience('room:1');
    const record = connection('bob');
    await registry.register(record);

    const cursors: string[] = [];
    for (let i = 1; i <= 7; i++) {
      cursors.push((await publish({ id: `t${i}`, topic: 'room:1', data: i }, deps)).cursor ?? '');
    }
    await registry.subscribe(record, 'room:1', Date.now() + 60_000);
    expect(await env.redis.zcard(audience.keys.live)).toBe(0);

    const outcome = await run(audience, record, cursors[1] as string, {
      registry,
      gateway,
      batch: 2,
    });
    expect(outcome).toMatchObject({ recovered: true, replayed: 5, gone: false });
    const frames = gateway.framesTo(record.connectionId);
    expect(ids(frames)).toEqual(['t3', 't4', 't5', 't6', 't7']);
    expect(frames.map((f) => f.cursor)).toEqual(cursors.slice(2));
    expect(frames.every((f) => f.topic === 'room:1')).toBe(true);
    expect(await env.redis.zscore(audience.keys.live, encodeMember(record))).not.toBeNull();
  });

  it('replays from "0" and says whether everything was still there', async () => {
    const registry = env.registry({ historySize: 2 });
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('carol');
    const record = connection('carol');
    await registry.register(record);
    for (let i = 1; i <= 4; i++) await publish({ id: `c${i}`, userId: 'carol', data: i }, deps);
    gateway.posts.length = 0;

    await registry.beginResume(audience, record, lease());
    const outcome = await run(audience, record, '0', { registry, gateway });
    expect(outcome).toMatchObject({ recovered: false, replayed: 2, gone: false });
    expect(ids(gateway.framesTo(record.connectionId))).toEqual(['c3', 'c4']);
  });

  it('stops and prunes when the gateway says the connection is gone mid-replay', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('dave');
    const record = connection('dave');
    await registry.register(record);
    await registry.beginResume(audience, record, lease());
    for (let i = 1; i <= 3; i++) await publish({ userId: 'dave', data: i }, deps);

    gateway.gone.add(record.connectionId);
    const outcome = await run(audience, record, '0', { registry, gateway });
    expect(outcome).toMatchObject({ replayed: 0, gone: true });
    expect(await registry.get(record.connectionId)).toBeNull();
    expect(await env.redis.zcard(audience.keys.resuming)).toBe(0);
    expect(await env.redis.zcard(audience.keys.live)).toBe(0);
  });

  it('reports gone, and does not make it live, when the connection left during replay', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const audience = registry.userAudience('erin');
    const record = connection('erin');
    await registry.register(record);
    await registry.beginResume(audience, record, lease());
    await registry.remove(record.connectionId);

    const outcome = await run(audience, record, '0', { registry, gateway });
    expect(outcome).toMatchObject({ replayed: 0, gone: true });
    expect(await env.redis.zcard(audience.keys.live)).toBe(0);
  });

  it('a connection registered with ?since waits as resuming until replay makes it live', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('fay');
    const first = await publish({ id: 'f1', userId: 'fay', data: 1 }, deps);
    const record = connection('fay', { pendingSince: first.cursor as string });
    await registry.register(record);

    const f2 = await publish({ id: 'f2', userId: 'fay', data: 2 }, deps);
    expect(f2.recipients).toBe(0);
    await run(audience, record, record.pendingSince as string, { registry, gateway });
    const f3 = await publish({ id: 'f3', userId: 'fay', data: 3 }, deps);
    expect(f3.recipients).toBe(1);
    expect(ids(gateway.framesTo(record.connectionId))).toEqual(['f2', 'f3']);
  });

  it('says recovered: false when history is trimmed past the replay while it runs', async () => {
    const registry = env.registry({ historySize: 3 });
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('jay');
    const record = connection('jay');
    await registry.register(record);
    const since = (await publish({ id: 'j0', userId: 'jay', data: 0 }, deps)).cursor as string;
    await registry.beginResume(audience, record, lease());
    await publish({ id: 'j1', userId: 'jay', data: 1 }, deps);
    await publish({ id: 'j2', userId: 'jay', data: 2 }, deps);
    // Everything after `since` is still there when the replay starts ...
    expect(await registry.recoverable(audience, since)).toBe(true);

    // ... but while j1 is being posted, eight more messages push j2..j7 out of history.
    let flooded = false;
    gateway.delayMs = () => 0;
    const post = gateway.post.bind(gateway);
    gateway.post = async (endpoint, connectionId, data) => {
      if (!flooded) {
        flooded = true;
        for (let i = 3; i <= 10; i++) await publish({ id: `j${i}`, userId: 'jay', data: i }, deps);
      }
      return post(endpoint, connectionId, data);
    };
    const outcome = await run(audience, record, since, { registry, gateway, batch: 1 });

    const got = ids(gateway.framesTo(record.connectionId));
    expect(got).toEqual(['j0', 'j1', 'j8', 'j9', 'j10']);
    // j2..j7 never reached the client: the replay must not claim it recovered everything.
    expect(outcome).toMatchObject({ recovered: false, replayed: 4, gone: false });
  });

  it('delivers every message exactly once and in order while publishes race a replay', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.userAudience('gus');
    const { stays, resumes } = await userWithTwoDevices(registry, 'gus');
    // Posts take a little while, so the replay and the publishes interleave.
    gateway.delayMs = () => Math.floor(Math.random() * 3);

    const since = (await publish({ id: 'p0', userId: 'gus', data: 0 }, deps)).cursor as string;
    await registry.beginResume(audience, resumes, lease());
    const published: string[] = [];
    let n = 1;
    const publishOne = async () => {
      const id = `p${n++}`;
      published.push(id);
      await publish({ id, userId: 'gus', data: id }, deps);
    };
    // Some backlog to replay before the race starts.
    for (let i = 0; i < 10; i++) await publishOne();

    let replayDone = false;
    let afterLive = 0;
    const publisher = (async () => {
      // One publisher, one message at a time: its messages have a defined order.
      while (!replayDone || afterLive < 3) {
        if (replayDone) afterLive++;
        await publishOne();
        await sleep(1);
        if (n > 200) throw new Error('replay never caught up');
      }
    })();
    const outcome = await run(audience, resumes, since, {
      registry,
      gateway,
      batch: REPLAY_BATCH,
    }).finally(() => {
      replayDone = true;
    });
    await publisher;

    expect(outcome.gone).toBe(false);
    expect(outcome.recovered).toBe(true);
    expect(outcome.replayed).toBeGreaterThanOrEqual(10);
    expect(outcome.replayed).toBeLessThan(published.length);
    const got = ids(gateway.framesTo(resumes.connectionId));
    const num = (id: string | undefined) => Number(id?.slice(1));
    // p0 arrived live, before the resume; everything after it exactly once.
    expect([...got].sort((a, b) => num(a) - num(b))).toEqual(['p0', ...published]);
    // In order, but for the hand-off docs/protocol.md PW-R7 describes: a replay
    // that goes live together with the read of its last batch (p1..p<replayed>
    // came from the replay, `batch` at a time) posts that batch while the
    // first live posts are in flight, so those may overtake it. Nothing else
    // may be out of order. (CI once got p17, live, before p16, replayed last.)
    const lastBatch = outcome.replayed - REPLAY_BATCH;
    for (let i = 0; i < got.length; i++) {
      for (let j = i + 1; j < got.length; j++) {
        const [a, b] = [num(got[i]), num(got[j])];
        if (a < b) continue;
        expect(
          b > lastBatch && b <= outcome.replayed && a > outcome.replayed,
          `p${a} before p${b} (replayed ${outcome.replayed})`,
        ).toBe(true);
      }
    }
    // The device that stayed was live throughout: strictly in order.
    expect(ids(gateway.framesTo(stays.connectionId))).toEqual(['p0', ...published]);
    expect(await env.redis.zscore(audience.keys.resuming, encodeMember(resumes))).toBeNull();
  });

  it('delivers every message exactly once when several publishers race a replay', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const audience = registry.topicAudience('room:race');
    const record = connection('hal');
    const watcher = connection('ida');
    await Promise.all([registry.register(record), registry.register(watcher)]);
    await registry.subscribe(watcher, 'room:race');
    gateway.delayMs = () => Math.floor(Math.random() * 3);

    const since = (await publish({ id: 'r0', topic: 'room:race', data: 0 }, deps)).cursor as string;
    await registry.subscribe(record, 'room:race', Date.now() + 60_000);
    const published: string[] = [];
    const publisher = async (name: string, count: number) => {
      for (let i = 0; i < count; i++) {
        const id = `${name}${i}`;
        published.push(id);
        await publish({ id, topic: 'room:race', data: i }, deps);
      }
    };
    const backlog = publisher('b', 8);
    await sleep(5);
    const [outcome] = await Promise.all([
      run(audience, record, since, { registry, gateway, batch: 2 }),
      backlog,
      publisher('x', 15),
      publisher('y', 15),
      publisher('z', 15),
    ]);
    // And a last message once everything settled: it must arrive live.
    await publisher('last', 1);

    expect(outcome).toMatchObject({ recovered: true, gone: false });
    const got = ids(gateway.framesTo(record.connectionId));
    expect(got.length).toBe(new Set(got).size);
    expect([...got].sort()).toEqual([...published].sort());
    expect(got.at(-1)).toBe('last0');
    expect([...ids(gateway.framesTo(watcher.connectionId))].sort()).toEqual(
      ['r0', ...published].sort(),
    );
  });
});
