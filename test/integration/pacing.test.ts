import { describe, expect, it } from 'vitest';
import {
  type ChunkInvoker,
  chunkJobs,
  dispatch,
  parseDeliverChunk,
} from '../../lib/delivery/chunks.js';
import { deliver } from '../../lib/delivery/fanout.js';
import { Pacer, pacedGateway, RedisPaceLimiter } from '../../lib/delivery/pacing.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { ENDPOINT_A } from './support.js';

/**
 * Issue 19: the account's token bucket in Redis (lib/delivery/pace.lua),
 * shared by every worker, standalone and under Cluster. Bounds are checked
 * against the client's clock around the work: Redis's elapsed time lies
 * inside it, so the bound can only be looser than the script's own, and a
 * slow machine grants fewer tokens, never more.
 */

const envs = useTopologies();

/** Posts that arrive, counted per connection; `dead` makes every later post hang (a killed process). */
class CountingGateway implements Gateway {
  readonly posts = new Map<string, number>();
  total = 0;
  async post(_endpoint: string, connectionId: string): Promise<GatewayResult> {
    this.total++;
    this.posts.set(connectionId, (this.posts.get(connectionId) ?? 0) + 1);
    return 'ok';
  }
  async close(): Promise<GatewayResult> {
    return 'ok';
  }
}

const never = new Promise<never>(() => undefined);

