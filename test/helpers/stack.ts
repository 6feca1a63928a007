import { afterAll, afterEach, beforeAll } from 'vitest';
import type { PublishResult } from '../../lib/delivery/publish.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import type { Frame, TestClient } from './client.js';
import { assertContractKept } from './contract.js';
import { type Offline, RegistryProbe, startOffline, type TrackedClient } from './offline.js';

/**
 * What an end-to-end file runs against: a private Redis, one or more
 * pushwire instances under serverless-offline sharing it, and a probe on the
 * registry. Started before the file's tests; the clients a test opened
 * (pushed to `open`) are closed after it; everything stops after the file.
 */
export interface Stack {
  redis: RedisServer;
  /** The first instance. */
  offline: Offline;
  instances: Offline[];
  probe: RegistryProbe;
  open: TestClient[];
}

export function useStack(
  options: { env?: Record<string, string>; instances?: number; args?: string[] } = {},
): Stack {
  const stack = { open: [] as TestClient[], instances: [] as Offline[] } as Stack;
  beforeAll(async () => {
    stack.redis = await startRedisServer();
    stack.instances = await Promise.all(
      Array.from({ length: options.instances ?? 1 }, () =>
        startOffline(stack.redis.url, options.env, options.args),
      ),
    );
    stack.offline = stack.instances[0] as Offline;
    stack.probe = new RegistryProbe(stack.redis.url);
  });
  afterEach(async () => {
    await Promise.all(stack.open.map((c) => c.close()));
    stack.open = [];
    // Any frame or HTTP exchange docs/ does not describe fails the test that saw it.
    assertContractKept();
  });
  afterAll(async () => {
    await stack.probe?.quit();
    await Promise.all(stack.instances.map((i) => i.stop()));
    await stack.redis?.stop();
  });
  return stack;
}

/** Connects a tracked client of `userId` to `instance` and closes it after the test. */
export async function connectTracked(
  stack: Stack,
  instance: Offline,
  userId: string,
  token: string,
): Promise<TrackedClient> {
  const tracked = await stack.probe.connect(instance, userId, token);
  stack.open.push(tracked.client);
  return tracked;
}

/** Invokes `publish` and fails the test if it was refused. */
export async function publishOk(instance: Offline, payload: unknown): Promise<PublishResult> {
  const reply = await instance.invoke<PublishResult | { error: unknown }>('publish', payload);
  if ('error' in reply) throw new Error(`publish refused: ${JSON.stringify(reply)}`);
  return reply;
}

export const isMessage = (id: string) => (f: Frame) => f.type === 'message' && f['id'] === id;
export const messageIds = (c: TrackedClient) => c.client.messages().map((m) => m['id']);

/** Retries an assertion until it passes; rethrows its last failure after `timeoutMs`. */
export async function untilPasses(
  check: () => Promise<unknown>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
