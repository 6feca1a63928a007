import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/**
 * The ports the OS hands out for outgoing connections (Linux's
 * ip_local_port_range; the IANA range elsewhere).
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high && low > 2_048) return [low, high];
  } catch {}
  return [49_152, 65_535];
}

/** Ports this process has handed out (never twice). */
const handedOut = new Set<number>();

/** Whether a port can be listened on now, on loopback. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on loopback, for a server started a moment later. Taken
 * below the ephemeral range: a port the OS hands out (listen on port 0) and
 * that is given back until the server binds it may meanwhile become the local
 * port of any outgoing connection on the machine, and the server then fails
 * with EADDRINUSE (seen: serverless-offline's Lambda port, seconds after it
 * was picked, while other test runs shared the machine). Below that range
 * only another listener can take it, and it is checked free here.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = 10_000;
  const high = Math.min(ephemeralLow, 65_536) - 1;
  for (let attempt = 0; attempt < 200 && high > low; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${low} and ${high}`);
}

export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** Its working directory (a fresh temporary one), removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

/**
 * Spawns `redis-server` (from PATH) on 127.0.0.1:`port` with `dir` as its
 * working directory and these settings, and resolves once it accepts
 * connections.
 */
export async function spawnRedisServer(
  port: number,
  dir: string,
  settings: string[],
): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...settings],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    };
    child.stdout?.on('data', onData);
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'ENOENT'
            ? 'redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install ' +
                'redis-server; macOS: brew install redis), or set REDIS_URL to a Redis you run.'
            : `could not start redis-server: ${error.message}`,
        ),
      ),
    );
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited with ${code}: ${output.slice(-500)}`)),
    );
  });
  return child;
}

/**
 * Starts a private `redis-server` on a free port, keeping nothing on disk,
 * and resolves once it accepts connections.
 */
export async function startRedisServer(extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pushwire-redis-'));
  const child = await spawnRedisServer(port, dir, [
    '--save',
    '',
    '--appendonly',
    'no',
    ...extraArgs,
  ]);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    process: child,
    dir,
    stop: () =>
      new Promise<void>((resolve) => {
        // Killed by a signal, a process has no exit code but a signal code.
        if (child.exitCode !== null || child.signalCode !== null) {
          rmSync(dir, { recursive: true, force: true });
          resolve();
          return;
        }
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** A Redis URL (or comma-separated URLs) as it may be printed: credentials masked. */
export function maskRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/g, '//***@');
}

/**
 * Connects once to `url` (the first of several, for a cluster) and sends
 * PING, within `timeoutMs`. Resolves to what is wrong, naming the URL with its
 * credentials masked, or to undefined when Redis answered.
 */
export async function checkRedis(
  url: string,
  cluster: boolean,
  timeoutMs = 3_000,
): Promise<string | undefined> {
  const first = (cluster ? url.split(',')[0] : url)?.trim() ?? '';
  const shown = maskRedisUrl(url);
  let client: Redis;
  try {
    client = new Redis(first, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      ...(first.startsWith('rediss://') && { tls: {} }),
    });
  } catch (error) {
    return `REDIS_URL ${shown} is not a Redis URL: ${(error as Error).message}`;
  }
  // connect() rejects with only "Connection is closed."; the cause comes as 'error'.
  let cause: { message?: string; code?: string } | undefined;
  client.on('error', (error: { message?: string; code?: string }) => {
    cause ??= error;
  });
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    const e = cause ?? (error as { message?: string; code?: string });
    const why = (
      e.code && !e.message?.includes(e.code) ? `${e.code} ${e.message}` : e.message
    )?.replace(/\.$/, '');
    return (
      `cannot reach Redis at REDIS_URL=${shown}: ${why}. ` +
      'Start that Redis, fix REDIS_URL, or unset it and npm start runs a private redis-server.'
    );
  } finally {
    client.disconnect();
  }
}
