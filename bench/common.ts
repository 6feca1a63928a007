import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';

/** The benchmark's own keys: everything it writes starts with this, so it can clean up. */
export const PREFIX = 'pwbench:';
export const REGION = 'us-east-1';
/** Dummy credentials: the SDK signs requests, the local endpoints do not check. */
export const AWS_ENV = {
  AWS_REGION: REGION,
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
};
export const JWT_SECRET = 'pushwire-bench-secret-at-least-32-bytes';

export const root = (): string => process.env['PUSHWIRE_ROOT'] ?? process.cwd();
/** Folder of the bundled bench entries (set by bench/launch.ts). */
const out = (): string =>
  process.env['PUSHWIRE_BENCH_OUT'] ?? join(root(), 'node_modules', '.cache', 'pushwire-bench');

export const now = (): number => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export const round = (n: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** Every child process the benchmark started, so that it can stop them all. */
const children = new Set<ChildProcess>();

/** Forks one of the bundled bench entries (a `.cjs` next to run.cjs) with an IPC channel. */
export function forkEntry(name: string, env: Record<string, string> = {}): ChildProcess {
  const child = fork(join(out(), `${name}.cjs`), [], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--enable-source-maps'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops a child (SIGTERM, then SIGKILL after a grace period) and waits for it to go. */
export function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
}

/** Synchronous last resort (process exit): kill whatever is still running. */
export function killAllChildrenNow(): void {
  for (const child of children) child.kill('SIGKILL');
}

export interface Message {
  type: string;
  [key: string]: unknown;
}

/** Waits for the first IPC message of `type` from a child, failing after `timeoutMs`. */
export function nextMessage<T extends { type: string }>(
  child: ChildProcess,
  type: string,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if ((message as Message | null)?.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before sending "${type}"`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no "${type}" message within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Runs `task` over `items` with at most `concurrency` in flight (bench-local, no deps). */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** A minimal Lambda context: enough for middy (which checks getRemainingTimeInMillis). */
export function lambdaContext(functionName: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${REGION}:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: `bench-${Math.random().toString(36).slice(2)}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
