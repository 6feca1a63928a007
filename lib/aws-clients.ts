import { config, once } from './clients.js';
import type { ChunkInvoker } from './delivery/chunks.js';
import type { PutEvents } from './events/eventbridge.js';
import type { Gateway, GatewayResult } from './gateway/gateway.js';
import { tally } from './observability/metrics.js';

/**
 * Clients of AWS services, built once per container and loaded on first use.
 * Each is SigV4-signed keep-alive HTTP through the one signer in lib/aws/,
 * bundled into each zip (docs/deploying.md, "What each zip carries"); the modules behind them are `import()`ed,
 * which esbuild keeps in lazily initialised wrappers, so a `$connect` or
 * `$disconnect` cold start never evaluates them.
 */

/** A Gateway whose real adapter is loaded on first use. */
function lazyGateway(load: () => Promise<Gateway>): Gateway {
  let loaded: Promise<Gateway> | undefined;
  const real = () => {
    loaded ??= load();
    return loaded;
  };
  return {
    post: async (endpoint, connectionId, data, deadline): Promise<GatewayResult> =>
      (await real()).post(endpoint, connectionId, data, deadline),
    close: async (endpoint, connectionId, deadline): Promise<GatewayResult> =>
      (await real()).close(endpoint, connectionId, deadline),
  };
}

export const gateway = /* @__PURE__ */ once(
  (): Gateway =>
    lazyGateway(async () => {
      const c = config();
      const options = {
        // Execute-api endpoints are signed for the region in their host name.
        region: c.callbackRegion,
        regions: c.peerRegions,
        maxSockets: Math.max(50, c.fanout.concurrency),
        throttleMaxAttempts: c.fanout.throttleMaxAttempts,
        throttleBudgetMs: c.fanout.throttleBudgetMs,
        requestTimeoutMs: c.delivery.managementApiTimeoutMs,
        onThrottle: () => tally('ThrottledRetries'),
      };
      const [{ SignedHttpGateway }, { credentialsProvider }] = await Promise.all([
        import('./gateway/signed.js'),
        import('./aws/signing.js'),
      ]);
      return new SignedHttpGateway({ ...options, credentials: credentialsProvider(c.credentials) });
    }),
);

/** Hands a chunk to the `deliver` worker (Lambda Invoke); loaded at the first chunk. */
export const invokeChunk = /* @__PURE__ */ once((): ChunkInvoker => {
  let invoker: Promise<ChunkInvoker> | undefined;
  const load = async () => {
    const c = config();
    const [{ lambdaChunkInvoker }, { signedLambdaInvoke }, { credentialsProvider }] =
      await Promise.all([
        import('./delivery/invoker.js'),
        import('./delivery/lambda-invoke.js'),
        import('./aws/signing.js'),
      ]);
    const invoke = signedLambdaInvoke({
      region: c.region,
      credentials: credentialsProvider(c.credentials),
      maxSockets: c.fanout.parallelChunks,
      ...(c.lambdaEndpoint && { endpoint: c.lambdaEndpoint }),
    });
    return lambdaChunkInvoker(invoke, c.deliverFunctionName);
  };
  return async (chunk) => {
    invoker ??= load();
    return (await invoker)(chunk);
  };
});

/** EventBridge PutEvents for the `events` relay; loaded at its first send. */
export const putEvents = /* @__PURE__ */ once((): PutEvents => {
  let loaded: Promise<PutEvents> | undefined;
  const load = async () => {
    const c = config();
    const [{ signedPutEvents }, { credentialsProvider }] = await Promise.all([
      import('./events/eventbridge.js'),
      import('./aws/signing.js'),
    ]);
    return signedPutEvents({
      region: c.region,
      credentials: credentialsProvider(c.credentials),
      ...(c.events.endpoint && { endpoint: c.events.endpoint }),
    });
  };
  return async (entries) => {
    loaded ??= load();
    return (await loaded)(entries);
  };
});
