import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import type { AckStatus } from '../../lib/acks/store.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import {
  type LocalWebPush,
  type StandInSubscription,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { devToken } from '../../scripts/token.js';
import { builtClient, waitFor } from '../helpers/built-client.js';
import { eventually } from '../helpers/offline.js';
import { sleep, useFaultStack } from './harness.js';

const ATTEMPTS = 3;
const stack = useFaultStack({
  PUSH_WEBPUSH_HOSTS: '127.0.0.1',
  PUSH_RETRY_BASE_MS: '20',
  PUSH_MAX_ATTEMPTS: String(ATTEMPTS),
  LOG_LEVEL: 'INFO',
});

let webPush: LocalWebPush;
let lib: typeof Client;
beforeAll(async () => {
  webPush = await startLocalWebPush();
  lib = await builtClient();
});
afterAll(async () => {
  await webPush?.close();
});

const status = async (id: string, userId: string) =>
  (await stack.publisher.invoke<AckStatus>('status', { id, userId })) as AckStatus;

async function subscribe(userId: string): Promise<StandInSubscription> {
  const subscription = webPush.subscribe(DEV_VAPID.VAPID_PUBLIC_KEY);
  await stack.publisher.invoke('devices', { action: 'register', userId, webpush: subscription });
  return subscription;
}

const pushesTo = (s: StandInSubscription) =>
  webPush.received.filter((p) => p.subscriptionId === subscriptionId(s.endpoint));

const settled = (id: string, userId: string, check: (s: AckStatus) => boolean, what: string) =>
  eventually(
    async () => {
      const s = await status(id, userId);
      return check(s) && s;
    },
    30_000,
    what,
    100,
  );

