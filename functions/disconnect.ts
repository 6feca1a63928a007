import middy from '@middy/core';
import { loadSecrets, logger, registry } from '../lib/clients.js';
import { parseWebSocketEvent } from '../lib/edge/events.js';
import { secretsLoaded, webSocketErrors } from '../lib/edge/middleware.js';
import { disconnect } from '../lib/session/session.js';

/** `$disconnect`: best-effort in API Gateway; TTLs and 410 pruning cover a missed one. */
export const handler = middy(async (event: unknown) => {
  const { requestContext } = parseWebSocketEvent(event);
  await disconnect(requestContext.connectionId, { registry: registry() });
  return { statusCode: 200 };
})
  .use(webSocketErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
