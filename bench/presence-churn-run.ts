/**
 * Posts per minute of presence events (issue 16) in a room with churn:
 * `npx tsx bench/presence-churn.ts` (which bundles this file: the registry loads .lua as text) (PRESENCE_BENCH_MEMBERS, default 1,000;
 * PRESENCE_BENCH_CHURN, default 0.01 per minute; PRESENCE_BENCH_INTERVAL_MS,
 * default 2,000).
 *
 * Counted, not timed: the real registry (presence.lua on a private
 * redis-server) and the real presenceEvents drain, with a gateway that counts
 * posts instead of making them and a clock moved by hand through one minute
 * in which `churn × members` users leave and as many others join, at random
 * times (seeded). Plain (one frame per join or leave) and coalesced (one
 * presence_diff per interval) are run on the same event sequence. Every frame
 * goes to every live member, so the posts of a 10,000-member room are the
 * frames counted here times 10,000 (printed beside the counted posts);
 * no 10,000 real sockets are needed to know them.
 */
import { Redis } from 'ioredis';
import type { Gateway } from '../lib/gateway/gateway.js';
import { presenceEvents } from '../lib/presence/events.js';
import { RedisPresenceSweeper } from '../lib/registry/presence-sweep.js';
import { RedisRegistry } from '../lib/registry/redis.js';
import type { ConnectionRecord } from '../lib/registry/types.js';
import { startRedisServer } from '../scripts/redis-server.js';
import { pool } from './common.js';

const MEMBERS = Number(process.env['PRESENCE_BENCH_MEMBERS'] ?? 1_000);
const CHURN = Number(process.env['PRESENCE_BENCH_CHURN'] ?? 0.01);
const INTERVAL_MS = Number(process.env['PRESENCE_BENCH_INTERVAL_MS'] ?? 2_000);
const TOPIC = 'room:bench';
const ENDPOINT = 'https://bench.execute-api.us-east-1.amazonaws.com/prod';

/** mulberry32: the same minute of churn for both modes. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Change {
  at: number;
  kind: 'join' | 'leave';
  index: number;
}

async function run(redis: Redis, mode: 'plain' | 'coalesced', changes: Change[]) {
  let clock = 1_800_000_000_000;
  const prefix = `pwbench-presence-${mode}:`;
  const nudges: { topic: string; delayMs: number; at: number }[] = [];
  const registry = new RedisRegistry(redis, {
    prefix,
    connectionTtlSeconds: 660,
    historySize: 0,
    historyTtlSeconds: 60,
    now: () => clock,
    presence: {
      eventTopics: ['room:*'],
      // Coalesced: above 100 users (the default); plain: never.
      coalesceAbove: mode === 'coalesced' ? 100 : 0,
      intervalMs: INTERVAL_MS,
      nudge: async (topic, delayMs) => {
        nudges.push({ topic, delayMs, at: clock });
      },
    },
  });
  const sweeper = new RedisPresenceSweeper(redis, registry, () => clock);
  let posts = 0;
  const gateway: Gateway = {
    post: async () => {
      posts++;
      return 'ok';
    },
    close: async () => 'ok',
  };
  const deps = {
    registry,
    sweeper,
    coalesceAbove: mode === 'coalesced' ? 100 : 0,
    gateway,
    prune: async () => null,
    logger: { warn: () => undefined },
    concurrency: 256,
    chunkSize: 2_000,
    chunkMaxBytes: 5 * 1024 * 1024,
    parallelChunks: 1,
    deliverAttempts: 1,
    sleep: async () => undefined,
  };
  const record = (i: number): ConnectionRecord => ({
    connectionId: `c${i}=`,
    userId: `user${String(i).padStart(6, '0')}`,
    endpoint: ENDPOINT,
    connectedAt: clock,
    allowedTopics: ['room:*'],
  });
  // The room before the minute: MEMBERS users, one device each.
  await pool(
    Array.from({ length: MEMBERS }, (_, i) => i),
    64,
    async (i) => {
      await registry.register(record(i));
      await registry.subscribe(record(i), TOPIC);
    },
  );
  await redis.del(registry.keys.presence(TOPIC).events, registry.keys.presence(TOPIC).flush);
  nudges.length = 0;

  // The minute: changes in time order; each nudge is drained when it is due
  // (a delayed one `delayMs` after it was made), as Lambda would run it.
  const start = clock;
  const pending: { due: number; delayMs: number }[] = [];
  let frames = 0;
  let events = 0;
  let drains = 0;
  const drainDue = async (until: number) => {
    pending.sort((a, b) => a.due - b.due);
    while (pending.length > 0 && (pending[0] as { due: number }).due <= until) {
      const { due, delayMs } = pending.shift() as { due: number; delayMs: number };
      clock = Math.max(clock, due);
      // The flag a delayed nudge set expires (PX, Redis's own clock) when its
      // drain is due; this minute runs faster than Redis's, so it goes here.
      if (delayMs > 0) await redis.del(registry.keys.presence(TOPIC).flush);
      drains++;
      const result = await presenceEvents({ topic: TOPIC, delayMs }, deps);
      frames += result.frames;
      events += result.events;
    }
  };
  for (const change of changes) {
    await drainDue(start + change.at);
    clock = start + change.at;
    const r = record(change.index);
    if (change.kind === 'join') {
      await registry.register(r);
      await registry.subscribe(r, TOPIC);
    } else {
      await registry.remove(r.connectionId);
    }
    for (const n of nudges.splice(0)) pending.push({ due: n.at + n.delayMs, delayMs: n.delayMs });
  }
  await drainDue(start + 60_000 + INTERVAL_MS);
  return { mode, events, frames, posts, invocations: drains, members: MEMBERS };
}

const server = await startRedisServer();
const redis = new Redis(server.url, { enableAutoPipelining: true });
try {
  const rand = random(16);
  const per = Math.round(MEMBERS * CHURN);
  // `per` of the room leave and `per` newcomers join, at random times in the minute.
  const leavers = new Set<number>();
  while (leavers.size < per) leavers.add(Math.floor(rand() * MEMBERS));
  const changes: Change[] = [
    ...[...leavers].map((index) => ({
      at: Math.floor(rand() * 60_000),
      kind: 'leave' as const,
      index,
    })),
    ...Array.from({ length: per }, (_, k) => ({
      at: Math.floor(rand() * 60_000),
      kind: 'join' as const,
      index: MEMBERS + k,
    })),
  ].sort((a, b) => a.at - b.at);
  const rows = [];
  for (const mode of ['plain', 'coalesced'] as const) {
    const counted = await run(redis, mode, changes);
    rows.push({
      mode,
      members: MEMBERS,
      churn_per_minute: CHURN,
      changes_per_minute: changes.length,
      interval_ms: mode === 'coalesced' ? INTERVAL_MS : null,
      events_drained: counted.events,
      frames_per_minute: counted.frames,
      posts_per_minute_counted: counted.posts,
      // Invocations of presenceEvents (each one Lambda Invoke, Event).
      presence_events_invocations: counted.invocations,
      // Every frame goes to every member (about MEMBERS; ± the churn).
      posts_per_minute_at_10000: counted.frames * 10_000,
    });
  }
  console.log(JSON.stringify(rows, null, 2));
} finally {
  redis.disconnect();
  await server.stop();
}
