import { Agent, request } from 'node:http';
import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { Redis } from 'ioredis';
import { credentialsProvider } from '../lib/aws/signing.js';
import type { Config } from '../lib/config.js';
import { RedisDedupStore } from '../lib/delivery/dedup.js';
import type { FanoutLogger } from '../lib/delivery/fanout.js';
import { messageFrame, type PublishDeps, publish } from '../lib/delivery/publish.js';
import type { Gateway } from '../lib/gateway/gateway.js';
import { AwsGateway } from '../lib/gateway/sdk.js';
import { SignedHttpGateway } from '../lib/gateway/signed.js';
import { decodeMember, encodeMember } from '../lib/registry/keys.js';
import { RedisRegistry } from '../lib/registry/redis.js';
import { median, now, PREFIX, REGION, round } from './common.js';
import type { MgmtServer } from './mgmt.js';

/** The payload every approach sends: a small JSON object, as a chat message or a notification. */
export const PAYLOAD = { text: 'x'.repeat(64), at: 1732752000000, kind: 'bench' };

export const connectionIds = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => `${tag}${n}-${i}`);

/** Puts `ids` into a topic's live set at `endpoint`, pipelined in batches (no per-id round trip). */
export async function fillTopic(
  redis: Redis,
  registry: RedisRegistry,
  topic: string,
  ids: readonly string[],
  endpoint: string,
): Promise<void> {
  const live = registry.topicAudience(topic).keys.live;
  const expiry = Date.now() + 3_600_000;
  for (let i = 0; i < ids.length; i += 5_000) {
    const args: (string | number)[] = [];
    for (const id of ids.slice(i, i + 5_000))
      args.push(expiry, encodeMember({ connectionId: id, endpoint }));
    await redis.zadd(live, ...args);
  }
  await redis.expire(live, 3_600);
}

/** A logger that counts warnings (a failed post would be one) and shows the first few. */
export function countingLogger(): FanoutLogger & { warnings: number } {
  const logger = {
    warnings: 0,
    warn(message: string, extra: Record<string, unknown>) {
      logger.warnings++;
      if (logger.warnings <= 3) console.warn(`  warn: ${message} ${JSON.stringify(extra)}`);
    },
  };
  return logger;
}

const gatewayOptions = (config: Config) => ({
  region: config.region,
  maxSockets: Math.max(50, config.fanout.concurrency),
  throttleMaxAttempts: config.fanout.throttleMaxAttempts,
  throttleBudgetMs: config.fanout.throttleBudgetMs,
  requestTimeoutMs: config.delivery.managementApiTimeoutMs,
});

/** Dependencies of publish() as functions/publish.ts builds them, minus the chunk invoker. */
export function publishDeps(redis: Redis, config: Config): PublishDeps {
  const registry = new RedisRegistry(redis, {
    prefix: PREFIX,
    connectionTtlSeconds: config.connectionTtlSeconds,
    historySize: config.history.size,
    historyTtlSeconds: config.history.ttlSeconds,
  });
  return {
    registry,
    dedup: new RedisDedupStore(redis, (id) => registry.keys.dedup(id), {
      ttlSeconds: config.dedupTtlSeconds,
      leaseSeconds: config.delivery.publishLeaseSeconds,
    }),
    // As lib/clients.ts builds it by default (MANAGEMENT_API_CLIENT=http):
    // SigV4-signed keep-alive HTTP, one pool per endpoint.
    gateway: new SignedHttpGateway({
      ...gatewayOptions(config),
      credentials: credentialsProvider(config.credentials),
    }),
    prune: (connectionId) => registry.remove(connectionId),
    logger: countingLogger(),
    concurrency: config.fanout.concurrency,
    chunkSize: config.fanout.chunk,
    chunkMaxBytes: config.delivery.chunkMaxBytes,
    parallelChunks: config.fanout.parallelChunks,
    deliverAttempts: config.delivery.deliverAttempts,
  };
}

/** ours: one publish() to a topic of n members; messages per second. */
export async function runOurs(
  deps: PublishDeps,
  topic: string,
  n: number,
  id: string,
): Promise<number> {
  const t0 = now();
  const result = await publish({ id, topic, data: PAYLOAD }, deps);
  const ms = now() - t0;
  if (result.delivered !== n) {
    throw new Error(`publish delivered ${result.delivered} of ${n}: ${JSON.stringify(result)}`);
  }
  return n / (ms / 1000);
}

/**
 * The floor: the same posts with no SDK, no Redis, no bookkeeping: a bare
 * keep-alive HTTP POST loop with `concurrency` posts in flight.
 */
export function floorPoster(endpoint: string, concurrency: number) {
  const { hostname, port } = new URL(endpoint);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (id: string, body: Buffer) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: hostname,
          port,
          method: 'POST',
          path: `/@connections/${encodeURIComponent(id)}`,
          agent,
          headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return {
    async run(ids: readonly string[], body: Buffer): Promise<number> {
      let next = 0;
      let failed = 0;
      const t0 = now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < ids.length) {
            const status = await post(ids[next++] as string, body);
            if (status !== 200) failed++;
          }
        }),
      );
      const ms = now() - t0;
      if (failed > 0) throw new Error(`floor: ${failed} posts failed`);
      return ids.length / (ms / 1000);
    },
    close: () => agent.destroy(),
  };
}

/** A frame of the size ours sends, for the floor and the naive loop. */
export const sampleFrame = (topic: string) =>
  Buffer.from(messageFrame('bench-0000', JSON.stringify(PAYLOAD), '1732752000000-0', topic));

