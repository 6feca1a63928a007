import middy from '@middy/core';
import { kick } from '../lib/admin/kick.js';
import { gateway } from '../lib/aws-clients.js';
import { config, loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';

/** `kick`: server-side disconnect by `userId` or `connectionIds` (log-out, revocation, bans). */
export const handler = middy(async (event: unknown) => {
  const { jwt } = config();
  return kick(event, {
    registry: registry(),
    gateway: gateway(),
    logger: logger(),
    // A revocation outlives every token issued before it.
    revocationTtlSeconds: jwt.maxTokenAgeSeconds + jwt.clockToleranceSeconds,
  });
})
  .use(invokeErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
