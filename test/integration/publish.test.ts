import { describe, expect, it } from 'vitest';
import { kick } from '../../lib/admin/kick.js';
import { presence } from '../../lib/admin/presence.js';
import { chunkJobs, parseDeliverChunk } from '../../lib/delivery/chunks.js';
import { type DedupStore, RedisDedupStore } from '../../lib/delivery/dedup.js';
import { deliver } from '../../lib/delivery/fanout.js';
import { messageFrame, publish } from '../../lib/delivery/publish.js';
import { PublishInProgressError } from '../../lib/errors.js';
import type { Gateway } from '../../lib/gateway/gateway.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord, ConnectionRegistry } from '../../lib/registry/types.js';
import { sleep, TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import {
  connection,
  ENDPOINT_A,
  ENDPOINT_B,
  noDedup,
  publishDeps,
  RecordingGateway,
} from './support.js';

const envs = useTopologies();

async function registerAll(registry: RedisRegistry, records: ConnectionRecord[]) {
  await Promise.all(records.map((r) => registry.register(r)));
  return records;
}

describe.each(TOPOLOGIES)('publish on %s Redis', (topology) => {
  const env = envs[topology];

  describe('dedup', () => {
    /** Waits (real clock) until a key has expired, however slow the machine is. */
    async function untilGone(key: string, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while ((await env.redis.exists(key)) === 1) {
        if (Date.now() > deadline) throw new Error(`${key} did not expire within ${timeoutMs} ms`);
        await sleep(50);
      }
    }

    const store = (registry: RedisRegistry, ttlSeconds = 60, leaseSeconds = 30) =>
      new RedisDedupStore(env.redis, (id) => registry.keys.dedup(id), {
        ttlSeconds,
        leaseSeconds,
      });

    it('claims once under a lease, remembers the result for the dedup TTL, and releases only its own claim', async () => {
      const registry = env.registry();
      const dedup = store(registry, 60, 30);
      const key = registry.keys.dedup('order-1');

      const claim = await dedup.claim('order-1');
      expect(claim.state).toBe('claimed');
      expect(await dedup.claim('order-1')).toEqual({ state: 'running' });
      // The lease, not the dedup TTL, bounds a claim that is never completed.
      const leaseTtl = await env.redis.pttl(key);
      expect(leaseTtl).toBeGreaterThan(25_000);
      expect(leaseTtl).toBeLessThanOrEqual(30_000);

      // Another attempt's token releases nothing.
      await dedup.release('order-1', 'someone-else');
      expect(await dedup.claim('order-1')).toEqual({ state: 'running' });

      await dedup.complete('order-1', { id: 'order-1', delivered: 3 });
      expect(await dedup.claim('order-1')).toEqual({
        state: 'done',
        first: { id: 'order-1', delivered: 3 },
      });
      const doneTtl = await env.redis.pttl(key);
      expect(doneTtl).toBeGreaterThan(30_000);
      expect(doneTtl).toBeLessThanOrEqual(60_000);

      const other = await dedup.claim('order-2');
      if (other.state !== 'claimed') throw new Error('expected a claim');
      await dedup.release('order-2', other.token);
      expect(await env.redis.exists(registry.keys.dedup('order-2'))).toBe(0);
      expect((await dedup.claim('order-2')).state).toBe('claimed');
    });

    it('answers a second publish with the same id from the first result, posting nothing', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const deps = publishDeps(registry, gateway, store(registry));
      await registerAll(registry, [connection('alice'), connection('alice')]);

      const first = await publish({ id: 'evt-1', userId: 'alice', data: 'hi' }, deps);
      expect(first).toMatchObject({ id: 'evt-1', recipients: 2, delivered: 2, stored: true });
      expect(first.duplicate).toBeUndefined();
      expect(gateway.posts).toHaveLength(2);

      const second = await publish({ id: 'evt-1', userId: 'alice', data: 'hi' }, deps);
      expect(second).toEqual({ ...first, duplicate: true });
      expect(gateway.posts).toHaveLength(2);
      const history = await env.redis.xlen(registry.userAudience('alice').keys.history);
      expect(history).toBe(1);
    });

    it('delivers again once the dedup TTL has passed, with the same cursor and still one history entry (real clock)', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const deps = publishDeps(registry, gateway, store(registry, 2));
      const [bob] = await registerAll(registry, [connection('bob')]);

      const first = await publish({ id: 'evt-ttl', userId: 'bob', data: 1 }, deps);
      expect((await publish({ id: 'evt-ttl', userId: 'bob', data: 1 }, deps)).duplicate).toBe(true);
      await untilGone(registry.keys.dedup('evt-ttl'));
      const again = await publish({ id: 'evt-ttl', userId: 'bob', data: 1 }, deps);
      expect(again.duplicate).toBeUndefined();
      expect(again).toMatchObject({ delivered: 1, cursor: first.cursor });
      const frames = gateway.posts.map((p) => p.frame);
      expect(frames).toHaveLength(2);
      expect(frames[1]).toBe(frames[0]);
      expect(gateway.framesTo(bob?.connectionId as string)[0]?.cursor).toBe(first.cursor);
      expect(await env.redis.xlen(registry.userAudience('bob').keys.history)).toBe(1);
    });

    it('gives the id back when the publish fails, so a retry delivers', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      await registerAll(registry, [connection('carl')]);
      const broken: ConnectionRegistry = Object.assign(Object.create(registry), {
        publish: () => Promise.reject(new Error('redis went away')),
      });
      const dedup = store(registry);
      await expect(
        publish(
          { id: 'evt-retry', userId: 'carl', data: 1 },
          { ...publishDeps(registry, gateway, dedup), registry: broken },
        ),
      ).rejects.toThrow('redis went away');
      expect(await env.redis.exists(registry.keys.dedup('evt-retry'))).toBe(0);

      const retry = await publish(
        { id: 'evt-retry', userId: 'carl', data: 1 },
        publishDeps(registry, gateway, dedup),
      );
      expect(retry).toMatchObject({ delivered: 1 });
      expect(retry.duplicate).toBeUndefined();
    });

    it('a retry after an attempt that threw after delivering sends the same frame again, and history holds it once', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const records = await registerAll(registry, [
        connection('dora'),
        connection('dora'),
        connection('emil'),
      ]);
      await Promise.all(records.map((r) => registry.subscribe(r, 'news')));
      const real = store(registry);
      // The first attempt delivers everything, then fails to record its result.
      let failures = 1;
      const flaky: DedupStore = {
        claim: (id) => real.claim(id),
        release: (id, token) => real.release(id, token),
        complete: async (id, result) => {
          if (failures-- > 0) throw new Error('connection lost after delivery');
          await real.complete(id, result);
        },
      };
      for (const request of [
        { id: 'after-1', userIds: ['dora', 'emil'], data: { n: 1 } },
        { id: 'after-2', topic: 'news', data: { n: 2 } },
      ]) {
        failures = 1;
        gateway.posts.length = 0;
        const deps = publishDeps(registry, gateway, flaky);
        await expect(publish(request, deps)).rejects.toThrow('connection lost after delivery');
        const firstFrames = gateway.posts.map((p) => `${p.connectionId} ${p.frame}`).sort();
        expect(firstFrames).toHaveLength(3);

        const retry = await publish(request, deps);
        expect(retry).toMatchObject({ recipients: 3, delivered: 3, failed: 0 });
        const retryFrames = gateway.posts
          .slice(3)
          .map((p) => `${p.connectionId} ${p.frame}`)
          .sort();
        expect(retryFrames).toEqual(firstFrames);
      }
      for (const audience of [
        registry.userAudience('dora'),
        registry.userAudience('emil'),
        registry.topicAudience('news'),
      ]) {
        expect(await env.redis.xlen(audience.keys.history)).toBe(1);
      }
    });

    it('an attempt that died holds its id only for its lease; a retry then reaches every connection with the same frame (real clock)', async () => {
      const registry = env.registry();
      const records = await registerAll(registry, [connection('finn'), connection('finn')]);
      const dedup = store(registry, 60, 2);
      // The first attempt posts to one connection and then hangs forever:
      // as good as killed by its timeout mid-fan-out.
      const dying = new RecordingGateway();
      let posted = 0;
      const hang: Gateway = {
        post: (endpoint, connectionId, data) =>
          posted++ === 0 ? dying.post(endpoint, connectionId, data) : new Promise(() => undefined),
        close: (endpoint, connectionId) => dying.close(endpoint, connectionId),
      };
      const request = { id: 'killed-1', userId: 'finn', data: 'x' };
      void publish(request, publishDeps(registry, hang, dedup));
      const deadline = Date.now() + 5_000;
      while (dying.posts.length === 0 && Date.now() < deadline) await sleep(10);
      expect(dying.posts).toHaveLength(1);

      // While its lease runs, a retry is told the publish is in progress.
      const gateway = new RecordingGateway();
      const early = publish(request, publishDeps(registry, gateway, dedup));
      await expect(early).rejects.toBeInstanceOf(PublishInProgressError);
      expect(gateway.posts).toHaveLength(0);

      await untilGone(registry.keys.dedup('killed-1'));
      const retry = await publish(request, publishDeps(registry, gateway, dedup));
      expect(retry).toMatchObject({ recipients: 2, delivered: 2, failed: 0, stored: true });
      expect(Object.keys(gateway.countsByConnection()).sort()).toEqual(
        records.map((r) => r.connectionId).sort(),
      );
      expect(gateway.posts.map((p) => p.frame)).toContain(dying.posts[0]?.frame);
      expect(new Set(gateway.posts.map((p) => p.frame)).size).toBe(1);
      expect(await env.redis.xlen(registry.userAudience('finn').keys.history)).toBe(1);
      expect(await publish(request, publishDeps(registry, gateway, dedup))).toEqual({
        ...retry,
        duplicate: true,
      });
    });
  });

  describe('delivery', () => {
    it('re-runs a deliver worker that died midway: every connection reached, none counted twice', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const records = await registerAll(
        registry,
        Array.from({ length: 50 }, (_, i) => connection(`w${i % 5}`, { allowedTopics: ['ops'] })),
      );
      await Promise.all(records.map((r) => registry.subscribe(r, 'ops')));
      // The worker of the second chunk posts to half its recipients, then dies
      // (as a Lambda killed at its timeout); every other run is a real worker.
      let runs = 0;
      const worker = async (payload: string) => {
        runs++;
        const chunk = parseDeliverChunk(JSON.parse(payload));
        const jobs = [...chunkJobs(chunk)];
        if (runs === 2) {
          const half = jobs.flatMap((j) => j.recipients.map((r) => ({ frame: j.frame, r })));
          for (const { frame, r } of half.slice(0, half.length / 2)) {
            await gateway.post(r.endpoint, r.connectionId, frame);
          }
          throw new Error('Task timed out after 120.00 seconds');
        }
        return deliver(jobs, {
          gateway,
          prune: async () => undefined,
          logger: { warn: () => undefined },
          concurrency: 4,
        });
      };
      const deps = { ...publishDeps(registry, gateway, noDedup, 20), invokeChunk: worker };

      const result = await publish({ id: 'ops-1', topic: 'ops', data: 'x' }, deps);

      expect(result).toMatchObject({
        recipients: 50,
        delivered: 50,
        gone: 0,
        failed: 0,
        chunks: 3,
      });
      expect(runs).toBe(4);
      const counts = gateway.countsByConnection();
      expect(Object.keys(counts).sort()).toEqual(records.map((r) => r.connectionId).sort());
      // The dead worker's half got it twice, the same frame both times.
      expect(Object.values(counts).filter((n) => n === 2)).toHaveLength(10);
      expect(new Set(gateway.posts.map((p) => p.frame)).size).toBe(1);
      expect(deps.warnings.map((w) => w.message)).toEqual(['deliver worker failed']);
    });

    it('reaches both devices of a user, with the cursor in the frame', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const [phone, laptop] = await registerAll(registry, [
        connection('dana', { endpoint: ENDPOINT_A }),
        connection('dana', { endpoint: ENDPOINT_B }),
        connection('someone-else'),
      ]);
      const result = await publish(
        { id: 'd1', userId: 'dana', data: { text: 'hello' } },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result).toMatchObject({
        id: 'd1',
        recipients: 2,
        delivered: 2,
        gone: 0,
        failed: 0,
        chunks: 0,
        stored: true,
      });
      const frame = messageFrame('d1', '{"text":"hello"}', result.cursor);
      expect(gateway.posts.sort((a, b) => a.endpoint.localeCompare(b.endpoint))).toEqual([
        { endpoint: ENDPOINT_A, connectionId: phone?.connectionId, frame },
        { endpoint: ENDPOINT_B, connectionId: laptop?.connectionId, frame },
      ]);
    });

    it('streams a user with more devices than chunkSize through scan, each once', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const records = await registerAll(
        registry,
        Array.from({ length: 7 }, () => connection('many')),
      );
      const result = await publish(
        { userId: 'many', data: 1, exceptConnectionId: records[0]?.connectionId as string },
        publishDeps(registry, gateway, noDedup, 3),
      );
      expect(result).toMatchObject({ recipients: 6, delivered: 6, chunks: 0, stored: true });
      const counts = gateway.countsByConnection();
      expect(Object.keys(counts).sort()).toEqual(
        records
          .slice(1)
          .map((r) => r.connectionId)
          .sort(),
      );
      expect(Object.values(counts).every((n) => n === 1)).toBe(true);
    });

    it('skips exceptConnectionId', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const [sender, other] = await registerAll(registry, [connection('ed'), connection('ed')]);
      const result = await publish(
        { userId: 'ed', data: 1, exceptConnectionId: sender?.connectionId as string },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result).toMatchObject({ recipients: 1, delivered: 1 });
      expect(gateway.countsByConnection()).toEqual({ [other?.connectionId as string]: 1 });
    });

    it('reaches every device of several users (userIds)', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const records = await registerAll(registry, [
        connection('u1'),
        connection('u1'),
        connection('u2'),
        connection('u3'),
      ]);
      const result = await publish(
        { userIds: ['u1', 'u2', 'nobody'], data: 1 },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result).toMatchObject({ recipients: 3, delivered: 3, stored: true });
      // One stream per user: no single cursor, but each user's (a user with
      // no connection is stored too, for their next resume).
      expect(result.cursor).toBeUndefined();
      expect(Object.keys(result.cursors ?? {}).sort()).toEqual(['nobody', 'u1', 'u2']);
      for (const cursor of Object.values(result.cursors ?? {})) expect(cursor).toMatch(/^\d+-\d+$/);
      expect(Object.keys(gateway.countsByConnection()).sort()).toEqual(
        records
          .slice(0, 3)
          .map((r) => r.connectionId)
          .sort(),
      );
    });

    it.each([
      { members: 23, chunkSize: 5 },
      { members: 300, chunkSize: 40 },
    ])(
      'streams a topic of $members members in chunks of $chunkSize, each once',
      async ({ members, chunkSize }) => {
        const registry = env.registry();
        const gateway = new RecordingGateway();
        const records = await registerAll(
          registry,
          Array.from({ length: members }, (_, i) => connection(`fan${i % 7}`)),
        );
        await Promise.all(records.map((r) => registry.subscribe(r, 'news')));
        const outsider = connection('outsider');
        await registry.register(outsider);

        const deps = publishDeps(registry, gateway, noDedup, chunkSize);
        const result = await publish({ topic: 'news', data: 'big' }, deps);
        expect(result).toMatchObject({
          recipients: members,
          delivered: members,
          gone: 0,
          failed: 0,
          chunks: 0,
          stored: true,
        });
        const counts = gateway.countsByConnection();
        expect(Object.keys(counts).sort()).toEqual(records.map((r) => r.connectionId).sort());
        expect(Object.values(counts).every((n) => n === 1)).toBe(true);
        const frame = JSON.parse(gateway.posts[0]?.frame as string);
        expect(frame).toMatchObject({ type: 'message', topic: 'news', cursor: result.cursor });
        expect(deps.warnings).toEqual([]);
      },
    );

    it('broadcasts to every registered connection', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const records = await registerAll(
        registry,
        Array.from({ length: 12 }, (_, i) => connection(`b${i % 4}`)),
      );
      await registry.subscribe(records[0] as ConnectionRecord, 'news');
      const result = await publish(
        { broadcast: true, data: 'all' },
        publishDeps(registry, gateway, noDedup, 5),
      );
      expect(result).toMatchObject({ recipients: 12, delivered: 12, stored: false });
      const counts = gateway.countsByConnection();
      expect(Object.keys(counts).sort()).toEqual(records.map((r) => r.connectionId).sort());
      expect(Object.values(counts).every((n) => n === 1)).toBe(true);
    });

    it('counts an unknown connection id as gone', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const [a, b] = await registerAll(registry, [connection('fred'), connection('gina')]);
      const result = await publish(
        {
          connectionIds: [a?.connectionId as string, b?.connectionId as string, 'unknown='],
          data: 1,
        },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result).toMatchObject({ recipients: 3, delivered: 2, gone: 1, stored: false });
      expect(Object.keys(gateway.countsByConnection()).sort()).toEqual(
        [a?.connectionId, b?.connectionId].sort(),
      );
    });

    it('prunes a connection the gateway reports gone, and only that one', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const [vanished, alive] = await registerAll(registry, [
        connection('hugo'),
        connection('hugo'),
      ]);
      const v = vanished as ConnectionRecord;
      const a = alive as ConnectionRecord;
      await registry.subscribe(v, 'news');
      await registry.subscribe(a, 'news');
      gateway.gone.add(v.connectionId);

      const result = await publish(
        { userId: 'hugo', data: 1 },
        publishDeps(registry, gateway, noDedup),
      );
      expect(result).toMatchObject({ recipients: 2, delivered: 1, gone: 1, failed: 0 });
      expect(await registry.get(v.connectionId)).toBeNull();
      expect(await registry.get(a.connectionId)).not.toBeNull();
      expect(await registry.lookupUser('hugo')).toEqual([
        { connectionId: a.connectionId, endpoint: a.endpoint },
      ]);
      expect(await registry.countConnected(registry.topicAudience('news'))).toBe(1);
    });
  });

  describe('presence and kick', () => {
    it('answers who is online, and how many are in a topic', async () => {
      const registry = env.registry();
      const [a1, a2, b1] = await registerAll(registry, [
        connection('ann'),
        connection('ann'),
        connection('ben'),
      ]);
      for (const r of [a1, b1]) await registry.subscribe(r as ConnectionRecord, 'room:p');
      expect(
        await presence({ userIds: ['ann', 'ben', 'cid'], topic: 'room:p' }, { registry }),
      ).toEqual({
        users: {
          ann: { online: true, connections: 2 },
          ben: { online: true, connections: 1 },
          cid: { online: false, connections: 0 },
        },
        topic: { name: 'room:p', members: 2 },
      });

      await registry.remove(a2?.connectionId as string);
      await registry.remove(b1?.connectionId as string);
      expect(await presence({ userIds: ['ann', 'ben'], topic: 'room:p' }, { registry })).toEqual({
        users: {
          ann: { online: true, connections: 1 },
          ben: { online: false, connections: 0 },
        },
        topic: { name: 'room:p', members: 1 },
      });
    });

    it('kicks every connection of a user: closes each and removes its records', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const warnings: unknown[] = [];
      const logger = { warn: (...args: unknown[]) => warnings.push(args) };
      const records = await registerAll(registry, [
        connection('kim', { endpoint: ENDPOINT_A }),
        connection('kim', { endpoint: ENDPOINT_B }),
        connection('kim'),
        connection('lou'),
      ]);
      const kims = records.slice(0, 3);
      await registry.subscribe(kims[0] as ConnectionRecord, 'news');

      const result = await kick({ userId: 'kim' }, { registry, gateway, logger });
      expect(result).toEqual({ connections: 3, closed: 3, gone: 0, failed: 0 });
      expect(gateway.closes.sort((x, y) => x.connectionId.localeCompare(y.connectionId))).toEqual(
        kims
          .map(({ connectionId, endpoint }) => ({ connectionId, endpoint }))
          .sort((x, y) => x.connectionId.localeCompare(y.connectionId)),
      );
      for (const k of kims) expect(await registry.get(k.connectionId)).toBeNull();
      expect(await registry.lookupUser('kim')).toEqual([]);
      expect(await registry.countConnected(registry.topicAudience('news'))).toBe(0);
      expect(await registry.lookupUser('lou')).toHaveLength(1);
      expect(warnings).toEqual([]);
    });

    it('kicks by connection id, counting unknown ids as gone', async () => {
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const [target] = await registerAll(registry, [connection('max')]);
      const result = await kick(
        { connectionIds: [target?.connectionId as string, 'unknown='] },
        { registry, gateway, logger: { warn: () => undefined } },
      );
      expect(result).toEqual({ connections: 2, closed: 1, gone: 1, failed: 0 });
      expect(gateway.closes.map((c) => c.connectionId)).toEqual([target?.connectionId]);
      expect(await registry.get(target?.connectionId as string)).toBeNull();
    });
  });
});
