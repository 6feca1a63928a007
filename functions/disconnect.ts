import middy from '@middy/core';
import { eventOutbox, events, loadSecrets, logger, registry } from '../lib/clients.js';
import { parseWebSocketEvent } from '../lib/edge/events.js';
import { secretsLoaded, webSocketErrors } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { disconnect } from '../lib/session/session.js';

/** `$disconnect`: best-effort in API Gateway; TTLs and 410 pruning cover a missed one. */
export const handler = middy(async (event: unknown) => {
  const { requestContext } = parseWebSocketEvent(event);
  await disconnect(requestContext.connectionId, { registry: registry(), events: events() });
  metrics().addMetric('Disconnects', 'Count', 1);
  return { statusCode: 200 };
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(webSocketErrors({ logger, metrics, route: 'disconnect' }))
  .use(secretsLoaded(loadSecrets));
