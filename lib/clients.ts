import type { ConnectionOptions } from 'node:tls';
import { Logger } from '@aws-lambda-powertools/logger';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { createTokenVerifier } from './auth/tokens.js';
import { loadConfig } from './config.js';
import { RedisDedupStore } from './delivery/dedup.js';
import { RedisRegistry } from './registry/redis.js';

/**
 * Everything built once per Lambda container. Each client is created on first
 * use and kept for the container's life (connections and keep-alive sockets
 * survive between invocations); the getters are marked pure so a bundle that
 * does not use one drops it. Clients of AWS services live in aws-clients.ts,
 * loaded lazily: a function that never calls AWS never loads the SDK.
 */

export const once = <T>(build: () => T): (() => T) => {
  let value: T | undefined;
  return () => {
    value ??= build();
    return value;
  };
};

export const config = /* @__PURE__ */ once(() => loadConfig());

// Powertools reads its level from POWERTOOLS_LOG_LEVEL / AWS_LAMBDA_LOG_LEVEL itself.
export const logger = /* @__PURE__ */ once(() => new Logger({ serviceName: 'pushwire' }));

/** Options suited to Lambda: fail fast rather than hold an invocation hostage. */
export function redisOptions(url?: string, tls: ConnectionOptions = {}): RedisOptions {
  return {
    connectTimeout: 2_000,
    commandTimeout: 5_000,
    // A command waits through at most two reconnects, then fails: no
    // unbounded offline queue outliving the invocation that sent it.
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(times * 100, 1_000),
    enableAutoPipelining: true,
    // rediss:// turns TLS on (ElastiCache in-transit encryption); its
    // certificates chain to public CAs, so no options are needed there.
    ...(url?.startsWith('rediss://') && { tls }),
  };
}

/** Where connection state changes are logged: the Powertools logger, or a recorder in tests. */
export interface ConnectionLog {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
}

/** An error as logged: never the whole object, which for ioredis can carry command arguments. */
const describeError = (error: unknown) => {
  const e = error as { name?: string; message?: string; code?: string };
  return { name: e?.name ?? 'Error', message: e?.message ?? String(error), code: e?.code };
};

/**
 * Logs a Redis client's connection state once per change rather than once
 * per reconnect attempt. ioredis emits 'error' on every failed attempt (every
 * 100 ms-1 s with our retryStrategy while Redis is down), and an 'error' with
 * no listener is printed by Node as "Unhandled error event" each time: 349
 * lines in 10 s of outage. Here the first failure (or the first reconnect,
 * for a connection dropped without an error) logs "lost", later ones are only
 * counted, and the next 'ready' logs "restored" with the count and the
 * outage's length. Our retryStrategy never gives up, so 'end' only follows
 * quit() or disconnect(): nothing to log. A Cluster reports each node's
 * failures as 'node error': each node has its own state, restored when that
 * node's own connection is ready again.
 */
export function watchConnection(client: Redis | Cluster, log: ConnectionLog): void {
  const down = new Map<string, { since: number; failures: number }>();
  const lost = (key: string, error?: unknown) => {
    const outage = down.get(key);
    if (outage) {
      if (error !== undefined) outage.failures++;
      return;
    }
    down.set(key, { since: Date.now(), failures: error === undefined ? 0 : 1 });
    log.warn('redis connection lost; reconnecting', {
      redis: key,
      ...(error !== undefined && { error: describeError(error) }),
    });
  };
  const restored = (key: string) => {
    const outage = down.get(key);
    if (!outage) return;
    down.delete(key);
    log.info('redis connection restored', {
      redis: key,
      downMs: Date.now() - outage.since,
      failedAttempts: outage.failures,
    });
  };
  const name = client instanceof Cluster ? 'cluster' : 'redis';
  client.on('error', (error: unknown) => lost(name, error));
  client.on('reconnecting', () => lost(name));
  client.on('ready', () => restored(name));
  if (client instanceof Cluster) {
    client.on('node error', (error: unknown, address?: string) =>
      lost(`node ${address ?? '?'}`, error),
    );
    // A slots refresh re-adds a node that is still down ('+node' fires on
    // every refresh): only the node's own connection being ready means it is back.
    const watched = new WeakSet<Redis>();
    client.on('+node', (node: Redis) => {
      if (watched.has(node)) return;
      watched.add(node);
      node.on('ready', () => restored(`node ${node.options.host}:${node.options.port}`));
    });
  }
}

/**
 * `tls` adds TLS options (a private CA in tests) for rediss:// URLs; `log`
 * receives connection state changes (see watchConnection).
 */
export function createRedis(
  urls: string[],
  cluster: boolean,
  tls?: ConnectionOptions,
  log: ConnectionLog = logger(),
): Redis | Cluster {
  const client = buildRedis(urls, cluster, tls);
  watchConnection(client, log);
  return client;
}

function buildRedis(urls: string[], cluster: boolean, tls?: ConnectionOptions): Redis | Cluster {
  if (!cluster) return new Redis(urls[0] as string, redisOptions(urls[0], tls));
  const nodes = urls.map((u) => {
    const { hostname, port } = new URL(u);
    return { host: hostname, port: Number(port || 6379) };
  });
  const first = new URL(urls[0] as string);
  return new Cluster(nodes, {
    enableAutoPipelining: true,
    // ElastiCache's TLS certificates name the configuration endpoint, not the node IPs.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: {
      ...redisOptions(urls[0], tls),
      ...(first.password && { password: decodeURIComponent(first.password) }),
      ...(first.username && { username: decodeURIComponent(first.username) }),
    },
  });
}

export const redis = /* @__PURE__ */ once(() =>
  createRedis(config().redis.urls, config().redis.cluster),
);

export const registry = /* @__PURE__ */ once(() => {
  const c = config();
  return new RedisRegistry(redis(), {
    prefix: c.redis.prefix,
    connectionTtlSeconds: c.connectionTtlSeconds,
    historySize: c.history.size,
    historyTtlSeconds: c.history.ttlSeconds,
  });
});

export const dedup = /* @__PURE__ */ once(
  () => new RedisDedupStore(redis(), (id) => registry().keys.dedup(id), config().dedupTtlSeconds),
);

export const verifyToken = /* @__PURE__ */ once(() => createTokenVerifier(config().jwt));
