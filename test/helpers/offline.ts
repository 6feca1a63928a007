import { rmSync } from 'node:fs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { Redis } from 'ioredis';
import { createKeys, type Keys } from '../../lib/registry/keys.js';
import { DEV_AWS_ENV } from '../../scripts/local-env.js';
import { TestClient } from './client.js';
import { checkHttpExchange, ERROR_STATUS, type HttpOperation } from './contract.js';
import { freePorts, type Ports, spawnNpmStart } from './npm-start.js';

export interface Offline {
  wsPort: number;
  lambdaPort: number;
  /** The HTTP API (POST /publish, /presence, /kick). */
  httpPort: number;
  /** ws://localhost:<port>?<query> */
  wsUrl(query: Record<string, string>): string;
  /** Invokes a function (publish, presence, kick, deliver) and returns its parsed JSON result. */
  invoke<T = unknown>(functionKey: string, payload: unknown): Promise<T>;
  /** Everything serverless-offline printed so far. */
  output(): string;
  stop(): Promise<void>;
  /** Kills the whole instance at once (SIGKILL to its process group): a crash. */
  crash(): Promise<void>;
}

/**
 * Runs pushwire exactly as a user does (`npm start`, i.e. scripts/start.ts ->
 * osls offline) on free ports, against the given Redis, and resolves once its
 * WebSocket server listens.
 */
export async function startOffline(
  redisUrl: string,
  env: Record<string, string> = {},
  /** More serverless-offline options, e.g. `['--webSocketHardTimeout', '4']`. */
  args: string[] = [],
  /** Fixed ports (to restart an instance where its clients reconnect); free ones by default. */
  ports?: Ports,
): Promise<Offline> {
  const fixed = ports ?? (await freePorts());
  const buildDir = `.esbuild-test-${fixed.wsPort}`;
  const { child, wsPort, lambdaPort, httpPort, output, whenUp } = await spawnNpmStart(
    {
      // One fixed build: an edit anywhere in the tree during a run must not
      // reload the functions (that kills invocations in flight).
      PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never',
      ...process.env,
      ...env,
      REDIS_URL: redisUrl,
      PUSHWIRE_BUILD_DIR: buildDir,
    },
    { ports: fixed, args },
  );
  await whenUp(90_000);

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
    httpPort,
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
      const result = JSON.parse(text) as T;
      // The service operations take and answer what the HTTP API does
      // (docs/openapi.yaml): a refusal as the error body of its status.
      if (['publish', 'presence', 'kick', 'status'].includes(functionKey)) {
        const error = (result as { error?: { code?: string } } | null)?.error;
        const status = error ? (ERROR_STATUS[String(error.code)] ?? 0) : 200;
        checkHttpExchange(functionKey as HttpOperation, payload, status, result);
      }
      return result;
    },
    output,
    crash: async () => {
      lambda.destroy();
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        process.kill(-child.pid, 'SIGKILL');
        await exited;
      }
      rmSync(buildDir, { recursive: true, force: true });
    },
    stop: async () => {
      lambda.destroy();
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        // The whole process group: scripts/start.ts, osls and the workers it started.
        process.kill(-child.pid, 'SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      }
      rmSync(buildDir, { recursive: true, force: true });
    },
  };
}

/**
 * Polls `check` until it returns a value other than undefined/false, and
 * resolves with it; rejects with the last value seen after `timeoutMs`.
 */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5_000,
  what = 'condition',
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await check();
    if (last !== undefined && last !== false) return last as T;
    if (Date.now() > deadline) {
      throw new Error(`${what} not reached within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A client together with the connection id and endpoint pushwire recorded for it. */
export interface TrackedClient {
  client: TestClient;
  connectionId: string;
  endpoint: string;
  /** The audience-set member: `connectionId|endpoint`. */
  member: string;
}

/**
 * Reads pushwire's registry straight from Redis, for e2e tests that must check
 * storage. serverless-offline does not tell a client its connection id, so
 * connect() finds it as the member its `$connect` added to the user's live set.
 */
export class RegistryProbe {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly prefix: string;

  constructor(redisUrl: string, prefix = 'pw:') {
    this.redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
    this.prefix = prefix;
    this.keys = createKeys(prefix);
  }

  /** Live-set members of a user with their scores (expiry, ms). */
  async userLive(userId: string): Promise<Map<string, number>> {
    const flat = await this.redis.zrange(
      this.keys.audience('user', userId).keys.live,
      0,
      -1,
      'WITHSCORES',
    );
    const members = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      members.set(flat[i] as string, Number(flat[i + 1]));
    }
    return members;
  }

  /**
   * Connects a client of `userId` through `offline` and identifies its
   * connection. Connect one client of a user at a time (it diffs the live set).
   */
  async connect(
    offline: Pick<Offline, 'wsUrl'>,
    userId: string,
    token: string,
  ): Promise<TrackedClient> {
    const before = await this.userLive(userId);
    const client = await TestClient.connect(offline.wsUrl({ token }));
    // `$connect` has returned (and so registered) before the handshake completes.
    const added = [...(await this.userLive(userId)).keys()].filter((m) => !before.has(m));
    if (added.length !== 1) {
      await client.close();
      throw new Error(`expected one new live member for ${userId}, found ${added.length}`);
    }
    const member = added[0] as string;
    const bar = member.indexOf('|');
    return {
      client,
      connectionId: member.slice(0, bar),
      endpoint: member.slice(bar + 1),
      member,
    };
  }

  /** Every key matching a glob pattern (SCAN, not KEYS). */
  async scanKeys(pattern = '*'): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found.sort();
  }

  /** Everything that records a connection: records, topic lists and every audience set. */
  async connectionState(): Promise<string[]> {
    const p = this.prefix;
    const patterns = [`${p}c:*`, `${p}u:*:c`, `${p}u:*:r`, `${p}t:*:c`, `${p}t:*:r`, `${p}all`];
    const found = await Promise.all(patterns.map((pattern) => this.scanKeys(pattern)));
    return found.flat().sort();
  }

  /** Waits until no connection is recorded anywhere (every `$disconnect` has run). */
  async waitUntilNoConnections(timeoutMs = 20_000): Promise<void> {
    let left: string[] = [];
    await eventually(
      async () => {
        left = await this.connectionState();
        return left.length === 0;
      },
      timeoutMs,
      'no connection left in Redis',
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; still there: ${left.join(', ')}`);
    });
  }

  quit(): Promise<unknown> {
    return this.redis.quit();
  }
}
