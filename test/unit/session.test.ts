import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
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
import { encodeFrame } from '../../lib/protocol/frames.js';
import { createKeys } from '../../lib/registry/keys.js';
import type { Connection, ConnectionRecord, ConnectionRegistry } from '../../lib/registry/types.js';
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
      register: async (record) => {
        registered.push(record);
        return 'registered';
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
        tokenIssuedAt: identity.issuedAt,
        presenceTopics: [],
      },
    ]);
  });

  it('keeps a ?since= cursor to replay at the first frame', async () => {
    // Prepare
    const registered: ConnectionRecord[] = [];
    const { registry } = fakeRegistry({
      register: async (record) => {
        registered.push(record);
        return 'registered';
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
  it('answers ping with pong, carrying the connection id and the epoch, after renewing the connection', async () => {
    // Prepare
    const { registry, calls, methods } = fakeRegistry({
      touch: async () => ({ ...connection(), userCursor: '1700000000001-0' }),
      epoch: async () => '1700000000000',
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"ping"}', sessionDeps(registry));

    // Assess: and where the user stream stands, read by the touch itself (WIRE.md, pong.cursor)
    expect(reply).toEqual({
      type: 'pong',
      connectionId: 'c1',
      epoch: '1700000000000',
      cursor: '1700000000001-0',
    });
    expect(methods().sort()).toEqual(['epoch', 'touch']);
    expect(calls[0]?.args).toEqual(['c1', true]);
  });

  it('echoes the ref of the frame it answers, and adds none when there was none (PW-F3)', async () => {
    // Prepare
    const { registry } = fakeRegistry({ touch: async () => connection(), epoch: async () => null });

    // Act
    const tagged = await handleFrame('c1', '{"action":"ping","ref":"p-1"}', sessionDeps(registry));
    const untagged = await handleFrame('c1', '{"action":"ping"}', sessionDeps(registry));

    // Assess: the wire text, where an undefined ref is left out
    expect(encodeFrame(tagged)).toBe('{"type":"pong","connectionId":"c1","ref":"p-1"}');
    expect(encodeFrame(untagged)).toBe('{"type":"pong","connectionId":"c1"}');
  });

  it('answers ping without an epoch when none is marked, or it cannot be read', async () => {
    for (const epoch of [async () => null, async () => Promise.reject(new Error('down'))]) {
      const { registry } = fakeRegistry({ touch: async () => connection(), epoch });
      const reply = await handleFrame('c1', '{"action":"ping"}', sessionDeps(registry));
      expect(reply).toEqual({ type: 'pong', connectionId: 'c1' });
    }
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
    const subscribed: string[] = [];
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      subscribeWithCursor: async (_c, topic) => {
        subscribed.push(topic);
        return { outcome: 'subscribed', cursor: '1700000000000-3' };
      },
    });

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"subscribe","topic":"team:42:alerts"}',
      sessionDeps(registry),
    );

    // Assess: with where the stream stood when it joined (WIRE.md, subscribed.cursor)
    expect(reply).toEqual({
      type: 'subscribed',
      topic: 'team:42:alerts',
      cursor: '1700000000000-3',
    });
    expect(subscribed).toEqual(['team:42:alerts']);
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

  it('tells onReplay how a replay ended (the Replays metric)', async () => {
    // Prepare
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => true,
      recoverable: async () => false,
      resumeStep: async () => ({ state: 'live' }),
    });
    const outcomes: unknown[] = [];

    // Act
    await handleFrame('c1', '{"action":"resume","since":"4"}', {
      ...sessionDeps(registry),
      onReplay: (outcome) => void outcomes.push(outcome),
    });

    // Assess
    expect(outcomes).toEqual([
      expect.objectContaining({ recovered: false, complete: true, replayed: 0, gone: false }),
    ]);
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
      beginResume: async () => true,
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
    // One step's entries go in one post, as a batch, in order.
    expect(frames).toEqual([
      {
        type: 'batch',
        messages: [
          { type: 'message', id: 'm1', cursor: '5-0', data: { n: 1 } },
          { type: 'message', id: 'm2', cursor: '6-0', data: { n: 2 } },
        ],
      },
    ]);
  });
});

