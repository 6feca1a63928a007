import { Logger } from '@aws-lambda-powertools/logger';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  invokeErrors,
  type WebSocketResponse,
  webSocketErrors,
} from '../../lib/edge/middleware.js';
import {
  ForbiddenError,
  PushwireError,
  RateLimitedError,
  TooLargeError,
  UnauthorizedError,
  UnknownConnectionError,
  ValidationError,
} from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';

/** A Lambda context without getRemainingTimeInMillis, so middy sets no timeout. */
const context = {
  functionName: 'unit',
  awsRequestId: 'req-1',
} as Context;

/** A real Powertools logger that prints nothing, with its methods spied on. */
function spiedLogger() {
  const logger = new Logger({ serviceName: 'pushwire-unit', logLevel: 'SILENT' });
  return {
    logger,
    error: vi.spyOn(logger, 'error'),
    info: vi.spyOn(logger, 'info'),
    warn: vi.spyOn(logger, 'warn'),
  };
}

/** A handler that fails with `error` (typed as a WebSocket route handler). */
const throwing = (error: unknown) => async (): Promise<WebSocketResponse> => {
  throw error;
};

describe('webSocketErrors', () => {
  it("echoes the refused frame's ref and a rate_limited error's retryAfter (PW-F3, PW-E3)", async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = (error: unknown) =>
      middy(throwing(error)).use(webSocketErrors({ logger: () => logger }));
    const event = (body: unknown) => ({
      requestContext: { connectionId: 'c1=' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

    // Act
    const limited = await handler(new RateLimitedError('at most 10 replays', 60))(
      event({ action: 'resume', since: '1-0', ref: 'r-7' }),
      context,
    );
    const unknown = await handler(new ValidationError('unknown action', 'unknown_action'))(
      event({ action: 'nope', ref: 'r-8' }),
      context,
    );
    const badRef = await handler(new ValidationError('ref', 'invalid_frame'))(
      event({ action: 'ping', ref: 'x'.repeat(65) }),
      context,
    );
    const notJson = await handler(new ValidationError('not JSON', 'invalid_json'))(
      event('{"ref":"r-9"'),
      context,
    );

    // Assess
    expect(JSON.parse(limited.body as string)).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'at most 10 replays',
      retryAfter: 60,
      ref: 'r-7',
    });
    expect(JSON.parse(unknown.body as string)).toMatchObject({
      code: 'unknown_action',
      ref: 'r-8',
    });
    expect(JSON.parse(badRef.body as string)).not.toHaveProperty('ref');
    expect(JSON.parse(notJson.body as string)).not.toHaveProperty('ref');
  });

  it('answers a ForbiddenError with 403 and an error frame naming the reason', async () => {
    // Prepare
    const { logger, error: logError } = spiedLogger();
    const handler = middy(throwing(new ForbiddenError('your token does not allow topic "x"'))).use(
      webSocketErrors({ logger: () => logger }),
    );

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response).toEqual({ statusCode: 403, body: expect.any(String) });
    expect(JSON.parse(response.body as string)).toEqual({
      type: 'error',
      code: 'forbidden',
      message: 'your token does not allow topic "x"',
    });
    expect(logError).not.toHaveBeenCalled();
  });

  it.each([
    ['an UnauthorizedError', new UnauthorizedError('token expired'), 401, 'unauthorized'],
    [
      'a ValidationError',
      new ValidationError('frame is not valid JSON', 'invalid_json'),
      400,
      'invalid_json',
    ],
    ['a TooLargeError', new TooLargeError('frame is over 32768 bytes'), 413, 'too_large'],
    ['an UnknownConnectionError', new UnknownConnectionError('c1='), 410, 'unknown_connection'],
  ])('answers %s with its status and code', async (_label, thrown, status, code) => {
    // Prepare
    const { logger, info } = spiedLogger();
    const handler = middy(throwing(thrown)).use(webSocketErrors({ logger: () => logger }));

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response.statusCode).toBe(status);
    expect(JSON.parse(response.body as string)).toEqual({
      type: 'error',
      code,
      message: thrown.message,
    });
    expect(info).toHaveBeenCalledWith('request refused', { code, reason: thrown.message });
  });

  it('answers rate_limited with when to retry and, for a subscribe, which topic (issue 21, item 1)', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(throwing(new RateLimitedError('too many replays', 60, 'news'))).use(
      webSocketErrors({ logger: () => logger }),
    );

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response.statusCode).toBe(429);
    expect(JSON.parse(response.body as string)).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'too many replays',
      retryAfter: 60,
      topic: 'news',
    });
  });

  it('answers an unexpected Error with 500 internal, without leaking its message, and logs it whole', async () => {
    // Prepare
    const secret = new Error('connect ECONNREFUSED 10.0.3.7:6379 password=hunter2');
    const { logger, error: logError } = spiedLogger();
    const handler = middy(throwing(secret)).use(webSocketErrors({ logger: () => logger }));

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response.statusCode).toBe(500);
    expect(JSON.parse(response.body as string)).toEqual({
      type: 'error',
      code: 'internal',
      message: 'internal error',
    });
    expect(response.body).not.toContain('hunter2');
    expect(response.body).not.toContain('ECONNREFUSED');
    expect(logError).toHaveBeenCalledWith('request failed', { error: secret });
  });

  it('treats a PushwireError not meant to be shown as internal', async () => {
    // Prepare
    const hidden = new PushwireError('redis', 'NOSCRIPT in 10.0.3.7', 400, false);
    const { logger } = spiedLogger();
    const handler = middy(throwing(hidden)).use(webSocketErrors({ logger: () => logger }));

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('NOSCRIPT');
  });

  it('leaves a successful response alone', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(async () => ({ statusCode: 200, body: '{"type":"pong"}' })).use(
      webSocketErrors({ logger: () => logger }),
    );

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response).toEqual({ statusCode: 200, body: '{"type":"pong"}' });
  });
});

