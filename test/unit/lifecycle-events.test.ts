import { describe, expect, it } from 'vitest';
import { kick } from '../../lib/admin/kick.js';
import { webSocketErrors } from '../../lib/edge/middleware.js';
import { ForbiddenError } from '../../lib/errors.js';
import { EventBuffer } from '../../lib/events/buffer.js';
import {
  batches,
  type PutEvents,
  type PutEventsEntry,
  PutEventsError,
  sendEvents,
  signedPutEvents,
} from '../../lib/events/eventbridge.js';
import { eventsFlushed } from '../../lib/events/flush.js';
import type { EventOutbox } from '../../lib/events/outbox.js';
import { relayEvents } from '../../lib/events/relay.js';
import type { EventDetails, EventSink, EventType } from '../../lib/events/types.js';
import type { Gateway } from '../../lib/gateway/gateway.js';
import type { Connection } from '../../lib/registry/types.js';
import { connect, disconnect, handleFrame } from '../../lib/session/session.js';
import { startLocalBus } from '../../scripts/local-bus.js';
import { verifySigV4 } from '../helpers/sigv4.js';
import { fakeRegistry, recordingLogger } from './fakes.js';

const entry = (n: number, detail = '{}'): PutEventsEntry => ({
  Source: 'pushwire',
  DetailType: 'pushwire.connected',
  Detail: detail.replace('{}', `{"n":${n}}`),
  EventBusName: 'default',
});

/** A sink that keeps what it is told. */
function recordingSink() {
  const seen: { type: EventType; detail: EventDetails[EventType] }[] = [];
  const sink: EventSink = { emit: (type, detail) => void seen.push({ type, detail }) };
  return { sink, seen };
}

const noSleep = async () => {};

describe('batches', () => {
  it('puts at most 10 entries in a request', () => {
    // Act
    const out = batches(Array.from({ length: 25 }, (_, i) => entry(i)));
    // Assess
    expect(out.map((b) => b.length)).toEqual([10, 10, 5]);
  });

  it('keeps a request within 256 KB', () => {
    // Prepare: entries of ~100 KB each
    const big = Array.from({ length: 5 }, (_, i) => entry(i, `{"pad":"${'x'.repeat(100_000)}"}`));
    // Act
    const out = batches(big);
    // Assess
    expect(out.map((b) => b.length)).toEqual([2, 2, 1]);
    for (const b of out) expect(Buffer.byteLength(JSON.stringify(b))).toBeLessThan(256 * 1024);
  });
});

describe('sendEvents', () => {
  it('sends again only the entries PutEvents reported failed, until all are in', async () => {
    // Prepare: the first answer fails entries 1 and 3 (FailedEntryCount 2)
    const requests: number[][] = [];
    const putEvents: PutEvents = async (entries) => {
      requests.push(entries.map((e) => JSON.parse(e.Detail).n));
      return entries.map((e, i) =>
        requests.length === 1 && (i === 1 || i === 3)
          ? { ErrorCode: 'ThrottlingException' }
          : { EventId: `id-${JSON.parse(e.Detail).n}` },
      );
    };
    // Act
    const result = await sendEvents(
      [0, 1, 2, 3].map((n) => entry(n)),
      putEvents,
      { sleep: noSleep },
    );
    // Assess
    expect(requests).toEqual([
      [0, 1, 2, 3],
      [1, 3],
    ]);
    expect(result).toEqual({ sent: 4, failed: 0, errors: ['ThrottlingException'] });
  });

  it('gives an entry up after its attempts, and counts it failed', async () => {
    // Prepare
    let calls = 0;
    const sleeps: number[] = [];
    const putEvents: PutEvents = async (entries) => {
      calls++;
      return entries.map(() => ({ ErrorCode: 'InternalFailure' }));
    };
    // Act
    const result = await sendEvents([entry(0), entry(1)], putEvents, {
      attempts: 3,
      sleep: async (ms) => void sleeps.push(ms),
      random: () => 0.99,
    });
    // Assess: 3 attempts, 2 backoffs that grow
    expect(calls).toBe(3);
    expect(result).toEqual({ sent: 0, failed: 2, errors: ['InternalFailure'] });
    expect(sleeps).toEqual([99, 198]);
  });

  it('retries a throttled request but not one refused for what it is', async () => {
    // Prepare
    const throttled = [
      new PutEventsError('ThrottlingException', 400, 'slow down'),
      new PutEventsError('AccessDeniedException', 403, 'no'),
    ];
    let calls = 0;
    const putEvents: PutEvents = async () => {
      calls++;
      throw throttled.shift();
    };
    // Act
    const result = await sendEvents([entry(0)], putEvents, { sleep: noSleep });
    // Assess
    expect(calls).toBe(2);
    expect(result.failed).toBe(1);
    expect(result.errors).toEqual(['ThrottlingException', 'AccessDeniedException']);
  });

  it('counts an entry over 256 KB as failed without sending it', async () => {
    // Prepare
    let sent = 0;
    const putEvents: PutEvents = async (entries) => {
      sent += entries.length;
      return entries.map(() => ({ EventId: 'x' }));
    };
    // Act
    const result = await sendEvents(
      [entry(0, `{"pad":"${'x'.repeat(300_000)}"}`), entry(1)],
      putEvents,
    );
    // Assess
    expect(result).toMatchObject({ sent: 1, failed: 1, errors: ['EntryTooLarge'] });
    expect(sent).toBe(1);
  });
});

