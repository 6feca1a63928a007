import middy from '@middy/core';
import { logger } from '../lib/clients.js';
import { invokeErrors } from '../lib/edge/middleware.js';
import { operations } from '../lib/edge/operations.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `kick`: server-side disconnect by `userId` or `connectionIds` (log-out, revocation, bans). */
export const handler = middy(async (event: unknown) => operations.kick(event))
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }));
