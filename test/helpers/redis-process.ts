import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnRedisServer } from '../../scripts/redis-server.js';

/**
 * A private `redis-server` that a test can kill, restart on the same port
 * (with its data or without) and block, to inject the faults a managed Redis
 * has: a crash, a failover that lost writes, a long command.
 *
 * With `persist`, every write is fsynced to an append-only file before Redis
 * answers, so a SIGKILL loses nothing: a restart "with data" finds every
 * acknowledged write. DEBUG is enabled for `DEBUG SLEEP`.
 */
export class RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly #persist: boolean;
  #child: ChildProcess | undefined;

  private constructor(port: number, persist: boolean) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.dir = mkdtempSync(join(tmpdir(), 'pushwire-faults-redis-'));
    this.#persist = persist;
  }

  static async start(options: { persist?: boolean } = {}): Promise<RedisProcess> {
    const redis = new RedisProcess(await freePort(), options.persist ?? true);
    await redis.#spawn();
    return redis;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null;
  }

  async #spawn(): Promise<void> {
    const persistence = this.#persist
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']
      : ['--appendonly', 'no', '--save', ''];
    this.#child = await spawnRedisServer(this.port, this.dir, [
      '--enable-debug-command',
      'yes',
      ...persistence,
    ]);
  }

  /** Kills the server (SIGKILL by default: a crash, nothing flushed that was not already). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** Starts the server again on the same port; without `keepData` it comes back empty. */
  async restart(options: { keepData: boolean }): Promise<void> {
    await this.kill();
    if (!options.keepData) {
      rmSync(this.dir, { recursive: true, force: true });
      mkdirSync(this.dir);
    }
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
