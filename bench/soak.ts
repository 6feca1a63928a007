/**
 * `npm run soak`: the delivery promise under churn, through `npm start`.
 *
 * Starts pushwire as a user does (scripts/start.ts, serverless-offline) on
 * free ports, on a redis-server of its own (so the memory can be read once
 * pushwire has stopped), with short TTLs; connects SOAK_CLIENTS clients
 * (each its own user, all on one shared topic) of the real client library
 * (client/dist/pushwire.js, through test/helpers/library-client.ts, which
 * watches its wire: cursors per stream, `?since=` + first ping, `subscribe`
 * with `since`, resume again after a cut-short replay, dedupe by id); for
 * SOAK_SECONDS keeps dropping them (abruptly, a batch at a time) so each
 * reconnects with its last cursors, while services publish to random users
 * and to the shared topic (ids on every message, retried with the same id).
 * Then checks: every client got every message of its user and of the topic
 * (lost 0; each loss is classed and the first ones traced), no message handed
 * to the app twice (duplicated 0); once everyone has disconnected and the
 * TTLs have passed, no key is left but the deployment's own two; and once
 * pushwire has stopped, the dataset memory is back to its baseline.
 *
 * serverless-offline cold-starts an instance per concurrent invocation (as
 * Lambda does), so clients connect and are dropped in bounded batches.
 *
 * Settings (environment): SOAK_CLIENTS (1000), SOAK_SECONDS (60),
 * SOAK_DROP_BATCH (clients dropped at once, 3), SOAK_DROP_EVERY_MS (200),
 * SOAK_USER_RATE (user publishes/s, 5), SOAK_TOPIC_RATE (topic publishes/s, 1),
 * SOAK_CONNECT_BATCH (10), SOAK_PING_MS (30000), SOAK_CONNECTION_TTL (45 s),
 * SOAK_HISTORY_TTL (30 s),
 * SOAK_PUBLISH_CONCURRENCY (publishes in flight, 2), SOAK_OUT (a JSON file for the figures).
 *
 * The defaults are what serverless-offline sustains on a shared 2-core
 * machine (about 100 invocations/s for $connect/$default): 1,000 clients
 * pinging every 30 s, 15 reconnections/s (each a $connect, a first frame and
 * a subscribe, plus replay posts). Twenty drops every 200 ms (each client
 * every ~10 s) queued thousands of invocations and publishes timed out.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { compareCursors, parseCursor } from '../lib/registry/cursor.js';
import { createKeys } from '../lib/registry/keys.js';
import { startRedisServer } from '../scripts/redis-server.js';
import { devToken } from '../scripts/token.js';
import { LibraryClient } from '../test/helpers/library-client.js';
import { spawnNpmStart } from '../test/helpers/npm-start.js';
import { USER_STREAM } from '../test/helpers/resuming-client.js';
import { missingPairs, tally } from '../test/helpers/tally.js';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const CLIENTS = num('SOAK_CLIENTS', 1_000);
const SECONDS = num('SOAK_SECONDS', 60);
const DROP_BATCH = num('SOAK_DROP_BATCH', 3);
const DROP_EVERY_MS = num('SOAK_DROP_EVERY_MS', 200);
const USER_RATE = num('SOAK_USER_RATE', 5);
const TOPIC_RATE = num('SOAK_TOPIC_RATE', 1);
const CONNECT_BATCH = num('SOAK_CONNECT_BATCH', 10);
const PUBLISH_CONCURRENCY = num('SOAK_PUBLISH_CONCURRENCY', 2);
const CONNECTION_TTL = num('SOAK_CONNECTION_TTL', 45);
const HISTORY_TTL = num('SOAK_HISTORY_TTL', 30);
const DEDUP_TTL = 30;
const PING_MS = num('SOAK_PING_MS', 30_000);
const TOPIC = 'soak-news';
const PREFIX = 'pw:';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (message: string) =>
  console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function startPushwire(redisUrl: string): Promise<{
  child: ChildProcess;
  wsPort: number;
  lambdaPort: number;
  stop: () => Promise<void>;
}> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: PREFIX,
    CONNECTION_TTL_SECONDS: String(CONNECTION_TTL),
    HISTORY_TTL_SECONDS: String(HISTORY_TTL),
    DEDUP_TTL_SECONDS: String(DEDUP_TTL),
    // A client away for a while on a busy machine must still find its gap in history.
    HISTORY_SIZE: '1000',
    LOG_LEVEL: 'WARN',
    PUSHWIRE_WATCH: '.pushwire-soak-no-watch/never',
  };
  const { child, wsPort, lambdaPort, whenUp } = await spawnNpmStart(env);
  await whenUp(120_000);
  return {
    child,
    wsPort,
    lambdaPort,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // The whole group, as Ctrl-C does.
      process.kill(-(child.pid as number), 'SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    },
  };
}

/**
 * Keys, and memory: `used_memory_dataset` is used_memory minus what INFO
 * counts as overhead (the startup allocation, the script cache, client
 * buffers as last sampled). Client memory is not all counted as overhead: each
 * open connection's buffers (about 2-37 KB) show up as dataset, and the
 * function instances serverless-offline keeps warm (tens after a soak) each
 * hold one. So the dataset is compared with its baseline once pushwire has
 * stopped and every connection but ours has closed.
 */
