import pMap from 'p-map';
import * as v from 'valibot';
import { MAX_TARGETS } from '../constants.js';
import { ValidationError } from '../errors.js';
import { listMembers, MAX_MEMBERS_LIMIT, type Member } from '../presence/members.js';
import { describeIssues, Topic, UserId } from '../protocol/frames.js';
import type { ConnectionRegistry } from '../registry/types.js';

const PresenceRequestSchema = v.pipe(
  v.strictObject({
    userIds: v.optional(v.pipe(v.array(UserId), v.maxLength(MAX_TARGETS))),
    topic: v.optional(Topic),
    /** A page of the topic's users, not only their count (PW-S2). */
    members: v.optional(v.literal(true, 'members must be true when given')),
    cursor: v.optional(
      v.pipe(v.string('cursor must be a string'), v.minLength(1), v.maxLength(400)),
    ),
    limit: v.optional(
      v.pipe(
        v.number(),
        v.integer(),
        v.minValue(1),
        v.maxValue(MAX_MEMBERS_LIMIT, 'limit is 1 to 1000'),
      ),
    ),
  }),
  v.check(
    (r) => r.userIds !== undefined || r.topic !== undefined,
    'give userIds, a topic, or both',
  ),
  v.check(
    (r) => r.members !== undefined || (r.cursor === undefined && r.limit === undefined),
    'cursor and limit page a member list: give members: true with them',
  ),
  v.check((r) => r.members === undefined || r.topic !== undefined, 'members needs a topic'),
);

export interface PresenceResult {
  users?: Record<string, { online: boolean; connections: number }>;
  /** `members`: devices connected to the topic (a user with two counts twice). */
  topic?: { name: string; members: number };
  /** With `members: true`: a page of the topic's users, each once, in user id order. */
  members?: Member[];
  /** Users on the topic (with `members: true`). */
  count?: number;
  /** The cursor of the next page, when there is one. */
  next?: string;
}

/**
 * Who is online, answered from counts (ZCOUNT over unexpired members): a topic
 * of any size is counted without loading its members.
 */
export async function presence(
  input: unknown,
  deps: { registry: ConnectionRegistry },
): Promise<PresenceResult> {
  const parsed = v.safeParse(PresenceRequestSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid presence request: ${describeIssues(parsed.issues)}`);
  const { userIds, topic } = parsed.output;
  const result: PresenceResult = {};
  if (userIds) {
    const counts = await pMap(
      userIds,
      (u) => deps.registry.countConnected(deps.registry.userAudience(u)),
      { concurrency: 64 },
    );
    result.users = Object.fromEntries(
      userIds.map((u, i) => [u, { online: (counts[i] ?? 0) > 0, connections: counts[i] ?? 0 }]),
    );
  }
  if (topic !== undefined && parsed.output.members) {
    Object.assign(result, await listMembers(deps.registry, topic, parsed.output));
  }
  if (topic !== undefined) {
    result.topic = {
      name: topic,
      members: await deps.registry.countConnected(deps.registry.topicAudience(topic)),
    };
  }
  return result;
}