describe('handleFrame: a replay never strands the connection', () => {
  const entries = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => ({
      cursor: `${from + i}-0`,
      entry: `{"id":"m${from + i}","data":${from + i}}`,
    }));

  /** A registry whose replay steps hand out `steps` in turn, recording every call. */
  function replaying(steps: Awaited<ReturnType<ConnectionRegistry['resumeStep']>>[]) {
    return fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      topicAudience: (topic) => keys.audience('topic', topic),
      beginResume: async () => true,
      subscribe: async () => 'subscribed',
      endResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async () => steps.shift() ?? { state: 'last', entries: [] },
    });
  }

  it('closes a connection whose ?since replay failed and whose resumed could not be posted either (issue 21, item 4)', async () => {
    // Prepare: the management API fails every post for a while; the close goes through
    api.reset();
    api.on(PostToConnectionCommand).rejects(
      Object.assign(new Error('internal'), {
        name: 'InternalServerErrorException',
        $metadata: { httpStatusCode: 500 },
      }),
    );
    api.on(DeleteConnectionCommand).resolves({});
    const steps: Awaited<ReturnType<ConnectionRegistry['resumeStep']>>[] = [
      { state: 'more', entries: entries(5, 1) },
    ];
    let closedMetric = 0;
    const { registry, methods } = fakeRegistry({
      touch: async () => connection({ pendingSince: '4-0' }),
      clearPendingSince: async () => true,
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => true,
      endResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async () => steps.shift() ?? { state: 'last', entries: [] },
      remove: async () => connection(),
      epoch: async () => null,
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"ping"}', {
      ...sessionDeps(registry),
      onClosed: () => {
        closedMetric++;
      },
    });

    // Assess: neither the replay nor resumed{recovered:false} reached the client, so it is
    // forgotten and closed (it reconnects and resumes from its cursor), and told so in the reply
    expect(methods()).toContain('remove');
    expect(api.commandCalls(DeleteConnectionCommand).map((c) => c.args[0].input)).toEqual([
      { ConnectionId: 'c1' },
    ]);
    expect(closedMetric).toBe(1);
    expect(reply).toMatchObject({ type: 'error', code: 'unknown_connection' });
  });

  it('gives up when a post fails: live again, resumed says recovered:false and where to resume from', async () => {
    // Prepare
    api.reset();
    api
      .on(PostToConnectionCommand)
      .resolvesOnce({})
      .rejects(
        Object.assign(new Error('internal'), {
          name: 'InternalServerErrorException',
          $metadata: { httpStatusCode: 500 },
        }),
      );
    const { registry, methods } = replaying([
      { state: 'more', entries: entries(5, 1) },
      { state: 'more', entries: entries(6, 2) },
    ]);

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"resume","since":"4-0"}',
      sessionDeps(registry),
    );

    // Assess
    expect(reply).toEqual({ type: 'resumed', recovered: false, cursor: '5-0' });
    expect(methods()).toEqual([
      'touch',
      'userAudience',
      'beginResume',
      'recoverable',
      'resumeStep',
      'resumeStep',
      'endResume',
    ]);
  });

  it('gives up when a Redis step throws', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => true,
      endResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async () => {
        throw new Error('Command timed out');
      },
    });

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"resume","since":"4-0"}',
      sessionDeps(registry),
    );

    // Assess
    expect(reply).toEqual({ type: 'resumed', recovered: false, cursor: '4-0' });
    expect(methods().at(-1)).toBe('endResume');
  });

  it('stops at the budget: no step starts after the deadline', async () => {
    // Prepare
    let clock = 1_000_000;
    const { registry, calls } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => true,
      endResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async (_a, _r, since) => {
        clock += 400; // each step (read and post) takes 400 ms of the budget
        const n = Number(since.split('-')[0]) + 1;
        return { state: 'more', entries: entries(n, 1) };
      },
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"resume","since":"4-0"}', {
      ...sessionDeps(registry),
      replay: { budgetMs: 1_000, graceMs: 500 },
      now: () => clock,
    });

    // Assess
    const steps = calls.filter((c) => c.method === 'resumeStep');
    expect(steps).toHaveLength(3);
    expect(reply).toEqual({ type: 'resumed', recovered: false, cursor: '7-0' });
    // The lease outlasts the deadline by the grace.
    expect(calls.find((c) => c.method === 'beginResume')?.args[2]).toBe(1_000_000 + 1_000 + 500);
  });

  it('does not trust a member found live by a step that ran past the deadline (its lease may have run out)', async () => {
    // Prepare
    let clock = 1_000_000;
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => true,
      endResume: async () => undefined,
      recoverable: async () => true,
      resumeStep: async () => {
        clock += 9_000; // Redis answered very late: past the deadline and the lease
        return { state: 'live' };
      },
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"resume","since":"4-0"}', {
      ...sessionDeps(registry),
      replay: { budgetMs: 5_000, graceMs: 2_000 },
      now: () => clock,
    });

    // Assess
    expect(reply).toEqual({ type: 'resumed', recovered: false, cursor: '4-0' });
  });

  it('bounds the replay by the time the invocation has left', async () => {
    // Prepare
    const { registry, calls } = replaying([{ state: 'last', entries: [] }]);

    // Act
    await handleFrame('c1', '{"action":"resume","since":"4-0"}', {
      ...sessionDeps(registry),
      replay: { budgetMs: 5_000, graceMs: 2_000 },
      remainingMs: () => 3_000,
      now: () => 10_000,
    });

    // Assess: deadline = now + (3000 - 1000 answer margin), lease = deadline + grace
    expect(calls.find((c) => c.method === 'beginResume')?.args[2]).toBe(10_000 + 2_000 + 2_000);
  });

  it("carries a subscribe's ref on its subscribed and its resumed (PW-F3)", async () => {
    // Prepare
    const { registry } = replaying([{ state: 'last', entries: entries(5, 1) }]);

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"subscribe","topic":"news","since":"4-0","ref":"s-1"}',
      sessionDeps(registry),
    );

    // Assess
    expect(JSON.parse(encodeFrame(reply))).toEqual({
      type: 'resumed',
      topic: 'news',
      recovered: true,
      ref: 's-1',
    });
    const posted = api
      .commandCalls(PostToConnectionCommand)
      .map((c) => JSON.parse(Buffer.from(c.args[0].input.Data as Uint8Array).toString()));
    expect(posted[0]).toEqual({ type: 'subscribed', topic: 'news', ref: 's-1' });
    expect(posted[1]).not.toHaveProperty('ref');
  });

  it('answers recovered:true and no cursor when the replay hands off', async () => {
    // Prepare
    const { registry } = replaying([
      { state: 'more', entries: entries(5, 2) },
      { state: 'last', entries: entries(7, 1) },
    ]);

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"subscribe","topic":"news","since":"4-0"}',
      sessionDeps(registry),
    );

    // Assess
    expect(reply).toEqual({ type: 'resumed', topic: 'news', recovered: true });
    const posted = api
      .commandCalls(PostToConnectionCommand)
      .map((c) => JSON.parse(Buffer.from(c.args[0].input.Data as Uint8Array).toString()));
    expect(posted[0]).toEqual({ type: 'subscribed', topic: 'news' });
    expect(posted[2]).toEqual({ type: 'message', id: 'm7', topic: 'news', cursor: '7-0', data: 7 });
  });

  it('creates nothing and closes for a subscribe whose record vanished meanwhile', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection(),
      subscribe: async () => 'gone',
    });

    // Act
    const error = await refusal(
      handleFrame(
        'c1',
        '{"action":"subscribe","topic":"news","since":"4-0"}',
        sessionDeps(registry),
      ),
    );

    // Assess
    expect(error).toBeInstanceOf(UnknownConnectionError);
    expect(error.closesConnection).toBe(true);
    expect(methods()).toEqual(['touch', 'subscribe']);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(0);
  });

  it('refuses a resume for a member no longer in its audience', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection(),
      userAudience: (userId) => keys.audience('user', userId),
      beginResume: async () => false,
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"resume","since":"4-0"}', sessionDeps(registry)),
    );

    // Assess
    expect(error).toBeInstanceOf(UnknownConnectionError);
    expect(methods()).toEqual(['touch', 'userAudience', 'beginResume']);
  });
});