describe('signedPutEvents', () => {
  const credentials = { accessKeyId: 'ASIAEVENTS', secretAccessKey: 'k/e+y=', sessionToken: 'tok' };

  it('sends a SigV4-signed PutEvents a stand-in accepts, and retries what it failed', async () => {
    // Prepare: the stand-in recomputes each signature; it fails the first two entries once.
    const bus = await startLocalBus({
      verify: (request) => {
        const check = verifySigV4(request, (id) =>
          id === credentials.accessKeyId ? credentials.secretAccessKey : undefined,
        );
        if (!check.ok) return check.reason;
        return check.service === 'events' && check.region === 'eu-west-1' ? undefined : 'scope';
      },
    });
    bus.failNext(2);
    try {
      const putEvents = signedPutEvents({
        region: 'eu-west-1',
        endpoint: bus.url,
        credentials: async () => credentials,
      });
      // Act
      const result = await sendEvents(
        Array.from({ length: 12 }, (_, i) => entry(i)),
        putEvents,
        { sleep: noSleep },
      );
      // Assess
      expect(bus.refused).toEqual([]);
      expect(result).toEqual({ sent: 12, failed: 0, errors: ['ThrottlingException'] });
      expect(bus.received.map((e) => JSON.parse(e.Detail).n).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 12 }, (_, i) => i),
      );
    } finally {
      await bus.close();
    }
  });

  it('is refused by the stand-in when signed with another secret, and does not retry', async () => {
    // Prepare
    const bus = await startLocalBus({
      verify: (request) => verifySigV4(request, () => 'the real secret').reason,
    });
    try {
      const putEvents = signedPutEvents({
        region: 'eu-west-1',
        endpoint: bus.url,
        credentials: async () => credentials,
      });
      // Act
      const result = await sendEvents([entry(0)], putEvents, { sleep: noSleep });
      // Assess
      expect(result).toEqual({ sent: 0, failed: 1, errors: ['AccessDeniedException'] });
      expect(bus.refused).toEqual(['signature: signature does not match']);
    } finally {
      await bus.close();
    }
  });
});

describe('EventBuffer', () => {
  it('keeps only the enabled types, each with an id and a time', () => {
    // Prepare
    const buffer = new EventBuffer(['subscribed'], () => 1_700_000_000_000);
    // Act
    buffer.emit('connected', { connectionId: 'c', userId: 'u', connectedAt: 1 });
    buffer.emit('subscribed', { connectionId: 'c', userId: 'u', topic: 't' });
    const taken = buffer.take();
    // Assess
    expect(taken.map((r) => JSON.parse(r))).toEqual([
      {
        type: 'subscribed',
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        at: 1_700_000_000_000,
        detail: { connectionId: 'c', userId: 'u', topic: 't' },
      },
    ]);
    expect(buffer.take()).toEqual([]);
  });
});

/** An outbox in memory. */
function memoryOutbox(records: string[] = []) {
  const outbox: EventOutbox = {
    push: async (r) => {
      records.push(...r);
      return { dropped: 0 };
    },
    take: async (max) => records.splice(0, max),
  };
  return { outbox, records };
}

