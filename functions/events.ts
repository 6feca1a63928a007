import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { putEvents } from '../lib/aws-clients.js';
import { config, eventOutbox, loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { relayEvents } from '../lib/events/relay.js';
import { metrics, recordUnsentEvents, withMetrics } from '../lib/observability/metrics.js';

/** Left to an invocation after the relay stops: a send in flight finishes, metrics flush. */
const STOP_BEFORE_END_MS = 8_000;

/**
 * `events`: the relay of lifecycle events (docs/events.md). Started every
 * minute; takes what the other functions left in the outbox and sends it to
 * EventBridge with PutEvents until its time is nearly up, and reports
 * connections that expired without a `$disconnect`. Invoked with
 * `{"once": true}`, it sends what waits and returns.
 */
export const handler = middy(async (event: unknown, context: Context) => {
  const started = Date.now();
  const c = config();
  if (c.events.types.length === 0) return { sent: 0, failed: 0 };
  const m = metrics();
  const unsent = (reason: string, count: number) => recordUnsentEvents(m, reason, count);
  return relayEvents({
    outbox: eventOutbox(),
    putEvents: putEvents(),
    bus: c.events.bus,
    stage: c.stage,
    // Invoked with {"once": true}: send what waits now and return (tests, a manual drain).
    untilEmpty: (event as { once?: unknown } | null)?.once === true,
    ...(c.events.types.includes('disconnected') && {
      // A minute past expiry: the record (same TTL) is surely gone if no frame renewed it.
      sweep: { registry: registry(), graceMs: 60_000, everyMs: 10_000 },
    }),
    keepGoing: () =>
      typeof context?.getRemainingTimeInMillis === 'function'
        ? context.getRemainingTimeInMillis() > STOP_BEFORE_END_MS
        : Date.now() < started + 50_000,
    onSent: (result) => {
      if (result.sent > 0) m.addMetric('EventsSent', 'Count', result.sent);
      if (result.failed > 0) {
        unsent('put_failed', result.failed);
        logger().warn('lifecycle events not sent', {
          failed: result.failed,
          errors: result.errors,
        });
      }
      // Long runs: write what was counted now rather than once at the end.
      if (m.hasStoredMetrics()) m.publishStoredMetrics();
    },
    onBadRecord: () => unsent('bad_record', 1),
  });
})
  .use(withMetrics())
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
