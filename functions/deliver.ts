import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { bulkLaneGateway } from '../lib/aws-clients.js';
import { config, eventOutbox, events, loadSecrets, logger, registry } from '../lib/clients.js';
import { deliverBatchChunk, isBatchChunk, parseBatchChunk } from '../lib/delivery/batch-frames.js';
import {
  checkChunkEndpoints,
  chunkJobs,
  type DeliverChunk,
  parseDeliverChunk,
} from '../lib/delivery/chunks.js';
import { deliver } from '../lib/delivery/fanout.js';
import { invocationDeadline, invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, tally, withMetrics } from '../lib/observability/metrics.js';
import { endConnection } from '../lib/session/end.js';

/**
 * `deliver`: the fan-out worker `publish` hands each chunk of a large audience to.
 * No Powertools Tracer here (active tracing only): eight of these start cold
 * side by side in a large fan-out, and Tracer adds ~135 KB and ~15 ms of CPU to load to each.
 */
export const handler = middy(async (event: unknown, context: Context) => {
  // A batch publish's chunk (`batch`: its messages, and who gets which), or one message's.
  const batch = isBatchChunk(event) ? parseBatchChunk(event) : undefined;
  const chunk = batch ?? parseDeliverChunk(event);
  const deadline = invocationDeadline(context);
  const c = config();
  await checkChunkEndpoints(
    chunk,
    c.allowedEndpoints,
    // Without WS_PEERS=account, the roles may post only to the listed APIs.
    c.acceptRecordedEndpoints ? (endpoints) => registry().endpointsKnown(endpoints) : undefined,
  );
  const deps = {
    gateway: bulkLaneGateway(),
    prune: (connectionId: string) =>
      endConnection({ registry: registry(), events: events() }, connectionId, 'gone'),
    logger: logger(),
    concurrency: config().fanout.concurrency,
    onClosed: () => tally('ClosedUndelivered'),
    ...(deadline !== undefined && { deadline }),
  };
  if (batch) return deliverBatchChunk(batch, deps);
  return deliver(chunkJobs(chunk as DeliverChunk), deps);
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
