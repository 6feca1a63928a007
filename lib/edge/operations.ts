import { ackStatus } from '../acks/status.js';
import type { AckStatus } from '../acks/store.js';
import { type KickResult, kick } from '../admin/kick.js';
import { type PresenceResult, presence } from '../admin/presence.js';
import { gateway, invokeJson, publishAcks, smallLaneGateway } from '../aws-clients.js';
import { ackStore, config, dedup, events, logger, registry } from '../clients.js';
import { type BatchResult, isBatchRequest, publishBatch } from '../delivery/batch.js';
import { hookedRequest, type Relayed } from '../delivery/client-relay.js';
import { type PublishOrigin, type PublishResult, publish } from '../delivery/publish.js';
import { HookFailedError } from '../delivery/publish-hook.js';
import { metrics, recordPublish } from '../observability/metrics.js';
import type { DeviceResult } from '../push/service.js';
import { fanoutDeps } from './fanout-wiring.js';

/**
 * What services can ask of pushwire, whichever way they come in (Lambda
 * Invoke, the HTTP API, the queue): one place wires each operation to its
 * dependencies and records the publish metrics, so every way in behaves and
 * counts alike. The edges take an `Operations`, so tests hand in their own.
 */
export interface Operations {
  /** One message, or a batch (`{"messages":[…]}`, lib/delivery/batch.ts). */
  publish(input: unknown): Promise<PublishResult | BatchResult>;
  presence(input: unknown): Promise<PresenceResult>;
  kick(input: unknown): Promise<KickResult>;
  /** An acknowledged message's delivery status (issue 18). */
  status(input: unknown): Promise<AckStatus>;
  /** A user's push devices: register, remove, list (docs/push.md). */
  devices(input: unknown): Promise<DeviceResult>;
}

/** `deadline`: the invocation's end less its answer's time (ms since 1970), when known. */
export async function publishObserved(
  input: unknown,
  deadline?: number,
  origin?: PublishOrigin,
): Promise<PublishResult> {
  const started = performance.now();
  const result = await publish(
    input,
    {
      registry: registry(),
      dedup: dedup(),
      maxPublishBytes: config().delivery.maxPublishBytes,
      acks: publishAcks(),
      // Paced (PACE_RATE): what publish delivers itself takes the small publishes' lane.
      ...fanoutDeps(smallLaneGateway(), deadline),
    },
    origin,
  );
  recordPublish(metrics(), result, performance.now() - started);
  logger().info('published', { ...result });
  return result;
}

/**
 * A client's publish relayed by `$default`: through the publish hook (when
 * one is configured for its topic), then published with its user as `from`.
 */
export async function publishFromClient(
  relayed: Relayed,
  deadline?: number,
): Promise<PublishResult> {
  const hook = config().clientPublish.hook;
  try {
    const { request, origin } = await hookedRequest(
      relayed,
      hook && {
        topics: hook.topics,
        timeoutMs: hook.timeoutMs,
        call: (request, timeoutMs) => invokeJson(hook.functionName, request, timeoutMs),
      },
    );
    return await publishObserved(request, deadline, origin);
  } catch (error) {
    if (error instanceof HookFailedError)
      logger().warn('publish hook failed', { reason: error.message });
    throw error;
  }
}

/**
 * A batch of messages (`{"messages":[…]}`): each message's counts are
 * recorded as a publish's (its duration is the batch's).
 */
export async function publishBatchObserved(
  input: unknown,
  deadline?: number,
): Promise<BatchResult> {
  const started = performance.now();
  const result = await publishBatch(input, {
    registry: registry(),
    dedup: dedup(),
    ...fanoutDeps(smallLaneGateway(), deadline),
  });
  const ms = performance.now() - started;
  for (const message of result.messages) {
    if (!('error' in message)) recordPublish(metrics(), { ...message, chunks: 0 }, ms);
  }
  const { messages, ...totals } = result;
  logger().info('published a batch', {
    ...totals,
    messages: messages.length,
    duplicates: messages.filter((m) => 'duplicate' in m).length,
    refused: messages.filter((m) => 'error' in m).length,
  });
  return result;
}

/** A service's publish, of one message or a batch, by its shape. */
export const publishAny = (input: unknown, deadline?: number) =>
  isBatchRequest(input) ? publishBatchObserved(input, deadline) : publishObserved(input, deadline);

/**
 * Every operation but `devices`, which only the HTTP API adds
 * (functions/http.ts): the queue consumer, which only publishes, carries
 * none of the device code.
 */
export const operations: Omit<Operations, 'devices'> = {
  publish: publishAny,
  presence: (input) => presence(input, { registry: registry() }),
  status: (input) => ackStatus(input, { store: ackStore() }),
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
