import { describe, expect, it } from 'vitest';
import { spawnNpmStart } from '../helpers/npm-start.js';

/**
 * A configuration that would be unsafe stops `npm start` before anything
 * starts, with the variable's name and the reason (issue 10: it used to say
 * "pushwire is up" and then answer every handshake with 500); here a 16-byte
 * HS256 secret (issue 9 found a 1-character one accepted). The functions run
 * the same check at every cold start (lib/config.ts, its unit tests).
 */

const SHORT = 'sixteen-bytes-xx';

/** Runs `npm start`'s script to its exit; resolves with the exit code and everything it printed. */
async function start(
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const { child, output } = await spawnNpmStart({ ...process.env, ...env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-(child.pid as number), 'SIGKILL');
      reject(new Error(`npm start did not stop on a bad configuration:\n${output()}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output() });
    });
  });
}

describe('an unsafe configuration', () => {
  it('stops npm start before anything starts, naming JWT_SECRET but not its value', async () => {
    // Act
    const { code, output } = await start({ JWT_SECRET: SHORT });

    // Assess
    expect(code).toBe(1);
    expect(output).toContain('pushwire: not starting: JWT_SECRET is too short');
    expect(output).not.toContain(SHORT);
    expect(output).not.toContain('redis-server');
    expect(output).not.toContain('pushwire is up');
  });

  it('names a variable that is not a number, and stops', async () => {
    // Act
    const { code, output } = await start({ FANOUT_CHUNK: 'lots' });

    // Assess
    expect(code).toBe(1);
    expect(output).toContain('FANOUT_CHUNK must be an integer');
  });
});
