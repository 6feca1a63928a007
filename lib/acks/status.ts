import * as v from 'valibot';
import { PushwireError, ValidationError } from '../errors.js';
import { describeIssues, PublishId, UserId } from '../protocol/frames.js';
import type { AckStatus, RedisAckStore } from './store.js';

/** The state of an acknowledged message is gone (expired with its history, or never was). */
export class AckNotFoundError extends PushwireError {
  override name = 'AckNotFoundError';
  constructor(userId: string, id: string) {
    super(
      'not_found',
      `no acknowledged message ${JSON.stringify(id)} for user ${JSON.stringify(userId)}: never published with ack, or its state expired with its history (HISTORY_TTL_SECONDS)`,
      404,
    );
  }
}

const StatusRequest = v.strictObject({ id: PublishId, userId: UserId }, (issue) =>
  issue.expected === 'never'
    ? `unknown field ${JSON.stringify(issue.path?.[0]?.key)}`
    : 'a status request is {"id":"…","userId":"…"}',
);

/** `status` (HTTP POST /status, Invoke, the server SDK): an acknowledged message's delivery status. */
export async function ackStatus(
  input: unknown,
  deps: { store: Pick<RedisAckStore, 'status'> },
): Promise<AckStatus> {
  const parsed = v.safeParse(StatusRequest, input);
  if (!parsed.success)
    throw new ValidationError(`invalid status request: ${describeIssues(parsed.issues)}`);
  const { id, userId } = parsed.output;
  const status = await deps.store.status(userId, id);
  if (!status) throw new AckNotFoundError(userId, id);
  return status;
}