async function redisFigures(
  redis: Redis,
): Promise<{ keys: number; usedMemory: number; dataset: number; clients: number }> {
  const info = await redis.info();
  const field = (name: string) =>
    Number(info.match(new RegExp(`^${name}:(\\d+)`, 'm'))?.[1] ?? Number.NaN);
  return {
    keys: await redis.dbsize(),
    usedMemory: field('used_memory'),
    dataset: field('used_memory_dataset'),
    clients: field('connected_clients'),
  };
}

async function main(): Promise<void> {
  // Its own Redis, so it outlives `npm start` and the memory can be read once
  // everything of pushwire is gone. Latency tracking off: Redis 7 allocates a
  // histogram per command name on its first call and keeps it, which is
  // Redis's bookkeeping, not data left behind.
  const server = await startRedisServer(['--latency-tracking', 'no']);
  const redis = new Redis(server.url);
  const baseline = await redisFigures(redis);
  log(`starting npm start (CONNECTION_TTL ${CONNECTION_TTL} s, HISTORY_TTL ${HISTORY_TTL} s)`);
  const pushwire = await startPushwire(server.url);
  try {
    log(
      `baseline: ${baseline.keys} keys, used_memory ${baseline.usedMemory} B, dataset ${baseline.dataset} B`,
    );

    const publishUrl = `http://127.0.0.1:${pushwire.lambdaPort}/2015-03-31/functions/pushwire-local-publish/invocations`;
    const wsUrl = `ws://localhost:${pushwire.wsPort}`;

    // A connection not ready in 30 s (an answer lost by an overloaded
    // emulator) is dropped and made again, as a user would.
    const startClient = async (client: LibraryClient) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.start(30_000);
        } catch (error) {
          if (attempt === 10) throw error;
          client.drop();
        }
      }
    };

    // Clients, connected in bounded batches.
    const clients: LibraryClient[] = [];
    const started = Date.now();
    for (let i = 0; i < CLIENTS; i += CONNECT_BATCH) {
      const batch = [];
      for (let j = i; j < Math.min(CLIENTS, i + CONNECT_BATCH); j++) {
        const userId = `soak-u${j}`;
        const client = new LibraryClient({
          url: wsUrl,
          token: () => devToken(userId, { topics: [TOPIC] }),
          user: userId,
          topics: [TOPIC],
          pingIntervalMs: PING_MS,
          trace: true,
        });
        clients.push(client);
        batch.push(startClient(client));
      }
      await Promise.all(batch);
    }
    log(`${CLIENTS} clients connected in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Publishers: numbered messages with ids, retried with the same id.
    /** n -> its audience (user id or TOPIC), when it was acknowledged, its cursor. */
    const acknowledged = new Map<number, string>();
    const publishes = new Map<number, { sentAt: number; at: number; cursor?: string }>();
    let retries = 0;
    let attempts = 0;
    let seq = 0;
    const publishLatencies: number[] = [];
    async function publishOne(target: string): Promise<void> {
      const n = seq++;
      const payload = {
        id: `soak-${n}`,
        data: { n },
        ...(target === TOPIC ? { topic: TOPIC } : { userId: target }),
      };
      const deadline = Date.now() + 60_000;
      const t0 = Date.now();
      for (;;) {
        attempts++;
        try {
          const response = await fetch(publishUrl, {
            method: 'POST',
            body: JSON.stringify(payload),
            signal: AbortSignal.timeout(30_000),
          });
          const text = await response.text();
          if (response.ok && !response.headers.get('x-amz-function-error')) {
            const result = JSON.parse(text) as { error?: unknown; cursor?: string };
            if (result.error) throw new Error(`refused: ${text}`);
            acknowledged.set(n, target);
            publishes.set(n, {
              sentAt: t0,
              at: Date.now(),
              ...(result.cursor !== undefined && { cursor: result.cursor }),
            });
            publishLatencies.push(Date.now() - t0);
            return;
          }
        } catch (error) {
          if (String(error).includes('refused:')) throw error;
        }
        if (Date.now() > deadline) return;
        retries++;
        await sleep(200 + Math.random() * 300);
      }
    }
    const end = Date.now() + SECONDS * 1_000;
    const inFlight = new Set<Promise<void>>();
    const loop = async (rate: number, pick: () => string) => {
      if (rate <= 0) return;
      const every = 1_000 / rate;
      for (let next = Date.now(); Date.now() < end; next += every) {
        const p = publishOne(pick());
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        // Bounded: a slow stack slows the publishers rather than piling up
        // requests; and each concurrent invoke beyond the warm instances
        // cold-starts another `publish` (seconds each on a loaded machine).
        while (inFlight.size >= PUBLISH_CONCURRENCY) await Promise.race(inFlight);
        await sleep(Math.max(0, next + every - Date.now()));
      }
    };
    let drops = 0;
    const churn = async () => {
      let cursor = 0;
      while (Date.now() < end) {
        for (let k = 0; k < DROP_BATCH; k++) {
          clients[cursor % CLIENTS]?.drop();
          cursor++;
          drops++;
        }
        await sleep(DROP_EVERY_MS);
      }
    };
    log(
      `soaking for ${SECONDS} s: ${USER_RATE} user publishes/s, ${TOPIC_RATE} topic publishes/s, ` +
        `dropping ${DROP_BATCH} clients every ${DROP_EVERY_MS} ms`,
    );
    await Promise.all([
      loop(USER_RATE, () => `soak-u${Math.floor(Math.random() * CLIENTS)}`),
      loop(TOPIC_RATE, () => TOPIC),
      churn(),
    ]);
    await Promise.all(inFlight);
    log(`published ${acknowledged.size}/${seq} (${retries} retries); ${drops} drops; settling`);

    // Settle: every client reconnected and caught up.
    const expectedOf = (i: number) =>
      [...acknowledged].filter(([, t]) => t === TOPIC || t === `soak-u${i}`).map(([n]) => n);
    const expectedIds = (i: number) => expectedOf(i).map((n) => `soak-${n}`);
    const settleDeadline = Date.now() + 120_000;
    while (missingPairs(clients, expectedIds) > 0 && Date.now() < settleDeadline) {
      await sleep(1_000);
    }
    const { expected, delivered, duplicated } = tally(clients, expectedIds, 'soak');
    const reconnections = clients.reduce((sum, c) => sum + c.connections - 1, 0);
    const wireDuplicates = clients.reduce((sum, c) => sum + c.wireDuplicates, 0);
    const gaps = clients.reduce((sum, c) => sum + c.gaps, 0);
    const gapsBeforeAnyMessage = clients.reduce((sum, c) => sum + c.gapsBeforeAnyMessage, 0);
    const errors: Record<string, number> = {};
    for (const c of clients)
      for (const [code, k] of c.errors) errors[code] = (errors[code] ?? 0) + k;
    // A message lost with a `gap` told (on its stream, after it was
    // published, by a resume from before it) is lost outside the promise when
    // that resume started from further back than the history window: history
    // had expired. Anything else lost (silently, or told while history should
    // still have held it) breaks the promise.
    const windowMs = HISTORY_TTL * 1_000;
    const toldOf = (c: LibraryClient, stream: string, at: number, cursor: string | undefined) =>
      c.gapLog.find(
        (g) =>
          g.stream === stream &&
          g.at >= at &&
          (g.since === undefined || cursor === undefined || compareCursors(g.since, cursor) < 0),
      );
    // Each lost pair, classed, with what its client went through from 8 s
    // before the publish was acknowledged to 8 s after.
    const lostPairs: {
      n: number;
      client: number;
      audience: string;
      cursor?: string;
      /**
       * 'silent', 'told' (a gap, history should have held it), 'expired' (a
       * gap, from before the window) or 'away' (no gap yet: the client was
       * still not back at the end, so it had not resumed).
       */
      kind: 'silent' | 'told' | 'expired' | 'away';
      trace: string[];
    }[] = [];
    for (const [i, c] of clients.entries()) {
      for (const n of expectedOf(i).filter((n) => !c.received.has(`soak-${n}`))) {
        const published = publishes.get(n);
        const at = published?.at ?? 0;
        const audience = acknowledged.get(n) as string;
        const gap = toldOf(
          c,
          audience === TOPIC ? TOPIC : USER_STREAM,
          published?.sentAt ?? 0,
          published?.cursor,
        );
        const kind = !gap
          ? c.ready
            ? 'silent'
            : 'away'
          : gap.since !== undefined && parseCursor(gap.since).ms < gap.at - windowMs
            ? 'expired'
            : 'told';
        lostPairs.push({
          n,
          client: i,
          audience,
          kind,
          ...(published?.cursor !== undefined && { cursor: published.cursor }),
          trace: c.trace
            .filter((e) => e.at > at - 8_000 && e.at < at + 8_000)
            .map((e) => `${e.at - at} ms ${e.event}`),
        });
      }
    }
    const lostBy = (kind: string) => lostPairs.filter((p) => p.kind === kind).length;
    // Every gap, by cause (issue 21, "no false alarms"): it told of a message
    // this client lost; its resume started before the history window (history
    // expired, a loss was possible); it came on a stream nothing had come from
    // yet (its start was a time floor, not a cursor); or none of these: a
    // false alarm.
    const telling = new Set<object>();
    for (const [i, c] of clients.entries())
      for (const n of expectedOf(i).filter((n) => !c.received.has(`soak-${n}`))) {
        const published = publishes.get(n);
        const audience = acknowledged.get(n) as string;
        const gap = toldOf(
          c,
          audience === TOPIC ? TOPIC : USER_STREAM,
          published?.sentAt ?? 0,
          published?.cursor,
        );
        if (gap) telling.add(gap);
      }
    const gapCauses = { toldALoss: 0, historyExpired: 0, beforeAnyMessage: 0, falseAlarm: 0 };
    for (const c of clients)
      for (const g of c.gapLog) {
        if (telling.has(g)) gapCauses.toldALoss++;
        else if (g.since !== undefined && parseCursor(g.since).ms < g.at - windowMs)
          gapCauses.historyExpired++;
        else if (g.beforeAnyMessage) gapCauses.beforeAnyMessage++;
        else gapCauses.falseAlarm++;
      }
    for (const pair of lostPairs
      .filter((p) => p.kind === 'silent' || p.kind === 'told')
      .slice(0, 20)) {
      log(
        `lost soak-${pair.n} (${pair.audience}, cursor ${pair.cursor}, ${pair.kind}) on client ${pair.client}:\n  ` +
          pair.trace.join('\n  '),
      );
    }
    const atPeak = await redisFigures(redis);
    log(
      `delivered ${delivered}/${expected}, lost ${expected - delivered} ` +
        `(silently ${lostBy('silent')}; told by a gap while history should have held them ${lostBy('told')}; ` +
        `told by a gap after the history window had passed ${lostBy('expired')}; ` +
        `on clients still not back at the end ${lostBy('away')}), duplicated ${duplicated} ` +
        `(wire duplicates removed by id: ${wireDuplicates}), reconnections ${reconnections}, gaps ${gaps} ` +
        `(${gapsBeforeAnyMessage} on a stream nothing had come from yet); gaps by cause ` +
        `${JSON.stringify(gapCauses)}`,
    );

    // Everyone leaves; records expire.
    for (let i = 0; i < clients.length; i += CONNECT_BATCH) {
      await Promise.all(clients.slice(i, i + CONNECT_BATCH).map((c) => c.stop()));
    }
    const leftAt = Date.now();
    const waitUntil = leftAt + (Math.max(CONNECTION_TTL, HISTORY_TTL, DEDUP_TTL) + 30) * 1_000;
    // Keys left but the deployment's own: the endpoints `deliver` may post
    // to (one member per API, kept 2 h 15 min past the last $connect) and
    // the epoch (when Redis's data began).
    const keys = createKeys(PREFIX);
    const deploymentKeys = new Set([keys.endpoints(), keys.epoch(), keys.tokenEpoch()]);
    const leftover = async () => (await redis.keys('*')).filter((key) => !deploymentKeys.has(key));
    let after = await redisFigures(redis);
    while ((await leftover()).length > 0 && Date.now() < waitUntil) {
      await sleep(1_000);
      after = await redisFigures(redis);
    }
    const backAfterS = Math.round((Date.now() - leftAt) / 1000);
    after = await redisFigures(redis);
    const strayKeys = await leftover();
    // What the keys still there take (MEMORY USAGE, bytes).
    const remaining: Record<string, number> = {};
    for (const key of await redis.keys('*')) {
      remaining[key] = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    }
    log(
      `after everyone left: ${after.keys} keys (baseline ${baseline.keys}; ` +
        `${JSON.stringify(remaining)}) after ${backAfterS} s; with pushwire still up ` +
        `(${after.clients} Redis connections) dataset ${after.dataset} B, at peak ${atPeak.dataset} B`,
    );
    await pushwire.stop();
    await sleep(2_000);
    const stopped = await redisFigures(redis);
    // Where the memory left after everyone went sits (MEMORY STATS, bytes).
    const stats = (await redis.call('MEMORY', 'STATS')) as unknown[];
    const memoryStats: Record<string, number> = {};
    for (let i = 0; i + 1 < stats.length; i += 2) {
      const value = stats[i + 1];
      if (typeof value === 'number') memoryStats[String(stats[i])] = value;
    }
    const kept = Object.values(remaining).reduce((sum, bytes) => sum + bytes, 0);
    log(
      `pushwire stopped (${stopped.clients} Redis connection left, ours): dataset ${stopped.dataset} B ` +
        `against ${baseline.dataset} B at baseline + ${kept} B of deployment keys; ` +
        `used_memory ${stopped.usedMemory} B (baseline ${baseline.usedMemory} B, at peak ${atPeak.usedMemory} B)`,
    );

    const sorted = [...publishLatencies].sort((a, b) => a - b);
    const figures = {
      clients: CLIENTS,
      seconds: SECONDS,
      settings: {
        dropBatch: DROP_BATCH,
        dropEveryMs: DROP_EVERY_MS,
        userRate: USER_RATE,
        topicRate: TOPIC_RATE,
        connectionTtlS: CONNECTION_TTL,
        historyTtlS: HISTORY_TTL,
        dedupTtlS: DEDUP_TTL,
        pingMs: PING_MS,
      },
      published: acknowledged.size,
      unacknowledged: seq - acknowledged.size,
      publishAttempts: attempts,
      publishRetries: retries,
      publishP50Ms: sorted[Math.floor(sorted.length * 0.5)] ?? null,
      publishP99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? null,
      drops,
      reconnections,
      expected,
      delivered,
      lost: expected - delivered,
      lostSilently: lostBy('silent'),
      lostTold: lostBy('told'),
      lostOutsideWindow: lostBy('expired'),
      lostAway: lostBy('away'),
      duplicated,
      wireDuplicates,
      gaps,
      gapsBeforeAnyMessage,
      gapCauses,
      errorFrames: errors,
      lostPairs: lostPairs.slice(0, 100),
      redis: {
        baseline,
        atPeak,
        after,
        backToBaselineAfterS: backAfterS,
        stopped,
        strayKeys,
        remaining,
        memoryStats,
      },
    };
    console.log(JSON.stringify(figures, null, 2));
    if (process.env['SOAK_OUT'])
      writeFileSync(process.env['SOAK_OUT'], JSON.stringify(figures, null, 2));
    // The dataset back to its baseline plus the deployment keys, within 10 KB
    // (allocator rounding), not records.
    const ok =
      figures.lost === 0 &&
      figures.duplicated === 0 &&
      figures.unacknowledged === 0 &&
      strayKeys.length === 0 &&
      stopped.dataset - baseline.dataset - kept < 10_240;
    log(ok ? 'PASS' : 'FAIL');
    process.exitCode = ok ? 0 : 1;
  } finally {
    await pushwire.stop();
    redis.disconnect();
    await server.stop();
  }
}

await main();
