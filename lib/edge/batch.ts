import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import * as v from 'valibot';
import { ValidationError } from '../errors.js';
import type { Operations } from './operations.js';

/**
 * The queue and the event bus: publish requests arriving as SQS messages,
 * either sent straight to the queue or routed there by the EventBridge rule
 * (`detail-type: pushwire.publish`; the message body is then the whole
 * EventBridge event and the request is its `detail`).
 *
 * Each message is one publish. A batch reports only the messages that failed
 * (`batchItemFailures`, Powertools Batch), so SQS redelivers those and not the
 * rest; after `maxReceiveCount` receives they land in the dead-letter queue.
 * A request without an `id` gets a stable one (the EventBridge event id, else
 * the SQS message id), so a redelivered message never reaches a device twice.
 * A message may be a batch (`{"messages":[…]}`, within SQS's 256 KB): its
 * messages without an `id` get `<that id>:<index>`.
 */

export const PUBLISH_DETAIL_TYPE = 'pushwire.publish';

const EventBridgeEvent = v.looseObject({
  id: v.string(),
  'detail-type': v.string(),
  source: v.string(),
  detail: v.unknown(),
});
type EventBridgeEvent = v.InferOutput<typeof EventBridgeEvent>;

export const isEventBridgeEvent = (value: unknown): value is EventBridgeEvent =>
  v.is(EventBridgeEvent, value);

/** The publish request an EventBridge event carries, with its event id as the default `id`. */
export function requestFromEvent(event: EventBridgeEvent): unknown {
  if (event['detail-type'] !== PUBLISH_DETAIL_TYPE) {
    throw new ValidationError(
      `detail-type is "${event['detail-type']}"; pushwire publishes "${PUBLISH_DETAIL_TYPE}" events`,
    );
  }
  return withDefaultId(event.detail, event.id);
}

/** The publish request an SQS message carries (plain, or an EventBridge event). */
export function requestFromRecord(record: Pick<SQSRecord, 'body' | 'messageId'>): unknown {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    throw new ValidationError('the message body is not valid JSON');
  }
  if (isEventBridgeEvent(body)) return requestFromEvent(body);
  return withDefaultId(body, record.messageId);
}

function withDefaultId(request: unknown, id: string): unknown {
  // Not an object: left as it is, for publish to refuse with its own message.
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return request;
  // A batch: each message without an id gets `<id>:<index>`, as stable.
  if ('messages' in request && Array.isArray(request.messages)) {
    return {
      ...request,
      messages: request.messages.map((m: unknown, n: number) => withDefaultId(m, `${id}:${n}`)),
    };
  }
  return 'id' in request ? request : { ...request, id };
}

const SqsEvent = v.looseObject({
  Records: v.array(v.looseObject({ messageId: v.string(), body: v.string() })),
});

export interface BatchLogger {
  warn(message: string, extra: Record<string, unknown>): void;
}

/** One SQS batch: publishes each message, and names the ones to redeliver. */
export async function handleQueueBatch(
  event: unknown,
  deps: { operations: Pick<Operations, 'publish'>; logger: BatchLogger },
): Promise<SQSBatchResponse> {
  if (!v.is(SqsEvent, event))
    throw new ValidationError('not an SQS event (Records) nor an EventBridge event (detail-type)');
  const processor = new BatchProcessor(EventType.SQS);
  return processPartialResponse(
    // Checked above for what we and Powertools read (messageId, body).
    event as unknown as { Records: SQSRecord[] },
    async (record: SQSRecord) => {
      try {
        return await deps.operations.publish(requestFromRecord(record));
      } catch (error) {
        deps.logger.warn('queued publish failed', {
          messageId: record.messageId,
          receiveCount: record.attributes?.ApproximateReceiveCount,
          reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
        throw error;
      }
    },
    processor,
    // All failed: report them all like any partial failure, rather than
    // failing the invocation (same redelivery, no misleading Lambda error).
    { throwOnFullBatchFailure: false },
  );
}
