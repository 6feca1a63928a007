import type { Redis } from 'ioredis';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { freePort } from '../scripts/redis-server.js';
import {
  AWS_ENV,
  forkEntry,
  JWT_SECRET,
  median,
  nextMessage,
  PREFIX,
  round,
  stopChild,
} from './common.js';
import { connectionIds, fillTopic, PAYLOAD } from './fanout.js';
import type { MgmtServer } from './mgmt.js';

/**
 * Issue 19: fan-out at the account's limit. functions/publish.ts (its own
 * process) and functions/deliver.ts (`workers` processes behind a local
 * Invoke API) deliver to a fake management API that throttles like an AWS
 * account (a token bucket of `account.rate`/s and `account.burst`, 429 past
 * it) and answers each post after a lognormal latency. Scenarios: one big
 * publish; several big ones at once with small publishes arriving meanwhile.
 */

export interface PacedSettings {
  members: number;
  workers: number;
  /** The stand-in's account limit. */
  account: { rate: number; burst: number; latencyMs: number; sigma: number };
  /** PACE_RATE / PACE_BURST / PACE_RESERVE the functions get (rate 0: unpaced). */
  pace: { rate: number; burst: number; reserve: number };
  /** Big publishes at once (the audience split between them). */
  bigPublishes: number;
  /** Small publishes (10 members each) sent one per `smallEveryMs` while the big ones run. */
  smallPublishes: number;
  smallEveryMs: number;
  /** Lambda memory the GB-seconds are billed at (serverless.yml provider.memorySize). */
  memoryMb: number;
}

export interface PacedResult {
  scenario: string;
  members: number;
  big_publishes: number;
  account_rate: number;
  account_burst: number;
  pace_rate: number;
  latency_ms: number;
  /** From the first publish's start to the last delivery the stand-in saw. */
  seconds: number;
  /** audience / account rate: the least time the account allows. */
  limit_bound_seconds: number;
  /** limit_bound_seconds / seconds. */
  of_limit: number;
  throttled: number;
  throttled_per_1000: number;
  delivered_posts: number;
  /** Recipients that got no post (must be 0). */
  lost: number;
  /** Recipients that got more than one (at-least-once). */
  doubles: number;
  /** Connections closed (DELETE) because a post to them finally failed: they resume from their cursors. */
  closed: number;
  publish_peak_rss_mb: number;
  worker_peak_rss_mb: number;
  deliver_invocations: number;
  /** (publish wall time + every deliver invocation's) x memory, GB-s. */
  lambda_gb_s: number;
  /** Small publishes: from each one's start to its answer (it delivers in-process). */
  small_ms_median: number | null;
  small_ms_max: number | null;
  load_avg: [number, number];
  /** How the stand-in's account compares with AWS's default quota (said in the output). */
  stand_in: string;
}

interface PublishReply {
  type: 'result';
  error?: string;
  result?: { delivered?: number; failed?: number; chunks?: number; error?: unknown };
  startAt: number;
  ms: number;
  peakRss: number;
}

interface WorkerStats {
  type: 'stats';
  invocations: number;
  ms: number;
  peakRss: number;
}

const MB = 1024 * 1024;

/** AWS's default account quota for API Gateway (docs/pacing.md): 10,000 requests/s, a bucket of 5,000. */
const AWS_RATE = 10_000;
const AWS_BURST = 5_000;

/** Says whether the run's stand-in account is slower or faster than AWS's default, and by how much. */
export function standIn(rate: number, burst: number): string {
  const share = rate / AWS_RATE;
  const what =
    share === 1
      ? "AWS's default rate"
      : share < 1
        ? `a slower stand-in than AWS's default (${round(share * 100, 1)} % of 10,000/s)`
        : `a faster stand-in than AWS's default (${round(share, 2)}x 10,000/s)`;
  return `${what}: ${rate}/s, burst ${burst} (AWS: ${AWS_RATE}/s, burst ${AWS_BURST})`;
}

