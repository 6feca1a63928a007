/**
 * The first hour of a new user (issue 22): what `npm start` says when its
 * Redis is not there. Each of these once started "up" anyway, or crashed with
 * a stack trace around the right message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/redis-server.js';
import { type NpmStart, spawnNpmStart } from '../helpers/npm-start.js';

let running: NpmStart | undefined;
afterEach(() => {
  if (running?.child.pid && running.child.exitCode === null) {
    try {
      process.kill(-running.child.pid, 'SIGKILL');
    } catch {}
  }
  running = undefined;
});

/** Runs npm start with `env` until it exits; its exit code and output. */
async function startUntilExit(
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  running = await spawnNpmStart({ ...env, PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never' });
  const started = running;
  const code = await new Promise<number | null>((resolve) => {
    if (started.child.exitCode !== null) resolve(started.child.exitCode);
    else started.child.once('exit', (c) => resolve(c));
  });
  // The last chunks of output may follow 'exit'.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, output: started.output() };
}

describe('npm start without a working Redis', () => {
  it('refuses to start when REDIS_URL answers nothing, naming the URL with its password masked', async () => {
    // Prepare: a port nothing listens on.
    const port = await freePort();
    const env = { ...process.env, REDIS_URL: `redis://default:s3cret-pw@127.0.0.1:${port}` };

    // Act
    const { code, output } = await startUntilExit(env);

    // Assess
    expect(code).toBe(1);
    expect(output).toContain(
      `pushwire: not starting: cannot reach Redis at REDIS_URL=redis://***@127.0.0.1:${port}`,
    );
    expect(output).toContain('ECONNREFUSED');
    expect(output).not.toContain('s3cret-pw');
    expect(output).not.toContain('pushwire is up');
  });

  it('says redis-server is not on PATH in one line, without a stack trace', async () => {
    // Prepare: a PATH with nothing on it (npm start runs node by its own path).
    const empty = mkdtempSync(join(tmpdir(), 'pushwire-empty-path-'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty };
    delete env['REDIS_URL'];

    try {
      // Act
      const { code, output } = await startUntilExit(env);

      // Assess
      expect(code).toBe(1);
      expect(output).toContain('pushwire: not starting: redis-server is not on PATH.');
      expect(output).toContain('apt-get install redis-server');
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toContain('pushwire is up');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
