import middy from '@middy/core';
import {
  config,
  eventOutbox,
  events,
  loadSecrets,
  logger,
  registry,
  verifyToken,
} from '../lib/clients.js';
import { parseWebSocketEvent } from '../lib/edge/events.js';
import { secretsLoaded, webSocketErrors } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { connect } from '../lib/session/session.js';

/**
 * `$connect`: a refused token answers 401 and the handshake fails; nothing is
 * stored. The client sees only the status; the reason is logged with the
 * connection id and counted (HandshakesRefused, by reason).
 */
export const handler = middy(async (event: unknown) => {
  const { requestContext, queryStringParameters: query } = parseWebSocketEvent(event);
  const callbackUrl = config().callbackUrl;
  const { userId } = await connect(
    {
      connectionId: requestContext.connectionId,
      domainName: requestContext.domainName,
      stage: requestContext.stage,
      ...(requestContext.connectedAt !== undefined && { connectedAt: requestContext.connectedAt }),
      ...(query?.['token'] && { token: query['token'] }),
      ...(query?.['since'] && { since: query['since'] }),
    },
    {
      registry: registry(),
      verifyToken: verifyToken(),
      limits: config().limits,
      events: events(),
      ...(callbackUrl && { callbackUrl }),
    },
  );
  metrics().addMetric('Connects', 'Count', 1);
  logger().debug('connected', { connectionId: requestContext.connectionId, userId });
  return { statusCode: 200 };
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(webSocketErrors({ logger, metrics, events, route: 'connect' }))
  .use(secretsLoaded(loadSecrets));
