import pMap from 'p-map';
import type { Gateway } from '../gateway/gateway.js';
import type { Recipient } from '../registry/keys.js';

export interface DeliveryCounts {
  delivered: number;
  gone: number;
  failed: number;
}

export interface FanoutLogger {
  warn(message: string, extra: Record<string, unknown>): void;
}

export interface FanoutDeps {
  gateway: Gateway;
  /** Called for each connection the gateway reports gone, to prune its records. */
  prune: (connectionId: string) => Promise<unknown>;
  logger: FanoutLogger;
  concurrency: number;
}

export const emptyCounts = (): DeliveryCounts => ({ delivered: 0, gone: 0, failed: 0 });

export function addCounts(a: DeliveryCounts, b: DeliveryCounts): DeliveryCounts {
  return {
    delivered: a.delivered + b.delivered,
    gone: a.gone + b.gone,
    failed: a.failed + b.failed,
  };
}

/** Recipients per management API endpoint (one API Gateway API/stage each). */
export function groupByEndpoint(recipients: Iterable<Recipient>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const { endpoint, connectionId } of recipients) {
    const ids = groups.get(endpoint);
    if (ids) ids.push(connectionId);
    else groups.set(endpoint, [connectionId]);
  }
  return groups;
}

/** One frame and the connections it goes to. */
export interface DeliveryJob {
  frame: Uint8Array;
  recipients: Recipient[];
}

/**
 * Posts frames to many connections with one bound on concurrency across all
 * of them. Partial failure is the normal case: a gone connection is pruned
 * and counted, any other failure is logged and counted, and neither stops the
 * rest. Recipients are taken endpoint by endpoint, so each API's keep-alive
 * pool is filled in turn rather than all pools trickling at once.
 */
export async function deliver(
  jobs: Iterable<DeliveryJob> | AsyncIterable<DeliveryJob>,
  deps: FanoutDeps,
): Promise<DeliveryCounts> {
  const counts = emptyCounts();
  // Tasks are pulled as slots free up, so a streamed audience is never held
  // whole and the bound stays full from the first post to the last.
  async function* tasks() {
    for await (const { frame, recipients } of jobs) {
      for (const [endpoint, ids] of groupByEndpoint(recipients)) {
        for (const connectionId of ids) yield { endpoint, connectionId, frame };
      }
    }
  }
  await pMap(
    tasks(),
    async ({ endpoint, connectionId, frame }) => {
      try {
        const result = await deps.gateway.post(endpoint, connectionId, frame);
        if (result === 'ok') {
          counts.delivered++;
          return;
        }
        counts.gone++;
        await deps.prune(connectionId).catch((error: unknown) => {
          deps.logger.warn('could not prune a gone connection', {
            connectionId,
            reason: reason(error),
          });
        });
      } catch (error) {
        counts.failed++;
        deps.logger.warn('delivery failed', { connectionId, endpoint, reason: reason(error) });
      }
    },
    { concurrency: deps.concurrency },
  );
  return counts;
}

export function reason(error: unknown): string {
  if (error instanceof Error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return status
      ? `${error.name} (HTTP ${status}): ${error.message}`
      : `${error.name}: ${error.message}`;
  }
  return String(error);
}
