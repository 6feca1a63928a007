import middy from '@middy/core';
import { deviceOperation } from '../lib/aws-clients.js';
import { loadSecrets, logger } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';

/**
 * `devices`: a user's push devices (docs/push.md). `{action: "register",
 * userId, webpush | mobile}`, `{action: "remove", userId, id | webpush |
 * mobile}`, `{action: "list", userId}`. Invoked by services, and by `$default`
 * for an app's push_register / push_unregister (with the connection's user).
 */
export const handler = middy(async (event: unknown) => deviceOperation()(event))
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
