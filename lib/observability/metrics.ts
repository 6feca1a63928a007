import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { once } from '../clients.js';

/**
 * What an operator watches, as CloudWatch embedded-metric-format (EMF) lines
 * on stdout: Lambda turns them into metrics with no API call, and locally
 * they show in the `npm start` output. Namespace `pushwire`; Powertools adds
 * the `service` dimension from POWERTOOLS_SERVICE_NAME (`pushwire-<stage>`
 * in serverless.yml, so stages do not mix). The dashboard and alarms in
 * serverless.yml read exactly these names.
 */
export const METRICS_NAMESPACE = 'pushwire';

/** Every metric pushwire emits (string literals, so a bundle carries only the names it uses). */
export type MetricName =
  | 'ColdStart'
  | 'Connects'
  | 'HandshakesRefused'
  | 'Disconnects'
  | 'InternalErrors'
  | 'Publishes'
  | 'PublishDuplicates'
  | 'PublishRecipients'
  | 'PublishDelivered'
  | 'PublishGone'
  | 'PublishFailed'
  | 'PublishChunks'
  | 'PublishDuration'
  | 'RequestsRefused'
  | 'Replays'
  | 'ThrottledRetries'
  | 'ClosedUndelivered'
  | 'EventsSent'
  | 'EventsUnsent'
  // Acknowledged messages (issue 18, docs/acks.md).
  | 'Acks'
  | 'AcksRefused'
  | 'AckTimeouts'
  | 'AckPushes'
  | 'AckPushFailures'
  | 'AckStateLost'
  // Push fallback (issue 18, docs/push.md).
  | 'PushSent'
  | 'PushFailed'
  | 'PushRemoved';

/** Built once per container; the same instance collects for every invocation. */
export const metrics = /* @__PURE__ */ once(() => new Metrics({ namespace: METRICS_NAMESPACE }));

/** The narrow surface lib/ records through, so tests hand in a real Metrics or a recorder. */
export type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

export interface MetricsRecorder {
  addMetric(name: string, unit: Unit, value: number): unknown;
  singleMetric(): Pick<MetricsRecorder, 'addMetric'> & {
    addDimension(n: string, v: string): unknown;
  };
}

export interface PublishCounts {
  recipients: number;
  delivered: number;
  gone: number;
  failed: number;
  chunks: number;
  duplicate?: true;
}

/** One publish: who it was for, what happened, how long it took. */
export function recordPublish(m: MetricsRecorder, result: PublishCounts, durationMs: number): void {
  // A repeated id sent nothing: counting its zeros would skew the per-publish figures.
  if (result.duplicate) {
    m.addMetric('PublishDuplicates', MetricUnit.Count, 1);
    return;
  }
  m.addMetric('Publishes', MetricUnit.Count, 1);
  m.addMetric('PublishRecipients', MetricUnit.Count, result.recipients);
  m.addMetric('PublishDelivered', MetricUnit.Count, result.delivered);
  m.addMetric('PublishGone', MetricUnit.Count, result.gone);
  m.addMetric('PublishFailed', MetricUnit.Count, result.failed);
  m.addMetric('PublishChunks', MetricUnit.Count, result.chunks);
  m.addMetric('PublishDuration', MetricUnit.Milliseconds, durationMs);
}

/** A count with one extra dimension (a reason, an outcome), emitted as its own EMF line. */
export function recordBy(
  m: MetricsRecorder,
  name: MetricName,
  dimension: string,
  value: string,
): void {
  const single = m.singleMetric();
  single.addDimension(dimension, value);
  single.addMetric(name, MetricUnit.Count, 1);
}

/**
 * A history replay ended: `recovered` (no gap), `not_recovered` (history was
 * trimmed past the cursor), `stopped` (out of time or failed; the client
 * resumes from the cursor it was given) or `gone` (the connection left).
 */
export function recordReplay(
  m: MetricsRecorder,
  outcome: { recovered: boolean; gone: boolean; complete?: boolean },
): void {
  recordBy(
    m,
    'Replays',
    'outcome',
    outcome.gone
      ? 'gone'
      : outcome.complete === false
        ? 'stopped'
        : outcome.recovered
          ? 'recovered'
          : 'not_recovered',
  );
}

/**
 * Counts kept in memory and added to the metrics once, at the flush: a
 * throttled fan-out may retry thousands of posts in one invocation, and one
 * `addMetric` per retry would be thousands of values (Powertools writes a
 * line per 100 values of a metric).
 */
const tallies = new Map<MetricName, number>();

export function tally(name: MetricName, value = 1): void {
  tallies.set(name, (tallies.get(name) ?? 0) + value);
}

function addTallies(m: Pick<MetricsRecorder, 'addMetric'>): void {
  for (const [name, value] of tallies) m.addMetric(name, MetricUnit.Count, value);
  tallies.clear();
}

/**
 * Flushes what an invocation recorded, and a `ColdStart` count on the first
 * one. Powertools' own `logMetrics` middleware warns on every invocation that
 * recorded nothing (most `$default` pings), which would be noise in every log;
 * this one flushes only when there is something to flush.
 */
export function withMetrics(
  get: () => Metrics = metrics,
): MiddlewareObj<unknown, unknown, Error, Context> {
  const flush = () => {
    const m = get();
    addTallies(m);
    if (m.hasStoredMetrics()) m.publishStoredMetrics();
  };
  return {
    before: (request) => {
      get().captureColdStartMetric(request.context?.functionName);
    },
    after: flush,
    onError: flush,
  };
}

/**
 * Lifecycle events that could not be sent (docs/events.md), twice: in all
 * (what the events-unsent alarm watches) and by `reason` (`put_failed`,
 * `outbox`, `outbox_full`, `bad_record`).
 */
export function recordUnsentEvents(m: MetricsRecorder, reason: string, count: number): void {
  if (count <= 0) return;
  m.addMetric('EventsUnsent', MetricUnit.Count, count);
  const single = m.singleMetric();
  single.addDimension('reason', reason);
  single.addMetric('EventsUnsent', MetricUnit.Count, count);
}
