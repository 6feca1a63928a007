import pMap from 'p-map';
import * as v from 'valibot';
import { MAX_TARGETS } from '../constants.js';
import { ValidationError } from '../errors.js';
import { describeIssues, Topic, UserId } from '../protocol/frames.js';
import type { ConnectionRegistry } from '../registry/types.js';

const PresenceRequestSchema = v.pipe(
  v.strictObject({
    userIds: v.optional(v.pipe(v.array(UserId), v.maxLength(MAX_TARGETS))),
    topic: v.optional(Topic),
  }),
  v.check(
    (r) => r.userIds !== undefined || r.topic !== undefined,
    'give userIds, a topic, or both',
  ),
);

export interface PresenceResult {
  users?: Record<string, { online: boolean; connections: number }>;
  topic?: { name: string; members: number };
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
  if (topic !== undefined) {
    result.topic = {
      name: topic,
      members: await deps.registry.countConnected(deps.registry.topicAudience(topic)),
    };
  }
  return result;
}
