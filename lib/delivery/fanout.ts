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

/** A connection that did not get the message, and why. */
export interface Failure {
  connectionId: string;
  endpoint: string;
  reason: string;
}

/** Counts, and the first failures by name: logs and worker answers stay bounded however many fail. */
export interface DeliveryReport extends DeliveryCounts {
  failures: Failure[];
}

/** How many failed connections a log line or a worker's answer names (the rest are counted). */
export const MAX_NAMED_FAILURES = 100;

export const emptyCounts = (): DeliveryCounts => ({ delivered: 0, gone: 0, failed: 0 });
export const emptyReport = (): DeliveryReport => ({ ...emptyCounts(), failures: [] });

export function addCounts(a: DeliveryCounts, b: DeliveryCounts): DeliveryCounts {
  return {
    delivered: a.delivered + b.delivered,
    gone: a.gone + b.gone,
    failed: a.failed + b.failed,
  };
}

export function addReports(a: DeliveryReport, b: DeliveryReport): DeliveryReport {
  return {
    ...addCounts(a, b),
    failures: [...a.failures, ...b.failures].slice(0, MAX_NAMED_FAILURES),
  };
}

/** One log line for the failures of a delivery: the first MAX_NAMED_FAILURES by name, the rest counted. */
export function logFailures(logger: FanoutLogger, message: string, report: DeliveryReport): void {
  if (report.failed === 0) return;
  logger.warn(message, {
    failed: report.failed,
    connections: report.failures,
    ...(report.failed > report.failures.length && {
      unnamed: report.failed - report.failures.length,
    }),
  });
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
 * and counted, any other failure is counted and named in one bounded log line
 * at the end, and neither stops the rest. Recipients are taken endpoint by endpoint, so each API's keep-alive
 * pool is filled in turn rather than all pools trickling at once.
 */
export async function deliver(
  jobs: Iterable<DeliveryJob> | AsyncIterable<DeliveryJob>,
  deps: FanoutDeps,
): Promise<DeliveryReport> {
  const counts = emptyReport();
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
        // Throttling and transient failures were already retried by the
        // gateway: this connection did not get the message.
        counts.failed++;
        if (counts.failures.length < MAX_NAMED_FAILURES) {
          counts.failures.push({ connectionId, endpoint, reason: reason(error) });
        }
      }
    },
    { concurrency: deps.concurrency },
  );
  logFailures(deps.logger, 'delivery failed', counts);
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