export async function benchPaced(options: {
  redis: Redis;
  redisUrl: string;
  registry: RedisRegistry;
  mgmt: MgmtServer;
  scenario: string;
  settings: PacedSettings;
  loadavg: () => number;
}): Promise<PacedResult> {
  const { redis, registry, mgmt, settings } = options;
  const k = settings.bigPublishes;
  const per = Math.ceil(settings.members / k);
  const tag = `pc${Date.now() % 100_000}`;
  const topics: string[] = [];
  for (let i = 0; i < k; i++) {
    const ids = connectionIds(per, `${tag}b${i}-`);
    await fillTopic(redis, registry, `${tag}-big-${i}`, ids, mgmt.endpoint);
    await mgmt.register(ids);
    topics.push(`${tag}-big-${i}`);
  }
  const small = connectionIds(10, `${tag}s-`);
  await fillTopic(redis, registry, `${tag}-small`, small, mgmt.endpoint);
  await mgmt.register(small);
  await redis.sadd(registry.keys.endpoints(), mgmt.endpoint);
  const audience = per * k + (settings.smallPublishes > 0 ? small.length : 0);

  const workerPort = await freePort();
  const env = {
    ...AWS_ENV,
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: PREFIX,
    JWT_SECRET,
    POWERTOOLS_LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'ERROR',
    LAMBDA_ENDPOINT: `http://127.0.0.1:${workerPort}`,
    DELIVER_FUNCTION_NAME: 'pushwire-bench-deliver',
    BENCH_WORKER_PORT: String(workerPort),
    BENCH_WORKERS: String(settings.workers),
    PACE_RATE: String(settings.pace.rate),
    PACE_BURST: String(settings.pace.burst),
    PACE_RESERVE: String(settings.pace.reserve),
  };
  const workers = forkEntry('deliver-worker', env);
  const publisher = forkEntry('big-publisher', env);
  const load0 = options.loadavg();
  try {
    await nextMessage(workers, 'ready', 20_000);
    await nextMessage(publisher, 'ready', 20_000);
    // Replies come in any order: each publish waits for its own id.
    const waiting = new Map<string, (reply: PublishReply) => void>();
    publisher.on('message', (m: PublishReply & { tag?: string }) => {
      if (m.type === 'result' && m.tag) waiting.get(m.tag)?.(m);
    });
    const publish = (event: { id: string }) =>
      new Promise<PublishReply>((resolve) => {
        waiting.set(event.id, resolve);
        publisher.send({ type: 'publish', event, tag: event.id });
      });
    // Warm: sockets, JIT, the bucket's script; then the account starts full.
    await publish({ id: `${tag}-warm`, topic: `${tag}-small`, data: PAYLOAD } as never);
    await mgmt.limits({ rate: 0, burst: 0, latencyMs: 0 });
    await mgmt.reset();
    await redis.del(registry.keys.pace(AWS_ENV.AWS_REGION));
    workers.send({ type: 'reset' });
    await mgmt.limits(settings.account);

    const bigs = topics.map((topic, i) =>
      publish({ id: `${tag}-big-${i}`, topic, data: PAYLOAD } as never),
    );
    const smalls: Promise<PublishReply>[] = [];
    for (let i = 0; i < settings.smallPublishes; i++) {
      await new Promise((resolve) => setTimeout(resolve, settings.smallEveryMs));
      smalls.push(
        publish({ id: `${tag}-small-${i}`, topic: `${tag}-small`, data: PAYLOAD } as never),
      );
    }
    const replies = await Promise.all([...bigs, ...smalls]);
    for (const r of replies) {
      if (r.error || r.result?.error)
        throw new Error(`publish failed: ${r.error ?? JSON.stringify(r.result)}`);
    }
    const stats = await mgmt.stats();
    const statsReply = nextMessage<WorkerStats>(workers, 'stats', 10_000);
    workers.send({ type: 'stats' });
    const w = await statsReply;
    const first = Math.min(...replies.map((r) => r.startAt));
    const seconds = (stats.lastAt - first) / 1000;
    const limitBound = audience / settings.account.rate;
    const publishMs = replies.reduce((sum, r) => sum + r.ms, 0);
    const smallMs = replies.slice(k).map((r) => r.ms);
    // Distinct recipients the stand-in saw against who should have been reached.
    const lost = audience - stats.distinct;
    return {
      scenario: options.scenario,
      members: audience,
      big_publishes: k,
      account_rate: settings.account.rate,
      account_burst: settings.account.burst,
      pace_rate: settings.pace.rate,
      latency_ms: settings.account.latencyMs,
      seconds: round(seconds, 2),
      limit_bound_seconds: round(limitBound, 2),
      of_limit: round(limitBound / seconds, 3),
      throttled: stats.throttled,
      throttled_per_1000: round((stats.throttled / Math.max(1, stats.delivered)) * 1000, 2),
      delivered_posts: stats.delivered,
      lost,
      doubles: stats.delivered - stats.distinct,
      closed: stats.closed,
      publish_peak_rss_mb: round(Math.max(...replies.map((r) => r.peakRss)) / MB, 1),
      worker_peak_rss_mb: round(w.peakRss / MB, 1),
      deliver_invocations: w.invocations,
      lambda_gb_s: round(((publishMs + w.ms) / 1000) * (settings.memoryMb / 1024), 1),
      small_ms_median: smallMs.length > 0 ? round(median(smallMs), 1) : null,
      small_ms_max: smallMs.length > 0 ? round(Math.max(...smallMs), 1) : null,
      load_avg: [round(load0, 2), round(options.loadavg(), 2)],
      stand_in: standIn(settings.account.rate, settings.account.burst),
    };
  } finally {
    await mgmt.limits({ rate: 0, burst: 0, latencyMs: 0 });
    await stopChild(publisher);
    await stopChild(workers);
    await redis.unlink(...topics.map((t) => registry.topicAudience(t).keys.live));
    await mgmt.clear();
  }
}
