import {
  ApiGatewayManagementApiClient,
  ApiGatewayManagementApiServiceException,
  DeleteConnectionCommand,
  GoneException,
  LimitExceededException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isGone, isThrottled, isTransient } from '../../lib/gateway/gateway.js';
import { AwsGateway, type AwsGatewayOptions } from '../../lib/gateway/sdk.js';

const ENDPOINT = 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod';
const OTHER_ENDPOINT = 'https://def456.execute-api.eu-west-1.amazonaws.com/prod';
const data = Buffer.from('{"type":"pong"}');

const api = mockClient(ApiGatewayManagementApiClient);

const gone = () => new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } });
const throttled = () =>
  new LimitExceededException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } });
/** What serverless-offline's bare 410 becomes in the SDK: no error code, just the status. */
const offlineGone = () =>
  new ApiGatewayManagementApiServiceException({
    name: 'Unknown',
    $fault: 'client',
    message: 'UnknownError',
    $metadata: { httpStatusCode: 410 },
  });
const serverError = () =>
  new ApiGatewayManagementApiServiceException({
    name: 'InternalServerErrorException',
    $fault: 'server',
    message: 'boom',
    $metadata: { httpStatusCode: 500 },
  });

/** A gateway whose backoff waits are recorded instead of slept. */
function gatewayWithRecordedSleeps(options: Partial<AwsGatewayOptions> = {}) {
  const sleeps: number[] = [];
  const gateway = new AwsGateway({
    region: 'eu-west-1',
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
  return { gateway, sleeps };
}

beforeEach(() => {
  api.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('AwsGateway.post', () => {
  it('returns ok and sends the connection id and data when the post succeeds', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('ok');
    const calls = api.commandCalls(PostToConnectionCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toEqual({ ConnectionId: 'conn-1=', Data: data });
  });

  it('returns gone (not an exception) when API Gateway answers GoneException', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(gone());
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('gone');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it("returns gone for serverless-offline's bare 410 whose error name is Unknown", async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(offlineGone());
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('gone');
  });

  it('returns gone for any error name as long as the HTTP status is 410', async () => {
    // Prepare
    const error = Object.assign(new Error('whatever'), {
      name: 'SomethingElse',
      $metadata: { httpStatusCode: 410 },
    });
    api.on(PostToConnectionCommand).rejects(error);
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('gone');
  });

  it('retries a 500 with the same backoff as throttling and returns ok once a retry succeeds', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejectsOnce(serverError()).resolves({});
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('ok');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(2);
    expect(sleeps).toEqual([25]);
  });

  it.each([
    ['a reset socket', () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['a hung-up socket', () => new Error('socket hang up')],
    [
      "the SDK's request timeout",
      () => Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }),
    ],
    [
      'a 503 without a modelled name',
      () => Object.assign(new Error('Service Unavailable'), { $metadata: { httpStatusCode: 503 } }),
    ],
  ])('retries %s and returns ok once a retry succeeds', async (_label, failure) => {
    // Prepare
    api.on(PostToConnectionCommand).rejectsOnce(failure()).rejectsOnce(failure()).resolves({});
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('ok');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(3);
    expect(sleeps).toEqual([25, 50]);
  });

  it('gives up on a 5xx after throttleMaxAttempts and throws it unchanged', async () => {
    // Prepare
    const error = serverError();
    api.on(PostToConnectionCommand).rejects(error);
    const { gateway } = gatewayWithRecordedSleeps({ throttleMaxAttempts: 3 });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBe(error);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(3);
  });

  it('throws a 403 unchanged and does not retry it', async () => {
    // Prepare
    const error = new ApiGatewayManagementApiServiceException({
      name: 'ForbiddenException',
      $fault: 'client',
      message: 'Forbidden',
      $metadata: { httpStatusCode: 403 },
    });
    api.on(PostToConnectionCommand).rejects(error);
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBe(error);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('retries a LimitExceededException and returns ok once a retry succeeds', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejectsOnce(throttled()).rejectsOnce(throttled()).resolves({});
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('ok');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it('retries a bare HTTP 429 whatever the error is called', async () => {
    // Prepare
    const bare429 = Object.assign(new Error('Too Many Requests'), {
      name: 'Unknown',
      $metadata: { httpStatusCode: 429 },
    });
    api.on(PostToConnectionCommand).rejectsOnce(bare429).resolves({});
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('ok');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
  });

  it('backs off exponentially: each wait is twice the previous one for the same jitter', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(throttled());
    const { gateway, sleeps } = gatewayWithRecordedSleeps({
      throttleMaxAttempts: 5,
      throttleBaseDelayMs: 40,
      throttleBudgetMs: 1_000_000,
      random: () => 0.5,
    });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(LimitExceededException);
    expect(sleeps).toEqual([20, 40, 80, 160]);
  });

  it('applies full jitter: the wait is the random fraction of the exponential ceiling', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejectsOnce(throttled()).rejectsOnce(throttled()).resolves({});
    const draws = [0.25, 0.75];
    const { gateway, sleeps } = gatewayWithRecordedSleeps({
      throttleBaseDelayMs: 100,
      random: () => draws.shift() ?? 0,
    });

    // Act
    await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess: ceilings are 100 then 200
    expect(sleeps).toEqual([25, 150]);
  });

  it('gives up after throttleMaxAttempts attempts and rethrows the throttling error', async () => {
    // Prepare
    const error = throttled();
    api.on(PostToConnectionCommand).rejects(error);
    const { gateway, sleeps } = gatewayWithRecordedSleeps({
      throttleMaxAttempts: 3,
      throttleBudgetMs: 1_000_000,
    });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBe(error);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it('makes a single attempt when throttleMaxAttempts is 1', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(throttled());
    const { gateway, sleeps } = gatewayWithRecordedSleeps({ throttleMaxAttempts: 1 });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(LimitExceededException);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('gives up before a wait that would overrun throttleBudgetMs, counting time already waited', async () => {
    // Prepare: a fake clock that only moves when the gateway sleeps
    vi.useFakeTimers({ toFake: ['Date'], now: 1_700_000_000_000 });
    api.on(PostToConnectionCommand).rejects(throttled());
    const sleeps: number[] = [];
    const gateway = new AwsGateway({
      region: 'eu-west-1',
      throttleMaxAttempts: 20,
      throttleBaseDelayMs: 100,
      throttleBudgetMs: 1_000,
      random: () => 0.999_999,
      sleep: async (ms) => {
        sleeps.push(ms);
        vi.setSystemTime(Date.now() + ms);
      },
    });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess: waits 99 + 199 + 399 = 697 ms; the next (799) would end at 1496 > 1000
    await expect(outcome).rejects.toBeInstanceOf(LimitExceededException);
    expect(sleeps).toEqual([99, 199, 399]);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(4);
  });

  it('gives up at once when even the first wait exceeds the budget', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(throttled());
    const { gateway, sleeps } = gatewayWithRecordedSleeps({
      throttleBaseDelayMs: 10_000,
      throttleBudgetMs: 1_000,
      random: () => 0.5,
    });

    // Act
    const outcome = gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(LimitExceededException);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('returns gone when a throttled retry then finds the connection gone', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejectsOnce(throttled()).rejects(gone());
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.post(ENDPOINT, 'conn-1=', data);

    // Assess
    expect(result).toBe('gone');
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(2);
  });
});

describe('AwsGateway clients', () => {
  it('builds one client per endpoint and reuses it for later calls', () => {
    // Prepare
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const first = gateway.client(ENDPOINT);
    const again = gateway.client(ENDPOINT);
    const other = gateway.client(OTHER_ENDPOINT);

    // Assess
    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(first).toBeInstanceOf(ApiGatewayManagementApiClient);
  });

  it('points each built client at its endpoint and region, with SDK retries off', async () => {
    // Prepare
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const client = gateway.client(OTHER_ENDPOINT);
    const endpoint = await client.config.endpoint?.();
    const region = await client.config.region();
    const maxAttempts = await client.config.maxAttempts();

    // Assess
    expect(endpoint?.hostname).toBe('def456.execute-api.eu-west-1.amazonaws.com');
    expect(endpoint?.path).toBe('/prod');
    expect(region).toBe('eu-west-1');
    expect(maxAttempts).toBe(1);
  });

  it('sends each post through the client of its own endpoint', async () => {
    // Prepare
    api.on(PostToConnectionCommand).resolves({});
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    await gateway.post(ENDPOINT, 'a=', data);
    await gateway.post(OTHER_ENDPOINT, 'b=', data);
    await gateway.post(ENDPOINT, 'c=', data);

    // Assess
    const senders = api.send.getCalls().map((call) => call.thisValue);
    expect(senders).toEqual([
      gateway.client(ENDPOINT),
      gateway.client(OTHER_ENDPOINT),
      gateway.client(ENDPOINT),
    ]);
  });

  it('uses the clientFactory when one is given, once per endpoint', () => {
    // Prepare
    const built: string[] = [];
    const gateway = new AwsGateway({
      region: 'eu-west-1',
      clientFactory: (endpoint) => {
        built.push(endpoint);
        return new ApiGatewayManagementApiClient({ endpoint, region: 'eu-west-1' });
      },
    });

    // Act
    gateway.client(ENDPOINT);
    gateway.client(ENDPOINT);
    gateway.client(OTHER_ENDPOINT);

    // Assess
    expect(built).toEqual([ENDPOINT, OTHER_ENDPOINT]);
  });
});

describe('AwsGateway.close', () => {
  it('deletes the connection with DeleteConnectionCommand and returns ok', async () => {
    // Prepare
    api.on(DeleteConnectionCommand).resolves({});
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.close(ENDPOINT, 'conn-9=');

    // Assess
    expect(result).toBe('ok');
    const calls = api.commandCalls(DeleteConnectionCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toEqual({ ConnectionId: 'conn-9=' });
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(0);
  });

  it('returns gone when the connection is already gone', async () => {
    // Prepare
    api.on(DeleteConnectionCommand).rejects(offlineGone());
    const { gateway } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.close(ENDPOINT, 'conn-9=');

    // Assess
    expect(result).toBe('gone');
  });

  it('retries a throttled close like a throttled post', async () => {
    // Prepare
    api.on(DeleteConnectionCommand).rejectsOnce(throttled()).resolves({});
    const { gateway, sleeps } = gatewayWithRecordedSleeps();

    // Act
    const result = await gateway.close(ENDPOINT, 'conn-9=');

    // Assess
    expect(result).toBe('ok');
    expect(api.commandCalls(DeleteConnectionCommand)).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
  });
});

describe('isTransient', () => {
  it.each([
    ['500', serverError(), true],
    ['502', Object.assign(new Error('x'), { $metadata: { httpStatusCode: 502 } }), true],
    ['504', Object.assign(new Error('x'), { $metadata: { httpStatusCode: 504 } }), true],
    ['TimeoutError', Object.assign(new Error('x'), { name: 'TimeoutError' }), true],
    ['ECONNRESET', Object.assign(new Error('x'), { code: 'ECONNRESET' }), true],
    ['ECONNREFUSED', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), true],
    ['EPIPE', Object.assign(new Error('x'), { code: 'EPIPE' }), true],
    ['socket hang up', new Error('socket hang up'), true],
    ['429', throttled(), false],
    ['410', gone(), false],
    ['403', Object.assign(new Error('x'), { $metadata: { httpStatusCode: 403 } }), false],
    ['413', Object.assign(new Error('x'), { $metadata: { httpStatusCode: 413 } }), false],
    ['a plain Error', new Error('bug'), false],
    ['null', null, false],
    ['a string', 'ECONNRESET', false],
  ])('isTransient(%s) is %s', (_label, error, expected) => {
    // Act + Assess
    expect(isTransient(error)).toBe(expected);
  });
});

describe('isGone and isThrottled', () => {
  it.each([
    ['GoneException', gone(), true],
    ['bare 410', offlineGone(), true],
    ['500', serverError(), false],
    ['429', throttled(), false],
    ['undefined', undefined, false],
    ['a string', 'gone', false],
  ])('isGone(%s) is %s', (_label, error, expected) => {
    // Act + Assess
    expect(isGone(error)).toBe(expected);
  });

  it.each([
    ['LimitExceededException', throttled(), true],
    [
      'ThrottlingException',
      Object.assign(new Error('slow down'), { name: 'ThrottlingException' }),
      true,
    ],
    ['bare 429', Object.assign(new Error('x'), { $metadata: { httpStatusCode: 429 } }), true],
    ['410', gone(), false],
    ['500', serverError(), false],
    ['null', null, false],
  ])('isThrottled(%s) is %s', (_label, error, expected) => {
    // Act + Assess
    expect(isThrottled(error)).toBe(expected);
  });
});
