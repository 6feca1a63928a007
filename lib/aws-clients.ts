import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { SendTimeout } from './acks/queue.js';
import { ackStore, config, logger, once, redis, registry } from './clients.js';
import type { ChunkInvoker } from './delivery/chunks.js';
import type { PublishAckDeps } from './delivery/publish.js';
import type { PutEvents } from './events/eventbridge.js';
import type { Gateway, GatewayResult } from './gateway/gateway.js';
import { tally } from './observability/metrics.js';
import type { DeviceResult } from './push/service.js';
import type { PushSender } from './push/types.js';
import type { ClientPublishDeps } from './session/client-publish.js';

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

/** Told of each management API call about to be retried: the paced lanes lower the shared rate on a 429. */
const throttled: ((error: unknown) => void)[] = [];

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
        onThrottle: (error: unknown) => {
          tally('ThrottledRetries');
          for (const told of throttled) told(error);
        },
      };
      const [{ SignedHttpGateway }, { credentialsProvider }] = await Promise.all([
        import('./gateway/signed.js'),
        import('./aws/signing.js'),
      ]);
      return new SignedHttpGateway({ ...options, credentials: credentialsProvider(c.credentials) });
    }),
);

/**
 * The gateway of one paced lane (lib/delivery/pacing.ts): `publish` posts
 * what it delivers itself through the 'small' lane, `deliver` workers through
 * 'bulk', which leaves PACE_RESERVE tokens to the first. Unpaced (the plain
 * gateway) when PACE_RATE is 0. Built here, not in gateway(), so the pacing
 * code stays out of the connection routes' bundles.
 */
function pacedLane(lane: 'small' | 'bulk'): Gateway {
  const c = config();
  if (c.pace.rate === 0) return gateway();
  return lazyGateway(async () => {
    const { Pacer, RedisPaceLimiter, pacedGateway } = await import('./delivery/pacing.js');
    const { rate, burst, reserve } = c.pace;
    let told = false;
    const pacer = new Pacer({
      limiter: new RedisPaceLimiter(redis(), registry().keys.pace(c.region), { rate, burst }),
      // About 50 ms of the rate per round trip (a loaded Redis or event loop must not cap the rate), within the fan-out's concurrency.
      batch: Math.max(1, Math.min(c.fanout.concurrency, Math.ceil(rate / 20))),
      keep: lane === 'bulk' ? reserve : 0,
      onError: (error) => {
        if (told) return;
        told = true;
        logger().warn('pacing: the shared bucket is unreachable; delivering unpaced', {
          reason: error instanceof Error ? error.message : String(error),
        });
      },
    });
    throttled.push((error) => pacer.retried(error));
    return pacedGateway(gateway(), pacer);
  });
}

export const smallLaneGateway = /* @__PURE__ */ once(() => pacedLane('small'));
export const bulkLaneGateway = /* @__PURE__ */ once(() => pacedLane('bulk'));

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

/**
 * Lambda Invoke for client publishes (issue 16): `$default` hands each to
 * `publish`, which calls the publish hook. One signed RequestResponse POST
 * on a keep-alive socket, through the signer `$default` already carries for
 * its management API posts; not signedLambdaInvoke (lib/delivery/lambda-invoke.ts),
 * whose ~1.5 KB `$default`'s bundle has no room for. No retry of a throttled
 * call here: the client library sends the publish again (same id).
 */
const invokeFunction = /* @__PURE__ */ once(() => {
  let loaded: Promise<(name: string, payload: Uint8Array, timeoutMs?: number) => Promise<unknown>>;
  const load = async () => {
    const c = config();
    const { createSigner, credentialsProvider, regionalEndpoint, signedPost } = await import(
      './aws/signing.js'
    );
    const url = new URL(c.lambdaEndpoint ?? regionalEndpoint('lambda', c.region));
    const agent = new (url.protocol === 'https:' ? HttpsAgent : HttpAgent)({ keepAlive: true });
    const signer = createSigner('lambda', c.region, credentialsProvider(c.credentials));
    const base = url.pathname.replace(/\/+$/, '');
    return async (name: string, payload: Uint8Array, timeoutMs?: number) => {
      const response = await signedPost(
        signer,
        url,
        `${base}/2015-03-31/functions/${encodeURIComponent(name)}/invocations`,
        { 'content-type': 'application/json' },
        payload,
        { agent, ...(timeoutMs && { timeoutMs }) },
      );
      const text = response.body.toString();
      // A function that threw is a 200 with X-Amz-Function-Error.
      if (response.status !== 200 || response.headers['x-amz-function-error'])
        throw new Error(`Invoke ${name}: HTTP ${response.status} ${text.slice(0, 200)}`);
      return JSON.parse(text) as unknown;
    };
  };
  return async (name: string, payload: Uint8Array, timeoutMs?: number) => {
    loaded ??= load();
    return (await loaded)(name, payload, timeoutMs);
  };
});

