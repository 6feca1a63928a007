/**
 * The Redis client as the bundles carry it: lib/clients.ts and the registry
 * built as serverless.yml builds the functions (build/esbuild-plugins.cjs:
 * the slim command table, ioredis's debug, Sentinel, scan streams and
 * Pub/Sub subscribers left out), against a real standalone Redis and a real
 * three-master Redis Cluster. The other integration suites run ioredis
 * unbundled; here what the plugins replace is what runs: command methods
 * from the rebuilt table, key slots from its key positions (cluster routing,
 * auto-pipelining), our Lua scripts by EVALSHA, and a cluster that starts
 * with the stand-in for its Pub/Sub subscriber.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createRedis as CreateRedis } from '../../lib/clients.js';
import type { RedisRegistry as Registry } from '../../lib/registry/redis.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js';
import { connection } from './support.js';

const require = createRequire(import.meta.url);
const plugins = require('../../build/esbuild-plugins.cjs') as Plugin[];

interface Bundled {
  createRedis: typeof CreateRedis;
  RedisRegistry: typeof Registry;
  ioredisCommands: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'pushwire-bundled-redis-'));
let bundled: Bundled;
let standalone: RedisServer;
let cluster: RedisCluster;
const clients: (Redis | Cluster)[] = [];
const silent = { info: () => undefined, warn: () => undefined };

beforeAll(async () => {
  // serverless.yml's custom.esbuild, as bench/bundles.ts mirrors it.
  await build({
    stdin: {
      contents: [
        "export { createRedis } from './lib/clients.js';",
        "export { RedisRegistry } from './lib/registry/redis.js';",
        "export { list as ioredisCommands } from '@ioredis/commands';",
      ].join('\n'),
      resolveDir: process.cwd(),
      sourcefile: 'bundled-redis.ts',
      loader: 'ts',
    },
    outfile: join(dir, 'bundled.cjs'),
    bundle: true,
    minify: true,
    sourcemap: false,
    target: 'node20',
    platform: 'node',
    format: 'cjs',
    loader: { '.lua': 'text' },
    mainFields: ['module', 'main'],
    plugins,
    logLevel: 'error',
  });
  // Loaded from outside the project: nothing may come from node_modules.
  writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}');
  bundled = createRequire(join(dir, 'bundled.cjs'))('./bundled.cjs') as Bundled;
  [standalone, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all([standalone?.stop(), cluster?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const topologies = [
  ['standalone', () => [standalone.url], false],
  ['cluster', () => cluster.urls, true],
] as const;

describe.each(topologies)('the bundled Redis client on %s Redis', (topology, urls, isCluster) => {
  const client = () => {
    const c = bundled.createRedis(urls(), isCluster, undefined, silent);
    clients.push(c);
    return c;
  };

  it('has the command methods ioredis has and runs them, keys routed by slot', async () => {
    const redis = client();
    expect(bundled.ioredisCommands.length).toBeGreaterThan(200);
    // As unbundled ioredis has them (a Cluster has no MONITOR, for one).
    const unbundled = (isCluster ? Cluster.prototype : Redis.prototype) as unknown as Record<
      string,
      unknown
    >;
    for (const name of bundled.ioredisCommands)
      expect(typeof (redis as unknown as Record<string, unknown>)[name], name).toBe(
        typeof unbundled[name],
      );
    expect(typeof redis.zadd).toBe('function');
    // Keys in many slots (on a cluster, on every master), auto-pipelined.
    const keys = Array.from({ length: 50 }, (_, i) => `bundled:${topology}:${i}`);
    await Promise.all(keys.map((k, i) => redis.set(k, String(i), 'EX', 60)));
    expect(await Promise.all(keys.map((k) => redis.get(k)))).toEqual(keys.map((_, i) => String(i)));
    // Multi-key commands: keys from position 1 to the end, and every other one.
    await redis.mset('{tag}a', '1', '{tag}b', '2');
    expect(await redis.mget('{tag}a', '{tag}b')).toEqual(['1', '2']);
    expect(await redis.del('{tag}a', '{tag}b')).toBe(2);
    // A read-only command (the table's `readonly` flag) and a transaction.
    expect(await redis.strlen(keys[0] as string)).toBe(1);
    expect(await redis.multi().incr('{m}x').incr('{m}x').exec()).toEqual([
      [null, 1],
      [null, 2],
    ]);
  });

  it('runs the registry and its Lua scripts', async () => {
    const registry = new bundled.RedisRegistry(client(), {
      prefix: `bundled:${topology}:`,
      connectionTtlSeconds: 60,
      historySize: 100,
      historyTtlSeconds: 3_600,
    });
    const record = connection('dora', { allowedTopics: ['news'] });
    await registry.register(record);
    expect(await registry.get(record.connectionId)).toMatchObject({
      connectionId: record.connectionId,
      userId: 'dora',
      topics: [],
    });
    const step = await registry.publish(registry.userAudience('dora'), '{"id":"x","data":1}', 10);
    expect(step).toMatchObject({ count: 1 });
  });

  it(
    isCluster
      ? 'leaves out the cluster Pub/Sub subscriber: SUBSCRIBE fails, saying so'
      : 'keeps Pub/Sub on a standalone client (only the cluster subscriber is left out)',
    async () => {
      const redis = client();
      await redis.ping();
      if (isCluster) {
        await expect(redis.subscribe('channel')).rejects.toThrow('No subscriber for the cluster');
        // The client goes on working.
        expect(await redis.ping()).toBe('PONG');
      } else {
        expect(await redis.subscribe('channel')).toBe(1);
        expect(await redis.unsubscribe('channel')).toBe(0);
      }
    },
  );
});
