import { Logger } from '@aws-lambda-powertools/logger';
import {
  ApiGatewayManagementApiClient,
  ApiGatewayManagementApiServiceException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { Request } from '@middy/core';
import { mockClient } from 'aws-sdk-client-mock';
import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTokenVerifier } from '../../lib/auth/tokens.js';
import { createRedis } from '../../lib/clients.js';
import { RedisDedupStore } from '../../lib/delivery/dedup.js';
import { publish } from '../../lib/delivery/publish.js';
import { invokeErrors, webSocketErrors } from '../../lib/edge/middleware.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import { createLogger } from '../../lib/logging.js';
import { RedisRegistry } from '../../lib/registry/redis.js';
import { connect, handleFrame } from '../../lib/session/session.js';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { connection, noDedup, publishDeps } from './support.js';

/**
 * Forces the failures that used to leak (Redis refusing writes, a script
 * failing after an EVAL fallback, the management API failing, a refused
 * token) and scans everything the production logger printed for message
 * data, Lua source, the token and the Redis password.
 */

const PASSWORD = 'redis-pw-4f9c2e7a1b';
const MARKER = 'message-data-7d41c0ffee';
const SECRET = 'clean-logs-secret-long-enough-for-hs256';
const api = mockClient(ApiGatewayManagementApiClient);

let server: RedisServer;
let redis: Redis;
let admin: Redis;
let printed: string[] = [];
let restore: (() => void) | undefined;

beforeAll(async () => {
  server = await startRedisServer(['--requirepass', PASSWORD]);
  const url = `redis://:${PASSWORD}@127.0.0.1:${server.port}`;
  redis = createRedis([url], false) as Redis;
  admin = createRedis([url], false) as Redis;
});
afterAll(async () => {
  redis?.disconnect();
  admin?.disconnect();
  await server?.stop();
});
afterEach(async () => {
  restore?.();
  restore = undefined;
  printed = [];
  api.reset();
  await admin.config('SET', 'maxmemory', '0');
});

/** Captures what loggers write to stdout/stderr from now on. */
function capture(): void {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed.push(String(chunk));
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    printed.push(String(chunk));
    return true;
  });
  restore = () => {
    out.mockRestore();
    err.mockRestore();
  };
}

/** Runs the invoke-style error middleware as middy would after `work` threw. */
async function logInvokeFailure(logger: Logger, work: () => Promise<unknown>): Promise<void> {
  const error = await work().then(
    () => {
      throw new Error('expected the work to fail');
    },
    (e: unknown) => e,
  );
  const request = { event: {}, context: {}, error, response: undefined, internal: {} };
  await invokeErrors({ logger: () => logger }).onError?.(request as unknown as Request);
}

function leaks(output: string): string[] {
  return [
    output.includes(MARKER) && 'message data',
    /redis\.call|ZREMRANGEBYSCORE|XADD/.test(output) && 'Lua source',
    output.includes(PASSWORD) && 'Redis password',
  ].filter((x): x is string => typeof x === 'string');
}

const registry = () =>
  new RedisRegistry(redis, {
    prefix: `cl${Math.random()}:`,
    connectionTtlSeconds: 600,
    historySize: 10,
    historyTtlSeconds: 600,
  });

/** A publish whose script fails (WRONGTYPE) after ioredis fell back from EVALSHA to EVAL with the source. */
async function failingScriptPublish(logger: Logger) {
  const r = registry();
  await redis.set(r.userAudience('u1').keys.live, 'not a sorted set');
  await admin.script('FLUSH');
  await logInvokeFailure(logger, () =>
    publish(
      { userId: 'u1', data: { note: MARKER } },
      publishDeps(r, new AwsGateway({ region: 'us-east-1' }), noDedup),
    ),
  );
}

describe('logs stay clean when things fail', () => {
  it('a failing script: the error is logged without its Lua source, keys or data', async () => {
    // Prepare
    capture();

    // Act
    await failingScriptPublish(createLogger());
    restore?.();

    // Assess
    const output = printed.join('');
    expect(output).toMatch(/WRONGTYPE/);
    expect(leaks(output)).toEqual([]);
  });

  it('(control) the stock Powertools formatter would have leaked the same error', async () => {
    // Prepare
    capture();

    // Act
    await failingScriptPublish(new Logger({ serviceName: 'control' }));
    restore?.();

    // Assess
    expect(leaks(printed.join(''))).toContain('Lua source');
  });

  it('Redis refusing writes (maxmemory, noeviction): logged without data or password', async () => {
    // Prepare
    const r = registry();
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    capture();

    // Act
    // The dedup claim (SET NX) is refused, its key (holding the id) in the error's arguments.
    // (The publish script itself is not refused: Redis lets a script that has
    // already written, here ZREMRANGEBYSCORE, go on writing under OOM.)
    const dedup = new RedisDedupStore(redis, (id) => r.keys.dedup(id), {
      ttlSeconds: 60,
      leaseSeconds: 60,
    });
    await logInvokeFailure(createLogger(), () =>
      publish(
        { id: MARKER, userId: 'u2', data: { note: MARKER } },
        publishDeps(r, new AwsGateway({ region: 'us-east-1' }), dedup),
      ),
    );
    restore?.();

    // Assess
    const output = printed.join('');
    expect(output).toMatch(/OOM/);
    expect(leaks(output)).toEqual([]);
  });

  it('the management API failing during a replay: logged without the frame', async () => {
    // Prepare
    const r = registry();
    const record = connection('u3', {
      endpoint: 'https://abc.execute-api.us-east-1.amazonaws.com/prod',
    });
    await r.register(record);
    await r.publish(
      r.userAudience('u3'),
      JSON.stringify({ id: 'm1', data: { note: MARKER } }),
      100,
    );
    const failure = new ApiGatewayManagementApiServiceException({
      name: 'InternalServerError',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
      message: 'internal failure',
    });
    Object.assign(failure, { Data: MARKER, $response: { body: MARKER } });
    api.on(PostToConnectionCommand).rejects(failure);
    const gateway = new AwsGateway({ region: 'us-east-1', sleep: async () => undefined });
    const logger = createLogger();
    capture();

    // Act
    // The replay gives up (the connection goes live again) and says why in a warning.
    const reply = await handleFrame(record.connectionId, '{"action":"resume","since":"0-0"}', {
      registry: r,
      gateway,
      logger,
    });
    restore?.();

    // Assess
    expect(reply).toMatchObject({ type: 'resumed', recovered: false });
    const output = printed.join('');
    expect(output).toMatch(/InternalServerError/);
    expect(leaks(output)).toEqual([]);
  });

  it('a refused token: the refusal is logged without the token or its claims', async () => {
    // Prepare
    const verifyToken = createTokenVerifier({ secret: SECRET, issuer: 'https://app' });
    const token = await new SignJWT({ note: MARKER })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u4')
      .setIssuer('https://other')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
    const logger = createLogger();
    logger.setLogLevel('DEBUG');
    capture();

    // Act
    const error = await connect(
      { connectionId: 'c1', domainName: 'd', stage: 's', token },
      { registry: registry(), verifyToken },
    ).catch((e: unknown) => e);
    logger.error('refused', { error: error as Error });
    const request = { event: {}, context: {}, error, response: undefined, internal: {} };
    await webSocketErrors({ logger: () => logger }).onError?.(request as unknown as Request);
    restore?.();

    // Assess
    const output = printed.join('');
    expect(output).toMatch(/token claim rejected/);
    expect(output).not.toContain(token);
    expect(output).not.toContain(token.split('.')[1]);
    expect(leaks(output)).toEqual([]);
  });
});