describe('relayEvents', () => {
  it('sends outbox records as pushwire.<type> entries and expired connections as disconnected', async () => {
    // Prepare
    const buffer = new EventBuffer(['connected', 'disconnected'], () => 5_000);
    buffer.emit('connected', { connectionId: 'c1', userId: 'u', connectedAt: 4_000 });
    const { outbox, records } = memoryOutbox(buffer.take());
    records.push('not json');
    const sent: PutEventsEntry[] = [];
    const bad: string[] = [];
    const { registry } = fakeRegistry({
      sweepExpired: async () => [{ connectionId: 'c0', endpoint: 'https://e' }],
    });
    // Act
    const total = await relayEvents({
      outbox,
      putEvents: async (entries) => {
        sent.push(...entries);
        return entries.map(() => ({ EventId: 'x' }));
      },
      bus: 'my-bus',
      stage: 'prod',
      sweep: { registry, graceMs: 60_000, everyMs: 10_000 },
      keepGoing: () => true,
      untilEmpty: true,
      onBadRecord: (r) => void bad.push(r),
      now: () => 9_000,
    });
    // Assess
    expect(total).toEqual({ sent: 2, failed: 0 });
    expect(bad).toEqual(['not json']);
    expect(sent.map((e) => [e.Source, e.DetailType, e.EventBusName, e.Time])).toEqual([
      ['pushwire', 'pushwire.disconnected', 'my-bus', 9],
      ['pushwire', 'pushwire.connected', 'my-bus', 5],
    ]);
    expect(JSON.parse(sent[0]?.Detail ?? '')).toEqual({
      eventId: expect.any(String),
      at: 9_000,
      stage: 'prod',
      connectionId: 'c0',
      reason: 'expired',
    });
    expect(JSON.parse(sent[1]?.Detail ?? '')).toMatchObject({ stage: 'prod', userId: 'u' });
  });
});

const conn = (overrides: Partial<Connection> = {}): Connection => ({
  connectionId: 'c1',
  userId: 'alice',
  endpoint: 'https://api/prod',
  connectedAt: 1,
  allowedTopics: ['news'],
  topics: ['news'],
  tokenExpiresAt: Date.now() + 60_000,
  ...overrides,
});
const noGateway: Gateway = {
  post: async () => {
    throw new Error('unexpected post');
  },
  close: async () => {
    throw new Error('unexpected close');
  },
};

describe('session events: one at each site', () => {
  it('connect reports connected after the connection is registered', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    const { registry } = fakeRegistry({
      register: async () => 'registered',
    });
    // Act
    await connect(
      { connectionId: 'c9', domainName: 'd', stage: 'prod', connectedAt: 42 },
      {
        registry,
        verifyToken: async () => ({ userId: 'alice', topics: [], expiresAt: 99, issuedAt: 1 }),
        events: sink,
        now: () => 50,
      },
    );
    // Assess
    expect(seen).toEqual([
      {
        type: 'connected',
        detail: { connectionId: 'c9', userId: 'alice', connectedAt: 42, tokenExpiresAt: 99 },
      },
    ]);
  });

  it('subscribe and unsubscribe report what changed; an unsubscribe of nothing reports nothing', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    let subscribed = false;
    const { registry } = fakeRegistry({
      touch: async () => conn({ topics: [] }),
      subscribeWithCursor: async () => {
        subscribed = true;
        return { outcome: 'subscribed' };
      },
      unsubscribe: async () => {
        const was = subscribed;
        subscribed = false;
        return was;
      },
    });
    const deps = { registry, gateway: noGateway, events: sink };
    // Act
    await handleFrame('c1', '{"action":"subscribe","topic":"news"}', deps);
    await handleFrame('c1', '{"action":"unsubscribe","topic":"news"}', deps);
    await handleFrame('c1', '{"action":"unsubscribe","topic":"news"}', deps);
    // Assess
    expect(seen).toEqual([
      { type: 'subscribed', detail: { connectionId: 'c1', userId: 'alice', topic: 'news' } },
      {
        type: 'unsubscribed',
        detail: { connectionId: 'c1', userId: 'alice', topic: 'news', reason: 'client' },
      },
    ]);
  });

  it('a frame after the token expired reports disconnected, token_expired', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    const expired = conn({ tokenExpiresAt: 1 });
    const { registry } = fakeRegistry({ touch: async () => expired, remove: async () => expired });
    // Act
    const outcome = handleFrame('c1', '{"action":"ping"}', {
      registry,
      gateway: noGateway,
      events: sink,
    });
    // Assess
    await expect(outcome).rejects.toMatchObject({ code: 'token_expired' });
    expect(seen).toEqual([
      {
        type: 'disconnected',
        detail: { connectionId: 'c1', userId: 'alice', reason: 'token_expired' },
      },
    ]);
  });

  it('$disconnect reports client_close only for a connection it removed', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    const answers = [conn(), null];
    const { registry } = fakeRegistry({ remove: async () => answers.shift() ?? null });
    // Act
    await disconnect('c1', { registry, events: sink });
    await disconnect('c1', { registry, events: sink });
    // Assess
    expect(seen).toEqual([
      {
        type: 'disconnected',
        detail: { connectionId: 'c1', userId: 'alice', reason: 'client_close' },
      },
    ]);
  });

  it('kick reports disconnected, kick, for each connection it removed', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    const { registry } = fakeRegistry({
      remove: async (id: string) => (id === 'c1' ? conn() : null),
    });
    const gateway: Gateway = { post: noGateway.post, close: async () => 'ok' };
    // Act
    await kick(
      { connectionIds: ['c1', 'c2'] },
      { registry, gateway, logger: recordingLogger().logger, events: sink },
    );
    // Assess
    expect(seen).toEqual([
      { type: 'disconnected', detail: { connectionId: 'c1', userId: 'alice', reason: 'kick' } },
    ]);
  });
});

