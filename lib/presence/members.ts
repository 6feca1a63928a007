import { USER_ID_PATTERN } from '../constants.js';
import { ValidationError } from '../errors.js';
import type { ConnectionRegistry } from '../registry/types.js';

/** A user on a topic, as member lists and join events show it. */
export interface Member {
  userId: string;
  /** The `info` claim of the user's token (its newest device's). */
  info?: Record<string, unknown>;
}

export interface MemberList {
  members: Member[];
  /** Users on the topic, each once however many devices. */
  count: number;
  /** Page cursor of the next page, when there is one. */
  next?: string;
}

export const DEFAULT_MEMBERS_LIMIT = 100;
export const MAX_MEMBERS_LIMIT = 1_000;

/**
 * Page cursors are opaque to callers: the last user id of the page, in
 * base64url. Pages are ordered by user id, so a cursor stays valid whatever
 * joins or leaves meanwhile (a user who joins behind it is not listed; one
 * ahead of it is).
 */
const encodeCursor = (userId: string) => Buffer.from(userId).toString('base64url');

function decodeCursor(cursor: string): string {
  const userId = /^[A-Za-z0-9_-]{1,400}$/.test(cursor)
    ? Buffer.from(cursor, 'base64url').toString()
    : '';
  if (!USER_ID_PATTERN.test(userId))
    throw new ValidationError(
      'cursor is not a page cursor: pass the "next" of the previous page',
      'invalid_cursor',
    );
  return userId;
}

/** One page of a topic's members. */
export async function listMembers(
  registry: Pick<ConnectionRegistry, 'members'>,
  topic: string,
  page: { cursor?: string | undefined; limit?: number | undefined },
): Promise<MemberList> {
  const limit = page.limit ?? DEFAULT_MEMBERS_LIMIT;
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const found = await registry.members(topic, after, limit);
  const members = found.members.map(({ userId, info }) =>
    info === undefined ? { userId } : { userId, info: JSON.parse(info) as Record<string, unknown> },
  );
  const last = members.at(-1);
  return {
    members,
    count: found.count,
    ...(found.more && last && { next: encodeCursor(last.userId) }),
  };
}
