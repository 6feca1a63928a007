import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ConnectionRegistry } from '../registry/types.js';
import type { PutEvents, PutEventsEntry, SendOptions, SendResult } from './eventbridge.js';
import { sendEvents } from './eventbridge.js';
import type { EventOutbox } from './outbox.js';
import type { EventRecord } from './types.js';

/**
 * The `events` function's loop: takes records from the outbox, sends them to
 * EventBridge in batches, and (when `disconnected` is enabled) sweeps
 * connections that expired without a `$disconnect`. Runs until `keepGoing`
 * says stop (the invocation's time is nearly up); a new one starts every
 * minute (serverless.yml), so records wait at most the poll interval.
 */
export interface RelayDeps {
  outbox: EventOutbox;
  putEvents: PutEvents;
  /** EventBridge bus name (or ARN). */
  bus: string;
  stage: string;
  /** Sweep expired connections into `disconnected` events (only if that type is enabled). */
  sweep?: { registry: ConnectionRegistry; graceMs: number; everyMs: number };
  keepGoing: () => boolean;
  /** Return once the outbox is empty (a drain now), instead of waiting for more. */
  untilEmpty?: boolean;
  /** Told what each send did (metrics, logs). */
  onSent?: (result: SendResult) => void;
  /** A record that is not an EventRecord (never written by pushwire): dropped, counted. */
  onBadRecord?: (record: string) => void;
  send?: SendOptions;
  /** Wait when the outbox is empty, ms. */
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Records taken per round: a few PutEvents requests sent one after another. */
const TAKE = 50;
/** Expired connections taken per sweep. */
const SWEEP_MAX = 100;
export const EVENT_SOURCE = 'pushwire';

/** An outbox record as a PutEvents entry: detail-type `pushwire.<type>`, the detail with its id, time and stage. */
export function toEntry(record: EventRecord, bus: string, stage: string): PutEventsEntry {
  return {
    Source: EVENT_SOURCE,
    DetailType: `pushwire.${record.type}`,
    Detail: JSON.stringify({ eventId: record.id, at: record.at, stage, ...record.detail }),
    EventBusName: bus,
    Time: record.at / 1000,
  };
}

function parseRecord(text: string): EventRecord | undefined {
  try {
    const record = JSON.parse(text) as Partial<EventRecord>;
    if (
      typeof record.type === 'string' &&
      typeof record.id === 'string' &&
      typeof record.at === 'number' &&
      typeof record.detail === 'object' &&
      record.detail !== null
    )
      return record as EventRecord;
  } catch {
    // fall through
  }
  return undefined;
}

export async function relayEvents(deps: RelayDeps): Promise<{ sent: number; failed: number }> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));
  const total = { sent: 0, failed: 0 };
  let nextSweep = 0;
  while (deps.keepGoing()) {
    const records: EventRecord[] = [];
    if (deps.sweep && now() >= nextSweep) {
      nextSweep = now() + deps.sweep.everyMs;
      const expired = await deps.sweep.registry.sweepExpired(now() - deps.sweep.graceMs, SWEEP_MAX);
      for (const { connectionId } of expired)
        records.push({
          type: 'disconnected',
          id: randomUUID(),
          at: now(),
          detail: { connectionId, reason: 'expired' },
        });
    }
    for (const text of await deps.outbox.take(TAKE)) {
      const record = parseRecord(text);
      if (record) records.push(record);
      else deps.onBadRecord?.(text);
    }
    if (records.length === 0) {
      if (deps.untilEmpty) break;
      await sleep(deps.pollMs ?? 250);
      continue;
    }
    const result = await sendEvents(
      records.map((r) => toEntry(r, deps.bus, deps.stage)),
      deps.putEvents,
      deps.send,
    );
    total.sent += result.sent;
    total.failed += result.failed;
    deps.onSent?.(result);
  }
  return total;
}
