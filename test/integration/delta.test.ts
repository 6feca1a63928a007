/**
 * Delta topics against real Redis (standalone and cluster): who gets a delta
 * and against which base (docs/protocol.md PW-D2). The base is the entry the
 * new one follows, read atomically with the append, so concurrent publishes
 * never pair a delta with the wrong base; a member gets a delta only for an
 * entry stored after it joined.
 */
import { applyDelta } from 'fossil-delta';
import { describe, expect, it } from 'vitest';
import { series } from '../../bench/delta-doc.js';
import { publish } from '../../lib/delivery/publish.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord } from '../../lib/registry/types.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, noDedup, publishDeps, RecordingGateway } from './support.js';

const envs = useTopologies();

interface Wire {
  id: string;
  cursor?: string;
  data: unknown;
  delta?: { base: string };
}

/** Applies a delta frame's text (one char per byte) to the base data, as pushwire/delta does. */
const applied = (base: unknown, delta: string): unknown =>
  JSON.parse(
    Buffer.from(
      applyDelta(Buffer.from(JSON.stringify(base)), Buffer.from(delta, 'latin1')),
    ).toString(),
  );

describe.each(TOPOLOGIES)('delta topics on %s Redis', (topology) => {
  const env = envs[topology];
  const make = () => env.registry({ deltaTopics: ['doc:*'] });

  async function member(registry: RedisRegistry, topic: string, delta: boolean) {
    const record: ConnectionRecord = connection('u', { allowedTopics: ['doc:*', 'plain'] });
    await registry.register(record);
    const joined = await registry.subscribeWithCursor(record, topic, undefined, delta);
    expect(joined.outcome).toBe('subscribed');
    return record;
  }

  /** Every history entry of a topic, oldest first: [cursor, data]. */
  async function history(registry: RedisRegistry, topic: string): Promise<[string, unknown][]> {
    const entries = await env.redis.xrange(registry.topicAudience(topic).keys.history, '-', '+');
    return entries.map(([cursor, fields]) => [
      cursor,
      (JSON.parse(fields[1] as string) as { data: unknown }).data,
    ]);
  }

  it('concurrent publishes: every delta names the entry just before its own, and applies to it', async () => {
    const registry = make();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const docs = series(25).map((d) => JSON.parse(d) as unknown);
    await publish({ topic: 'doc:race', data: docs[0] }, deps);
    const deltaMember = await member(registry, 'doc:race', true);
    const wholeMember = await member(registry, 'doc:race', false);

    // 24 publishes at once, each a version of the document.
    await Promise.all(docs.slice(1).map((data) => publish({ topic: 'doc:race', data }, deps)));

    const entries = await history(registry, 'doc:race');
    const index = new Map(entries.map(([cursor, data], i) => [cursor, { i, data }]));
    const frames = gateway.framesTo(deltaMember.connectionId) as unknown as Wire[];
    expect(frames).toHaveLength(24);
    let deltas = 0;
    for (const frame of frames) {
      const own = index.get(frame.cursor as string);
      expect(own).toBeDefined();
      if (frame.delta === undefined) {
        expect(frame.data).toEqual(own?.data);
        continue;
      }
      deltas++;
      // The base is the entry right before this one in the stream.
      const previous = entries[(own?.i ?? 0) - 1];
      expect(frame.delta.base).toBe(previous?.[0]);
      expect(applied(previous?.[1], frame.data as string)).toEqual(own?.data);
    }
    // The first entry after the join was stored after docs[0], which the
    // member never received: that one came whole; the rest were deltas.
    expect(frames.find((f) => f.cursor === entries[1]?.[0])?.delta).toBeUndefined();
    expect(deltas).toBe(23);
    // The subscriber that did not ask got every message whole.
    const whole = gateway.framesTo(wholeMember.connectionId) as unknown as Wire[];
    expect(whole.every((f) => f.delta === undefined)).toBe(true);
    expect(whole.map((f) => f.data).sort()).toEqual(
      entries
        .slice(1)
        .map(([, d]) => d)
        .sort(),
    );
  });

  it('a live join takes deltas from the entry after its first; a replay join at once', async () => {
    const registry = make();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const docs = series(4).map((d) => JSON.parse(d) as unknown);
    await publish({ topic: 'doc:join', data: docs[0] }, deps);
    const live = await member(registry, 'doc:join', true);
    // Joined by a replay (subscribe with since): it receives every entry.
    const replayed = connection('u', { allowedTopics: ['doc:*'] });
    await registry.register(replayed);
    await registry.subscribe(replayed, 'doc:join', Date.now() + 60_000, undefined, true);
    await registry.endResume(registry.topicAudience('doc:join'), replayed);

    await publish({ topic: 'doc:join', data: docs[1] }, deps);
    await publish({ topic: 'doc:join', data: docs[2] }, deps);

    const toLive = gateway.framesTo(live.connectionId) as unknown as Wire[];
    expect(toLive.map((f) => f.delta !== undefined)).toEqual([false, true]);
    const toReplayed = gateway.framesTo(replayed.connectionId) as unknown as Wire[];
    expect(toReplayed.map((f) => f.delta !== undefined)).toEqual([true, true]);
  });

  it('a first message, an ephemeral one, a retried one and a non-delta topic go whole', async () => {
    const registry = make();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const docs = series(4).map((d) => JSON.parse(d) as unknown);
    const m = await member(registry, 'doc:first', true);
    const onPlain = await member(registry, 'plain', true);

    // The topic's first message: no base.
    await publish({ topic: 'doc:first', data: docs[0] }, deps);
    // Ephemeral: not stored, never a base, and sent whole.
    await publish({ topic: 'doc:first', data: { typing: true }, ephemeral: true }, deps);
    const second = await publish({ topic: 'doc:first', data: docs[1] }, deps);
    const third = await publish({ topic: 'doc:first', data: docs[2] }, deps);
    // `plain` is not a delta topic: its subscribe's delta is ignored.
    await publish({ topic: 'plain', data: docs[0] }, deps);
    await publish({ topic: 'plain', data: docs[1] }, deps);

    const frames = gateway.framesTo(m.connectionId) as unknown as Wire[];
    expect(frames.map((f) => f.delta?.base ?? null)).toEqual([
      null,
      null,
      frames[0]?.cursor,
      second.cursor,
    ]);
    expect(third.cursor).toBe(frames[3]?.cursor);
    expect(
      (gateway.framesTo(onPlain.connectionId) as unknown as Wire[]).every(
        (f) => f.delta === undefined,
      ),
    ).toBe(true);
    expect(await env.redis.exists(registry.topicAudience('plain').keys.delta)).toBe(0);

    // A retried publish (same id, known cursor) is sent whole: its first delta is not recomputed.
    const { RedisDedupStore } = await import('../../lib/delivery/dedup.js');
    const dedup = new RedisDedupStore(env.redis, (id) => registry.keys.dedup(id), {
      ttlSeconds: 60,
      leaseSeconds: 30,
    });
    const withIds = publishDeps(registry, gateway, dedup);
    const first = await publish({ topic: 'doc:first', data: docs[3], id: 'doc-v3' }, withIds);
    await dedup.release('doc-v3', 'any').catch(() => undefined);
    await env.redis.del(registry.keys.dedup('doc-v3'));
    const retry = await publish({ topic: 'doc:first', data: docs[3], id: 'doc-v3' }, withIds);
    expect(retry.cursor).toBe(first.cursor);
    const last = (gateway.framesTo(m.connectionId) as unknown as Wire[]).slice(-2);
    expect(last.map((f) => f.delta !== undefined)).toEqual([true, false]);
  });

  it('unsubscribing forgets the ask; a subscribe without delta takes it back', async () => {
    const registry = make();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const docs = series(5).map((d) => JSON.parse(d) as unknown);
    await publish({ topic: 'doc:again', data: docs[0] }, deps);
    const m = await member(registry, 'doc:again', true);
    await publish({ topic: 'doc:again', data: docs[1] }, deps);
    await publish({ topic: 'doc:again', data: docs[2] }, deps);

    await registry.unsubscribe(m, 'doc:again');
    expect(
      await env.redis.hexists(
        registry.topicAudience('doc:again').keys.delta,
        `${m.connectionId}|${m.endpoint}`,
      ),
    ).toBe(0);
    await registry.subscribeWithCursor(m, 'doc:again', undefined, false);
    await publish({ topic: 'doc:again', data: docs[3] }, deps);
    await publish({ topic: 'doc:again', data: docs[4] }, deps);

    const frames = gateway.framesTo(m.connectionId) as unknown as Wire[];
    expect(frames.map((f) => f.delta !== undefined)).toEqual([false, true, false, false]);
  });

  it('an audience streamed in batches (past the inline limit) gets the same split', async () => {
    const registry = make();
    const gateway = new RecordingGateway();
    // Inline limit 3: five members are scanned, not returned by the script.
    const deps = publishDeps(registry, gateway, noDedup, 3);
    const docs = series(3).map((d) => JSON.parse(d) as unknown);
    await publish({ topic: 'doc:big', data: docs[0] }, deps);
    const asking = [
      await member(registry, 'doc:big', true),
      await member(registry, 'doc:big', true),
      await member(registry, 'doc:big', true),
    ];
    const plain = [
      await member(registry, 'doc:big', false),
      await member(registry, 'doc:big', false),
    ];
    await publish({ topic: 'doc:big', data: docs[1] }, deps);
    await publish({ topic: 'doc:big', data: docs[2] }, deps);

    for (const a of asking) {
      const frames = gateway.framesTo(a.connectionId) as unknown as Wire[];
      expect(frames.map((f) => f.delta !== undefined)).toEqual([false, true]);
      expect(applied(docs[1], frames[1]?.data as string)).toEqual(docs[2]);
    }
    for (const p of plain) {
      const frames = gateway.framesTo(p.connectionId) as unknown as Wire[];
      expect(frames.map((f) => f.data)).toEqual([docs[1], docs[2]]);
    }
  });
});
