import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { createRedis } from '../lib/clients.js';
import { RedisRegistry } from '../lib/registry/redis.js';
import { PREFIX } from './common.js';

/** A registry under the bench prefix with the functions' default TTLs and history. */
export function benchRegistry(redis: Redis): RedisRegistry {
  return new RedisRegistry(redis, {
    prefix: PREFIX,
    connectionTtlSeconds: 660,
    historySize: 100,
    historyTtlSeconds: 86_400,
  });
}

/** A client with the options the functions use (auto-pipelining on). */
export function client(url: string): Redis {
  return createRedis([url], false) as Redis;
}

/**
 * Counts round trips on a client's socket: a write made after a reply came
 * back (or the first write) starts a round trip; writes sent before any reply
 * arrives (auto-pipelined commands, MULTI blocks sent side by side) share it.
 * Exact for one sequential flow on an otherwise idle client.
 */
export async function roundTripCounter(
  redis: Redis,
): Promise<{ roundTrips(): number; writes(): number; reset(): void }> {
  await redis.ping();
  const stream = redis.stream as Socket;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let writes = 0;
  let trips = 0;
  let waiting = false;
  stream.prependListener('data', () => {
    waiting = false;
  });
  (stream as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
    writes++;
    if (!waiting) {
      waiting = true;
      trips++;
    }
    return write(...args);
  };
  return {
    roundTrips: () => trips,
    writes: () => writes,
    reset: () => {
      writes = 0;
      trips = 0;
      waiting = false;
    },
  };
}

/** Deletes every key of the benchmark (SCAN + UNLINK on its prefix); never touches others. */
export async function cleanup(redis: Redis): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats (minus INFO and CONFIG). */
export async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const line of info.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    const name = match?.[1];
    if (match && name && name !== 'info' && !name.startsWith('config')) {
      stats.set(name, Number(match[2]));
    }
  }
  return stats;
}
