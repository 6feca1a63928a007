import middy from '@middy/core';
import { eventOutbox, events, loadSecrets, logger } from '../lib/clients.js';
import { handleQueueBatch, isEventBridgeEvent, requestFromEvent } from '../lib/edge/batch.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { operations } from '../lib/edge/operations.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { withTracing } from '../lib/observability/tracing.js';

/**
 * `queue`: publishes from the SQS queue (and, through it, the EventBridge
 * rule). Also takes a bare EventBridge event, for a rule that targets this
 * function directly: that one is published or thrown (Lambda's async retries).
 */
export const handler = middy(async (event: unknown) => {
  if (isEventBridgeEvent(event)) return operations.publish(requestFromEvent(event));
  return handleQueueBatch(event, { operations, logger: logger() });
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(withTracing())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
