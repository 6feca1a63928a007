import type { Redis } from 'ioredis';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { freePort } from '../scripts/redis-server.js';
import { AWS_ENV, forkEntry, JWT_SECRET, nextMessage, PREFIX, round, stopChild } from './common.js';
import { connectionIds, fillTopic, PAYLOAD } from './fanout.js';
import type { MgmtServer } from './mgmt.js';

export interface BigAudienceResult {
  members: number;
  /** From the publish invocation's start to the last delivery the endpoint saw. */
  seconds: number;
  /** Wall time of the publish invocation (it returns once every chunk reported back). */
  publish_seconds: number;
  /** Peak RSS of the publishing process over its life (sampled every 10 ms). */
  peak_rss_mb: number;
  /** Its RSS right before the big publish (after a warm-up publish). */
  rss_before_mb: number;
  delivered: number;
  chunks: number;
  deliver_workers: number;
  per_s: number;
  /** Management API posts the endpoint answered (a message over 128 KB is several per connection). */
  posts?: number;
  /** Bytes of those posts. */
  post_bytes?: number;
  /** Peak RSS of any deliver worker process during the publish (sampled every 100 ms). */
  deliver_peak_rss_mb?: number;
  /** Bytes of `data` as JSON. */
  data_bytes?: number;
}

interface PublishReply {
  type: 'result';
  error?: string;
  result?: { delivered?: number; chunks?: number; error?: unknown };
  startAt: number;
  ms: number;
  peakRss: number;
  rssBefore: number;
}

const MB = 1024 * 1024;

/**
 * A topic of `members` connections, published through functions/publish.ts
 * in its own process, chunks handed through the real Lambda invoker to
 * functions/deliver.ts running in `workers` processes behind a local Invoke API.
 */
export async function benchBigAudience(options: {
  redis: Redis;
  redisUrl: string;
  registry: RedisRegistry;
  mgmt: MgmtServer;
  members: number;
  workers: number;
  /** The message's `data` (default: the fan-out's small PAYLOAD). */
  data?: unknown;
  /** Extra environment for both functions (e.g. MAX_PUBLISH_BYTES). */
  env?: Record<string, string>;
}): Promise<BigAudienceResult> {
  const { redis, registry, mgmt, members } = options;
  const data = options.data ?? PAYLOAD;
  const ids = connectionIds(members, 'b');
  await fillTopic(redis, registry, 'big', ids, mgmt.endpoint);
  const warm = connectionIds(10, 'bw');
  await fillTopic(redis, registry, 'big-warm', warm, mgmt.endpoint);
  await mgmt.register([...ids, ...warm]);
  // fillTopic writes members directly; record their endpoint as register()
  // does, or deliver refuses chunks naming it.
  await redis.sadd(registry.keys.endpoints(), mgmt.endpoint);

  const workerPort = await freePort();
  const env = {
    ...AWS_ENV,
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: PREFIX,
    JWT_SECRET,
    POWERTOOLS_LOG_LEVEL: 'WARN',
    LAMBDA_ENDPOINT: `http://127.0.0.1:${workerPort}`,
    DELIVER_FUNCTION_NAME: 'pushwire-bench-deliver',
    BENCH_WORKER_PORT: String(workerPort),
    BENCH_WORKERS: String(options.workers),
    ...options.env,
  };
  const workers = forkEntry('deliver-worker', env);
  const publisher = forkEntry('big-publisher', env);
  try {
    await nextMessage(workers, 'ready', 20_000);
    await nextMessage(publisher, 'ready', 20_000);
    const publish = async (event: unknown, timeoutMs: number) => {
      const reply = nextMessage<PublishReply>(publisher, 'result', timeoutMs);
      publisher.send({ type: 'publish', event });
      const r = await reply;
      if (r.error || r.result?.error)
        throw new Error(`publish failed: ${r.error ?? JSON.stringify(r.result)}`);
      return r;
    };
    await publish({ topic: 'big-warm', data: PAYLOAD }, 20_000);
    await mgmt.reset();
    workers.send({ type: 'reset' });
    const r = await publish({ id: `big-${Date.now()}`, topic: 'big', data }, 300_000);
    const stats = await mgmt.stats();
    const workerStats = nextMessage<{ type: 'stats'; peakRss: number }>(workers, 'stats', 10_000);
    workers.send({ type: 'stats' });
    const deliverPeak = (await workerStats).peakRss;
    if (stats.distinct !== members || r.result?.delivered !== members) {
      throw new Error(
        `big audience: endpoint saw ${stats.distinct}, publish reported ${r.result?.delivered}, of ${members} (${JSON.stringify(r.result)})`,
      );
    }
    const seconds = (stats.lastAt - r.startAt) / 1000;
    return {
      members,
      seconds: round(seconds, 2),
      publish_seconds: round(r.ms / 1000, 2),
      peak_rss_mb: round(r.peakRss / MB, 1),
      rss_before_mb: round(r.rssBefore / MB, 1),
      delivered: stats.delivered,
      chunks: r.result?.chunks ?? 0,
      deliver_workers: options.workers,
      per_s: round(members / seconds),
      posts: stats.delivered,
      post_bytes: stats.bytes,
      deliver_peak_rss_mb: round(deliverPeak / MB, 1),
      data_bytes: Buffer.byteLength(JSON.stringify(data)),
    };
  } finally {
    await stopChild(publisher);
    await stopChild(workers);
  }
}
