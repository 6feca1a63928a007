import { config, once } from './clients.js';
import type { ChunkInvoker } from './delivery/chunks.js';
import type { Gateway, GatewayResult } from './gateway/gateway.js';

/**
 * Clients of AWS services, built once per container and loaded on first use.
 * The SDK modules are not bundled (the Lambda runtime ships them) and cost
 * 50-120 ms each to load, which a `$connect` or `$disconnect` cold start
 * should not pay: they are imported when the first post or invoke needs them.
 */

/** A Gateway whose real adapter (and SDK) is loaded on first use. */
function lazyGateway(load: () => Promise<Gateway>): Gateway {
  let loaded: Promise<Gateway> | undefined;
  const real = () => {
    loaded ??= load();
    return loaded;
  };
  return {
    post: async (endpoint, connectionId, data): Promise<GatewayResult> =>
      (await real()).post(endpoint, connectionId, data),
    close: async (endpoint, connectionId): Promise<GatewayResult> =>
      (await real()).close(endpoint, connectionId),
  };
}

export const gateway = /* @__PURE__ */ once(
  (): Gateway =>
    lazyGateway(async () => {
      const c = config();
      const options = {
        // Execute-api endpoints are signed for the region in their host name.
        region: c.callbackRegion,
        maxSockets: Math.max(50, c.fanout.concurrency),
        throttleMaxAttempts: c.fanout.throttleMaxAttempts,
        throttleBudgetMs: c.fanout.throttleBudgetMs,
      };
      if (c.managementApiClient === 'sdk') {
        const { AwsGateway } = await import('./gateway/sdk.js');
        return new AwsGateway(options);
      }
      const { SignedHttpGateway } = await import('./gateway/signed.js');
      return new SignedHttpGateway(options);
    }),
);

/** Hands a chunk to the `deliver` worker; the Lambda client loads at the first chunk. */
export const invokeChunk = /* @__PURE__ */ once((): ChunkInvoker => {
  let invoker: Promise<ChunkInvoker> | undefined;
  const load = async () => {
    const c = config();
    const [{ LambdaClient }, { lambdaChunkInvoker }] = await Promise.all([
      import('@aws-sdk/client-lambda'),
      import('./delivery/invoker.js'),
    ]);
    const lambda = new LambdaClient({
      region: c.region,
      ...(c.lambdaEndpoint && { endpoint: c.lambdaEndpoint }),
    });
    return lambdaChunkInvoker(lambda, c.deliverFunctionName);
  };
  return async (chunk) => {
    invoker ??= load();
    return (await invoker)(chunk);
  };
});