describe('webSocketErrors: errors that close the connection', () => {
  const api = mockClient(ApiGatewayManagementApiClient);
  const gateway = new AwsGateway({ region: 'eu-west-1', sleep: async () => undefined });
  /** A `$default` event as API Gateway sends it (cloned per test). */
  const frameEvent = () => ({
    requestContext: {
      connectionId: 'c1=',
      domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
      stage: 'prod',
    },
    body: '{"action":"ping"}',
  });
  const sent = () =>
    api.calls().map((call) => {
      const input = call.args[0].input as { ConnectionId: string; Data?: Uint8Array };
      return {
        command: call.args[0].constructor.name,
        connectionId: input.ConnectionId,
        ...(input.Data && { frame: JSON.parse(Buffer.from(input.Data).toString('utf8')) }),
      };
    });

  beforeEach(() => {
    api.reset();
    api.on(PostToConnectionCommand).resolves({});
    api.on(DeleteConnectionCommand).resolves({});
  });

  it('posts the unknown_connection frame to the connection, then closes it, and answers without a body', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(throwing(new UnknownConnectionError('c1='))).use(
      webSocketErrors({ logger: () => logger, gateway: () => gateway }),
    );

    // Act
    const response = await handler(frameEvent(), context);

    // Assess
    expect(sent()).toEqual([
      {
        command: 'PostToConnectionCommand',
        connectionId: 'c1=',
        frame: {
          type: 'error',
          code: 'unknown_connection',
          message: 'connection c1= is not registered',
        },
      },
      { command: 'DeleteConnectionCommand', connectionId: 'c1=' },
    ]);
    expect(await api.call(0).thisValue.config.endpoint?.()).toMatchObject({
      hostname: 'abc.execute-api.eu-west-1.amazonaws.com',
      path: '/prod',
    });
    expect(response).toEqual({ statusCode: 410 });
  });

  it('uses the configured callback URL, read per request', async () => {
    // Prepare
    const { logger } = spiedLogger();
    let callbackUrl = 'http://localhost:3001';
    const handler = middy(throwing(new UnknownConnectionError('c1='))).use(
      webSocketErrors({
        logger: () => logger,
        gateway: () => gateway,
        callbackUrl: () => callbackUrl,
      }),
    );

    // Act
    await handler(frameEvent(), context);
    callbackUrl = 'http://localhost:4001';
    await handler(frameEvent(), context);

    // Assess
    const endpoints = await Promise.all(
      api.calls().map(async (call) => (await call.thisValue.config.endpoint?.())?.port),
    );
    expect(endpoints).toEqual([3001, 3001, 4001, 4001]);
  });

  it('does not close a connection that is already gone', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(
      Object.assign(new Error('gone'), {
        name: 'GoneException',
        $metadata: { httpStatusCode: 410 },
      }),
    );
    const { logger } = spiedLogger();
    const handler = middy(throwing(new UnknownConnectionError('c1='))).use(
      webSocketErrors({ logger: () => logger, gateway: () => gateway }),
    );

    // Act
    const response = await handler(frameEvent(), context);

    // Assess
    expect(api.commandCalls(DeleteConnectionCommand)).toHaveLength(0);
    expect(response).toEqual({ statusCode: 410 });
  });

  it('logs a management API failure and still answers the error', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(
      Object.assign(new Error('boom'), {
        name: 'InternalServerError',
        $metadata: { httpStatusCode: 500 },
      }),
    );
    const { logger, warn } = spiedLogger();
    const handler = middy(throwing(new UnknownConnectionError('c1='))).use(
      webSocketErrors({ logger: () => logger, gateway: () => gateway }),
    );

    // Act
    const response = await handler(frameEvent(), context);

    // Assess
    expect(response).toEqual({ statusCode: 410 });
    expect(warn).toHaveBeenCalledWith('could not close the connection after an error', {
      connectionId: 'c1=',
      reason: expect.stringContaining('HTTP 500'),
    });
  });

  it('answers errors that do not close the connection with the frame as body, calling nothing', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(throwing(new ForbiddenError('no'))).use(
      webSocketErrors({ logger: () => logger, gateway: () => gateway }),
    );

    // Act
    const response = await handler(frameEvent(), context);

    // Assess
    expect(api.calls()).toHaveLength(0);
    expect(response.statusCode).toBe(403);
    expect(JSON.parse(response.body as string)).toMatchObject({ code: 'forbidden' });
  });

  it('closes the connection after an internal error too, showing only internal', async () => {
    // Prepare
    // A frame that failed on our side may be half done (a subscribe without
    // its answer): the client is closed and reconnects, re-subscribing.
    const hidden = new PushwireError('x', 'secret', 410, false, { closesConnection: false });
    const { logger } = spiedLogger();
    const handler = middy(throwing(hidden)).use(
      webSocketErrors({ logger: () => logger, gateway: () => gateway }),
    );

    // Act
    const response = await handler(frameEvent(), context);

    // Assess
    expect(sent()).toEqual([
      {
        command: 'PostToConnectionCommand',
        connectionId: 'c1=',
        frame: { type: 'error', code: 'internal', message: 'internal error' },
      },
      { command: 'DeleteConnectionCommand', connectionId: 'c1=' },
    ]);
    expect(response).toEqual({ statusCode: 500 });
  });
});

