import middy from '@middy/core';
import { logger } from '../lib/clients.js';
import { invokeErrors } from '../lib/edge/middleware.js';
import { operations } from '../lib/edge/operations.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `presence`: `{ userIds?, topic? }` → who is online, and how many a topic has. */
export const handler = middy(async (event: unknown) => operations.presence(event))
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }));
