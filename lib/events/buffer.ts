import { randomUUID } from 'node:crypto';
import type { EventDetails, EventSink, EventType } from './types.js';

/**
 * Collects an invocation's events (of the enabled types only) as outbox
 * records; the `eventsFlushed` middleware hands them on when the invocation
 * ends. Disabled types cost one Set lookup.
 */
export class EventBuffer implements EventSink {
  readonly #enabled: ReadonlySet<EventType>;
  readonly #now: () => number;
  #records: string[] = [];

  constructor(enabled: Iterable<EventType>, now: () => number = Date.now) {
    this.#enabled = new Set(enabled);
    this.#now = now;
  }

  emit<T extends EventType>(type: T, detail: EventDetails[T]): void {
    if (!this.#enabled.has(type)) return;
    this.#records.push(JSON.stringify({ type, id: randomUUID(), at: this.#now(), detail }));
  }

  /** The records so far, and an empty buffer. */
  take(): string[] {
    const records = this.#records;
    this.#records = [];
    return records;
  }
}
