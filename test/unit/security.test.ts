import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { kick } from '../../lib/admin/kick.js';
import { presence } from '../../lib/admin/presence.js';
import { createTokenVerifier } from '../../lib/auth/tokens.js';
import { checkChunkEndpoints, parseDeliverChunk } from '../../lib/delivery/chunks.js';
import { parsePublishRequest } from '../../lib/delivery/publish.js';
import { secretsLoaded } from '../../lib/edge/middleware.js';
import { PushwireError } from '../../lib/errors.js';
import type { Gateway } from '../../lib/gateway/gateway.js';
import type { Connection } from '../../lib/registry/types.js';
import { connect, handleFrame } from '../../lib/session/session.js';
import { fakeRegistry, recordingLogger } from './fakes.js';

const SECRET = 'security-test-secret-long-enough-for-hs256';
const verifyToken = createTokenVerifier({ secret: SECRET });
const EP = 'https://abc.execute-api.eu-west-1.amazonaws.com/prod';
const NOW = 1_800_000_000_000;

const sign = (sub: string, options: { iat?: number; exp?: number; topics?: string[] } = {}) => {
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  return new SignJWT(options.topics ? { topics: options.topics } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(options.exp ?? iat + 300)
    .sign(new TextEncoder().encode(SECRET));
};

const connection = (overrides: Partial<Connection> = {}): Connection => ({
  connectionId: 'c1',
  userId: 'alice',
  endpoint: EP,
  connectedAt: 1,
  allowedTopics: ['news', 'team:42:*'],
  topics: [],
  tokenExpiresAt: NOW + 60_000,
  ...overrides,
});

/** A gateway that must not be called: a refused frame sends nothing. */
const noGateway: Gateway = {
  post: async () => {
    throw new Error('unexpected post');
  },
  close: async () => {
    throw new Error('unexpected close');
  },
};

async function refusal(promise: Promise<unknown>): Promise<PushwireError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PushwireError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

const connectInput = async (token: string) => ({
  connectionId: 'c9',
  domainName: 'abc.execute-api.eu-west-1.amazonaws.com',
  stage: 'prod',
  token,
});

describe('$connect refusals', () => {
  it('refuses a token the registry finds revoked where it adds the member, with 401', async () => {
    // Prepare
    const iat = Math.floor(Date.now() / 1000) - 10;
    const registered: unknown[] = [];
    const { registry, methods } = fakeRegistry({
      register: async (...args) => {
        registered.push(args);
        return 'revoked';
      },
    });

    // Act
    const error = await refusal(
      connect(await connectInput(await sign('alice', { iat })), { registry, verifyToken }),
    );

    // Assess
    expect(error.code).toBe('unauthorized');
    expect(error.message).toMatch(/^token revoked/);
    expect(methods()).toEqual(['register']);
    // The token's iat goes with the record: the registry compares it with the revocation.
    expect(registered).toEqual([
      [expect.objectContaining({ tokenIssuedAt: iat * 1000 }), undefined],
    ]);
  });

  it('refuses a token issued before the server lost its data with 401, saying to get a new one', async () => {
    const { registry } = fakeRegistry({ register: async () => 'issued_before_epoch' });
    const error = await refusal(
      connect(await connectInput(await sign('alice', { iat: Math.floor(Date.now() / 1000) })), {
        registry,
        verifyToken,
      }),
    );
    expect(error.code).toBe('unauthorized');
    expect(error.message).toMatch(/^token issued before the server lost its data/);
  });

  it('refuses a connection over the per-user limit with too_many_connections, the limit passed to register', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry({ register: async () => 'too_many_connections' });

    // Act
    const error = await refusal(
      connect(await connectInput(await sign('alice')), {
        registry,
        verifyToken,
        limits: { connectionsPerUser: 3 },
      }),
    );

    // Assess
    expect(error.code).toBe('too_many_connections');
    expect(error.status).toBe(429);
    expect(calls.map((c) => [c.method, c.args[1]])).toEqual([['register', 3]]);
  });

  it('takes back whatever a register that failed half-way wrote (no $disconnect will come)', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry({
      register: async () => {
        throw new Error("READONLY You can't write against a read only replica.");
      },
      remove: async () => null,
    });

    // Act
    const error = await connect(await connectInput(await sign('alice')), {
      registry,
      verifyToken,
    }).catch((e: unknown) => e);

    // Assess: the original failure (a 500), after the removal of connection c9
    expect((error as Error).message).toMatch(/READONLY/);
    expect(calls.map((c) => [c.method, c.args[0]])).toEqual([
      ['register', expect.objectContaining({ connectionId: 'c9' })],
      ['remove', 'c9'],
    ]);
  });

  it('refuses a token past its exp but within the clock tolerance with 401, writing nothing', async () => {
    // Prepare: jose accepts it (30 s tolerance); the first frame would call it expired
    const iat = Math.floor(Date.now() / 1000) - 60;
    const { registry, calls } = fakeRegistry();

    // Act
    const error = await refusal(
      connect(await connectInput(await sign('alice', { iat, exp: iat + 55 })), {
        registry,
        verifyToken,
      }),
    );

    // Assess
    expect(error.code).toBe('unauthorized');
    expect(error.message).toBe('token expired');
    expect(calls).toEqual([]);
  });
});

