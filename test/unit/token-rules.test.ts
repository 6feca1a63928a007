import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { createTokenVerifier, topicAllowed } from '../../lib/auth/tokens.js';
import { ConfigError, UnauthorizedError, UnavailableError } from '../../lib/errors.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const now = () => Math.floor(Date.now() / 1000);

/** Signs a token with exactly the claims given (no defaults: a test says what it has). */
const sign = (claims: Record<string, unknown>, secret = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));

async function refusal(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a refusal');
}

describe('token lifetime', () => {
  it('refuses a token without exp: tokens must expire', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(await sign({ sub: 'u1', iat: now() })));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.message).toMatch(/"exp"/);
  });

  it('refuses a token without iat (its age cannot be bounded, nor revoked)', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(await sign({ sub: 'u1', exp: now() + 60 })));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.message).toMatch(/"iat"/);
  });

  it('refuses a token living longer than JWT_MAX_TOKEN_AGE and accepts one at the bound', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, maxTokenAgeSeconds: 600 });
    const iat = now();

    // Act
    const tooLong = await refusal(verify(await sign({ sub: 'u1', iat, exp: iat + 601 })));
    const atBound = await verify(await sign({ sub: 'u1', iat, exp: iat + 600 }));

    // Assess
    expect(tooLong.message).toMatch(/at most 600 s \(JWT_MAX_TOKEN_AGE\)/);
    expect(atBound).toMatchObject({ userId: 'u1', expiresAt: (iat + 600) * 1000 });
  });

  it('refuses an iat in the future beyond the clock tolerance (it would dodge revocation)', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, clockToleranceSeconds: 5 });
    const iat = now() + 60;

    // Act
    const error = await refusal(verify(await sign({ sub: 'u1', iat, exp: iat + 60 })));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.message).toMatch(/"iat"/);
  });

  it('accepts a token expired by less than the clock tolerance, refuses one expired by more', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, clockToleranceSeconds: 30 });
    const t = now();

    // Act
    const within = await verify(await sign({ sub: 'u1', iat: t - 100, exp: t - 10 }));
    const beyond = await refusal(verify(await sign({ sub: 'u1', iat: t - 100, exp: t - 40 })));

    // Assess
    expect(within.userId).toBe('u1');
    expect(beyond.message).toBe('token expired');
  });
});

describe('one rule for user ids (sub)', () => {
  it.each([
    ['a {', 'a{b'],
    ['a }', 'a}b'],
    ['a NUL', 'a\u0000b'],
    ['a control character', 'a\u001bb'],
    ['a tab', 'a\tb'],
    ['a zero-width format character', 'a\u200bb'],
  ])('refuses a sub with %s', async (_label, sub) => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(await sign({ sub, iat: now(), exp: now() + 60 })));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.message).toMatch(/"sub" must be 1-256 printable characters/);
  });

  it('accepts printable non-ASCII user ids', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const identity = await verify(await sign({ sub: 'jörg@例え', iat: now(), exp: now() + 60 }));

    // Assess
    expect(identity.userId).toBe('jörg@例え');
  });
});

describe('topic grants', () => {
  it('refuses a token whose grant has a * not after a separator (team:42* would match team:420)', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await sign({ sub: 'u1', iat: now(), exp: now() + 60, topics: ['team:42*'] });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toMatch(/prefix grants like "team:42:\*"/);
  });

  it.each([
    ['team:420', ['team:42*'], false],
    ['prop-topic-1', ['prop-topic-*'], true],
    ['team:420', ['team:42:*'], false],
    ['team:42:x', ['team:42:*'], true],
    ['team:42:', ['team:42:*'], false],
  ])('%s with %j is %s', (topic, grants, expected) => {
    // Act
    const allowed = topicAllowed(topic, grants);

    // Assess
    expect(allowed).toBe(expected);
  });
});

describe('key configuration fails loudly', () => {
  it.each([
    [
      'a 31-byte secret',
      { secret: 'x'.repeat(31) },
      /JWT_SECRET is too short: HS256 needs at least 32 bytes/,
    ],
    [
      'both a secret and a JWKS URL',
      { secret: SECRET, jwksUrl: 'https://idp.example/jwks', issuer: 'i', audience: 'a' },
      /JWT_SECRET and JWT_JWKS_URL are both set/,
    ],
    [
      'a JWKS URL without issuer',
      { jwksUrl: 'https://idp.example/jwks', audience: 'a' },
      /JWT_ISSUER required with JWT_JWKS_URL/,
    ],
    [
      'a JWKS URL without audience',
      { jwksUrl: 'https://idp.example/jwks', issuer: 'i' },
      /JWT_AUDIENCE required with JWT_JWKS_URL/,
    ],
    [
      'a JWKS URL with neither',
      { jwksUrl: 'https://idp.example/jwks' },
      /JWT_ISSUER and JWT_AUDIENCE required/,
    ],
  ])('refuses %s', (_label, options, message) => {
    // Act
    const create = () => createTokenVerifier(options);

    // Assess
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(message);
  });
});

describe('a JWKS outage is retryable, not a refusal', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  const rs256Token = async () => {
    const { generateKeyPair } = await import('jose');
    const { privateKey } = await generateKeyPair('RS256');
    return new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('u1')
      .setIssuer('https://idp')
      .setAudience('push')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  };

  it('answers 503 unavailable when the key set answers 500', async () => {
    // Prepare
    server = createServer((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const verify = createTokenVerifier({
      jwksUrl: `http://127.0.0.1:${port}/jwks`,
      issuer: 'https://idp',
      audience: 'push',
    });

    // Act
    const error = await refusal(verify(await rs256Token()));

    // Assess
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).status).toBe(503);
  });

  it('answers 503 unavailable when the key set host refuses connections', async () => {
    // Prepare: a port that was just free, so nothing listens there
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const verify = createTokenVerifier({
      jwksUrl: `http://127.0.0.1:${port}/jwks`,
      issuer: 'https://idp',
      audience: 'push',
    });

    // Act
    const error = await refusal(verify(await rs256Token()));

    // Assess
    expect(error).toBeInstanceOf(UnavailableError);
  });

  it('still answers 401 when the key set is up but has no matching key', async () => {
    // Prepare
    server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [] }));
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const verify = createTokenVerifier({
      jwksUrl: `http://127.0.0.1:${port}/jwks`,
      issuer: 'https://idp',
      audience: 'push',
    });

    // Act
    const error = await refusal(verify(await rs256Token()));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
  });
});
