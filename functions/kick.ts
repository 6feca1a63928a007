import middy from '@middy/core';
import { kick } from '../lib/admin/kick.js';
import { gateway } from '../lib/aws-clients.js';
import { config, eventOutbox, events, loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `kick`: server-side disconnect by `userId` or `connectionIds` (log-out, revocation, bans). */
export const handler = middy(async (event: unknown) => {
  const { jwt } = config();
  return kick(event, {
    registry: registry(),
    gateway: gateway(),
    logger: logger(),
    events: events(),
    // A revocation outlives every token issued before it.
    revocationTtlSeconds: jwt.maxTokenAgeSeconds + jwt.clockToleranceSeconds,
  });
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
