import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChunkInvoker, chunkJobs, parseDeliverChunk } from '../../lib/delivery/chunks.js';
import { deliver } from '../../lib/delivery/fanout.js';
import { PART_BYTES } from '../../lib/delivery/parts.js';
import { publish } from '../../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord } from '../../lib/registry/types.js';
import { replay } from '../../lib/session/resume.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, noDedup, publishDeps } from './support.js';

/**
 * Issue 17: messages past 128 KB (PW-F6) over a real Redis. Each
 * connection must get every message once, whole, as a client reassembles it
 * from its parts; history holds a message once; a `deliver` chunk carries
 * its data once whatever its size; replay sends a large entry as parts too.
 */

const envs = useTopologies();
const MiB = 1024 * 1024;

interface Received {
  id: string;
  cursor?: string;
  topic?: string;
  /** sha256 of the data's JSON: 100 connections × 1 MiB are not kept. */
  digest: string;
}

const digest = (json: string) => createHash('sha256').update(json).digest('hex');

/**
 * A gateway that reassembles as docs/clients.md tells a plain client to:
 * parts by id, in order, joined on the last; and checks every post is within
 * API Gateway's 128 KB. `goneAfter`: posts after which a connection is gone.
 */
class ReassemblingGateway implements Gateway {
  readonly received = new Map<string, Received[]>();
  readonly posts = new Map<string, number>();
  largestPost = 0;
  readonly #parts = new Map<string, string[]>();
  goneAfter = new Map<string, number>();

  async post(_endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    const count = (this.posts.get(connectionId) ?? 0) + 1;
    const limit = this.goneAfter.get(connectionId);
    if (limit !== undefined && count > limit) return 'gone';
    this.posts.set(connectionId, count);
    this.largestPost = Math.max(this.largestPost, data.byteLength);
    if (data.byteLength > 128 * 1024) throw new Error(`a post of ${data.byteLength} bytes`);
    const frame = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
    if (frame['type'] === 'part') {
      const key = `${connectionId}|${String(frame['id'])}`;
      const got = this.#parts.get(key) ?? [];
      // Posted in order to each connection: n is the number of parts seen.
      if (frame['n'] !== got.length) throw new Error(`part ${frame['n']} after ${got.length}`);
      got.push(frame['data'] as string);
      this.#parts.set(key, got);
      if (got.length === frame['of']) {
        this.#parts.delete(key);
        this.#message(connectionId, got.join(''));
      }
    } else if (frame['type'] === 'batch') {
      for (const m of frame['messages'] as unknown[])
        this.#message(connectionId, JSON.stringify(m));
    } else this.#message(connectionId, Buffer.from(data).toString('utf8'));
    return 'ok';
  }

  #message(connectionId: string, text: string) {
    const frame = JSON.parse(text) as Record<string, unknown>;
    expect(frame['type']).toBe('message');
    const got = this.received.get(connectionId) ?? [];
    got.push({
      id: frame['id'] as string,
      ...(frame['cursor'] !== undefined && { cursor: frame['cursor'] as string }),
      ...(frame['topic'] !== undefined && { topic: frame['topic'] as string }),
      digest: digest(JSON.stringify(frame['data'])),
    });
    this.received.set(connectionId, got);
  }

  /** Parts begun and never finished, by connection|id. */
  get incomplete(): string[] {
    return [...this.#parts.keys()];
  }

  async close(): Promise<GatewayResult> {
    return 'ok';
  }
}

/** A `deliver` worker as functions/deliver.ts runs one: the payload parsed from JSON. */
function worker(gateway: Gateway, sizes: number[]): ChunkInvoker {
  return async (payload) => {
    sizes.push(Buffer.byteLength(payload));
    return deliver(chunkJobs(parseDeliverChunk(JSON.parse(payload))), {
      gateway,
      prune: async () => undefined,
      logger: { warn: () => undefined },
      concurrency: 8,
    });
  };
}

/** `data` of `bytes` as JSON, with characters of 1 to 4 bytes and escapes throughout. */
function dataOf(bytes: number) {
  const unit = 'aé€😀"\\\n'; // 1+2+3+4+2+2+2 = 16 bytes of JSON
  const text = unit.repeat(Math.floor((bytes - 40) / 16));
  // {"text":…,"pad":"…"} is 18 bytes around the two strings' contents.
  const data = { text, pad: 'x'.repeat(bytes - 18 - Buffer.byteLength(JSON.stringify(text))) };
  expect(Buffer.byteLength(JSON.stringify(data))).toBe(bytes);
  return data;
}

