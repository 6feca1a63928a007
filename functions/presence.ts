import middy from '@middy/core';
import { presence } from '../lib/admin/presence.js';
import { loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/** `presence`: `{ userIds?, topic? }` → who is online, and how many a topic has. */
export const handler = middy(async (event: unknown) => presence(event, { registry: registry() }))
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
