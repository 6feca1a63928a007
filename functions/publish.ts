import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { eventOutbox, events, loadSecrets, logger } from '../lib/clients.js';
import { relayedClientPublish } from '../lib/delivery/client-relay.js';
import { invocationDeadline, invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { publishAny, publishFromClient } from '../lib/edge/operations.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { withTracing } from '../lib/observability/tracing.js';

/**
 * `publish`: invoked by backend services (Lambda Invoke; docs/services.md)
 * with one message or a batch (`{"messages":[…]}`),
 * and by `$default` with a client's publish (lib/delivery/client-relay.ts).
 */
export const handler = middy(async (event: unknown, context: Context) => {
  const relayed = relayedClientPublish(event);
  const deadline = invocationDeadline(context);
  return relayed ? publishFromClient(relayed, deadline) : publishAny(event, deadline);
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(withTracing())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