describe('acknowledged messages and their push under faults', () => {
  it('a lost ack leads to the push, never to silence; the ack arriving after it is taken, and status shows both', async () => {
    const subscription = await subscribe('fap-ann');
    // The network between the device and the server loses its ack frames while `lossy`.
    let lossy = true;
    const dropped: string[] = [];
    const frames: Record<string, unknown>[] = [];
    class LossySocket extends WebSocket {
      constructor(url: string) {
        super(url);
        this.on('message', (data) => frames.push(JSON.parse(String(data))));
      }
      // biome-ignore lint/suspicious/noExplicitAny: ws's send overloads
      override send(data: any, ...rest: any[]): void {
        if (lossy && typeof data === 'string' && JSON.parse(data).action === 'ack') {
          dropped.push(data);
          return;
        }
        super.send(data, ...rest);
      }
    }
    const pw = new lib.Pushwire({
      url: stack.wsUrl({}),
      token: await devToken('fap-ann'),
      storage: null,
      WebSocket: LossySocket as unknown as Client.SocketClass,
    });
    const messages: Client.Message[] = [];
    pw.on('message', (m) => messages.push(m));
    pw.connect();
    try {
      await waitFor(() => pw.state === 'connected' && pw.connectionId !== undefined);
      const warm = await stack.publishOnce({ userId: 'fap-ann', data: 'warm' });
      await waitFor(() => messages.some((m) => m.id === warm.id));

      await stack.publishOnce({
        id: 'fap-1',
        userId: 'fap-ann',
        data: 'ring',
        ack: { timeoutSeconds: 2, notify: { title: 'Ring', body: 'lost ack' } },
      });

      // The device got it and acked (the library on its own); the ack was lost.
      await waitFor(() => messages.some((m) => m.id === 'fap-1'));
      await waitFor(() => dropped.some((d) => d.includes('fap-1')));
      const pushed = await settled('fap-1', 'fap-ann', (s) => s.state === 'pushed', 'pushed');
      expect(pushed.push).toMatchObject({ devices: 1, sent: 1, failed: 0, removed: 0 });
      expect(pushed.firstAck).toBeUndefined();
      expect(JSON.parse(pushesTo(subscription)[0]?.text ?? 'null')).toMatchObject({
        title: 'Ring',
        body: 'lost ack',
        id: 'fap-1',
      });

      // The network heals; the app acks again: taken, no error, the push stays recorded.
      lossy = false;
      pw.ack('fap-1');
      await waitFor(() =>
        frames.some((f) => f['type'] === 'acked' && (f['ids'] as string[]).includes('fap-1')),
      );
      const both = await settled(
        'fap-1',
        'fap-ann',
        (s) => s.firstAck !== undefined,
        'the late ack recorded',
      );
      expect(both.firstAck?.connectionId).toBe(pw.connectionId);
      expect(both.push).toMatchObject({ sent: 1 });
      expect(both.devices.find((d) => d.connectionId === pw.connectionId)?.ackedAt).toBe(
        both.firstAck?.at,
      );
      expect(frames.filter((f) => f['type'] === 'error')).toEqual([]);
      // One push: the late ack does not push again.
      await sleep(500);
      expect(pushesTo(subscription)).toHaveLength(1);
    } finally {
      pw.close();
    }
  });

  it('a push service failing during the timeout is retried within bounds, then reported in status and metrics', async () => {
    const down = await subscribe('fap-bo');
    webPush.script(
      subscriptionId(down.endpoint),
      Array.from({ length: ATTEMPTS + 2 }, () => ({ status: 500 })),
    );
    await stack.publishOnce({
      id: 'fap-2',
      userId: 'fap-bo',
      data: 1,
      ack: { timeoutSeconds: 1, notify: { title: 'Ring' } },
    });

    const failed = await settled('fap-2', 'fap-bo', (s) => s.state === 'pushed', 'reported');
    expect(failed.push).toMatchObject({ devices: 1, sent: 0, failed: 1, removed: 0 });
    expect(webPush.attempts.get(subscriptionId(down.endpoint))).toBe(ATTEMPTS);
    expect(pushesTo(down)).toEqual([]);
    // Counted (EMF metrics in the log), and the device kept: a 500 is not "gone".
    await eventually(() => /"PushFailed"/.test(stack.publisher.output()), 10_000, 'PushFailed');
    expect(stack.publisher.output()).toMatch(/push failed/);
    const list = await stack.publisher.invoke<{ devices: unknown[] }>('devices', {
      action: 'list',
      userId: 'fap-bo',
    });
    expect(list.devices).toHaveLength(1);
  });

  it('a push service that recovers within the bounds (503, then 429 with Retry-After) gets the push', async () => {
    const flaky = await subscribe('fap-cy');
    webPush.script(subscriptionId(flaky.endpoint), [
      { status: 503 },
      { status: 429, retryAfter: '1' },
    ]);
    await stack.publishOnce({
      id: 'fap-3',
      userId: 'fap-cy',
      data: 1,
      ack: { timeoutSeconds: 1, notify: { title: 'Ring', data: { n: 3 } } },
    });

    const pushed = await settled('fap-3', 'fap-cy', (s) => s.state === 'pushed', 'pushed');
    expect(pushed.push).toMatchObject({ devices: 1, sent: 1, failed: 0 });
    expect(webPush.attempts.get(subscriptionId(flaky.endpoint))).toBe(3);
    expect(JSON.parse(pushesTo(flaky)[0]?.text ?? 'null')).toMatchObject({
      title: 'Ring',
      data: { n: 3 },
      id: 'fap-3',
    });
  });

  it('Redis unreachable when the timeout fires: the record fails, SQS delivers it again, and the push goes once', async () => {
    const subscription = await subscribe('fap-dee');
    const outputBefore = stack.publisher.output().length;
    await stack.publishOnce({
      id: 'fap-4',
      userId: 'fap-dee',
      data: 1,
      ack: { timeoutSeconds: 2, notify: { title: 'Ring', body: 'after the outage' } },
    });
    // Down before the timeout comes (2 s), back after it came (the queue's visibility is 5 s).
    await stack.redis.kill();
    await sleep(4_000);
    await stack.redis.restart({ keepData: true });

    const pushed = await settled('fap-4', 'fap-dee', (s) => s.state === 'pushed', 'pushed');
    expect(pushed.push).toMatchObject({ devices: 1, sent: 1, failed: 0, removed: 0 });
    expect(pushed.stateLost).toBeUndefined();
    // The first delivery failed while Redis was away and was delivered again.
    expect(stack.publisher.output().slice(outputBefore)).toMatch(/pushwire ack queue: \S+ failed/);
    await sleep(500);
    expect(pushesTo(subscription).map((p) => JSON.parse(p.text))).toEqual([
      expect.objectContaining({ title: 'Ring', body: 'after the outage', id: 'fap-4' }),
    ]);
  });
});
