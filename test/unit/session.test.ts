import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { SignJWT } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../lib/auth/tokens.js';
import {
  ForbiddenError,
  PushwireError,
  UnauthorizedError,
  UnknownConnectionError,
} from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import { createKeys } from '../../lib/registry/keys.js';
import type { Connection, ConnectionRecord } from '../../lib/registry/types.js';
import { callbackEndpoint, connect, disconnect, handleFrame } from '../../lib/session/session.js';
import { fakeRegistry } from './fakes.js';

const SECRET = 'session-test-secret-long-enough-for-hs256';
const verifyToken = createTokenVerifier({ secret: SECRET });
const EP = 'https://abc.execute-api.eu-west-1.amazonaws.com/prod';
const keys = createKeys('pw:');
const api = mockClient(ApiGatewayManagementApiClient);

const sign = (sub: string, topics?: string[]) =>
  new SignJWT(topics ? { topics } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));

const connection = (overrides: Partial<Connection> = {}): Connection => ({
  connectionId: 'c1',
  userId: 'alice',
  endpoint: EP,
  connectedAt: 1,
  allowedTopics: ['news', 'team:42:*'],
  topics: [],
  ...overrides,
});

function sessionDeps(registry: ReturnType<typeof fakeRegistry>['registry']) {
  return {
    registry,
    gateway: new AwsGateway({ region: 'eu-west-1', sleep: async () => undefined }),
    verifyToken,
  };
}

async function refusal(promise: Promise<unknown>): Promise<PushwireError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PushwireError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

beforeEach(() => {
  api.reset();
  api.on(PostToConnectionCommand).resolves({});
});

describe('callbackEndpoint', () => {
  it('derives the management endpoint from the domain and stage', () => {
    // Act + Assess
    expect(callbackEndpoint('abc.execute-api.eu-west-1.amazonaws.com', 'prod')).toBe(EP);
  });

  it('prefers a configured callback URL', () => {
    // Act + Assess
    expect(callbackEndpoint('abc.example', 'prod', 'http://localhost:3001')).toBe(
      'http://localhost:3001',
    );
  });
});

describe('connect', () => {
  it('registers the connection with the user, endpoint and allowed topics of its token', async () => {
    // Prepare
    const registered: ConnectionRecord[] = [];
    const { registry } = fakeRegistry({
      admission: async () => ({ revokedAt: null, connections: 0 }),
      register: async (record) => {
        registered.push(record);
      },
    });

    // Act
    const identity = await connect(
      {
        connectionId: 'c1',
        domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
        stage: 'prod',
        connectedAt: 42,
        token: await sign('alice', ['news']),
      },
      { registry, verifyToken },
    );

    // Assess
    expect(identity).toMatchObject({ userId: 'alice', topics: ['news'], endpoint: EP });
    expect(registered).toStrictEqual([
      {
        connectionId: 'c1',
        userId: 'alice',
        endpoint: EP,
        connectedAt: 42,
        allowedTopics: ['news'],
        tokenExpiresAt: identity.expiresAt,
      },
    ]);
  });

  it('keeps a ?since= cursor to replay at the first frame', async () => {
    // Prepare
    const registered: ConnectionRecord[] = [];
    const { registry } = fakeRegistry({
      admission: async () => ({ revokedAt: null, connections: 0 }),
      register: async (record) => {
        registered.push(record);
      },
    });

    // Act
    await connect(
      { connectionId: 'c1', domainName: 'd', stage: 's', token: await sign('alice'), since: '5-0' },
      { registry, verifyToken, callbackUrl: 'http://localhost:3001' },
    );

    // Assess
    expect(registered[0]?.pendingSince).toBe('5-0');
    expect(registered[0]?.endpoint).toBe('http://localhost:3001');
  });

  it('refuses a bad token and writes nothing', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry();

    // Act
    const error = await refusal(
      connect(
        { connectionId: 'c1', domainName: 'd', stage: 's', token: 'nope' },
        { registry, verifyToken },
      ),
    );

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(calls).toEqual([]);
  });

  it('refuses a ?since= that is not a cursor and writes nothing', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry();

    // Act
    const error = await refusal(
      connect(
        {
          connectionId: 'c1',
          domainName: 'd',
          stage: 's',
          token: await sign('alice'),
          since: 'later',
        },
        { registry, verifyToken },
      ),
    );

    // Assess
    expect(error.code).toBe('invalid_cursor');
    expect(calls).toEqual([]);
  });
});

