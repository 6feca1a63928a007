import type { MiddlewareObj } from '@middy/core';
import { type MetricsRecorder, recordUnsentEvents } from '../observability/metrics.js';
import type { EventBuffer } from './buffer.js';
import type { EventOutbox } from './outbox.js';

export interface EventsFlushedOptions {
  buffer: () => EventBuffer;
  outbox: () => EventOutbox;
  logger: () => { warn(message: string, extra: Record<string, unknown>): void };
  metrics?: () => MetricsRecorder;
}

/**
 * Hands the invocation's lifecycle events to the outbox as it ends (answer
 * or error alike): one RPUSH, awaited, because in Lambda nothing runs after
 * the handler returns. Never fails the invocation: records that could not be
 * stored are counted (EventsUnsent, reason `outbox`) and logged. Use it after
 * withMetrics and before the error middleware, so it runs after the latter
 * (which reports `refused`) and before the metrics are flushed.
 */
export function eventsFlushed(options: EventsFlushedOptions): MiddlewareObj<unknown, unknown> {
  const flush = async () => {
    let records: string[];
    try {
      // Throws only if the config itself is bad, which the handler has already reported.
      records = options.buffer().take();
    } catch {
      return;
    }
    if (records.length === 0) return;
    const unsent = (reason: string, count: number) => {
      if (options.metrics) recordUnsentEvents(options.metrics(), reason, count);
    };
    try {
      const { dropped } = await options.outbox().push(records);
      unsent('outbox_full', dropped);
    } catch (error) {
      unsent('outbox', records.length);
      options.logger().warn('could not store lifecycle events; they are lost', {
        events: records.length,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  };
  return { after: flush, onError: flush };
}
