import { type KickResult, kick } from '../admin/kick.js';
import { type PresenceResult, presence } from '../admin/presence.js';
import { gateway, invokeChunk, smallLaneGateway } from '../aws-clients.js';
import { config, dedup, events, logger, registry } from '../clients.js';
import { type PublishResult, publish } from '../delivery/publish.js';
import { metrics, recordPublish, tally } from '../observability/metrics.js';
import { endConnection } from '../session/end.js';

/**
 * What services can ask of pushwire, whichever way they come in (Lambda
 * Invoke, the HTTP API, the queue): one place wires each operation to its
 * dependencies and records the publish metrics, so every way in behaves and
 * counts alike. The edges take an `Operations`, so tests hand in their own.
 */
export interface Operations {
  publish(input: unknown): Promise<PublishResult>;
  presence(input: unknown): Promise<PresenceResult>;
  kick(input: unknown): Promise<KickResult>;
}

/** `deadline`: the invocation's end less its answer's time (ms since 1970), when known. */
export async function publishObserved(input: unknown, deadline?: number): Promise<PublishResult> {
  const started = performance.now();
  const { fanout, delivery } = config();
  const result = await publish(input, {
    registry: registry(),
    dedup: dedup(),
    // Paced (PACE_RATE): what publish delivers itself takes the small publishes' lane.
    gateway: smallLaneGateway(),
    prune: (connectionId) =>
      endConnection({ registry: registry(), events: events() }, connectionId, 'gone'),
    logger: logger(),
    concurrency: fanout.concurrency,
    chunkSize: fanout.chunk,
    chunkMaxBytes: delivery.chunkMaxBytes,
    parallelChunks: fanout.parallelChunks,
    deliverAttempts: delivery.deliverAttempts,
    invokeChunk: invokeChunk(),
    onClosed: () => tally('ClosedUndelivered'),
    ...(deadline !== undefined && { deadline }),
  });
  recordPublish(metrics(), result, performance.now() - started);
  logger().info('published', { ...result });
  return result;
}

export const operations: Operations = {
  publish: publishObserved,
  presence: (input) => presence(input, { registry: registry() }),
  kick: (input) =>
    kick(input, {
      registry: registry(),
      gateway: gateway(),
      logger: logger(),
      events: events(),
      // A revocation outlives every token issued before it (as functions/kick.ts).
      revocationTtlSeconds: config().jwt.maxTokenAgeSeconds + config().jwt.clockToleranceSeconds,
    }),
};
