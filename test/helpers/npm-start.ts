import { type ChildProcess, spawn } from 'node:child_process';
import { delimiter, dirname } from 'node:path';
import { freePort } from '../../scripts/redis-server.js';

export interface Ports {
  wsPort: number;
  lambdaPort: number;
  httpPort: number;
}

export interface NpmStart extends Ports {
  child: ChildProcess;
  /** Everything it printed so far (its last 200 KB once past 1 MB). */
  output(): string;
  /**
   * Resolves once it says "pushwire is up" (scripts/start.ts prints it when
   * the WebSocket server's port is open and the HTTP API listens); rejects if
   * it exits first or takes longer than `timeoutMs`.
   */
  whenUp(timeoutMs: number): Promise<void>;
}

/** Three free ports: WebSocket, Lambda Invoke API, HTTP API. */
export async function freePorts(): Promise<Ports> {
  return { wsPort: await freePort(), lambdaPort: await freePort(), httpPort: await freePort() };
}

/**
 * Runs scripts/start.ts as `npm start` does (one Node process with tsx as its
 * loader), in its own process group so a caller can signal the whole group as
 * Ctrl-C does. `env` is its whole environment; `ports` are free ones unless
 * given (to restart an instance where its clients reconnect); `args` go on to
 * serverless-offline; `node` is the Node binary to run it all on (default: this one).
 */
export async function spawnNpmStart(
  env: NodeJS.ProcessEnv,
  options: { ports?: Ports; args?: string[]; node?: string } = {},
): Promise<NpmStart> {
  const { wsPort, lambdaPort, httpPort } = options.ports ?? (await freePorts());
  // Another Node binary runs this script and, first on PATH, serverless-offline
  // (node_modules/.bin/osls starts with `#!/usr/bin/env node`) and the functions.
  const node = options.node ?? process.execPath;
  if (options.node) env = { ...env, PATH: `${dirname(node)}${delimiter}${env['PATH'] ?? ''}` };
  const child = spawn(
    node,
    [
      '--import',
      'tsx',
      'scripts/start.ts',
      '--websocketPort',
      String(wsPort),
      '--lambdaPort',
      String(lambdaPort),
      '--httpPort',
      String(httpPort),
      ...(options.args ?? []),
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 1_000_000) output = output.slice(-200_000);
    for (const check of waiters) check();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const whenUp = (timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (output.includes('pushwire is up')) done();
      };
      const onExit = (code: number | null) =>
        done(new Error(`npm start exited with ${code}:\n${output.slice(-3000)}`));
      const timer = setTimeout(
        () =>
          done(new Error(`npm start was not up within ${timeoutMs} ms:\n${output.slice(-3000)}`)),
        timeoutMs,
      );
      waiters.add(check);
      child.once('exit', onExit);
      check();
    });
  return { child, wsPort, lambdaPort, httpPort, output: () => output, whenUp };
}
