import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, topicAllowed } from '../../lib/auth/tokens.js';
import { UnauthorizedError } from '../../lib/errors.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const key = (secret = SECRET) => new TextEncoder().encode(secret);

interface TokenOptions {
  secret?: string;
  alg?: string;
  sub?: string | null;
  claims?: Record<string, unknown>;
  issuer?: string;
  audience?: string;
  expiresAt?: number | string;
}

/** Signs a token the way an application backend would. */
async function token(options: TokenOptions = {}): Promise<string> {
  let jwt = new SignJWT(options.claims ?? {})
    .setProtectedHeader({ alg: options.alg ?? 'HS256' })
    .setIssuedAt();
  if (options.sub !== null) jwt = jwt.setSubject(options.sub ?? 'user-1');
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  jwt = jwt.setExpirationTime(options.expiresAt ?? '5m');
  return jwt.sign(key(options.secret));
}

/** Awaits a verification that must fail and returns its UnauthorizedError. */
async function refusal(promise: Promise<unknown>): Promise<UnauthorizedError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UnauthorizedError) return error;
    throw error;
  }
  throw new Error('expected the token to be refused');
}

describe('createTokenVerifier with HS256', () => {
  it('returns the user id and topics of a valid token', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await token({ sub: 'alice', claims: { topics: ['news', 'team:42:*'] } });

    // Act
    const identity = await verify(jwt);

    // Assess
    expect(identity).toMatchObject({ userId: 'alice', topics: ['news', 'team:42:*'] });
  });

  it('gives no topics when the token has no topics claim', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const identity = await verify(await token({ sub: 'bob' }));

    // Assess
    expect(identity).toMatchObject({ userId: 'bob', topics: [] });
  });

  it('accepts a token with the configured issuer and audience', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, issuer: 'https://app', audience: 'push' });
    const jwt = await token({ issuer: 'https://app', audience: 'push' });

    // Act
    const identity = await verify(jwt);

    // Assess
    expect(identity.userId).toBe('user-1');
  });

  it.each([
    ['undefined', undefined],
    ['an empty string', ''],
  ])('refuses a missing token (%s) and says how to send one', async (_label, jwt) => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toMatch(/missing token/);
    expect(error.status).toBe(401);
    expect(error.code).toBe('unauthorized');
  });

  it.each([
    ['garbage', 'not-a-jwt'],
    ['two segments', 'abc.def'],
    ['bad base64 JSON', 'e30.e30.e30x'],
  ])('refuses a malformed token (%s)', async (_label, jwt) => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toBe('malformed or unverifiable token');
  });

  it('refuses a token signed with another secret as a bad signature', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await token({ secret: 'some-other-secret-of-sufficient-length!!' });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toBe('bad token signature');
  });

  it('refuses a token whose payload was altered after signing', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const [header, , signature] = (await token({ sub: 'alice' })).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: 9_999_999_999 })).toString(
      'base64url',
    );

    // Act
    const error = await refusal(verify(`${header}.${forged}.${signature}`));

    // Assess
    expect(error.message).toBe('bad token signature');
  });

  it('refuses an expired token and says it expired', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await token({ expiresAt: Math.floor(Date.now() / 1000) - 3600 });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toBe('token expired');
  });

  it('refuses a token from another issuer when an issuer is configured', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, issuer: 'https://app' });
    const jwt = await token({ issuer: 'https://evil' });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toMatch(/^token claim rejected: .*iss/);
  });

  it('refuses a token without an issuer when an issuer is configured', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, issuer: 'https://app' });

    // Act
    const error = await refusal(verify(await token()));

    // Assess
    expect(error.message).toMatch(/^token claim rejected: /);
  });

  it('refuses a token for another audience when an audience is configured', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET, audience: 'push' });
    const jwt = await token({ audience: 'billing' });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toMatch(/^token claim rejected: .*aud/);
  });

  it('ignores issuer and audience when none is configured', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await token({ issuer: 'https://anyone', audience: 'anything' });

    // Act
    const identity = await verify(jwt);

    // Assess
    expect(identity.userId).toBe('user-1');
  });

  it('refuses a token without sub and says sub is needed', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(await token({ sub: null })));

    // Assess
    expect(error.message).toMatch(/"sub"/);
  });

  it.each([
    ['an empty sub', { sub: '' }],
    ['a sub with a space', { sub: 'a b' }],
    ['a sub with the member separator |', { sub: 'a|b' }],
    ['a sub of 257 characters', { sub: 'u'.repeat(257) }],
    ['topics that are not an array', { sub: 'alice', claims: { topics: 'news' } }],
    ['topics holding a number', { sub: 'alice', claims: { topics: ['news', 7] } }],
  ])('refuses a token with %s', async (_label, options) => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });

    // Act
    const error = await refusal(verify(await token(options)));

    // Assess
    expect(error.message).toMatch(/^token claim rejected: "(sub|topics)"/);
  });

  it('refuses a token signed with HS512, even with the right secret (HS256 only)', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const jwt = await token({ alg: 'HS512' });

    // Act
    const error = await refusal(verify(jwt));

    // Assess
    expect(error.message).toBe('malformed or unverifiable token');
  });

  it('refuses an unsigned (alg "none") token', async () => {
    // Prepare
    const verify = createTokenVerifier({ secret: SECRET });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'none' })}.${b64({ sub: 'admin', exp: 9_999_999_999 })}.`;

    // Act
    const error = await refusal(verify(unsigned));

    // Assess
    expect(error).toBeInstanceOf(UnauthorizedError);
  });

  it('cannot be created without a secret or a JWKS URL', () => {
    // Act
    const create = () => createTokenVerifier({});

    // Assess
    expect(create).toThrow('Environment variable JWT_SECRET or JWT_JWKS_URL is required');
  });
});

describe('topicAllowed', () => {
  it.each([
    ['an exact name', 'news', ['news'], true],
    ['an exact name among others', 'sport', ['news', 'sport'], true],
    ['a name that only starts like an exact pattern', 'newsroom', ['news'], false],
    ['a name that is a prefix of an exact pattern', 'new', ['news'], false],
    ['a topic under a prefix pattern', 'team:42:x', ['team:42:*'], true],
    ['a topic deeper under a prefix pattern', 'team:42:a:b', ['team:42:*'], true],
    ['a topic under another prefix', 'team:43:x', ['team:42:*'], false],
    ['a topic sharing digits but not the prefix', 'team:420:x', ['team:42:*'], false],
    ['the bare prefix without its separator', 'team:42', ['team:42:*'], false],
    ['anything, by the pattern *', 'whatever', ['*'], true],
    ['anything, with no patterns', 'news', [], false],
  ])('for %s: %s with %j is %s', (_label, topic, patterns, expected) => {
    // Act
    const allowed = topicAllowed(topic, patterns);

    // Assess
    expect(allowed).toBe(expected);
  });

  it('treats * only as a trailing wildcard, not in the middle', () => {
    // Act
    const allowed = topicAllowed('team:42:x', ['team:*:x']);

    // Assess
    expect(allowed).toBe(false);
  });
});

describe('the presence and info claims (issue 16)', () => {
  const verify = createTokenVerifier({ secret: SECRET });

  it('reads presence grants and the info object (kept as its JSON)', async () => {
    const identity = await verify(
      await token({ claims: { presence: ['room:*'], info: { name: 'Alice', avatar: 'a.png' } } }),
    );
    expect(identity).toMatchObject({
      presenceTopics: ['room:*'],
      info: '{"name":"Alice","avatar":"a.png"}',
    });
    expect(await verify(await token())).toMatchObject({ presenceTopics: [] });
    expect(await verify(await token())).not.toHaveProperty('info');
  });

  it('takes an info of exactly 1,024 bytes and refuses one of 1,025, saying why', async () => {
    // {"n":"…"} is 8 bytes around the string.
    const ok = await verify(await token({ claims: { info: { n: 'x'.repeat(1_016) } } }));
    expect(ok.info).toHaveLength(1_024);
    const error = await refusal(
      verify(await token({ claims: { info: { n: 'x'.repeat(1_017) } } })),
    );
    expect(error.message).toMatch(/"info" is over 1024 bytes as JSON/);
  });

  it.each([
    ['an array', [1, 2]],
    ['a string', 'alice'],
    ['null', null],
  ])('refuses an info that is %s', async (_label, info) => {
    const error = await refusal(verify(await token({ claims: { info } })));
    expect(error.message).toMatch(/"info" must be a JSON object/);
  });

  it('refuses a presence grant that is no grant', async () => {
    const error = await refusal(verify(await token({ claims: { presence: ['room*'] } })));
    expect(error.message).toMatch(/"presence" entries are topic names, prefix grants/);
  });
});
