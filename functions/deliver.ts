import middy from '@middy/core';
import { gateway } from '../lib/aws-clients.js';
import { config, loadSecrets, logger, registry } from '../lib/clients.js';
import { checkChunkEndpoints, chunkJobs, parseDeliverChunk } from '../lib/delivery/chunks.js';
import { deliver } from '../lib/delivery/fanout.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';

/** `deliver`: the fan-out worker `publish` hands each chunk of a large audience to. */
export const handler = middy(async (event: unknown) => {
  const chunk = parseDeliverChunk(event);
  await checkChunkEndpoints(chunk, config().allowedEndpoints, (endpoints) =>
    registry().endpointsKnown(endpoints),
  );
  return deliver(chunkJobs(chunk), {
    gateway: gateway(),
    prune: (connectionId) => registry().remove(connectionId),
    logger: logger(),
    concurrency: config().fanout.concurrency,
  });
})
  .use(invokeErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
