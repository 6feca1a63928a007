import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '../../scripts/redis-server.js';

export interface NpmStart {
  child: ChildProcess;
  wsPort: number;
  lambdaPort: number;
  httpPort: number;
  /** Everything it printed so far (its last 200 KB once past 1 MB). */
  output(): string;
}

/**
 * Runs scripts/start.ts as `npm start` does (one Node process with tsx as its
 * loader) on free ports, in its own process group so a caller can signal the
 * whole group as Ctrl-C does. `env` is its whole environment.
 */
export async function spawnNpmStart(env: NodeJS.ProcessEnv): Promise<NpmStart> {
  const [wsPort, lambdaPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
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
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 1_000_000) output = output.slice(-200_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return { child, wsPort, lambdaPort, httpPort, output: () => output };
}
