import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { JOSEError } from 'jose/errors';
import * as v from 'valibot';
import { TOPIC_GRANT_PATTERN, USER_ID_PATTERN } from '../constants.js';
import { ConfigError, UnauthorizedError, UnavailableError } from '../errors.js';

export interface Identity {
  userId: string;
  /** Topic names or `prefix:*` grants from the token's `topics` claim. */
  topics: string[];
  /** Topic names or `prefix:*` grants the connection may publish to (its `publish` claim; none by default). */
  publish?: string[];
  /** When the token expires (its `exp`), ms since epoch. */
  expiresAt: number;
  /** When the token was issued (its `iat`), ms since epoch. */
  issuedAt: number;
  /** Topic names or prefix grants whose member list the user may read (`presence` claim). */
  presenceTopics?: string[];
  /** The `info` claim as JSON text (public info in member lists and join events), at most MAX_INFO_BYTES. */
  info?: string;
}

/** The largest `info` claim, serialized (bytes): it travels in every join event and member list. */
export const MAX_INFO_BYTES = 1_024;

export interface TokenVerifierOptions {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Longest lifetime (`exp - iat`) a token may have, seconds (default 1 h). */
  maxTokenAgeSeconds?: number;
  /** Clock skew allowed between the token's issuer and us, seconds (default 30). */
  clockToleranceSeconds?: number;
}

export const DEFAULT_MAX_TOKEN_AGE_SECONDS = 3_600;
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;

/** HS256 keys shorter than its 256-bit output are guessable offline from any one token. */
export const MIN_SECRET_BYTES = 32;

/** A claim listing topic grants (`topics`, `publish`): names, `prefix:*` or `*`. */
const grants = (claim: string) =>
  v.optional(
    v.array(
      v.pipe(
        v.string(`"${claim}" entries must be strings`),
        v.regex(
          TOPIC_GRANT_PATTERN,
          `"${claim}" entries are topic names, prefix grants like "team:42:*" (the * right after one of : . - _ = @) or "*"`,
        ),
      ),
      `"${claim}" must be an array`,
    ),
  );

const Claims = v.object({
  sub: v.pipe(
    v.string('"sub" (the user id) is required'),
    v.regex(
      USER_ID_PATTERN,
      '"sub" must be 1-256 printable characters without whitespace, "{", "}" or "|"',
    ),
  ),
  exp: v.number('"exp" is required: tokens must expire'),
  iat: v.number('"iat" is required: it bounds the token\'s age and makes revocation possible'),
  topics: grants('topics'),
  publish: grants('publish'),
  presence: grants('presence'),
  info: v.optional(
    v.pipe(
      // An object, not an array (valibot's record() takes both).
      v.custom<Record<string, unknown>>(
        (info) => typeof info === 'object' && info !== null && !Array.isArray(info),
        '"info" must be a JSON object',
      ),
      v.check(
        (info) => Buffer.byteLength(JSON.stringify(info)) <= MAX_INFO_BYTES,
        `"info" is over ${MAX_INFO_BYTES} bytes as JSON: keep it to what a member list shows`,
      ),
    ),
  ),
});

export type TokenVerifier = (token: string | undefined) => Promise<Identity>;

/** Checks the options a verifier is built from; a ConfigError names the variable at fault. */
export function checkTokenOptions(options: TokenVerifierOptions): void {
  if (options.secret !== undefined && options.jwksUrl !== undefined) {
    throw new ConfigError(
      'JWT_SECRET and JWT_JWKS_URL are both set: give exactly one (a secret would be ignored)',
    );
  }
  if (options.jwksUrl !== undefined) {
    // Identity providers serve one key set to many tenants: without issuer
    // and audience any of their tokens, for any application, would pass.
    const missing = [
      options.issuer === undefined && 'JWT_ISSUER',
      options.audience === undefined && 'JWT_AUDIENCE',
    ].filter(Boolean);
    if (missing.length > 0) {
      throw new ConfigError(
        `${missing.join(' and ')} required with JWT_JWKS_URL: a shared key set signs other applications' tokens too`,
      );
    }
  } else if (options.secret !== undefined) {
    if (Buffer.byteLength(options.secret) < MIN_SECRET_BYTES) {
      throw new ConfigError(
        `JWT_SECRET is too short: HS256 needs at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -base64 48)`,
      );
    }
  } else {
    throw new ConfigError('Environment variable JWT_SECRET or JWT_JWKS_URL is required');
  }
}