describe('disconnect', () => {
  it('reports whether there was a connection to remove', async () => {
    // Prepare
    const { registry } = fakeRegistry({
      remove: async (id) => (id === 'c1' ? connection() : null),
    });

    // Act
    const known = await disconnect('c1', { registry });
    const unknown = await disconnect('c2', { registry });

    // Assess
    expect(known).toBe(true);
    expect(unknown).toBe(false);
  });
});

describe('handleFrame', () => {
  it('answers ping with pong, carrying the connection id, after renewing the connection', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({ touch: async () => connection() });

    // Act
    const reply = await handleFrame('c1', '{"action":"ping"}', sessionDeps(registry));

    // Assess
    expect(reply).toEqual({ type: 'pong', connectionId: 'c1' });
    expect(methods()).toEqual(['touch']);
  });

  it('refuses a bad frame without touching the registry', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry();

    // Act
    const error = await refusal(handleFrame('c1', '{nope', sessionDeps(registry)));

    // Assess
    expect(error.code).toBe('invalid_json');
    expect(calls).toEqual([]);
  });

  it('refuses a frame from a connection that is not registered', async () => {
    // Prepare
    const { registry } = fakeRegistry({ touch: async () => null });

    // Act
    const error = await refusal(handleFrame('ghost', '{"action":"ping"}', sessionDeps(registry)));

    // Assess
    expect(error).toBeInstanceOf(UnknownConnectionError);
    expect(error.status).toBe(410);
  });

  it('subscribes to a topic the token allows by prefix', async () => {
    // Prepare
    const subscribed: [string, boolean][] = [];
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      subscribe: async (_c, topic, resuming) => {
        subscribed.push([topic, resuming]);
        return true;
      },
    });

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"subscribe","topic":"team:42:alerts"}',
      sessionDeps(registry),
    );

    // Assess
    expect(reply).toEqual({ type: 'subscribed', topic: 'team:42:alerts' });
    expect(subscribed).toEqual([['team:42:alerts', false]]);
  });

  it('refuses a topic the token does not allow, naming it, and subscribes nothing', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({ touch: async () => connection() });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"subscribe","topic":"team:43:alerts"}', sessionDeps(registry)),
    );

    // Assess
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error.message).toContain('"team:43:alerts"');
    expect(methods()).toEqual(['touch']);
  });

  it('unsubscribes from a topic', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry({
      touch: async () => connection(),
      unsubscribe: async () => true,
    });

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"unsubscribe","topic":"news"}',
      sessionDeps(registry),
    );

    // Assess
    expect(reply).toEqual({ type: 'unsubscribed', topic: 'news' });
    expect(calls[1]?.args[1]).toBe('news');
  });

  it('replays missed user messages in order on resume, then answers resumed', async () => {
    // Prepare
    const steps = [
      {
        state: 'more' as const,
        entries: [
          { cursor: '5-0', entry: '{"id":"m1","data":{"n":1}}' },
          { cursor: '6-0', entry: '{"id":"m2","data":{"n":2}}' },
        ],
      },
      { state: 'live' as const },
    ];
    const sinces: string[] = [];
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async (_audience, _recipient, since) => {
        sinces.push(since);
        return steps.shift() ?? { state: 'live' };
      },
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"resume","since":"4"}', sessionDeps(registry));

    // Assess
    expect(reply).toEqual({ type: 'resumed', recovered: true });
    expect(sinces).toEqual(['4-0', '6-0']);
    const frames = api
      .commandCalls(PostToConnectionCommand)
      .map((c) => JSON.parse(Buffer.from(c.args[0].input.Data as Uint8Array).toString()));
    expect(frames).toEqual([
      { type: 'message', id: 'm1', cursor: '5-0', data: { n: 1 } },
      { type: 'message', id: 'm2', cursor: '6-0', data: { n: 2 } },
    ]);
  });
});