describe('$default: token expiry binds the connection', () => {
  it('answers the first frame after exp with token_expired, which closes the connection', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection({ tokenExpiresAt: NOW - 1 }),
      remove: async () => connection({ tokenExpiresAt: NOW - 1 }),
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"ping"}', { registry, gateway: noGateway, now: () => NOW }),
    );

    // Assess: refused, and forgotten at once (as a kick does; the close follows).
    expect(error.code).toBe('token_expired');
    expect(error.closesConnection).toBe(true);
    expect(methods()).toEqual(['touch', 'remove']);
  });

  it('answers a ping before exp', async () => {
    // Prepare
    const { registry } = fakeRegistry({ touch: async () => connection() });

    // Act
    const reply = await handleFrame('c1', '{"action":"ping"}', {
      registry,
      gateway: noGateway,
      now: () => NOW,
    });

    // Assess
    expect(reply).toEqual({ type: 'pong', connectionId: 'c1' });
  });

  it('refreshes in place with a token of the same user: the registry stores it and leaves what it no longer grants', async () => {
    // Prepare
    const refreshed: unknown[] = [];
    const { registry, methods } = fakeRegistry({
      touch: async () => connection({ topics: ['news', 'team:42:a'] }),
      refreshToken: async (...args) => {
        refreshed.push(args);
        return true;
      },
    });
    const iat = Math.floor(Date.now() / 1000);
    const token = await sign('alice', { iat, exp: iat + 600, topics: ['news'] });

    // Act
    const reply = await handleFrame('c1', JSON.stringify({ action: 'auth', token }), {
      registry,
      gateway: noGateway,
      verifyToken,
    });

    // Assess: no unsubscribe from a topic list read before the grants changed
    expect(reply).toEqual({ type: 'authenticated', expiresAt: (iat + 600) * 1000 });
    expect(refreshed).toEqual([
      [
        'c1',
        expect.objectContaining({
          expiresAt: (iat + 600) * 1000,
          issuedAt: iat * 1000,
          topics: ['news'],
        }),
      ],
    ]);
    expect(methods()).toEqual(['touch', 'refreshToken']);
  });

  it('answers a refresh of a connection removed meanwhile with unknown_connection', async () => {
    // Prepare
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      refreshToken: async () => false,
    });

    // Act
    const error = await refusal(
      handleFrame('c1', JSON.stringify({ action: 'auth', token: await sign('alice') }), {
        registry,
        gateway: noGateway,
        verifyToken,
      }),
    );

    // Assess
    expect(error.code).toBe('unknown_connection');
  });

  it('refuses a refresh with a token past its exp but within the clock tolerance', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({ touch: async () => connection() });
    const iat = Math.floor(Date.now() / 1000) - 60;

    // Act
    const error = await refusal(
      handleFrame(
        'c1',
        JSON.stringify({ action: 'auth', token: await sign('alice', { iat, exp: iat + 55 }) }),
        { registry, gateway: noGateway, verifyToken },
      ),
    );

    // Assess
    expect(error.message).toBe('token expired');
    expect(methods()).toEqual(['touch']);
  });

  it('closes a connection whose token was revoked since, at its next frame, and forgets it', async () => {
    // Prepare: the kick that revoked it did not close it (its removal failed)
    const { registry, methods } = fakeRegistry({
      touch: async () => connection({ tokenIssuedAt: NOW - 60_000, revokedAt: NOW - 60_000 }),
      remove: async () => connection(),
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"ping"}', { registry, gateway: noGateway, now: () => NOW }),
    );

    // Assess
    expect(error.code).toBe('token_revoked');
    expect(error.closesConnection).toBe(true);
    expect(methods()).toEqual(['touch', 'remove']);
  });

  it('serves a connection whose token was issued after the revocation', async () => {
    // Prepare
    const { registry } = fakeRegistry({
      touch: async () => connection({ tokenIssuedAt: NOW - 1_000, revokedAt: NOW - 2_000 }),
    });

    // Act
    const reply = await handleFrame('c1', '{"action":"ping"}', {
      registry,
      gateway: noGateway,
      now: () => NOW,
    });

    // Assess
    expect(reply).toEqual({ type: 'pong', connectionId: 'c1' });
  });

  it("refuses a refresh with another user's token as forbidden and changes nothing", async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({ touch: async () => connection() });
    const token = await sign('mallory');

    // Act
    const error = await refusal(
      handleFrame('c1', JSON.stringify({ action: 'auth', token }), {
        registry,
        gateway: noGateway,
        verifyToken,
      }),
    );

    // Assess
    expect(error.code).toBe('forbidden');
    expect(methods()).toEqual(['touch']);
  });

  it('refuses a refresh with a revoked token', async () => {
    // Prepare
    const iat = Math.floor(Date.now() / 1000) - 5;
    const { registry, methods } = fakeRegistry({
      // (A connection whose own token's iat is unknown: only the new token is checked.)
      touch: async () => connection({ revokedAt: Date.now() }),
    });

    // Act
    const error = await refusal(
      handleFrame('c1', JSON.stringify({ action: 'auth', token: await sign('alice', { iat }) }), {
        registry,
        gateway: noGateway,
        verifyToken,
      }),
    );

    // Assess
    expect(error.code).toBe('unauthorized');
    expect(error.message).toMatch(/^token revoked/);
    expect(methods()).toEqual(['touch']);
  });
});