/** What `$default` needs for client publishes: the relay to `publish`, and the limits. */
export const clientPublishing = /* @__PURE__ */ once((): ClientPublishDeps => {
  const c = config().clientPublish;
  return {
    registry: registry(),
    relay: (envelope) => invokeJson(c.functionName, envelope),
    rate: c.rate,
    windowSeconds: c.windowSeconds,
    maxBytes: c.maxBytes,
  };
});

/** Invokes a function with a JSON payload: its parsed answer; throws when it failed. */
export function invokeJson(name: string, body: unknown, timeoutMs?: number): Promise<unknown> {
  return invokeFunction()(name, Buffer.from(JSON.stringify(body)), timeoutMs);
}

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

/**
 * SQS SendMessage of acknowledged messages' timeouts (issue 18,
 * lib/acks/queue.ts); loaded at the first. Undefined without ACK_QUEUE_URL.
 */
export const sendAckTimeout = /* @__PURE__ */ once((): SendTimeout | undefined => {
  const c = config();
  const queueUrl = c.acks.queueUrl;
  if (queueUrl === undefined) return undefined;
  let loaded: Promise<SendTimeout> | undefined;
  const load = async () => {
    const [{ signedSendTimeout }, { credentialsProvider }] = await Promise.all([
      import('./acks/queue.js'),
      import('./aws/signing.js'),
    ]);
    return signedSendTimeout({
      region: c.region,
      queueUrl,
      credentials: credentialsProvider(c.credentials),
      ...(c.acks.sqsEndpoint && { endpoint: c.acks.sqsEndpoint }),
    });
  };
  return async (message, delaySeconds) => {
    loaded ??= load();
    return (await loaded)(message, delaySeconds);
  };
});

/** What an acknowledged publish needs (lib/delivery/publish.ts); undefined without ACK_QUEUE_URL. */
export const publishAcks = /* @__PURE__ */ once((): PublishAckDeps | undefined => {
  const schedule = sendAckTimeout();
  if (!schedule) return undefined;
  const store = ackStore();
  return {
    open: (userId, id, o) => store.open(userId, id, o),
    schedule,
    maxTimeoutSeconds: config().history.ttlSeconds,
  };
});

/**
 * The push fallback (issue 18): sends a user's notification to every
 * registered device (Web Push, SNS mobile push). web-push and the SNS calls
 * load on the first send, so only the function that runs the fallback
 * carries them (lib/push/wiring.ts).
 */
export const pushSender = /* @__PURE__ */ once((): PushSender => {
  let loaded: Promise<PushSender> | undefined;
  return {
    send: async (userId, notify, message) => {
      loaded ??= import('./push/sender-wiring.js')
        .then((m) => m.buildPushSender())
        .catch((error: unknown) => {
          loaded = undefined;
          throw error;
        });
      return (await loaded).send(userId, notify, message);
    },
  };
});

/** Registers, removes and lists push devices (`devices` function, HTTP /devices); loaded at first use. */
export const deviceOperation = /* @__PURE__ */ once(() => {
  let loaded: Promise<(input: unknown) => Promise<DeviceResult>> | undefined;
  return async (input: unknown): Promise<DeviceResult> => {
    loaded ??= import('./push/wiring.js')
      .then((m) => m.buildDeviceOperation())
      .catch((error: unknown) => {
        loaded = undefined;
        throw error;
      });
    return (await loaded)(input);
  };
});
