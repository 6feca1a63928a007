import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type AckScript, redisAcks } from './acks/client-ack.js';
import { RedisAckStore } from './acks/store.js';
import { createTokenVerifier } from './auth/tokens.js';
import { type Config, loadConfig } from './config.js';
import { RedisDedupStore } from './delivery/dedup.js';
import { EventBuffer } from './events/buffer.js';
import { RedisEventOutbox } from './events/outbox.js';
import { createLogger } from './logging.js';
import { RedisRegistry } from './registry/redis.js';
import { resolveSecrets } from './secrets.js';

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

// Powertools reads its level from POWERTOOLS_LOG_LEVEL / AWS_LAMBDA_LOG_LEVEL itself;
// its errors are logged through a formatter that keeps payloads and secrets out.
export const logger = /* @__PURE__ */ once(createLogger);

let resolved: Config | undefined;
let resolving: Promise<void> | undefined;

/**
 * Fetches the secrets the config names by parameter (SSM / Secrets Manager),
 * once per container; every handler awaits it before its work (the
 * `secretsLoaded` middleware). A failure is not cached: the next invocation
 * tries again.
 */
export function loadSecrets(): Promise<void> {
  if (resolved) return Promise.resolve();
  const c = config();
  // The signer loads only where a secret is named by parameter (deployed).
  const fetcher = async (name: string) => {
    const [{ credentialsProvider }, { signedFetcher }] = await Promise.all([
      import('./aws/signing.js'),
      import('./secret-fetcher.js'),
    ]);
    return signedFetcher({
      region: c.region,
      credentials: credentialsProvider(c.credentials),
      ...(c.secretEndpoints.ssm && { ssmEndpoint: c.secretEndpoints.ssm }),
      ...(c.secretEndpoints.secretsManager && {
        secretsManagerEndpoint: c.secretEndpoints.secretsManager,
      }),
    })(name);
  };
  resolving ??= resolveSecrets(c, fetcher).then(
    (c) => {
      resolved = c;
    },
    (error: unknown) => {
      resolving = undefined;
      throw error;
    },
  );
  return resolving;
}

/** The config with its secrets. Without parameters to fetch (locally), the plain config. */
export function settings(): Config {
  if (resolved) return resolved;
  const c = config();
  if (c.jwt.secretParameter ?? c.redis.urlParameter ?? c.redis.passwordParameter) {
    throw new Error('secrets are named by parameter but not loaded: await loadSecrets() first');
  }
  return c;
}

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
  // The host is named, never the URL: it may carry a password.
  const name =
    client instanceof Cluster ? 'cluster' : `${client.options.host}:${client.options.port}`;
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
  createRedis(settings().redis.urls, settings().redis.cluster),
);

export const registry = /* @__PURE__ */ once(() => {
  const c = config();
  return new RedisRegistry(redis(), {
    prefix: c.redis.prefix,
    connectionTtlSeconds: c.connectionTtlSeconds,
    historySize: c.history.size,
    historyTtlSeconds: c.history.ttlSeconds,
    pendingLeaseMs: c.replay.budgetMs + c.replay.graceMs,
    deltaTopics: c.deltaTopics,
    presence: {
      eventTopics: c.presence.eventTopics,
      coalesceAbove: c.presence.coalesceAbove,
      intervalMs: c.presence.intervalMs,
      // Only where the role may invoke presenceEvents ($default, $disconnect);
      // elsewhere (a prune, a kick) the sweep sends what was recorded.
      ...(c.presence.eventsFunctionName !== undefined && {
        nudge: async (topic: string, delayMs: number) =>
          (await import('./presence/nudge.js')).nudge(
            c.presence.eventsFunctionName as string,
            topic,
            delayMs,
          ),
      }),
      onNudgeFailed: (topic, error) =>
        logger().warn('could not invoke presenceEvents; the sweep sends the events', {
          topic,
          reason: error instanceof Error ? error.message : String(error),
        }),
    },
  });
});

export const dedup = /* @__PURE__ */ once(
  () =>
    new RedisDedupStore(redis(), (id) => registry().keys.dedup(id), {
      ttlSeconds: config().dedupTtlSeconds,
      leaseSeconds: config().delivery.publishLeaseSeconds,
    }),
);

/** Acknowledged messages' state (issue 18): publish opens it, ackTimeout and status read it. */
export const ackStore = /* @__PURE__ */ once(
  () =>
    new RedisAckStore(redis(), registry().keys, {
      historyTtlSeconds: config().history.ttlSeconds,
    }),
);

/** A connection's `ack` frame (the `ack` route): one script call per batch. */
export const clientAcks = /* @__PURE__ */ once(
  (): AckScript => redisAcks(redis(), registry().keys, config().history.ttlSeconds),
);

export const verifyToken = /* @__PURE__ */ once(() => createTokenVerifier(settings().jwt));

/**
 * Lifecycle events seen by this container's invocations, handed to the
 * outbox when each ends (lib/events/flush.ts). One per container: Lambda
 * runs one invocation at a time in it (serverless-offline may run several,
 * and then one flush takes the others' events along, losing none).
 */
export const events = /* @__PURE__ */ once(() => new EventBuffer(config().events.types));

export const eventOutbox = /* @__PURE__ */ once(
  () => new RedisEventOutbox(redis(), registry().keys.events(config()), config().events.outboxMax),
);
