import { describe, expect, it } from 'vitest';
import { frameBody, parseWebSocketEvent } from '../../lib/edge/events.js';
import {
  ConfigError,
  ForbiddenError,
  PushwireError,
  TooLargeError,
  toPublicError,
  UnauthorizedError,
  UnknownConnectionError,
  ValidationError,
} from '../../lib/errors.js';

describe('parseWebSocketEvent', () => {
  it('reads the connection id, domain, stage, query and body of an API Gateway event', () => {
    // Prepare
    const event = {
      requestContext: {
        connectionId: 'L0SM9cOFvHcCIhw=',
        domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
        stage: 'prod',
        connectedAt: 1_732_752_000_000,
        routeKey: '$default',
        requestId: 'ignored',
      },
      queryStringParameters: { token: 'jwt', since: '0' },
      body: '{"action":"ping"}',
      isBase64Encoded: false,
    };

    // Act
    const parsed = parseWebSocketEvent(event);

    // Assess
    expect(parsed).toEqual({
      requestContext: {
        connectionId: 'L0SM9cOFvHcCIhw=',
        domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
        stage: 'prod',
        connectedAt: 1_732_752_000_000,
      },
      queryStringParameters: { token: 'jwt', since: '0' },
      body: '{"action":"ping"}',
      isBase64Encoded: false,
    });
  });

  it('fills in a local domain and stage when the event has none', () => {
    // Act
    const parsed = parseWebSocketEvent({ requestContext: { connectionId: 'c1' } });

    // Assess
    expect(parsed.requestContext.domainName).toBe('localhost');
    expect(parsed.requestContext.stage).toBe('local');
  });

  it('accepts null query parameters and a null body ($connect and $disconnect events)', () => {
    // Act
    const parsed = parseWebSocketEvent({
      requestContext: { connectionId: 'c1' },
      queryStringParameters: null,
      body: null,
    });

    // Assess
    expect(parsed.queryStringParameters).toBeNull();
    expect(parsed.body).toBeNull();
  });

  it.each([
    ['no requestContext', {}, /requestContext/],
    [
      'an empty connection id',
      { requestContext: { connectionId: '' } },
      /requestContext\.connectionId/,
    ],
    ['a numeric body', { requestContext: { connectionId: 'c1' }, body: 5 }, /body/],
    ['not an object', 'event', /^not an API Gateway WebSocket event/],
  ])('refuses an event with %s, naming what is wrong', (_label, event, message) => {
    // Act
    const parse = () => parseWebSocketEvent(event);

    // Assess
    expect(parse).toThrow(ValidationError);
    expect(parse).toThrow(message);
  });
});

describe('frameBody', () => {
  const context = { connectionId: 'c1', domainName: 'localhost', stage: 'local' };

  it('returns a text frame as it is', () => {
    // Act
    const body = frameBody({ requestContext: context, body: '{"action":"ping"}' });

    // Assess
    expect(body).toBe('{"action":"ping"}');
  });

  it.each([
    ['a Uint8Array', (text: string) => new Uint8Array(Buffer.from(text))],
    ['a Buffer', (text: string) => Buffer.from(text)],
  ])('reads a binary frame handed over as %s (serverless-offline) as UTF-8', (_how, wrap) => {
    // Prepare
    const text = '{"action":"ping"}';
    const event = parseWebSocketEvent({ requestContext: context, body: wrap(text) });

    // Act
    const body = frameBody(event);

    // Assess
    expect(body).toBe(text);
  });

  it('decodes a base64-encoded (binary) frame as UTF-8', () => {
    // Prepare
    const text = '{"action":"subscribe","topic":"café"}';

    // Act
    const body = frameBody({
      requestContext: context,
      body: Buffer.from(text).toString('base64'),
      isBase64Encoded: true,
    });

    // Assess
    expect(body).toBe(text);
  });

  it.each([
    ['absent', undefined],
    ['null', null],
  ])('returns undefined when the body is %s', (_label, value) => {
    // Act
    const body = frameBody({ requestContext: context, body: value });

    // Assess
    expect(body).toBeUndefined();
  });
});

describe('toPublicError', () => {
  it.each([
    [new ValidationError('bad frame', 'invalid_frame'), 'invalid_frame', 400, false],
    [new TooLargeError('too big'), 'too_large', 413, false],
    [new UnauthorizedError(), 'unauthorized', 401, false],
    [new ForbiddenError('not yours'), 'forbidden', 403, false],
    [new UnknownConnectionError('c1='), 'unknown_connection', 410, true],
  ])(
    'shows %s with its code, status, message and whether it closes the socket',
    (error, code, status, closes) => {
      // Act
      const shown = toPublicError(error);

      // Assess
      expect(shown).toEqual({ code, status, message: error.message, closesConnection: closes });
    },
  );

  it.each([
    ['a plain Error', new Error('ECONNREFUSED 10.0.0.1:6379')],
    ['a hidden PushwireError', new PushwireError('x', 'secret detail', 400, false)],
    ['a ConfigError', new ConfigError('JWT_SECRET is required')],
    ['a string', 'oops'],
    ['undefined', undefined],
  ])('hides %s behind internal / 500', (_label, error) => {
    // Act
    const shown = toPublicError(error);

    // Assess
    expect(shown).toEqual({
      code: 'internal',
      message: 'internal error',
      status: 500,
      closesConnection: true,
    });
  });

  it('says which connection is unknown', () => {
    // Act
    const error = new UnknownConnectionError('abc=');

    // Assess
    expect(error.message).toBe('connection abc= is not registered');
  });
});
