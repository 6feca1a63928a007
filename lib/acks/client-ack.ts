import type { Cluster, Redis } from 'ioredis';
import { ValidationError } from '../errors.js';
import type { ReplyFrame, ServerFrame } from '../protocol/frames.js';
import { decodeMember, type Keys, type Recipient } from '../registry/keys.js';
import ackLua from '../registry/scripts/ack.lua';

/**
 * A connection's `ack` frame (issue 18, PW-K2): one script call for the
 * whole batch (ack.lua). It has its own WebSocket route and function
 * (`ack`, serverless.yml), so none of this is in `$default`'s bundle.
 */
export interface AckResult {
  acked: string[];
  /** Ids with no state for this user: another user's, unknown, or expired. */
  refused: string[];
  /** Ids this ack was the first of, with dismissOthers: `dismiss` goes to `others`. */
  dismissed: string[];
  others: Recipient[];
}

export type AckScript = (userId: string, connectionId: string, ids: string[]) => Promise<AckResult>;

export function redisAcks(
  redis: Redis | Cluster,
  keys: Keys,
  historyTtlSeconds: number,
  now: () => number = Date.now,
): AckScript {
  redis.defineCommand('pwAck', { lua: ackLua });
  return async (userId, connectionId, ids) => {
    const user = keys.audience('user', userId).keys;
    const [codes, members] = await redis.pwAck(
      3 + ids.length,
      user.live,
      user.resuming,
      user.dismissed,
      ...ids.map((id) => keys.ack(userId, id)),
      connectionId,
      now(),
      historyTtlSeconds,
    );
    const pick = (f: (c: number) => boolean) => ids.filter((_, i) => f(codes[i] as number));
    return {
      acked: pick((c) => c > 0),
      refused: pick((c) => c === 0),
      dismissed: pick((c) => c === 2),
      others: members.map(decodeMember),
    };
  };
}

/**
 * Answers an `ack` frame: records the acks, sends `dismiss` to the user's
 * other connections for each first ack that dismisses (PW-K3; a post that
 * fails is left: that device gets `dismissed` when it resumes), and answers
 * `acked`, or `ack_refused` when no id was this user's.
 */
export async function answerAck(
  connection: { userId: string; connectionId: string },
  ids: string[],
  run: AckScript,
  post: (to: Recipient, frame: ServerFrame) => Promise<unknown>,
): Promise<ReplyFrame & { type: 'acked' }> {
  const r = await run(connection.userId, connection.connectionId, ids);
  await Promise.all(
    r.dismissed.flatMap((id) =>
      r.others.map((other) => post(other, { type: 'dismiss', id }).catch(() => undefined)),
    ),
  );
  if (r.acked.length === 0)
    throw new ValidationError(
      `not acknowledged messages of this user (or their state expired): ${r.refused.join(', ')}`,
      'ack_refused',
    );
  return { type: 'acked', ids: r.acked, ...(r.refused.length > 0 && { refused: r.refused }) };
}
