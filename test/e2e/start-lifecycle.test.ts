/**
 * `npm start` (scripts/start.ts) never outlives, or leaves behind, what it
 * started: on Ctrl-C, SIGTERM, its private Redis dying or serverless-offline
 * crashing, it stops the other child, removes the Redis folder and its build
 * folder, and says why when it was not asked to stop.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnNpmStart } from '../helpers/npm-start.js';
import { eventually } from '../helpers/offline.js';

interface Started {
  child: ChildProcess;
  wsPort: number;
  output: () => string;
  redisPid: number;
  redisDir: string;
  buildDir: string;
  offlinePid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let running: Started | undefined;
afterEach(() => {
  // A failed assertion must not leave the group running.
  if (running?.child.pid && running.child.exitCode === null) {
    try {
      process.kill(-running.child.pid, 'SIGKILL');
    } catch {}
  }
  running = undefined;
});

/** Processes (pid, args) whose command line contains `text`, below `root` in the process tree. */
function descendants(root: number): { pid: number; args: string }[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] as string }));
  const found: { pid: number; args: string }[] = [];
  const walk = (pid: number) => {
    for (const row of rows.filter((r) => r.ppid === pid)) {
      found.push(row);
      walk(row.pid);
    }
  };
  walk(root);
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

async function start(): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env, PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never' };
  delete env['REDIS_URL'];
  delete env['PUSHWIRE_BUILD_DIR'];
  const { child, wsPort, output, whenUp } = await spawnNpmStart(env);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  running = { child } as Started;
  await whenUp(90_000);
  const tree = descendants(child.pid as number);
  const redis = tree.find((p) => p.args.startsWith('redis-server'));
  const offline = tree.find((p) => p.args.includes('osls offline'));
  if (!redis || !offline) throw new Error(`children not found: ${JSON.stringify(tree)}`);
  // redis-server works in its --dir.
  const redisDir = readlinkSync(`/proc/${redis.pid}/cwd`);
  running = {
    child,
    wsPort,
    output,
    redisPid: redis.pid,
    redisDir,
    buildDir: `.esbuild-${wsPort}`,
    offlinePid: offline.pid,
    exited,
  };
  expect(existsSync(redisDir)).toBe(true);
  expect(existsSync(running.buildDir)).toBe(true);
  return running;
}

/** Everything it started is gone: processes, port, folders. */
async function expectAllGone(s: Started): Promise<void> {
  await eventually(() => !alive(s.redisPid) && !alive(s.offlinePid), 10_000, 'children gone');
  expect(await listening(s.wsPort)).toBe(false);
  expect(existsSync(s.redisDir)).toBe(false);
  expect(existsSync(s.buildDir)).toBe(false);
}

describe('npm start', () => {
  it('exits with a clear message when its private Redis dies, and leaves nothing behind', async () => {
    const s = await start();
    process.kill(s.redisPid, 'SIGKILL');
    const { code } = await s.exited;
    expect(code).toBe(1);
    expect(s.output()).toMatch(
      /private redis-server \(redis:\/\/127\.0\.0\.1:\d+\) exited unexpectedly/,
    );
    expect(s.output()).toContain('Run `npm start` again');
    await expectAllGone(s);
  }, 120_000);

  it('stops everything on SIGTERM', async () => {
    const s = await start();
    process.kill(s.child.pid as number, 'SIGTERM');
    const { code } = await s.exited;
    expect(code).toBe(0);
    expect(s.output()).not.toContain('exited unexpectedly');
    await expectAllGone(s);
  }, 120_000);

  it('stops everything on Ctrl-C (SIGINT to the whole foreground group)', async () => {
    const s = await start();
    process.kill(-(s.child.pid as number), 'SIGINT');
    const { code } = await s.exited;
    expect(code).toBe(0);
    expect(s.output()).not.toContain('exited unexpectedly');
    await expectAllGone(s);
  }, 120_000);

  it('stops its Redis and says so when serverless-offline crashes', async () => {
    const s = await start();
    process.kill(s.offlinePid, 'SIGKILL');
    const { code } = await s.exited;
    expect(code).not.toBe(0);
    expect(s.output()).toContain('serverless-offline exited (SIGKILL); stopped.');
    await expectAllGone(s);
  }, 120_000);
});
