import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';
import * as v from 'valibot';
import { MAX_USER_ID_LENGTH } from '../constants.js';
import { UnauthorizedError } from '../errors.js';

export interface Identity {
  userId: string;
  /** Topic names or `prefix*` patterns from the token's `topics` claim. */
  topics: string[];
}

export interface TokenVerifierOptions {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
}

const Claims = v.object({
  sub: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_USER_ID_LENGTH), v.regex(/^[^\s|]+$/)),
  topics: v.optional(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(129)))),
});

export type TokenVerifier = (token: string | undefined) => Promise<Identity>;

/**
 * Verifies a connection token: HS256 with a shared secret, or asymmetric keys
 * from a JWKS URL (fetched and cached by jose). Any failure is a 401 whose
 * message says what was wrong, never which key was tried.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[] | undefined;
  if (options.jwksUrl) {
    key = createRemoteJWKSet(new URL(options.jwksUrl));
  } else if (options.secret) {
    key = new TextEncoder().encode(options.secret);
    algorithms = ['HS256'];
  } else {
    throw new Error('a JWT secret or JWKS URL is required');
  }
  const verifyOptions = {
    ...(algorithms && { algorithms }),
    ...(options.issuer && { issuer: options.issuer }),
    ...(options.audience && { audience: options.audience }),
  };

  return async (token) => {
    if (!token) throw new UnauthorizedError('missing token: connect with ?token=<JWT>');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, key as Uint8Array, verifyOptions));
    } catch (error) {
      const code = (error as { code?: string }).code;
      const why =
        code === 'ERR_JWT_EXPIRED'
          ? 'token expired'
          : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
            ? 'bad token signature'
            : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
              ? `token claim rejected: ${(error as Error).message}`
              : 'malformed or unverifiable token';
      throw new UnauthorizedError(why);
    }
    const claims = v.safeParse(Claims, payload);
    if (!claims.success)
      throw new UnauthorizedError(
        'token needs a string "sub" (the user id) and optional "topics" array',
      );
    return { userId: claims.output.sub, topics: claims.output.topics ?? [] };
  };
}

/** Whether a `topics` claim allows a topic: exact names, or prefixes ending in `*`. */
export function topicAllowed(topic: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? topic.startsWith(p.slice(0, -1)) : topic === p));
}
