import { describe, expect, it } from 'vitest';
import { EventBuffer } from '../../lib/events/buffer.js';
import { toEntry } from '../../lib/events/relay.js';
import { EVENT_TYPES, type EventDetails, type EventRecord } from '../../lib/events/types.js';
import { eventDetailErrors, eventMessages } from '../helpers/events-schema.js';

// The `events` channel of docs/asyncapi.yaml is the contract consumers build
// on: every event type has a message there (named by its detail-type), and
// what the relay sends validates against its schema.

/** One detail of each type, as the code builds them (typed by EventDetails). */
const samples: { [T in (typeof EVENT_TYPES)[number]]: EventDetails[T][] } = {
  connected: [
    { connectionId: 'c=', userId: 'u', connectedAt: 1, tokenExpiresAt: 2 },
    { connectionId: 'c=', userId: 'u', connectedAt: 1 },
  ],
  disconnected: [
    { connectionId: 'c=', userId: 'u', reason: 'client_close' },
    { connectionId: 'c=', userId: 'u', reason: 'kick' },
    { connectionId: 'c=', userId: 'u', reason: 'token_expired' },
    { connectionId: 'c=', userId: 'u', reason: 'gone' },
    { connectionId: 'c=', reason: 'expired' },
  ],
  subscribed: [{ connectionId: 'c=', userId: 'u', topic: 'news' }],
  unsubscribed: [
    { connectionId: 'c=', userId: 'u', topic: 'news', reason: 'client' },
    { connectionId: 'c=', userId: 'u', topic: 'news', reason: 'token_refresh' },
  ],
  refused: [{ connectionId: 'c=', route: 'connect', code: 'unauthorized' }],
  'presence.join': [{ connectionId: 'c=', userId: 'u', topic: 'room:1' }],
  'presence.leave': [{ connectionId: 'c=', userId: 'u', topic: 'room:1' }],
};

/** The Detail the relay would send for one event. */
function sent(type: (typeof EVENT_TYPES)[number], detail: EventDetails[typeof type]) {
  const buffer = new EventBuffer([type]);
  buffer.emit(type, detail);
  const record = JSON.parse(buffer.take()[0] as string) as EventRecord;
  return JSON.parse(toEntry(record, 'default', 'prod').Detail) as Record<string, unknown>;
}

describe("docs/asyncapi.yaml's events channel", () => {
  it('has a message for every event type and for no other, named by its detail-type', () => {
    expect(Object.keys(eventMessages).sort()).toEqual([...EVENT_TYPES].sort());
    for (const [type, message] of Object.entries(eventMessages))
      expect(message.name, type).toBe(`pushwire.${type}`);
  });

  it.each(EVENT_TYPES)(
    '%s: its examples are valid, and the relay sends its detail-type',
    (type) => {
      const examples = eventMessages[type]?.examples ?? [];
      expect(examples.length).toBeGreaterThan(0);
      for (const { payload } of examples) expect(eventDetailErrors(type, payload)).toEqual([]);
      const record = (() => {
        const buffer = new EventBuffer([type]);
        buffer.emit(type, samples[type][0] as never);
        return JSON.parse(buffer.take()[0] as string) as EventRecord;
      })();
      expect(toEntry(record, 'default', 'prod')).toMatchObject({
        Source: 'pushwire',
        DetailType: eventMessages[type]?.name,
      });
    },
  );

  it.each(EVENT_TYPES)('accepts every %s detail the relay sends', (type) => {
    for (const detail of samples[type]) {
      expect(eventDetailErrors(type, sent(type, detail as never))).toEqual([]);
    }
  });

  it('refuses a detail with a field it does not describe, or without one it requires', () => {
    const connected = (d: unknown) => eventDetailErrors('connected', d).length === 0;
    const disconnected = (d: unknown) => eventDetailErrors('disconnected', d).length === 0;
    const good = sent('connected', { connectionId: 'c', userId: 'u', connectedAt: 1 });
    expect(connected({ ...good, extra: 1 })).toBe(false);
    expect(connected({ ...good, userId: undefined })).toBe(false);
    // Only `expired` may leave userId out.
    const gone = sent('disconnected', { connectionId: 'c', userId: 'u', reason: 'gone' });
    expect(disconnected({ ...gone, userId: undefined })).toBe(false);
  });
});