/** The Powertools logger surface the middleware uses. */
const quietLogger = () =>
  ({ info: () => {}, warn: () => {}, error: () => {} }) as unknown as ReturnType<
    Parameters<typeof webSocketErrors>[0]['logger']
  >;

describe('webSocketErrors', () => {
  it('reports a refused frame with its code', async () => {
    // Prepare
    const { sink, seen } = recordingSink();
    const middleware = webSocketErrors({
      logger: quietLogger,
      events: () => sink,
      route: 'default',
    });
    const request = {
      event: { requestContext: { connectionId: 'c7' } },
      error: new ForbiddenError('no'),
      response: undefined,
    };
    // Act
    await middleware.onError?.(request as never);
    // Assess
    expect(seen).toEqual([
      { type: 'refused', detail: { connectionId: 'c7', route: 'default', code: 'forbidden' } },
    ]);
  });
});

describe('eventsFlushed', () => {
  it('hands the buffered records to the outbox in one push when the invocation ends', async () => {
    // Prepare
    const buffer = new EventBuffer(['refused']);
    buffer.emit('refused', { connectionId: 'c', route: 'connect', code: 'unauthorized' });
    const pushes: string[][] = [];
    const middleware = eventsFlushed({
      buffer: () => buffer,
      outbox: () => ({
        push: async (r) => {
          pushes.push([...r]);
          return { dropped: 0 };
        },
        take: async () => [],
      }),
      logger: () => ({ warn: () => {} }),
    });
    // Act
    await middleware.after?.({} as never);
    await middleware.after?.({} as never);
    // Assess: one push, none for an invocation with no events
    expect(pushes).toHaveLength(1);
    expect(JSON.parse(pushes[0]?.[0] ?? '')).toMatchObject({ type: 'refused' });
  });

  it('never fails the invocation: what could not be stored is counted and logged', async () => {
    // Prepare
    const buffer = new EventBuffer(['refused']);
    buffer.emit('refused', { connectionId: 'c', route: 'connect', code: 'unauthorized' });
    const counted: [string, string, number][] = [];
    const warnings: string[] = [];
    const middleware = eventsFlushed({
      buffer: () => buffer,
      outbox: () => ({
        push: async () => {
          throw new Error('Connection is closed.');
        },
        take: async () => [],
      }),
      logger: () => ({ warn: (message) => void warnings.push(message) }),
      metrics: () => ({
        addMetric: (name: string, _unit: unknown, value: number) =>
          void counted.push([name, '', value]),
        singleMetric: () => {
          let dimension = '';
          return {
            addDimension: (_n: string, v: string) => {
              dimension = v;
            },
            addMetric: (name: string, _unit: unknown, value: number) =>
              void counted.push([name, dimension, value]),
          };
        },
      }),
    });
    // Act
    await middleware.onError?.({} as never);
    // Assess
    expect(counted).toEqual([
      ['EventsUnsent', '', 1],
      ['EventsUnsent', 'outbox', 1],
    ]);
    expect(warnings).toEqual(['could not store lifecycle events; they are lost']);
  });
});