describe('invokeErrors', () => {
  it('returns { error: { code, message } } for a ValidationError instead of throwing', async () => {
    // Prepare
    const { logger, info } = spiedLogger();
    const handler = middy(
      throwing(new ValidationError('invalid publish request: data is required')),
    ).use(invokeErrors({ logger: () => logger }));

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response).toEqual({
      error: { code: 'invalid_request', message: 'invalid publish request: data is required' },
    });
    expect(info).toHaveBeenCalledWith('request refused', {
      code: 'invalid_request',
      reason: 'invalid publish request: data is required',
    });
  });

  it('returns a TooLargeError as a value too (a retry cannot fix it)', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(throwing(new TooLargeError('message is 200000 bytes'))).use(
      invokeErrors({ logger: () => logger }),
    );

    // Act
    const response = await handler({}, context);

    // Assess
    expect(response).toEqual({ error: { code: 'too_large', message: 'message is 200000 bytes' } });
  });

  it('rethrows an unexpected Error so Lambda retries the invocation, and logs it', async () => {
    // Prepare
    const failure = new Error('redis unavailable');
    const { logger, error: logError } = spiedLogger();
    const handler = middy(throwing(failure)).use(invokeErrors({ logger: () => logger }));

    // Act
    const outcome = handler({}, context);

    // Assess
    await expect(outcome).rejects.toBe(failure);
    expect(logError).toHaveBeenCalledWith('invocation failed', { error: failure });
  });

  it.each([
    ['a hidden PushwireError', new PushwireError('redis', 'internal detail', 400, false)],
    ['a PushwireError with a 5xx status', new PushwireError('unavailable', 'try later', 503)],
  ])('rethrows %s', async (_label, thrown) => {
    // Prepare
    const { logger } = spiedLogger();
    const handler = middy(throwing(thrown)).use(invokeErrors({ logger: () => logger }));

    // Act
    const outcome = handler({}, context);

    // Assess
    await expect(outcome).rejects.toBe(thrown);
  });

  it('leaves request.response unset for an error it does not handle', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const onError = invokeErrors({ logger: () => logger }).onError;
    const request = {
      event: {},
      context,
      response: undefined as unknown,
      error: new Error('boom'),
      internal: {},
    };

    // Act
    await onError?.(request);

    // Assess
    expect(onError).toBeTypeOf('function');
    expect(request.response).toBeUndefined();
  });

  it('sets request.response for an error it handles', async () => {
    // Prepare
    const { logger } = spiedLogger();
    const onError = invokeErrors({ logger: () => logger }).onError;
    const request = {
      event: {},
      context,
      response: undefined as unknown,
      error: new ValidationError('bad'),
      internal: {},
    };

    // Act
    await onError?.(request);

    // Assess
    expect(request.response).toEqual({ error: { code: 'invalid_request', message: 'bad' } });
  });
});
