import middy from '@middy/core';
import { gateway } from '../lib/aws-clients.js';
import { config, eventOutbox, events, loadSecrets, logger, registry } from '../lib/clients.js';
import { checkChunkEndpoints, chunkJobs, parseDeliverChunk } from '../lib/delivery/chunks.js';
import { deliver } from '../lib/delivery/fanout.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { endConnection } from '../lib/session/end.js';

/**
 * `deliver`: the fan-out worker `publish` hands each chunk of a large audience to.
 * No Powertools Tracer here (active tracing only): eight of these start cold
 * side by side in a large fan-out, and Tracer adds ~135 KB and ~15 ms of CPU to load to each.
 */
export const handler = middy(async (event: unknown) => {
  const chunk = parseDeliverChunk(event);
  await checkChunkEndpoints(chunk, config().allowedEndpoints, (endpoints) =>
    registry().endpointsKnown(endpoints),
  );
  return deliver(chunkJobs(chunk), {
    gateway: gateway(),
    prune: (connectionId) =>
      endConnection({ registry: registry(), events: events() }, connectionId, 'gone'),
    logger: logger(),
    concurrency: config().fanout.concurrency,
  });
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
