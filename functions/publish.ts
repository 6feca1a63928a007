import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { eventOutbox, events, loadSecrets, logger } from '../lib/clients.js';
import { invocationDeadline, invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { publishObserved } from '../lib/edge/operations.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { withTracing } from '../lib/observability/tracing.js';

/** `publish`: invoked by backend services (Lambda Invoke). See docs/services.md. */
export const handler = middy(async (event: unknown, context: Context) =>
  publishObserved(event, invocationDeadline(context)),
)
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(withTracing())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
