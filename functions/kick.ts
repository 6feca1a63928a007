import middy from '@middy/core';
import { kick } from '../lib/admin/kick.js';
import { gateway } from '../lib/aws-clients.js';
import { logger, registry } from '../lib/clients.js';
import { invokeErrors } from '../lib/edge/middleware.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `kick`: server-side disconnect by `userId` or `connectionIds` (log-out, revocation, bans). */
export const handler = middy(async (event: unknown) =>
  kick(event, { registry: registry(), gateway: gateway(), logger: logger() }),
)
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }));
