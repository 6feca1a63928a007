import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import { deviceOperation, pushSender } from '../lib/aws-clients.js';
import { loadSecrets, logger } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { parsePushRequest } from '../lib/push/service.js';

/**
 * `devices`: a user's push devices (docs/push.md). `{action: "register",
 * userId, webpush | mobile}`, `{action: "remove", userId, id | webpush |
 * mobile}`, `{action: "list", userId}`; and `{action: "push", userId,
 * notify, id?}`, a push to all of them now. Invoked by services, and by
 * `$default` for an app's push_register / push_unregister (with the
 * connection's user).
 */
export const handler = middy(async (event: unknown) => {
  if ((event as { action?: unknown } | null)?.action === 'push') {
    const request = parsePushRequest(event);
    const id = request.id ?? randomUUID();
    return { id, ...(await pushSender().send(request.userId, request.notify, { id })) };
  }
  return deviceOperation()(event);
})
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