describe.each(TOPOLOGIES)('the shared pace bucket (%s)', (topology) => {
  const env = () => envs[topology];
  const limiter = (key: string, rate: number, burst: number) =>
    new RedisPaceLimiter(env().redis, key, { rate, burst });
  const bucketKey = () => `${env().prefix()}pace`;

  it('grants at most burst + rate x elapsed across many pacers, and every wanted token in the end', async () => {
    // Prepare: six "workers", each its own Pacer on the same key.
    const key = bucketKey();
    const rate = 2_000;
    const burst = 100;
    const pacers = Array.from(
      { length: 6 },
      () => new Pacer({ limiter: limiter(key, rate, burst), batch: 20, keep: 0 }),
    );
    const wanted = 600;
    // Act
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: wanted }, (_, i) => pacers[i % pacers.length]?.acquire()),
    );
    const elapsed = Date.now() - t0;
    // Assess: nobody went over the bucket, and nobody was left waiting.
    expect(wanted).toBeLessThanOrEqual(burst + Math.ceil((rate * elapsed) / 1000) + 1);
    expect(elapsed).toBeGreaterThan(0);
  });

  it('keeps the reserve for small publishes: bulk stops at it, the small lane takes from it', async () => {
    const key = bucketKey();
    // One token a second: nothing refills within the test.
    const bucket = limiter(key, 1, 100);
    const [bulk] = await bucket.take(100, 40);
    const [bulkAgain, wait] = await bucket.take(10, 40);
    const [small] = await bucket.take(30, 0);
    const [smallAgain] = await bucket.take(30, 0);
    expect(bulk).toBe(60);
    expect(bulkAgain).toBe(0);
    expect(wait).toBeGreaterThan(0);
    expect(small).toBe(30);
    expect(smallAgain).toBe(10);
  });

  it('a small publish is served from the reserve while bulk delivery holds the bucket at it', async () => {
    // Prepare: a bucket of 50 refilled at 1/s with a reserve of 20, and four
    // bulk workers wanting 100 tokens: they take 30 and then wait on refills.
    const key = bucketKey();
    let stopped = false;
    const sleep = (ms: number) =>
      stopped ? never : new Promise<void>((resolve) => setTimeout(resolve, ms));
    const bulk = Array.from(
      { length: 4 },
      () => new Pacer({ limiter: limiter(key, 1, 50), batch: 10, keep: 20, sleep }),
    );
    let bulkGranted = 0;
    for (let i = 0; i < 100; i++)
      void Promise.resolve(bulk[i % bulk.length]?.acquire()).then(() => {
        bulkGranted++;
      });
    while (bulkGranted < 30) await new Promise((resolve) => setTimeout(resolve, 5));
    // Act: a small publish of 10 asks for its tokens.
    const t0 = Date.now();
    const small = new Pacer({ limiter: limiter(key, 1, 50), batch: 10, keep: 0, sleep });
    await Promise.all(Array.from({ length: 10 }, () => small.acquire()));
    const elapsed = Date.now() - t0;
    const bulkWhenSmallDone = bulkGranted;
    stopped = true; // the bulk workers' loops stop at their next wait
    // Assess: the small publish's 10 came from the reserve. Had bulk drained
    // the bucket (no reserve), it would have had 50 at once and the small
    // one would have waited ten refills; bulk got at most what refilled meanwhile.
    expect(bulkWhenSmallDone).toBeLessThanOrEqual(30 + Math.ceil(elapsed / 1000) + 1);
  });

  it('lowers the shared rate on a throttle once per second, however many report it', async () => {
    const key = bucketKey();
    const redis = env().redis;
    limiter(key, 1_000, 100); // defines the script on the client
    // Both reports and a take run back to back on the server (one MULTI on
    // one key, one slot): microseconds apart, so nothing refills between them.
    const answers = await redis
      .multi()
      .pwPace(key, 'throttled', 1_000, 100, 0, 0, 60_000)
      .pwPace(key, 'throttled', 1_000, 100, 0, 0, 60_000)
      .pwPace(key, 'take', 1_000, 100, 10, 0, 60_000)
      .exec();
    const [cut, again, take] =
      answers?.map(([error, value]) => (error ? String(error) : value)) ?? [];
    expect(cut).toEqual([1, 700]);
    expect(again).toEqual([0, 700]);
    // The lowered bucket is empty: the take waits for ten tokens at 700/s
    // (the script's clock is in whole ms: a tick between the scripts refills
    // 0.7 of a token, so 14 or 15 ms).
    const [granted, wait] = take as [number, number];
    expect(granted).toBe(0);
    expect(wait).toBeGreaterThanOrEqual(Math.ceil(((10 - 0.7 * 2) * 1000) / 700));
    expect(wait).toBeLessThanOrEqual(Math.ceil((10 * 1000) / 700));
    expect(await redis.pttl(key)).toBeGreaterThan(0);
  });

  it('a worker that dies mid-chunk: its chunk is run again, nobody is lost, only its chunk sees doubles, the bucket still bounds every post', async () => {
    // Prepare: 1,000 recipients in chunks of 100, workers paced by one
    // bucket; the first attempt at the third chunk dies after 30 posts.
    const key = bucketKey();
    const rate = 3_000;
    const burst = 50;
    const api = new CountingGateway();
    const ids = Array.from({ length: 1_000 }, (_, i) => `c${i}`);
    let attempts = 0;
    let diedOnce = false;
    const invoke: ChunkInvoker = async (payload) => {
      const chunk = parseDeliverChunk(JSON.parse(payload));
      const attempt = ++attempts;
      const first = chunk.jobs[0]?.recipients[0]?.[0];
      const dies = first === 'c200' && !diedOnce;
      if (dies) diedOnce = true;
      let posted = 0;
      let died: (error: Error) => void = () => undefined;
      const death = new Promise<never>((_, reject) => {
        died = reject;
      });
      const worker: Gateway = {
        post: (endpoint, connectionId) => {
          if (dies && posted >= 30) {
            died(new Error(`worker ${attempt} killed`));
            return never; // nothing from a dead process reaches the API
          }
          posted++;
          return api.post(endpoint, connectionId);
        },
        close: () => api.close(),
      };
      // Each invocation is its own process: its own Pacer, the one bucket.
      const pacer = new Pacer({ limiter: limiter(key, rate, burst), batch: 10, keep: 0 });
      return Promise.race([
        deliver(chunkJobs(chunk), {
          gateway: pacedGateway(worker, pacer),
          prune: async () => undefined,
          logger: { warn: () => undefined },
          concurrency: 8,
        }),
        death,
      ]);
    };
    const warnings: string[] = [];
    // Act
    const t0 = Date.now();
    const result = await dispatch(
      { id: 'm1', dataJson: '{"n":1}' },
      [{ recipients: ids.map((connectionId) => ({ connectionId, endpoint: ENDPOINT_A })) }],
      {
        gateway: api,
        prune: async () => undefined,
        logger: { warn: (message) => warnings.push(message) },
        concurrency: 8,
        chunkSize: 100,
        chunkMaxBytes: 5 * 1024 * 1024,
        parallelChunks: 4,
        deliverAttempts: 2,
        invokeChunk: invoke,
        sleep: async () => undefined,
      },
    );
    const elapsed = Date.now() - t0;
    // Assess: counted once each, delivered to everyone, doubles only where the worker died.
    expect(diedOnce).toBe(true);
    expect(warnings).toContain('deliver worker failed');
    expect(result).toMatchObject({ recipients: 1_000, delivered: 1_000, failed: 0, chunks: 10 });
    const missing = ids.filter((id) => !api.posts.has(id));
    expect(missing).toEqual([]);
    const doubles = [...api.posts].filter(([, n]) => n > 1).map(([id]) => Number(id.slice(1)));
    expect(doubles.length).toBeLessThanOrEqual(30);
    expect(doubles.every((n) => n >= 200 && n < 300)).toBe(true);
    expect(api.total).toBe(1_000 + doubles.length);
    // Tokens the dead worker took and never spent are simply gone: the bucket
    // refilled on time alone, and bounded every post that was made.
    expect(api.total).toBeLessThanOrEqual(burst + Math.ceil((rate * elapsed) / 1000) + 1);
  });
});
