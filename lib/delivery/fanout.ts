import type { Gateway, GatewayResult } from '../gateway/gateway.js';
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
  /**
   * Called for each connection the gateway reports gone, to prune its
   * records; and for each that a post finally failed for, before it is closed.
   */
  prune: (connectionId: string) => Promise<unknown>;
  logger: FanoutLogger;
  concurrency: number;
  /** The invocation's end, less its answer's time (ms since 1970): no post or close runs past it. */
  deadline?: number;
  /** Told of each connection closed because a post to it finally failed (a metric). */
  onClosed?: () => void;
}

/** What closeUntold needs: the fan-out's ports. */
export type CloseDeps = Pick<FanoutDeps, 'gateway' | 'prune' | 'deadline' | 'onClosed'>;

/**
 * The one rule for a delivery the server could not complete: the connection
 * is forgotten and closed, so its client reconnects and resumes from its
 * cursor (and gets the message from history, or is told `recovered:false`),
 * instead of staying open without it. Pruned first, so publishes that read
 * the audience from now on skip it; if even the close fails (the management
 * API is down), the missing record makes its next frame answer
 * `unknown_connection` and close it then. Never throws: answers the close's
 * outcome, or the error that stopped it (callers log, bounded).
 */
export async function closeUntold(
  deps: CloseDeps,
  endpoint: string,
  connectionId: string,
): Promise<GatewayResult | Error> {
  try {
    await deps.prune(connectionId);
    const closed = await deps.gateway.close(endpoint, connectionId, deps.deadline);
    deps.onClosed?.();
    return closed;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
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

/** What became of one connection of a job. */
export type Outcome = keyof DeliveryCounts;

/** One frame (or several, in order) and the connections it goes to. */
export interface DeliveryJob {
  frame: Uint8Array;
  /**
   * Several frames for each connection (a batch publish's messages that do
   * not fit one 128 KB frame): posted in order, each awaited, instead of
   * `frame`. The connection is counted once: delivered when every frame
   * landed; gone, or failed (and closed untold, so it resumes) at the first
   * that did not.
   */
  frames?: Uint8Array[];
  recipients: Recipient[];
  /** Told each connection's outcome (a batch publish counts it for every message the job carries). */
  tally?: (outcome: Outcome) => void;
}

/**
 * Posts frames to many connections with one bound on concurrency across all
 * of them. Partial failure is the normal case: a gone connection is pruned
 * and counted; any other failure (after the gateway's retries) is counted,
 * named in one bounded log line at the end, and its connection closed
 * (closeUntold); neither stops the rest. Recipients are taken endpoint by endpoint, so each API's keep-alive
 * pool is filled in turn rather than all pools trickling at once.
 *
 * A pool of `concurrency` workers draining the current job's connection ids,
 * rather than p-map over an async generator of one task per recipient: that
 * cost ~10 µs of CPU per post (a task object, an async generator step and
 * p-map's bookkeeping per recipient; profiled at N = 10,000, BENCHMARKS.md),
 * a sixth of a post's whole cost. The next job is pulled only when the
 * current one is drained, so a streamed audience is never held whole and the
 * bound stays full from the first post to the last. An error from the job
 * stream itself (Redis) rejects the whole delivery, as before.
 */
export async function deliver(
  jobs: Iterable<DeliveryJob> | AsyncIterable<DeliveryJob>,
  deps: FanoutDeps,
): Promise<DeliveryReport> {
  const counts = emptyReport();
  const source =
    Symbol.asyncIterator in jobs
      ? (jobs as AsyncIterable<DeliveryJob>)[Symbol.asyncIterator]()
      : (jobs as Iterable<DeliveryJob>)[Symbol.iterator]();
  /** Endpoint groups of the job being drained, and the one being drained now. */
  let groups: [string, string[]][] = [];
  let group = 0;
  let job: DeliveryJob = { frame: new Uint8Array(0), recipients: [] };
  let endpoint = '';
  let ids: string[] = [];
  let next = 0;
  let ended = false;
  let pulling: Promise<void> | undefined;
  let closedCount = 0;
  let notClosed = 0;
  let closeError: string | undefined;

  const pull = async () => {
    const step = await source.next();
    if (step.done) {
      ended = true;
      return;
    }
    job = step.value;
    groups = [...groupByEndpoint(step.value.recipients)];
    group = 0;
    ids = [];
    next = 0;
  };
  /** Every frame of a multi-frame job, in order; stops at the first that finds the connection gone. */
  const postAll = async (to: string, connectionId: string, frames: Uint8Array[]) => {
    for (const data of frames) {
      if ((await deps.gateway.post(to, connectionId, data, deps.deadline)) === 'gone')
        return 'gone';
    }
    return 'ok';
  };
  const post = (to: string, connectionId: string, of: DeliveryJob) =>
    (of.frames
      ? postAll(to, connectionId, of.frames)
      : deps.gateway.post(to, connectionId, of.frame, deps.deadline)
    ).then(
      (result) => {
        if (result === 'ok') {
          counts.delivered++;
          of.tally?.('delivered');
          return;
        }
        counts.gone++;
        of.tally?.('gone');
        return deps.prune(connectionId).then(undefined, (error: unknown) => {
          deps.logger.warn('could not prune a gone connection', {
            connectionId,
            reason: reason(error),
          });
        });
      },
      (error: unknown) => {
        // Throttling and transient failures were already retried by the
        // gateway: this connection did not get the message.
        counts.failed++;
        of.tally?.('failed');
        const why = reason(error);
        if (counts.failures.length < MAX_NAMED_FAILURES) {
          counts.failures.push({ connectionId, endpoint: to, reason: why });
        }
        return closeUntold(deps, to, connectionId).then((closed) => {
          if (closed instanceof Error) {
            notClosed++;
            closeError ??= reason(closed);
          } else closedCount++;
        });
      },
    );
  const worker = async () => {
    for (;;) {
      if (next < ids.length) {
        await post(endpoint, ids[next++] as string, job);
      } else if (group < groups.length) {
        [endpoint, ids] = groups[group++] as [string, string[]];
        next = 0;
      } else if (ended) {
        return;
      } else {
        pulling ??= pull().finally(() => {
          pulling = undefined;
        });
        await pulling;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker));
  logFailures(deps.logger, 'delivery failed', counts);
  if (counts.failed > 0) {
    deps.logger.warn(
      'closed the connections a message could not reach (they resume from their cursors)',
      {
        closed: closedCount,
        ...(notClosed > 0 && { notClosed, reason: closeError }),
      },
    );
  }
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