export interface NaiveResult {
  per_s: number;
  /** Posts actually made (the rate is extrapolated from these when fewer than n). */
  sampled: number;
  ms: number;
}

/**
 * The naive approach: read the members, then for each one build a new
 * ApiGatewayManagementApiClient (SDK defaults) and await its post before the
 * next. Bounded by `maxPosts` and `budgetMs`; the rate is posts / elapsed.
 * Each client is destroyed after its post so that thousands of idle
 * keep-alive sockets do not pile up (it costs a close, not a round trip).
 */
export async function runNaive(
  redis: Redis,
  registry: RedisRegistry,
  topic: string,
  frame: Buffer,
  maxPosts: number,
  budgetMs: number,
): Promise<NaiveResult> {
  const t0 = now();
  const members = await redis.zrange(registry.topicAudience(topic).keys.live, 0, maxPosts - 1);
  let sampled = 0;
  for (const member of members) {
    if (now() - t0 > budgetMs) break;
    const { connectionId, endpoint } = decodeMember(member);
    const api = new ApiGatewayManagementApiClient({ endpoint, region: REGION });
    await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: frame }));
    api.destroy();
    sampled++;
  }
  const ms = now() - t0;
  return { per_s: sampled / (ms / 1000), sampled, ms: round(ms, 1) };
}

export interface FanoutMeasure {
  ours: number[];
  floor: number[];
  /** Diagnostic: the floor's loop, but each post through AwsGateway (the SDK) alone. */
  sdk: number[];
}

/** The floor's loop with every post made through a gateway, nothing else. */
export async function runGatewayOnly(
  gateway: Gateway,
  endpoint: string,
  ids: readonly string[],
  frame: Buffer,
  concurrency: number,
): Promise<number> {
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ids.length) {
        const result = await gateway.post(endpoint, ids[next++] as string, frame);
        if (result !== 'ok') throw new Error('sdk-only: a post was refused');
      }
    }),
  );
  return ids.length / ((now() - t0) / 1000);
}

/** Runs ours and the floor alternately, `runs` times each; rates in messages/s. */
export async function oursAndFloor(options: {
  deps: PublishDeps;
  mgmt: MgmtServer;
  topic: string;
  ids: readonly string[];
  runs: number;
  concurrency: number;
  /** Also measure the SDK-only diagnostic (MANAGEMENT_API_CLIENT=sdk's client). */
  sdkOnly: Config | false;
  tag: string;
}): Promise<FanoutMeasure> {
  const { deps, mgmt, topic, ids, runs, concurrency } = options;
  const floor = floorPoster(mgmt.endpoint, concurrency);
  const frame = sampleFrame(topic);
  const measure: FanoutMeasure = { ours: [], floor: [], sdk: [] };
  const sdkGateway = options.sdkOnly ? new AwsGateway(gatewayOptions(options.sdkOnly)) : undefined;
  try {
    for (let run = 0; run < runs; run++) {
      await mgmt.reset();
      measure.ours.push(await runOurs(deps, topic, ids.length, `${options.tag}-${run}`));
      const delivered = (await mgmt.stats()).delivered;
      if (delivered !== ids.length) throw new Error(`server saw ${delivered} of ${ids.length}`);
      measure.floor.push(await floor.run(ids, frame));
      if (options.sdkOnly)
        measure.sdk.push(
          await runGatewayOnly(sdkGateway ?? deps.gateway, mgmt.endpoint, ids, frame, concurrency),
        );
    }
  } finally {
    floor.close();
  }
  return measure;
}

export const rate = (values: number[]) => round(median(values));

export interface CpuMeasure {
  n: number;
  /** CPU time (user + system) of the publishing process per post, at N = n. */
  us_per_post: number;
  /** The same per publish to a topic of one member (the fixed cost of a publish). */
  us_per_publish: number;
  runs_us_per_post: number[];
}

/**
 * CPU time of this process per post (a publish to 10,000) and per publish (to
 * one member), median of 3 and of `publishes` publishes: the measured inputs
 * of the cost table (bench/report.ts).
 */
export async function measureCpu(
  redis: Redis,
  registry: RedisRegistry,
  mgmt: MgmtServer,
  deps: PublishDeps,
  publishes: number,
): Promise<CpuMeasure> {
  const n = 10_000;
  const ids = connectionIds(n, 'cpu');
  await fillTopic(redis, registry, 'cpu-n', ids, mgmt.endpoint);
  await mgmt.register(ids);
  const perPost: number[] = [];
  for (let run = 0; run < 3; run++) {
    const c0 = process.cpuUsage();
    await runOurs(deps, 'cpu-n', n, `cpu-${Date.now()}-${run}`);
    const c = process.cpuUsage(c0);
    perPost.push((c.user + c.system) / n);
  }
  await fillTopic(redis, registry, 'cpu-1', ['cpu-one'], mgmt.endpoint);
  await mgmt.register(['cpu-one']);
  for (let i = 0; i < 20; i++) await runOurs(deps, 'cpu-1', 1, `cpu1-warm-${Date.now()}-${i}`);
  const c0 = process.cpuUsage();
  for (let i = 0; i < publishes; i++) await runOurs(deps, 'cpu-1', 1, `cpu1-${Date.now()}-${i}`);
  const c = process.cpuUsage(c0);
  await redis.unlink(
    registry.topicAudience('cpu-n').keys.live,
    registry.topicAudience('cpu-1').keys.live,
  );
  return {
    n,
    us_per_post: round(median(perPost), 1),
    us_per_publish: round((c.user + c.system) / publishes, 1),
    runs_us_per_post: perPost.map((x) => round(x, 1)),
  };
}
