import { SignJWT } from 'jose';
import { DEV_JWT_SECRET } from './local-env.js';

/** A dev token for local use (HS256 with the dev secret, or JWT_SECRET). */
export async function devToken(
  userId: string,
  options: { topics?: string[]; publish?: string[]; secret?: string; expiresIn?: string } = {},
): Promise<string> {
  const secret = new TextEncoder().encode(
    options.secret ?? process.env['JWT_SECRET'] ?? DEV_JWT_SECRET,
  );
  return new SignJWT({
    ...(options.topics && { topics: options.topics }),
    // Topics the user may publish to from the client (issue 16).
    ...(options.publish && { publish: options.publish }),
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h')
    .sign(secret);
}
