import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { answerAck } from '../lib/acks/client-ack.js';
import { gateway } from '../lib/aws-clients.js';
import {
  clientAcks,
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

/**
 * The `ack` route (issue 18, PW-K2): a client's `{"action":"ack","ids":[…]}`.
 * API Gateway routes it here by its action, so acks (their script and the
 * dismiss fan-out) are not in `$default`'s bundle; one invocation per batch.
 * The frame goes through the same checks as every `$default` frame.
 */
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
    acks: async (connection, ids, post) => {
      try {
        const reply = await answerAck(connection, ids, clientAcks(), post);
        tally('Acks', reply.ids.length);
        if (reply.refused) tally('AcksRefused', reply.refused.length);
        return reply;
      } catch (error) {
        tally('AcksRefused', ids.length);
        throw error;
      }
    },
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
      // A client frame like any other (the lifecycle event's route is `default`).
      route: 'default',
    }),
  )
  .use(secretsLoaded(loadSecrets));