describe('presence (issue 16)', () => {
  const member = connection({ topics: ['room:1'], presenceTopics: ['room:*'] });

  it('answers a page of members of a subscribed topic the presence grant allows, with its ref', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry({
      touch: async () => member,
      members: async () => ({
        count: 3,
        members: [{ userId: 'alice', info: '{"name":"Alice"}' }, { userId: 'bob' }],
        more: true,
      }),
    });

    // Act
    const reply = await handleFrame(
      'c1',
      '{"action":"presence","topic":"room:1","limit":2,"ref":"p1"}',
      sessionDeps(registry),
    );

    // Assess: the next page starts after bob (an opaque cursor).
    expect(reply).toEqual({
      type: 'presence',
      topic: 'room:1',
      members: [{ userId: 'alice', info: { name: 'Alice' } }, { userId: 'bob' }],
      count: 3,
      next: Buffer.from('bob').toString('base64url'),
      ref: 'p1',
    });
    expect(calls.find((c) => c.method === 'members')?.args).toEqual(['room:1', undefined, 2]);
    const next = await handleFrame(
      'c1',
      `{"action":"presence","topic":"room:1","cursor":"${(reply as { next: string }).next}"}`,
      sessionDeps(registry),
    );
    expect(next).toMatchObject({ type: 'presence' });
    expect(calls.filter((c) => c.method === 'members').at(-1)?.args).toEqual([
      'room:1',
      'bob',
      100,
    ]);
  });

  it.each([
    [
      'not subscribed to the topic',
      connection({ topics: [], presenceTopics: ['room:*'] }),
      /subscribe to topic "room:1" before/,
    ],
    [
      'no presence grant',
      connection({ topics: ['room:1'] }),
      /does not allow the member list of topic "room:1"/,
    ],
    [
      'a grant for another prefix (room:1* is no grant of room:1)',
      connection({ topics: ['room:1'], presenceTopics: ['room:1:*'] }),
      /does not allow the member list/,
    ],
  ])('refuses the list with forbidden: %s', async (_why, conn, message) => {
    const { registry, methods } = fakeRegistry({ touch: async () => conn });
    const error = await refusal(
      handleFrame('c1', '{"action":"presence","topic":"room:1"}', sessionDeps(registry)),
    );
    expect(error).toMatchObject({ code: 'forbidden', message: expect.stringMatching(message) });
    expect(methods()).toEqual(['touch']);
  });

  it.each([
    ['{"action":"presence","topic":"room:1","limit":0}', 'invalid_frame'],
    ['{"action":"presence","topic":"room:1","limit":1001}', 'invalid_frame'],
    ['{"action":"presence","topic":"room:1","cursor":""}', 'invalid_frame'],
  ])('refuses %s as %s', async (frame, code) => {
    const { registry } = fakeRegistry({ touch: async () => member });
    expect(await refusal(handleFrame('c1', frame, sessionDeps(registry)))).toMatchObject({ code });
  });

  it('refuses a cursor that is no page cursor as invalid_cursor', async () => {
    const { registry } = fakeRegistry({ touch: async () => member });
    const error = await refusal(
      handleFrame(
        'c1',
        '{"action":"presence","topic":"room:1","cursor":"not a cursor"}',
        sessionDeps(registry),
      ),
    );
    expect(error).toMatchObject({ code: 'invalid_cursor' });
  });
});