describe('$default: limits', () => {
  it('refuses a subscribe over the topic limit with too_many_topics', async () => {
    // Prepare
    const { registry } = fakeRegistry({
      touch: async () => connection(),
      subscribeWithCursor: async (_c, _topic, max) => ({
        outcome: max !== 2 ? 'subscribed' : 'too_many_topics',
      }),
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"subscribe","topic":"news"}', {
        registry,
        gateway: noGateway,
        limits: { topicsPerConnection: 2 },
      }),
    );

    // Assess
    expect(error.code).toBe('too_many_topics');
    expect(error.status).toBe(429);
  });

  it.each([
    ['forbidden', { type: 'error', code: 'forbidden' }],
    ['left', { type: 'unsubscribed', topic: 'news' }],
  ] as const)(
    'answers a subscribe the registry found %s where it wrote the topic',
    async (outcome, answer) => {
      // Prepare: the frame's grants allowed it; the stored ones (a refresh) did not, or an unsubscribe won
      const { registry } = fakeRegistry({
        touch: async () => connection(),
        subscribeWithCursor: async () => ({ outcome }),
      });

      // Act
      const reply = await handleFrame('c1', '{"action":"subscribe","topic":"news"}', {
        registry,
        gateway: noGateway,
      }).catch((e: PushwireError) => ({ type: 'error', code: e.code }));

      // Assess
      expect(reply).toEqual(answer);
    },
  );

  it('refuses a resume over the replay limit with rate_limited, before any replay work', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection(),
      countReplay: async () => 4,
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"resume","since":"0-0"}', {
        registry,
        gateway: noGateway,
        limits: { replaysPerMinute: 3 },
      }),
    );

    // Assess
    expect(error.code).toBe('rate_limited');
    expect(methods()).toEqual(['touch', 'countReplay']);
  });

  it('counts a subscribe with since as a replay', async () => {
    // Prepare
    const { registry, methods } = fakeRegistry({
      touch: async () => connection(),
      countReplay: async () => 4,
    });

    // Act
    const error = await refusal(
      handleFrame('c1', '{"action":"subscribe","topic":"news","since":"0-0"}', {
        registry,
        gateway: noGateway,
        limits: { replaysPerMinute: 3 },
      }),
    );

    // Assess
    expect(error.code).toBe('rate_limited');
    expect(methods()).toEqual(['touch', 'countReplay']);
  });
});

describe('kick with revoke', () => {
  it('revokes before closing, for the token lifetime', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry({
      revokeUser: async () => undefined,
      lookupUser: async () => [],
    });
    const { logger } = recordingLogger();

    // Act
    const result = await kick(
      { userId: 'u1', revoke: true },
      { registry, gateway: noGateway, logger, revocationTtlSeconds: 3_630, now: () => NOW },
    );

    // Assess
    expect(result).toEqual({ revoked: true, connections: 0, closed: 0, gone: 0, failed: 0 });
    expect(calls.map((c) => [c.method, ...c.args])).toEqual([
      ['revokeUser', 'u1', NOW, 3_630],
      ['lookupUser', 'u1'],
    ]);
  });

  it('refuses revoke without a userId', async () => {
    // Prepare
    const { registry, calls } = fakeRegistry();
    const { logger } = recordingLogger();

    // Act
    const error = await refusal(
      kick({ connectionIds: ['c1'], revoke: true }, { registry, gateway: noGateway, logger }),
    );

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/revoke needs a userId/);
    expect(calls).toEqual([]);
  });
});

