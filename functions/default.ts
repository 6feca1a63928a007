import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { clientPublishing, gateway, invokeJson } from '../lib/aws-clients.js';
import {
  config,
  eventOutbox,
  events,
  loadSecrets,
  logger,
  registry,
  verifyToken,
} from '../lib/clients.js';
import { frameBody, parseWebSocketEvent } from '../lib/edge/events.js';
import { secretsLoaded, webSocketErrors } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, recordReplay, tally, withMetrics } from '../lib/observability/metrics.js';
import { encodeFrame } from '../lib/protocol/frames.js';
import { handleFrame } from '../lib/session/session.js';

/** `$default`: every client frame. The returned body is the reply frame (a two-way route). */
export const handler = middy(async (event: unknown, context: Context) => {
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
    clientPublish: clientPublishing(),
    devices: (request) => invokeJson(config().devicesFunctionName, request),
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
