import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { gateway } from '../aws-clients.js';
import {
  config,
  eventOutbox,
  events,
  loadSecrets,
  logger,
  registry,
  verifyToken,
} from '../clients.js';
import { eventsFlushed } from '../events/flush.js';
import { metrics, recordReplay, tally, withMetrics } from '../observability/metrics.js';
import { encodeFrame } from '../protocol/frames.js';
import { handleFrame, type SessionDeps } from '../session/session.js';
import { frameBody, parseWebSocketEvent } from './events.js';
import { secretsLoaded, webSocketErrors } from './middleware.js';

/** What a route adds to the session's dependencies: the features it alone carries. */
export type RouteFeatures = Pick<SessionDeps, 'clientPublish' | 'acks' | 'devices'>;

/**
 * A Lambda for client frames (`$default`, and routes API Gateway selects by
 * action, like `ack`): the frame goes through the session's checks and its
 * reply is the returned body (a two-way route). Each route passes only the
 * features it runs, so its bundle carries only their code. Errors and
 * lifecycle events are reported as `default`'s, the route clients know.
 */
export function frameRoute(features: () => RouteFeatures) {
  return middy(async (event: unknown, context: Context) => {
    const parsed = parseWebSocketEvent(event);
    const reply = await handleFrame(parsed.requestContext.connectionId, frameBody(parsed), {
      registry: registry(),
      gateway: gateway(),
      verifyToken: verifyToken(),
      limits: config().limits,
      replay: config().replay,
      logger: logger(),
      events: events(),
      ...(typeof context?.getRemainingTimeInMillis === 'function' && {
        remainingMs: () => context.getRemainingTimeInMillis(),
      }),
      onReplay: (outcome) => recordReplay(metrics(), outcome),
      onClosed: () => tally('ClosedUndelivered'),
      ...features(),
    });
    return { statusCode: 200, body: encodeFrame(reply) };
  })
    .use(withMetrics())
    .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
    .use(
      webSocketErrors({
        logger,
        events,
        gateway,
        callbackUrl: () => config().callbackUrl,
        metrics,
        route: 'default',
      }),
    )
    .use(secretsLoaded(loadSecrets));
}
