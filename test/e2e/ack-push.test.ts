import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Client from '../../client/pushwire.js';
import type { AckStatus } from '../../lib/acks/store.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import {
  type LocalWebPush,
  type StandInSubscription,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { builtClient, libraryDevice, waitFor } from '../helpers/built-client.js';
import { contractFetch } from '../helpers/contract.js';
import { eventually } from '../helpers/offline.js';
import { publishOk, untilPasses, useStack } from '../helpers/stack.js';

/**
 * Acknowledged messages joined to the push fallback (issue 18) end to end
 * through `npm start`: the timeout goes the AWS way (signed SQS SendMessage
 * to the local queue stand-in, held for its delay, `ackTimeout` invoked with
 * an SQS event) and `ackTimeout`'s PushSender sends a real Web Push to the
 * Web Push stand-in, which verifies the VAPID JWT and decrypts the payload
 * with the subscription's private key (a wrong encryption is refused, not
 * received). Devices ack with the real client library (its built bundle).
 */

let webPush: LocalWebPush;
const env: Record<string, string> = {
  PUSH_WEBPUSH_HOSTS: '127.0.0.1',
  PUSH_RETRY_BASE_MS: '20',
  PUSH_MAX_ATTEMPTS: '3',
};
let lib: typeof Client;
beforeAll(async () => {
  webPush = await startLocalWebPush();
  lib = await builtClient();
});
const stack = useStack({ env });
afterAll(async () => {
  await webPush?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
const devices = (payload: unknown) => stack.offline.invoke<any>('devices', payload);
const status = async (id: string, userId: string) =>
  (await stack.offline.invoke<AckStatus>('status', { id, userId })) as AckStatus;

async function subscribe(userId: string): Promise<StandInSubscription> {
  const subscription = webPush.subscribe(DEV_VAPID.VAPID_PUBLIC_KEY);
  await devices({ action: 'register', userId, webpush: subscription });
  return subscription;
}

const pushesTo = (s: StandInSubscription) =>
  webPush.received.filter((p) => p.subscriptionId === subscriptionId(s.endpoint));

async function device(user: string, options: Partial<Client.Options> = {}) {
  const d = await libraryDevice(lib, stack.offline.wsUrl({}), user, options);
  const { pw, messages, dismissed } = d;
  // The user's stream is live on it: a plain message reaches it.
  const warm = await publishOk(stack.offline, { userId: user, data: 'warm' });
  await waitFor(() => messages.some((m) => m.id === warm.id));
  return { pw, messages, dismissed };
}

/** The timeout ran and left the message in a final state. */
const settled = (id: string, userId: string, state: AckStatus['state']) =>
  eventually(
    async () => {
      const s = await status(id, userId);
      return s.state === state && s;
    },
    25_000,
    `${id} ${state}`,
    100,
  );

describe('acknowledged message not acked in time -> push', () => {
  it('no live connection: the timeout sends a Web Push that verifies (VAPID) and decrypts to the notify content', async () => {
    const subscription = await subscribe('ap-ann');
    const notify = {
      title: 'Call from Bo',
      body: 'Tap to answer',
      data: { call: 'c-1', from: 'bo' },
    };

    const sent = await publishOk(stack.offline, {
      id: 'ap-1',
      userId: 'ap-ann',
      data: { ring: true },
      ack: { timeoutSeconds: 1, notify },
    });

    expect(sent.recipients).toBe(0);
    const pushed = await settled('ap-1', 'ap-ann', 'pushed');
    expect(pushed.push).toEqual({
      devices: 1,
      sent: 1,
      failed: 0,
      removed: 0,
      at: expect.any(Number),
    });
    const [push, ...more] = pushesTo(subscription);
    expect(more).toEqual([]);
    expect(JSON.parse(push?.text ?? 'null')).toEqual({
      ...notify,
      id: 'ap-1',
      cursor: sent.cursor,
    });
    expect(push?.vapid).toMatchObject({
      k: DEV_VAPID.VAPID_PUBLIC_KEY,
      sub: DEV_VAPID.VAPID_SUBJECT,
      aud: webPush.origin,
    });
    expect(webPush.refused).toEqual([]);
  });

  it('a device acks in time (the library acks on its own): no push, status acked', async () => {
    const subscription = await subscribe('ap-bo');
    const phone = await device('ap-bo');
    try {
      await publishOk(stack.offline, {
        id: 'ap-2',
        userId: 'ap-bo',
        data: 'ring',
        ack: { timeoutSeconds: 1, notify: { title: 'Ring' } },
      });
      await waitFor(() => phone.messages.some((m) => m.id === 'ap-2'));
      const acked = await settled('ap-2', 'ap-bo', 'acked');
      expect(acked.firstAck?.connectionId).toBe(phone.pw.connectionId);
      // Past the timeout, and a push sent after it (ap-3) arrives: ap-2's would have come first.
      await publishOk(stack.offline, {
        id: 'ap-2-probe',
        userId: 'ap-bo-probe',
        data: 1,
        ack: { timeoutSeconds: 1, notify: { title: 'probe' } },
      });
      await settled('ap-2-probe', 'ap-bo-probe', 'pushed');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(pushesTo(subscription)).toEqual([]);
      const after = await status('ap-2', 'ap-bo');
      expect(after.state).toBe('acked');
      expect(after.push).toBeUndefined();
    } finally {
      phone.pw.close();
    }
  });

  it('three devices with dismissOthers: the first ack dismisses the other two, and no push follows', async () => {
    const subscription = await subscribe('ap-cy');
    const [a, b, c] = [
      await device('ap-cy', { autoAck: false }),
      await device('ap-cy', { autoAck: false }),
      await device('ap-cy', { autoAck: false }),
    ] as const;
    try {
      await publishOk(stack.offline, {
        id: 'ap-3',
        userId: 'ap-cy',
        data: 'ring',
        ack: { timeoutSeconds: 2, notify: { title: 'Ring' }, dismissOthers: true },
      });
      await waitFor(() => [a, b, c].every((d) => d.messages.some((m) => m.id === 'ap-3')));
      b.pw.ack('ap-3');
      await waitFor(() => a.dismissed.length > 0 && c.dismissed.length > 0);
      expect([a.dismissed, b.dismissed, c.dismissed]).toEqual([['ap-3'], [], ['ap-3']]);
      const acked = await settled('ap-3', 'ap-cy', 'acked');
      expect(acked.firstAck?.connectionId).toBe(b.pw.connectionId);
      // The timeout (2 s) passes with the message acked: nothing pushed.
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(pushesTo(subscription)).toEqual([]);
      expect((await status('ap-3', 'ap-cy')).push).toBeUndefined();
    } finally {
      for (const d of [a, b, c]) d.pw.close();
    }
  });

  it('a subscription the push service reports gone (410): the timeout prunes it, status push.removed 1', async () => {
    const gone = await subscribe('ap-dee');
    webPush.expire(subscriptionId(gone.endpoint));

    await publishOk(stack.offline, {
      id: 'ap-4',
      userId: 'ap-dee',
      data: 1,
      ack: { timeoutSeconds: 1, notify: { title: 'Ring' } },
    });

    const pushed = await settled('ap-4', 'ap-dee', 'pushed');
    expect(pushed.push).toMatchObject({ devices: 1, sent: 0, failed: 0, removed: 1 });
    expect(webPush.attempts.get(subscriptionId(gone.endpoint))).toBe(1);
    expect((await devices({ action: 'list', userId: 'ap-dee' })).devices).toEqual([]);
    expect(pushesTo(gone)).toEqual([]);
  });

  it("the docs' walk-through over the HTTP API: npm start's own Web Push service gets the push and prints it decrypted", async () => {
    // docs/acks.md "End to end": a subscription from the service npm start runs.
    const url = /local Web Push service (http:\/\/127\.0\.0\.1:\d+)/.exec(
      stack.offline.output(),
    )?.[1];
    expect(url).toBeDefined();
    const subscription = (await (
      await fetch(`${url}/subscribe`, { method: 'POST' })
    ).json()) as StandInSubscription;
    const http = async (path: string, body: unknown) => {
      const response = await contractFetch(`http://localhost:${stack.offline.httpPort}${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
      // biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
      return { status: response.status, json: (await response.json()) as any };
    };
    expect(
      (await http('/devices', { action: 'register', userId: 'ap-carol', webpush: subscription }))
        .status,
    ).toBe(200);
    const published = await http('/publish', {
      id: 'call-1',
      userId: 'ap-carol',
      data: 'ring',
      ack: { timeoutSeconds: 2, notify: { title: 'Missed call' } },
    });
    expect(published.status).toBe(200);

    await untilPasses(async () => {
      const s = await http('/status', { id: 'call-1', userId: 'ap-carol' });
      expect(s.json).toMatchObject({
        state: 'pushed',
        push: { devices: 1, sent: 1, failed: 0, removed: 0 },
      });
    }, 25_000);
    expect(stack.offline.output()).toContain(
      `pushwire push ${subscriptionId(subscription.endpoint)} {"title":"Missed call","id":"call-1","cursor":"${published.json.cursor}"}`,
    );
  });
});
