import middy from '@middy/core';
import { config, loadSecrets, logger, registry, verifyToken } from '../lib/clients.js';
import { parseWebSocketEvent } from '../lib/edge/events.js';
import { secretsLoaded, webSocketErrors } from '../lib/edge/middleware.js';
import { connect } from '../lib/session/session.js';

/** `$connect`: a refused token answers 401 and the handshake fails; nothing is stored. */
export const handler = middy(async (event: unknown) => {
  const { requestContext, queryStringParameters: query } = parseWebSocketEvent(event);
  const callbackUrl = config().callbackUrl;
  const { userId } = await connect(
    {
      connectionId: requestContext.connectionId,
      domainName: requestContext.domainName,
      stage: requestContext.stage,
      ...(requestContext.connectedAt !== undefined && { connectedAt: requestContext.connectedAt }),
      ...(query?.['token'] && { token: query['token'] }),
      ...(query?.['since'] && { since: query['since'] }),
    },
    {
      registry: registry(),
      verifyToken: verifyToken(),
      limits: config().limits,
      ...(callbackUrl && { callbackUrl }),
    },
  );
  logger().debug('connected', { connectionId: requestContext.connectionId, userId });
  return { statusCode: 200 };
})
  .use(webSocketErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
