import { SignJWT } from 'jose';
import { DEV_JWT_SECRET } from './local-env.js';

/** A dev token for local use (HS256 with the dev secret, or JWT_SECRET). */
export async function devToken(
  userId: string,
  options: {
    topics?: string[];
    /** Topics the user may publish to from the client (issue 16). */
    publish?: string[];
    secret?: string;
    expiresIn?: string;
    /** More claims (issue 16: `presence`, `info`). */
    claims?: Record<string, unknown>;
  } = {},
): Promise<string> {
  const secret = new TextEncoder().encode(
    options.secret ?? process.env['JWT_SECRET'] ?? DEV_JWT_SECRET,
  );
  return new SignJWT({
    ...options.claims,
    ...(options.topics && { topics: options.topics }),
    ...(options.publish && { publish: options.publish }),
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h')
    .sign(secret);
}
