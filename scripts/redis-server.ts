import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on loopback, as the OS hands one out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
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
    child.once('error', (error) =>
      reject(
        new Error(`could not start redis-server (is it installed and on PATH?): ${error.message}`),
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
