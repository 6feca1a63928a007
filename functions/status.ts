import middy from '@middy/core';
import { ackStatus } from '../lib/acks/status.js';
import { ackStore, loadSecrets, logger } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `status`: `{ id, userId }` → an acknowledged message's delivery status (issue 18, docs/acks.md). */
export const handler = middy(async (event: unknown) => ackStatus(event, { store: ackStore() }))
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
