import { invokeChunk } from '../aws-clients.js';
import { config, events, logger, registry } from '../clients.js';
import type { Gateway } from '../gateway/gateway.js';
import { tally } from '../observability/metrics.js';
import { endConnection } from '../session/end.js';

/**
 * What every fan-out that may chunk through `deliver` is wired with (a
 * service's or client's publish, presence joins and leaves): one place, so
 * they prune, count and report a connection found gone alike.
 * `deadline`: the invocation's end less its answer's time, when known.
 */
export function fanoutDeps(gateway: Gateway, deadline?: number) {
  const { fanout, delivery } = config();
  return {
    gateway,
    prune: (connectionId: string) =>
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
  };
}
