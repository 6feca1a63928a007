/**
 * Redis outages are logged once per state change, not once per reconnect
 * attempt: ioredis emits 'error' on every failed attempt, and with no
 * listener Node printed each one ("Unhandled error event", 349 lines in 10 s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ConnectionLog, createRedis } from '../../lib/clients.js';
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
});
