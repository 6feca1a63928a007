import * as v from 'valibot';
import { NotifySchema, type PushOutcome, type PushSender } from '../push/types.js';
import { type AckTimeoutMessage, MAX_DELAY_SECONDS, type SendTimeout } from './queue.js';
import type { RedisAckStore } from './store.js';

/**
 * `ackTimeout` (issue 18): SQS delivers each acknowledged message's timeout
 * when its delay is over. No device acked: the push goes out (PushSender,
 * lib/push/) and its outcome is recorded in the status. Redelivery is safe:
 * ack-timeout.lua hands a push to one attempt, and a push that threw is
 * tried again at the queue's next delivery. A lost ack (or lost state) means
 * at most a redundant push, never a missed one: a timeout that finds no
 * state pushes, and counts the loss (AckStateLost).
 */

const MessageSchema = v.object({
  v: v.literal(1),
  userId: v.pipe(v.string(), v.minLength(1)),
  id: v.pipe(v.string(), v.minLength(1)),
  cursor: v.optional(v.string()),
  dueAt: v.number(),
  timeoutSeconds: v.number(),
  notify: v.optional(NotifySchema),
  epoch: v.optional(v.string()),
});

export interface AckTimeoutDeps {
  store: Pick<RedisAckStore, 'decide' | 'recreate' | 'pushed' | 'release'>;
  sender: PushSender;
  /** Sends what remains of a timeout longer than SQS's 900 s back to the queue. */
  schedule: SendTimeout;
  /** The current Redis epoch (null: none yet). */
  epoch: () => Promise<string | null>;
  count: (
    metric: 'AckTimeouts' | 'AckPushes' | 'AckStateLost' | 'AckPushFailures',
    n?: number,
  ) => void;
  logger: {
    info(message: string, extra: Record<string, unknown>): void;
    warn(message: string, extra: Record<string, unknown>): void;
  };
  now?: () => number;
}

export type TimeoutOutcome =
  | 'requeued'
  | 'acked'
  | 'done'
  | 'pushed'
  | 'timed_out'
  | 'lost_pushed'
  | 'lost_timed_out';

/** Handles one timeout message; throws when it must be delivered again (busy, push or Redis failed). */
export async function handleTimeout(body: string, deps: AckTimeoutDeps): Promise<TimeoutOutcome> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  const parsed = v.safeParse(MessageSchema, json);
  if (!parsed.success) {
    // Never ours, or damaged: delivering it again would not mend it.
    deps.logger.warn('ackTimeout: not a timeout message; dropped', {
      issues: parsed.issues.map((i) => i.message),
    });
    return 'done';
  }
  const m = parsed.output as AckTimeoutMessage;
  const now = (deps.now ?? Date.now)();
  // SQS delays at most 900 s: a longer timeout waits again for the rest.
  const left = (m.dueAt - now) / 1000;
  if (left > 1) {
    await deps.schedule(m, Math.min(MAX_DELAY_SECONDS, left));
    return 'requeued';
  }
  const notify = m.notify !== undefined;
  let decision = await deps.store.decide(m.userId, m.id, notify);
  let lost = false;
  if (decision === 'missing') {
    // The state outlives the timeout by design (store.ttlFor): missing means lost.
    const current = await deps.epoch();
    const why =
      m.epoch !== undefined && current !== m.epoch
        ? `redis data lost (epoch ${m.epoch} -> ${current ?? 'none'})`
        : 'state missing (evicted or deleted)';
    deps.count('AckStateLost');
    deps.logger.warn('ackTimeout: ack state lost; pushing (acks before the loss are unknown)', {
      userId: m.userId,
      id: m.id,
      why,
    });
    await deps.store.recreate(m.userId, m.id, why, {
      cursor: m.cursor,
      notify,
      timeoutSeconds: m.timeoutSeconds,
    });
    lost = true;
    decision = notify ? 'push' : 'timed_out';
  }
  if (decision === 'busy') throw new Error(`timeout of ${m.id}: another attempt is pushing`);
  if (decision === 'acked' || decision === 'done') return decision;
  deps.count('AckTimeouts');
  if (decision === 'timed_out' || !m.notify) return lost ? 'lost_timed_out' : 'timed_out';
  let outcome: PushOutcome;
  try {
    outcome = await deps.sender.send(m.userId, m.notify, {
      id: m.id,
      ...(m.cursor !== undefined && { cursor: m.cursor }),
    });
  } catch (error) {
    deps.count('AckPushFailures');
    await deps.store.release(m.userId, m.id).catch(() => undefined);
    throw error;
  }
  await deps.store.pushed(m.userId, m.id, outcome);
  deps.count('AckPushes');
  deps.logger.info('ackTimeout: pushed', { userId: m.userId, id: m.id, ...outcome });
  return lost ? 'lost_pushed' : 'pushed';
}

const SqsEvent = v.object({
  Records: v.array(v.object({ messageId: v.string(), body: v.string() })),
});

/** An SQS batch: each record handled on its own; the failed ones reported for redelivery. */
export async function handleTimeoutBatch(
  event: unknown,
  deps: AckTimeoutDeps,
): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const parsed = v.safeParse(SqsEvent, event);
  if (!parsed.success) throw new Error('ackTimeout: not an SQS event');
  const failures: { itemIdentifier: string }[] = [];
  await Promise.all(
    parsed.output.Records.map(async (record) => {
      try {
        await handleTimeout(record.body, deps);
      } catch (error) {
        deps.logger.warn('ackTimeout: will be delivered again', {
          messageId: record.messageId,
          reason: error instanceof Error ? error.message : String(error),
        });
        failures.push({ itemIdentifier: record.messageId });
      }
    }),
  );
  return { batchItemFailures: failures };
}