describe.each(TOPOLOGIES)('messages past 128 KB on %s Redis', (topology) => {
  const env = envs[topology];
  afterEach(async () => {
    await Promise.all(env.masters.map((m) => m.flushall()));
  });

  async function members(registry: RedisRegistry, topic: string, count: number) {
    const records: ConnectionRecord[] = [];
    for (let i = 0; i < count; i++) {
      const record = connection(`member-${i}`);
      await registry.register(record);
      await registry.subscribe(record, topic);
      records.push(record);
    }
    return records;
  }

  it('a 1 MiB message to a topic reaches each member once, whole; chunks carry the data once; history holds it once', async () => {
    // Prepare: 25 members, chunks of 10, so three deliver workers
    const registry = env.registry();
    const records = await members(registry, 'room:big', 25);
    const gateway = new ReassemblingGateway();
    const sizes: number[] = [];
    const deps = {
      ...publishDeps(registry, gateway, noDedup, 10),
      invokeChunk: worker(gateway, sizes),
    };
    const data = dataOf(MiB);
    const json = JSON.stringify(data);

    // Act
    const result = await publish({ id: 'big-topic', topic: 'room:big', data }, deps);

    // Assess: delivered to all, in parts of at most 127 KiB: 1 MiB of data is 9 or more
    // (escapes in the frame, 6 of every 16 bytes here, are escaped again in a part)
    expect(result).toMatchObject({ recipients: 25, delivered: 25, failed: 0, chunks: 3 });
    const posts = gateway.posts.get(records[0]?.connectionId ?? '');
    expect(posts).toBe(11);
    for (const r of records) {
      expect(gateway.received.get(r.connectionId)).toEqual([
        { id: 'big-topic', cursor: result.cursor, topic: 'room:big', digest: digest(json) },
      ]);
      expect(gateway.posts.get(r.connectionId)).toBe(posts);
    }
    expect(gateway.largestPost).toBeLessThanOrEqual(PART_BYTES);
    expect(gateway.incomplete).toEqual([]);
    // Each chunk: the data once and 10 recipients, not 10 copies.
    expect(sizes).toHaveLength(3);
    for (const size of sizes) expect(size).toBeLessThan(MiB + 2_000);
    // History: one entry holding the data once.
    const history = registry.topicAudience('room:big').keys.history;
    expect(await env.redis.xlen(history)).toBe(1);
    const [entry] = (await env.redis.xrange(history, '-', '+')) as [string, string[]][];
    const fields = entry?.[1] ?? [];
    const stored = fields[fields.indexOf('m') + 1] as string;
    expect(Buffer.byteLength(stored)).toBeLessThan(MiB + 200);
    expect(JSON.parse(stored)).toEqual({ id: 'big-topic', data });
  }, 60_000);

  it('a userIds publish of 1 MiB gives each user its parts with its own cursor', async () => {
    // Prepare
    const registry = env.registry();
    const users = ['u-a', 'u-b', 'u-c'];
    const records = users.map((u) => connection(u));
    await Promise.all(records.map((r) => registry.register(r)));
    const gateway = new ReassemblingGateway();
    const data = dataOf(MiB - 5);

    // Act
    const result = await publish(
      { id: 'big-users', userIds: users, data },
      publishDeps(registry, gateway, noDedup),
    );

    // Assess
    expect(result).toMatchObject({ recipients: 3, delivered: 3, failed: 0 });
    for (const [i, r] of records.entries()) {
      expect(gateway.received.get(r.connectionId)).toEqual([
        {
          id: 'big-users',
          cursor: result.cursors?.[users[i] as string],
          digest: digest(JSON.stringify(data)),
        },
      ]);
    }
  }, 60_000);

  it('replay sends a large message as parts, in order between small ones, and counts it once', async () => {
    // Prepare: small, large, small in the user's history; the device resumes from before them
    const registry = env.registry();
    const stays = connection('alice');
    const resumes = connection('alice');
    await Promise.all([registry.register(stays), registry.register(resumes)]);
    const gateway = new ReassemblingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const since = await publish({ id: 's0', userId: 'alice', data: 0 }, deps);
    const first = await publish({ id: 's1', userId: 'alice', data: 1 }, deps);
    const big = dataOf(600 * 1024);
    await publish({ id: 'L', userId: 'alice', data: big }, deps);
    const last = await publish({ id: 's2', userId: 'alice', data: 2 }, deps);
    const audience = registry.userAudience('alice');
    await registry.beginResume(audience, resumes, Date.now() + 60_000);
    gateway.received.clear();
    gateway.posts.clear();

    // Act
    const outcome = await replay(
      audience,
      resumes,
      since.cursor as string,
      { registry, gateway },
      Date.now() + 30_000,
    );

    // Assess
    expect(outcome).toMatchObject({ recovered: true, complete: true, replayed: 3, gone: false });
    expect(outcome.cursor).toBe(last.cursor);
    const got = gateway.received.get(resumes.connectionId) ?? [];
    expect(got.map((m) => m.id)).toEqual(['s1', 'L', 's2']);
    expect(got[1]?.digest).toBe(digest(JSON.stringify(big)));
    expect(got[0]?.cursor).toBe(first.cursor);
    // s1, then L's 7 parts (600 KiB, its escapes escaped again), then s2.
    expect(gateway.posts.get(resumes.connectionId)).toBe(9);
    expect(gateway.incomplete).toEqual([]);
  }, 60_000);

  it('a replay stopped part way through a large message resumes from before it', async () => {
    // Prepare
    const registry = env.registry();
    const resumes = connection('bob');
    await registry.register(resumes);
    const gateway = new ReassemblingGateway();
    const deps = publishDeps(registry, gateway, noDedup);
    const first = await publish({ id: 's1', userId: 'bob', data: 1 }, deps);
    await publish({ id: 'L', userId: 'bob', data: dataOf(400 * 1024) }, deps);
    const audience = registry.userAudience('bob');
    await registry.beginResume(audience, resumes, Date.now() + 60_000);
    gateway.posts.clear();
    gateway.received.clear();
    // s1 and L's first two parts arrive; then the connection is gone.
    gateway.goneAfter.set(resumes.connectionId, 3);

    // Act
    const outcome = await replay(
      audience,
      resumes,
      '0',
      { registry, gateway },
      Date.now() + 30_000,
    );

    // Assess: gone; L never counted, nor its cursor reached
    expect(outcome).toMatchObject({ gone: true, replayed: 1, cursor: first.cursor });
    expect(gateway.received.get(resumes.connectionId)?.map((m) => m.id)).toEqual(['s1']);
    expect(gateway.incomplete).toEqual([`${resumes.connectionId}|L`]);
  }, 60_000);
});
