import { describe, expect, it } from 'vitest';
import { type BatchResult, publishBatch } from '../../lib/delivery/batch.js';
import { deliverBatchChunk, parseBatchChunk } from '../../lib/delivery/batch-frames.js';
import { RedisDedupStore } from '../../lib/delivery/dedup.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord } from '../../lib/registry/types.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import {
  connection,
  type Frame,
  noDedup,
  publishDeps,
  RecordingGateway,
  unpack,
} from './support.js';

const envs = useTopologies();

async function registerAll(registry: RedisRegistry, records: ConnectionRecord[]) {
  await Promise.all(records.map((r) => registry.register(r)));
  return records;
}

/** What each connection received: its posts, and the messages in them in order. */
function received(gateway: RecordingGateway, connectionId: string) {
  const posts = gateway.posts.filter((p) => p.connectionId === connectionId);
  return {
    posts: posts.length,
    types: posts.map((p) => (JSON.parse(p.frame) as { type: string }).type),
    messages: posts.flatMap((p) => unpack(JSON.parse(p.frame))) as Frame[],
  };
}

const ok = (r: BatchResult['messages'][number]) => {
  if ('error' in r) throw new Error(`message ${r.id} failed: ${r.error.message}`);
  return r;
};

describe.each(TOPOLOGIES)('batch publish on %s Redis', (topology) => {
  const env = envs[topology];
  const store = (registry: RedisRegistry) =>
    new RedisDedupStore(env.redis, (id) => registry.keys.dedup(id), {
      ttlSeconds: 60,
      leaseSeconds: 30,
    });

  it('combines each connection’s messages of mixed audiences into one frame, in order, with a history entry and cursor per message', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const [phone, laptop, bob, carol] = await registerAll(registry, [
      connection('alice'),
      connection('alice'),
      connection('bob'),
      connection('carol'),
    ]);
    await registry.subscribe(phone as ConnectionRecord, 'news');
    await registry.subscribe(carol as ConnectionRecord, 'news');
    const deps = publishDeps(registry, gateway, store(registry));

    const result = await publishBatch(
      {
        messages: [
          { id: 'b1-0', userId: 'alice', data: { n: 0 } },
          { id: 'b1-1', topic: 'news', data: { n: 1 } },
          { id: 'b1-2', userIds: ['alice', 'bob'], data: { n: 2 } },
          { id: 'b1-3', userId: 'alice', data: { n: 3 }, exceptConnectionId: laptop?.connectionId },
          { id: 'b1-4', connectionIds: [bob?.connectionId as string, 'gone-one='], data: { n: 4 } },
          { id: 'b1-5', userId: 'alice', ephemeral: true, data: { n: 5 } },
        ],
      },
      deps,
    );

    const [r0, r1, r2, r3, r4, r5] = result.messages.map(ok);
    expect(r0).toMatchObject({ id: 'b1-0', recipients: 2, delivered: 2, stored: true });
    expect(r1).toMatchObject({ id: 'b1-1', recipients: 2, delivered: 2, stored: true });
    expect(r2).toMatchObject({ recipients: 3, delivered: 3, stored: true });
    expect(Object.keys(r2?.cursors ?? {}).sort()).toEqual(['alice', 'bob']);
    expect(r3).toMatchObject({ recipients: 1, delivered: 1 });
    expect(r4).toMatchObject({ recipients: 2, delivered: 1, gone: 1, stored: false });
    expect(r5).toMatchObject({ recipients: 2, delivered: 2, stored: false });
    expect(r5?.cursor).toBeUndefined();

    // Alice's stream: messages 0, 2, 3 in request order, each its own entry.
    const history = await env.redis.xrange(registry.userAudience('alice').keys.history, '-', '+');
    expect(history.map(([cursor]) => cursor)).toEqual([
      r0?.cursor,
      r2?.cursors?.['alice'],
      r3?.cursor,
    ]);
    expect(compareCursors(r0?.cursor as string, r2?.cursors?.['alice'] as string)).toBeLessThan(0);

    // The phone: one post, a batch of everything it gets, in request order.
    const toPhone = received(gateway, phone?.connectionId as string);
    expect(toPhone.posts).toBe(1);
    expect(toPhone.types).toEqual(['batch']);
    expect(toPhone.messages.map((m) => m.id)).toEqual(['b1-0', 'b1-1', 'b1-2', 'b1-3', 'b1-5']);
    expect(toPhone.messages[1]).toMatchObject({ topic: 'news', cursor: r1?.cursor });
    expect(toPhone.messages[2]?.cursor).toBe(r2?.cursors?.['alice']);
    // The laptop: not 3 (excepted), not the topic.
    const toLaptop = received(gateway, laptop?.connectionId as string);
    expect(toLaptop.posts).toBe(1);
    expect(toLaptop.messages.map((m) => m.id)).toEqual(['b1-0', 'b1-2', 'b1-5']);
    // Bob: his cursor for 2, then 4 (no cursor); carol: the topic's message alone, as a plain frame.
    const toBob = received(gateway, bob?.connectionId as string);
    expect(toBob.messages.map((m) => [m.id, m.cursor])).toEqual([
      ['b1-2', r2?.cursors?.['bob']],
      ['b1-4', undefined],
    ]);
    expect(received(gateway, carol?.connectionId as string)).toMatchObject({
      posts: 1,
      types: ['message'],
    });
    expect(result).toMatchObject({ recipients: 4, delivered: 4, failed: 0, chunks: 0 });
  });

  it('shares one frame among connections that receive the same messages', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const members = await registerAll(
      registry,
      Array.from({ length: 6 }, (_, i) => connection(`fan${i % 3}`)),
    );
    await Promise.all(members.map((m) => registry.subscribe(m, 'room:1')));
    const deps = publishDeps(registry, gateway, noDedup);
    await publishBatch(
      {
        messages: [
          { topic: 'room:1', data: 'a' },
          { topic: 'room:1', data: 'b' },
        ],
      },
      deps,
    );
    expect(gateway.posts).toHaveLength(6);
    expect(new Set(gateway.posts.map((p) => p.frame)).size).toBe(1);
  });

  it('a retried batch sends nothing again: each message is a duplicate with its first result, history holds each once', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    await registerAll(registry, [connection('dup-a'), connection('dup-b')]);
    const deps = publishDeps(registry, gateway, store(registry));
    const batch = {
      messages: [
        { id: 'r-0', userId: 'dup-a', data: 0 },
        { id: 'r-1', userIds: ['dup-a', 'dup-b'], data: 1 },
      ],
    };
    const first = await publishBatch(batch, deps);
    const posts = gateway.posts.length;
    // The retry adds a message the first did not have: only that one goes out.
    const retry = await publishBatch(
      { messages: [...batch.messages, { id: 'r-2', userId: 'dup-a', data: 2 }] },
      deps,
    );
    expect(retry.messages.slice(0, 2)).toEqual(
      first.messages.map((m) => ({ ...m, duplicate: true })),
    );
    expect(ok(retry.messages[2] as never)).toMatchObject({ id: 'r-2', delivered: 1 });
    expect(gateway.posts.length).toBe(posts + 1);
    const history = await env.redis.xrange(registry.userAudience('dup-a').keys.history, '-', '+');
    expect(history).toHaveLength(3);
  });

  it('answers in_progress for a message whose first attempt still runs, and sends the rest', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    await registerAll(registry, [connection('busy')]);
    const dedup = store(registry);
    await dedup.claim('held');
    const result = await publishBatch(
      {
        messages: [
          { id: 'held', userId: 'busy', data: 0 },
          { id: 'free', userId: 'busy', data: 1 },
        ],
      },
      publishDeps(registry, gateway, dedup),
    );
    expect(result.messages[0]).toMatchObject({ id: 'held', error: { code: 'in_progress' } });
    expect(result.messages[1]).toMatchObject({ id: 'free', delivered: 1 });
  });

  it('packs messages past 128 KB into several frames, posted in order', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const [device] = await registerAll(registry, [connection('heavy')]);
    const messages = Array.from({ length: 5 }, (_, i) => ({
      id: `h-${i}`,
      userId: 'heavy',
      data: `${i}`.repeat(50_000),
    }));
    const result = await publishBatch({ messages }, publishDeps(registry, gateway, noDedup));
    expect(result.messages.map((m) => ok(m).delivered)).toEqual([1, 1, 1, 1, 1]);
    const got = received(gateway, device?.connectionId as string);
    // 2 + 2 + 1: two 50 KB messages fit 128 KB, three do not.
    expect(got.types).toEqual(['batch', 'batch', 'message']);
    expect(got.messages.map((m) => m.id)).toEqual(messages.map((m) => m.id));
    for (const p of gateway.posts)
      expect(Buffer.byteLength(p.frame)).toBeLessThanOrEqual(128 * 1024);
  });

  it('past the join limit, streams each further audience with its own messages combined, still every message once and in order', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const devices = await registerAll(registry, [
      connection('lim-a'),
      connection('lim-a'),
      connection('lim-b'),
      connection('lim-c'),
    ]);
    await Promise.all(devices.map((d) => registry.subscribe(d, 'room:lim')));
    // Room 4 members, lim-a 2 devices: a limit of 3 joins lim-a's stream or
    // the smaller ones, never the room; the rest is streamed.
    const messages = [
      { userId: 'lim-a', data: 0 },
      { topic: 'room:lim', data: 1 },
      { userIds: ['lim-a', 'lim-b', 'lim-c'], data: 2 },
      { topic: 'room:lim', data: 3 },
      { userId: 'lim-a', data: 4 },
    ];
    const result = await publishBatch({ messages }, publishDeps(registry, gateway, noDedup), {
      joinLimit: 3,
    });
    expect(result.messages.map((m) => ok(m).delivered)).toEqual([2, 4, 4, 4, 2]);
    const [d0, d1, d2, d3] = devices.map((d) => received(gateway, d.connectionId));
    // Per stream, in request order; each message once.
    for (const got of [d0, d1]) {
      expect(got?.messages.filter((m) => m.topic === undefined).map((m) => m.data)).toEqual([
        0, 2, 4,
      ]);
      expect(got?.messages.filter((m) => m.topic !== undefined).map((m) => m.data)).toEqual([1, 3]);
    }
    for (const got of [d2, d3]) expect(got?.messages.map((m) => m.data).sort()).toEqual([1, 2, 3]);
    // Still combined: the room's two messages travel together.
    expect(d0?.posts).toBe(2);
    expect(gateway.posts.length).toBeLessThan(16);
  });

  it('streams a topic larger than a chunk through deliver workers, combining its messages, counted per message', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const members = await registerAll(
      registry,
      Array.from({ length: 23 }, (_, i) => connection(`big${i}`)),
    );
    await Promise.all(members.map((m) => registry.subscribe(m, 'room:big')));
    const except = members[4]?.connectionId as string;
    let invocations = 0;
    const deps = {
      ...publishDeps(registry, gateway, noDedup, 10),
      // The worker as `deliver` runs it: the payload parsed from its JSON text.
      invokeChunk: async (payload: string) => {
        invocations++;
        return deliverBatchChunk(parseBatchChunk(JSON.parse(payload)), {
          gateway,
          prune: async () => undefined,
          logger: { warn: () => undefined },
          concurrency: 4,
        });
      },
    };
    const result = await publishBatch(
      {
        messages: [
          { topic: 'room:big', data: 'first' },
          { userId: 'big0', data: 'own' },
          { topic: 'room:big', data: 'second', exceptConnectionId: except },
        ],
      },
      deps,
    );
    const [first, own, second] = result.messages.map(ok);
    expect(first).toMatchObject({ recipients: 23, delivered: 23 });
    expect(own).toMatchObject({ recipients: 1, delivered: 1 });
    expect(second).toMatchObject({ recipients: 22, delivered: 22 });
    expect(result.chunks).toBeGreaterThanOrEqual(3);
    expect(invocations).toBe(result.chunks);
    for (const m of members) {
      const topicMessages = received(gateway, m.connectionId).messages.filter(
        (f) => f.topic === 'room:big',
      );
      expect(topicMessages.map((f) => [f.data, f.cursor])).toEqual(
        m.connectionId === except
          ? [['first', first?.cursor]]
          : [
              ['first', first?.cursor],
              ['second', second?.cursor],
            ],
      );
    }
    // Everyone but the excepted one got both topic messages in one frame.
    const combined = gateway.posts.filter((p) => p.frame.startsWith('{"type":"batch"'));
    expect(combined).toHaveLength(22);
  });
});