/**
 * Verifies a connection token: HS256 with a shared secret, or asymmetric keys
 * from a JWKS URL (fetched and cached by jose). `exp` and `iat` are required,
 * `exp - iat` is bounded, and a refusal is a 401 whose message says what was
 * wrong, never which key was tried. A key set that cannot be fetched is a
 * 503: the token may be fine, and the client should retry.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  checkTokenOptions(options);
  const key: Uint8Array | JWTVerifyGetKey = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl))
    : new TextEncoder().encode(options.secret);
  const verifyOptions = {
    // HS256 only for a secret; a key set's keys say their own algorithms
    // (jose refuses a JWK whose `alg` differs from the token's).
    ...(!options.jwksUrl && { algorithms: ['HS256'] }),
    ...(options.issuer && { issuer: options.issuer }),
    ...(options.audience && { audience: options.audience }),
    requiredClaims: ['exp', 'iat', 'sub'],
    clockTolerance: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
  };
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  const maxAge = options.maxTokenAgeSeconds ?? DEFAULT_MAX_TOKEN_AGE_SECONDS;

  return async (token) => {
    if (!token) throw new UnauthorizedError('missing token: connect with ?token=<JWT>');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, key as Uint8Array, verifyOptions));
    } catch (error) {
      throw refusal(error, options.jwksUrl !== undefined);
    }
    const claims = v.safeParse(Claims, payload);
    if (!claims.success) {
      throw new UnauthorizedError(
        `token claim rejected: ${claims.issues.map((i) => i.message).join('; ')}`,
      );
    }
    const { sub, exp, iat, topics, publish, presence, info } = claims.output;
    const now = Date.now() / 1000;
    if (iat > now + tolerance) {
      throw new UnauthorizedError('token claim rejected: "iat" is in the future');
    }
    if (exp - iat > maxAge) {
      throw new UnauthorizedError(
        `token lives too long: "exp" - "iat" must be at most ${maxAge} s (JWT_MAX_TOKEN_AGE)`,
      );
    }
    return {
      userId: sub,
      topics: topics ?? [],
      publish: publish ?? [],
      expiresAt: exp * 1000,
      issuedAt: iat * 1000,
      presenceTopics: presence ?? [],
      ...(info !== undefined && { info: JSON.stringify(info) }),
    };
  };
}

/** What a failed verification tells the caller: 401 for the token, 503 for the key set. */
function refusal(error: unknown, jwks: boolean): UnauthorizedError | UnavailableError {
  const code = (error as { code?: string }).code;
  if (
    jwks &&
    (!(error instanceof JOSEError) ||
      code === 'ERR_JWKS_TIMEOUT' ||
      code === 'ERR_JWKS_INVALID' ||
      code === 'ERR_JOSE_GENERIC')
  ) {
    // Network failure, timeout, non-200 or unparsable key set: the identity
    // provider is down, not the token bad.
    return new UnavailableError("the token issuer's key set cannot be fetched: retry later");
  }
  const why =
    code === 'ERR_JWT_EXPIRED'
      ? 'token expired'
      : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
        ? 'bad token signature'
        : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
          ? `token claim rejected: ${(error as Error).message}`
          : 'malformed or unverifiable token';
  return new UnauthorizedError(why);
}

const PREFIX_GRANT = /[_.:@=-]\*$/;

/**
 * Whether a `topics` claim allows a topic: exact names, prefix grants
 * (`team:42:*`) matching topics that start with what precedes the `*` and go
 * on past it, or `*` for all. The claim parser refuses a `*` anywhere else
 * (`team:42*`), so prefixes always end at a separator.
 */
export function topicAllowed(topic: string, grants: readonly string[]): boolean {
  return grants.some((g) =>
    g === '*'
      ? true
      : PREFIX_GRANT.test(g)
        ? topic.length > g.length - 1 && topic.startsWith(g.slice(0, -1))
        : topic === g,
  );
}
