import middy from '@middy/core';
import { gateway, invokeChunk } from '../lib/aws-clients.js';
import { config, dedup, loadSecrets, logger, registry } from '../lib/clients.js';
import { publish } from '../lib/delivery/publish.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';

/** `publish`: invoked by backend services (Lambda Invoke). See README, "Publishing". */
export const handler = middy(async (event: unknown) => {
  const { fanout, delivery } = config();
  const result = await publish(event, {
    registry: registry(),
    dedup: dedup(),
    gateway: gateway(),
    prune: (connectionId) => registry().remove(connectionId),
    logger: logger(),
    concurrency: fanout.concurrency,
    chunkSize: fanout.chunk,
    chunkMaxBytes: delivery.chunkMaxBytes,
    parallelChunks: fanout.parallelChunks,
    deliverAttempts: delivery.deliverAttempts,
    invokeChunk: invokeChunk(),
  });
  logger().info('published', { ...result });
  return result;
})
  .use(invokeErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
