import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DEV_AWS_ENV } from '../../scripts/local-env.js';
import { freePort } from '../../scripts/redis-server.js';

export interface Offline {
  wsPort: number;
  lambdaPort: number;
  /** ws://localhost:<port>?<query> */
  wsUrl(query: Record<string, string>): string;
  /** Invokes a function (publish, presence, kick, deliver) and returns its parsed JSON result. */
  invoke<T = unknown>(functionKey: string, payload: unknown): Promise<T>;
  /** Everything serverless-offline printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs pushwire exactly as a user does (`npm start`, i.e. scripts/start.ts ->
 * osls offline) on free ports, against the given Redis, and resolves once its
 * WebSocket server listens.
 */
export async function startOffline(
  redisUrl: string,
  env: Record<string, string> = {},
): Promise<Offline> {
  const [wsPort, lambdaPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const buildDir = `.esbuild-test-${wsPort}`;
  const child: ChildProcess = spawn(
    'node_modules/.bin/tsx',
    [
      'scripts/start.ts',
      '--websocketPort',
      String(wsPort),
      '--lambdaPort',
      String(lambdaPort),
      '--httpPort',
      String(httpPort),
    ],
    {
      env: { ...process.env, ...env, REDIS_URL: redisUrl, PUSHWIRE_BUILD_DIR: buildDir },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serverless-offline did not start:\n${output.slice(-3000)}`)),
      90_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('[websocket] listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serverless-offline exited with ${code}:\n${output.slice(-3000)}`));
    });
  });

  const lambda = new LambdaClient({
    region: DEV_AWS_ENV.AWS_REGION,
    endpoint: `http://localhost:${lambdaPort}`,
    credentials: {
      accessKeyId: DEV_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: DEV_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
  });

  return {
    wsPort,
    lambdaPort,
    wsUrl: (query) => `ws://localhost:${wsPort}?${new URLSearchParams(query)}`,
    invoke: async <T>(functionKey: string, payload: unknown) => {
      const response = await lambda.send(
        new InvokeCommand({
          FunctionName: `pushwire-local-${functionKey}`,
          Payload: Buffer.from(JSON.stringify(payload)),
        }),
      );
      const text = Buffer.from(response.Payload ?? new Uint8Array()).toString();
      if (response.FunctionError) throw new Error(`${functionKey} failed: ${text}`);
      return JSON.parse(text) as T;
    },
    output: () => output,
    stop: async () => {
      lambda.destroy();
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        // The whole process group: tsx, osls and the workers it started.
        process.kill(-child.pid, 'SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      }
      rmSync(buildDir, { recursive: true, force: true });
    },
  };
}