describe('one rule for user ids in the backend API', () => {
  const bad = ['x space', 'x|pipe', 'x{tag}', 'nul\u0000', 'u'.repeat(257), ''];

  it.each(bad)('publish refuses userId %j with invalid_request', (userId) => {
    // Act
    const act = () => parsePublishRequest({ userId, data: 1 });

    // Assess
    expect(act).toThrow(PushwireError);
    expect(act).toThrow(/invalid publish request/);
  });

  it.each(bad)('publish refuses %j among userIds', (userId) => {
    // Act + Assess
    expect(() => parsePublishRequest({ userIds: ['ok', userId], data: 1 })).toThrow(
      /invalid publish request/,
    );
  });

  it.each(bad)('presence refuses userId %j', async (userId) => {
    // Prepare
    const { registry, calls } = fakeRegistry();

    // Act
    const error = await refusal(presence({ userIds: [userId] }, { registry }));

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(calls).toEqual([]);
  });

  it.each(bad)('kick refuses userId %j', async (userId) => {
    // Prepare
    const { registry, calls } = fakeRegistry();
    const { logger } = recordingLogger();

    // Act
    const error = await refusal(kick({ userId }, { registry, gateway: noGateway, logger }));

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(calls).toEqual([]);
  });
});

describe('deliver posts only to endpoints it knows', () => {
  const chunk = (...endpoints: string[]) =>
    parseDeliverChunk({
      message: { id: 'm1', data: {} },
      jobs: [{ recipients: endpoints.map((e, i) => [`c${i}`, e]) }],
    });

  it('refuses a chunk naming an endpoint neither ours nor recorded, whole', async () => {
    // Prepare
    const asked: string[][] = [];
    const known = async (endpoints: readonly string[]) => {
      asked.push([...endpoints]);
      return false;
    };

    // Act
    const error = await refusal(
      checkChunkEndpoints(chunk(EP, 'https://attacker.example/x'), [EP], known),
    );

    // Assess
    expect(error.code).toBe('invalid_request');
    expect(asked).toEqual([['https://attacker.example/x']]);
  });

  it("accepts this API's endpoint without asking the registry", async () => {
    // Act + Assess
    await expect(
      checkChunkEndpoints(chunk(EP, EP), [EP], async () => {
        throw new Error('unexpected registry call');
      }),
    ).resolves.toBeUndefined();
  });

  it('accepts an endpoint the registry recorded (another API sharing this Redis)', async () => {
    // Act + Assess
    await expect(
      checkChunkEndpoints(chunk('https://other.example/prod'), [EP], async () => true),
    ).resolves.toBeUndefined();
  });

  it('without a registry check (WS_PEERS lists the peers), refuses any endpoint not listed', async () => {
    // Act
    const error = await refusal(checkChunkEndpoints(chunk(EP, 'https://other.example/prod'), [EP]));

    // Assess: the role may post to the listed APIs only, so deliver posts to no other
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('WS_PEERS');
    await expect(
      checkChunkEndpoints(chunk(EP, 'https://other.example/prod'), [
        EP,
        'https://other.example/prod',
      ]),
    ).resolves.toBeUndefined();
  });
});

describe('secretsLoaded', () => {
  it('awaits the secrets before the handler, and a failed load answers through the error middleware', async () => {
    // Prepare
    const order: string[] = [];
    let fail = true;
    const load = async () => {
      order.push('load');
      if (fail) throw new Error('parameter unreadable');
    };
    const handler = middy(async () => {
      order.push('handler');
      return { statusCode: 200 };
    })
      .use({
        onError: async (request) => {
          order.push('onError');
          request.response = { statusCode: 500 };
        },
      })
      .use(secretsLoaded(load));

    // Act
    const first = await handler({}, {} as Context);
    fail = false;
    const second = await handler({}, {} as Context);

    // Assess
    expect(first).toEqual({ statusCode: 500 });
    expect(second).toEqual({ statusCode: 200 });
    expect(order).toEqual(['load', 'onError', 'load', 'handler']);
  });
});
