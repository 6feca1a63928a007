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

/** `tls` adds TLS options (a private CA in tests) for rediss:// URLs. */
export function createRedis(
  urls: string[],
  cluster: boolean,
  tls?: ConnectionOptions,
): Redis | Cluster {
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
    pendingLeaseMs: c.replay.budgetMs + c.replay.graceMs,
  });
});

export const dedup = /* @__PURE__ */ once(
  () => new RedisDedupStore(redis(), (id) => registry().keys.dedup(id), config().dedupTtlSeconds),
);

export const verifyToken = /* @__PURE__ */ once(() => createTokenVerifier(config().jwt));
