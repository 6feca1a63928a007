import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { createRedis } from '../../lib/clients.js';
import { RedisRegistry, type RedisRegistryOptions } from '../../lib/registry/redis.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { type RedisCluster, startRedisCluster } from './redis-cluster.js';

/**
 * The Redis topologies every integration suite runs against, as
 * socket.io-redis-adapter does: `describe.each(TOPOLOGIES)(…, (topology) => …)`.
 */
export type Topology = 'standalone' | 'cluster';
export const TOPOLOGIES: Topology[] = ['standalone', 'cluster'];

export interface RedisEnv {
  readonly topology: Topology;
  /** The client under test: ioredis `Redis` or `Cluster`, as lib/clients.ts builds it. */
  readonly redis: Redis | Cluster;
  /** One plain client per master, for inspection (INFO, CLUSTER KEYSLOT, DBSIZE). */
  readonly masters: Redis[];
  /** A key prefix no other test uses, so tests never see each other's keys. */
  prefix(): string;
  /** A registry on its own prefix; defaults suit tests (long TTLs, history of 100). */
  registry(options?: Partial<RedisRegistryOptions>): RedisRegistry;
  /** Calls per command since the servers started, summed over every master (admin commands excluded). */
  commandCalls(): Promise<Map<string, number>>;
  /**
   * Runs `work` and counts the writes the client under test made to its
   * sockets meanwhile: one per round trip (ioredis writes a pipeline, manual
   * or automatic, in one go).
   */
  socketWrites<T>(work: () => Promise<T>): Promise<{ result: T; writes: number }>;
}

/** Commands the harness itself (INFO) or ioredis' cluster bookkeeping send. */
const ADMIN_COMMANDS = new Set(['info', 'cluster', 'ping', 'client', 'hello', 'command', 'select']);

/**
 * Starts a private Redis of the given topology for the current describe block
 * (beforeAll) and stops it, with every client, afterwards (afterAll).
 */
export function useRedis(topology: Topology): RedisEnv {
  let standalone: RedisServer | undefined;
  let cluster: RedisCluster | undefined;
  let client: Redis | Cluster | undefined;
  let masters: Redis[] = [];
  let counter = 0;
  const run = randomBytes(3).toString('hex');

  beforeAll(async () => {
    let urls: string[];
    if (topology === 'cluster') {
      cluster = await startRedisCluster();
      urls = cluster.urls;
    } else {
      standalone = await startRedisServer();
      urls = [standalone.url];
    }
    client = createRedis(urls, topology === 'cluster');
    masters = urls.map((u) => new Redis(u, { lazyConnect: false }));
    // Fail here, not in the first test, if the topology is not what it claims.
    if ((topology === 'cluster') !== client instanceof Cluster) {
      throw new Error(`expected a ${topology} client`);
    }
    await client.ping();
  });

  afterAll(async () => {
    await Promise.allSettled([client?.quit(), ...masters.map((m) => m.quit())]);
    client?.disconnect();
    for (const m of masters) m.disconnect();
    await Promise.all([standalone?.stop(), cluster?.stop()]);
  });

  const env: RedisEnv = {
    topology,
    get redis() {
      if (!client) throw new Error('Redis is not started yet (use it inside a test or hook)');
      return client;
    },
    get masters() {
      return masters;
    },
    prefix: () => `it:${run}:${++counter}:`,
    registry: (options = {}) =>
      new RedisRegistry(env.redis, {
        prefix: env.prefix(),
        connectionTtlSeconds: 60,
        historySize: 100,
        historyTtlSeconds: 3_600,
        ...options,
      }),
    commandCalls: async () => {
      const calls = new Map<string, number>();
      for (const master of masters) {
        const info = await master.info('commandstats');
        for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
          const name = (match[1] as string).toLowerCase();
          if (ADMIN_COMMANDS.has(name.split('|')[0] as string)) continue;
          calls.set(name, (calls.get(name) ?? 0) + Number(match[2]));
        }
      }
      return calls;
    },
    socketWrites: async (work) => {
      const redis = env.redis;
      const connections = redis instanceof Cluster ? redis.nodes('all') : [redis];
      let writes = 0;
      const restore: (() => void)[] = [];
      for (const c of connections) {
        const stream = c.stream;
        const write = stream.write;
        stream.write = ((...args: Parameters<typeof write>) => {
          writes++;
          return write.apply(stream, args);
        }) as typeof write;
        restore.push(() => {
          stream.write = write;
        });
      }
      try {
        const result = await work();
        return { result, writes };
      } finally {
        for (const r of restore) r();
      }
    },
  };
  return env;
}

/** Calls per command between two commandCalls() snapshots (only the ones that moved). */
export function callsDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, calls] of after) {
    const moved = calls - (before.get(name) ?? 0);
    if (moved !== 0) delta[name] = moved;
  }
  return delta;
}

/** A clock that follows real time plus an offset the test moves forward. */
export function testClock() {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance(ms: number) {
      offset += ms;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One environment per topology, each started before the file's tests and stopped after. */
export function useTopologies(): Record<Topology, RedisEnv> {
  return { standalone: useRedis('standalone'), cluster: useRedis('cluster') };
}
