/**
 * Redis outages are logged once per state change, not once per reconnect
 * attempt: ioredis emits 'error' on every failed attempt, and with no
 * listener Node printed each one ("Unhandled error event", 349 lines in 10 s).
 */

import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConnectionLog, createRedis } from '../../lib/clients.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js';
import { RedisProcess } from '../helpers/redis-process.js';

interface Line {
  level: 'info' | 'warn';
  message: string;
  extra: Record<string, unknown>;
}

function recorder(): ConnectionLog & { lines: Line[] } {
  const lines: Line[] = [];
  return {
    lines,
    info: (message, extra) => lines.push({ level: 'info', message, extra }),
    warn: (message, extra) => lines.push({ level: 'warn', message, extra }),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(25);
  }
}

let server: RedisProcess | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe('Redis connection state logging', () => {
  it('logs an outage once when it starts and once when it ends, however many retries fail', async () => {
    // Prepare
    server = await RedisProcess.start({ persist: false });
    const log = recorder();
    const redis = createRedis([server.url], false, undefined, log);
    let errorEvents = 0;
    redis.on('error', () => errorEvents++);
    await redis.set('k', 'v');

    // Act: Redis dies for ~3 s (several reconnect attempts), then comes back.
    await server.kill();
    await until(() => errorEvents >= 4, 10_000, 'four failed reconnect attempts');
    const duringOutage = [...log.lines];
    await server.restart({ keepData: false });
    await until(() => log.lines.length > duringOutage.length, 10_000, 'a restored line');
    const pong = await redis.ping();

    // Assess
    expect(duringOutage).toHaveLength(1);
    expect(duringOutage[0]).toMatchObject({
      level: 'warn',
      message: 'redis connection lost; reconnecting',
    });
    // Names the server it lost (a REDIS_URL pointing at nothing said only "redis").
    expect(duringOutage[0]?.extra['redis']).toBe(new URL(server.url).host);
    expect(log.lines).toHaveLength(2);
    expect(log.lines[1]).toMatchObject({ level: 'info', message: 'redis connection restored' });
    expect(log.lines[1]?.extra['failedAttempts']).toBeGreaterThanOrEqual(4);
    expect(pong).toBe('PONG');

    // A second outage is a new state change: logged again, once.
    const before = errorEvents;
    await server.kill();
    await until(() => errorEvents >= before + 3, 10_000, 'three more failed attempts');
    expect(log.lines).toHaveLength(3);
    expect(log.lines[2]).toMatchObject({ level: 'warn' });
    redis.disconnect();
  });

  it('never logs command arguments with a connection error', async () => {
    server = await RedisProcess.start({ persist: false });
    const log = recorder();
    const redis = createRedis([server.url], false, undefined, log);
    await redis.ping();
    await server.kill();
    // A command in flight while Redis is down fails with its arguments attached to the error.
    await redis.set('secret-key', 'secret-value').catch(() => undefined);
    await until(() => log.lines.length >= 1, 10_000, 'a lost line');
    expect(JSON.stringify(log.lines)).not.toContain('secret-value');
    redis.disconnect();
  });

  it('logs nothing for a client closed on purpose', async () => {
    server = await RedisProcess.start({ persist: false });
    const log = recorder();
    const redis = createRedis([server.url], false, undefined, log);
    await redis.ping();
    await redis.quit();
    await sleep(200);
    expect(log.lines).toEqual([]);
  });

  it('logs a Cluster node that goes down once, however many attempts fail', async () => {
    let cluster: RedisCluster | undefined;
    try {
      cluster = await startRedisCluster();
      const log = recorder();
      const redis = createRedis(cluster.urls, true, undefined, log);
      let nodeErrors = 0;
      redis.on('node error', () => nodeErrors++);
      await redis.set('k', 'v');
      // One master dies: commands for its slots fail, ioredis keeps retrying it.
      const victim = cluster.ports[0] as number;
      const killer = new Redis(victim, '127.0.0.1', { retryStrategy: () => null });
      killer.on('error', () => undefined);
      await killer.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      killer.disconnect();
      for (let i = 0; i < 30 && nodeErrors < 4; i++) {
        await redis.set(`k${i}`, 'v').catch(() => undefined);
        await sleep(200);
      }
      expect(nodeErrors).toBeGreaterThanOrEqual(4);
      const victimLines = log.lines.filter((l) => String(l.extra['redis']).endsWith(`:${victim}`));
      expect(victimLines).toHaveLength(1);
      expect(victimLines[0]).toMatchObject({
        level: 'warn',
        message: 'redis connection lost; reconnecting',
      });
      // Every other line is a different node or the cluster as a whole, each once.
      const keys = log.lines.filter((l) => l.level === 'warn').map((l) => l.extra['redis']);
      expect(new Set(keys).size).toBe(keys.length);
      redis.disconnect();
    } finally {
      await cluster?.stop();
    }
  }, 60_000);
});
