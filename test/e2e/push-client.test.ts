import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Push from '../../client/push.js';
import type * as Client from '../../client/pushwire.js';
import type { AckStatus } from '../../lib/acks/store.js';
import {
  CLIENT_BUNDLE,
  PUSH_BUNDLE,
  PUSH_SOURCE,
  writeClientBundle,
} from '../../scripts/build-client.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import {
  type LocalWebPush,
  type StandInSubscription,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { devToken } from '../../scripts/token.js';
import { waitFor } from '../helpers/built-client.js';
import { eventually } from '../helpers/offline.js';
import { publishOk, useStack } from '../helpers/stack.js';

/**
 * `pushwire/push` (client/push.ts, docs/push.md) end to end: its built bundle
 * (client/dist/push.js) over a connected client built from client/dist/
 * pushwire.js, against `npm start` (serverless-offline, $default handing
 * push_register / push_unregister to the `devices` function) and the local
 * Web Push service, which verifies VAPID and decrypts every push with the
 * subscription's private key.
 *
 * A browser cannot subscribe offline (Chromium's pushManager needs FCM), so
 * the one thing stood in for is the browser's ServiceWorkerRegistration: a
 * pushManager whose subscribe() makes a real subscription (a P-256 key pair
 * and auth secret held by the local Web Push service, bound to the
 * applicationServerKey it was given) and checks that key is the deployment's
 * VAPID public key, as a browser passes it on to the push service.
 */

let webPush: LocalWebPush;
const env: Record<string, string> = {
  PUSH_WEBPUSH_HOSTS: '127.0.0.1',
  PUSH_MAX_DEVICES: '2',
  PUSH_RETRY_BASE_MS: '20',
  PUSH_MAX_ATTEMPTS: '3',
};
let lib: typeof Client;
let push: typeof Push;
beforeAll(async () => {
  webPush = await startLocalWebPush();
  await writeClientBundle();
  await writeClientBundle(PUSH_SOURCE, PUSH_BUNDLE);
  lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  push = (await import(pathToFileURL(PUSH_BUNDLE).href)) as typeof Push;
});
const stack = useStack({ env });
afterAll(async () => {
  await webPush?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
const devices = (payload: unknown) => stack.offline.invoke<any>('devices', payload);
const status = async (id: string, userId: string) =>
  (await stack.offline.invoke<AckStatus>('status', { id, userId })) as AckStatus;

const VAPID_BYTES = Buffer.from(DEV_VAPID.VAPID_PUBLIC_KEY, 'base64url');

/** The browser's ServiceWorkerRegistration, as registerPush sees it. */
function browser(make: (key: string) => StandInSubscription = (key) => webPush.subscribe(key)) {
  let current: (Push.SubscriptionLike & { json: StandInSubscription }) | null = null;
  const calls = { subscribe: 0, unsubscribe: 0, keys: [] as Uint8Array[] };
  const registration: Push.RegistrationLike = {
    pushManager: {
      getSubscription: async () => current,
      subscribe: async ({ userVisibleOnly, applicationServerKey }) => {
        calls.subscribe++;
        calls.keys.push(applicationServerKey);
        // What Chromium refuses: userVisibleOnly false, a key that is not a P-256 point.
        if (userVisibleOnly !== true) throw new Error('NotAllowedError: userVisibleOnly');
        if (!(applicationServerKey instanceof Uint8Array) || applicationServerKey.length !== 65)
          throw new Error('InvalidAccessError: applicationServerKey is not a P-256 public key');
        const json = make(Buffer.from(applicationServerKey).toString('base64url'));
        const subscription = {
          json,
          // A real PushSubscription's toJSON() carries expirationTime (null).
          toJSON: () => ({ ...json, expirationTime: null }),
          unsubscribe: async () => {
            calls.unsubscribe++;
            current = null;
            return true;
          },
        };
        current = subscription;
        return subscription;
      },
    },
  };
  return { registration, calls, current: () => current };
}

async function connect(user: string) {
  const pw = new lib.Pushwire({
    url: stack.offline.wsUrl({}),
    token: await devToken(user),
    storage: null,
    WebSocket: WebSocket as unknown as Client.SocketClass,
  });
  pw.connect();
  await waitFor(() => pw.state === 'connected' && pw.connectionId !== undefined);
  return pw;
}

const pushesTo = (s: StandInSubscription) =>
  webPush.received.filter((p) => p.subscriptionId === subscriptionId(s.endpoint));

describe('pushwire/push (client/dist/push.js) over a real connection', () => {
  it('registers, reuses the subscription, gets the push of an unacked message, and unregisters', async () => {
    const user = 'pc-ann';
    const { registration, calls, current } = browser();
    const pw = await connect(user);
    let registered: Push.PushRegistered;
    try {
      registered = await push.registerPush(pw, registration, DEV_VAPID.VAPID_PUBLIC_KEY);
      expect(calls.subscribe).toBe(1);
      expect(Buffer.from(calls.keys[0] ?? []).equals(VAPID_BYTES)).toBe(true);
      expect(registered).toEqual({
        id: expect.stringMatching(/^w_/),
        expiresAt: expect.any(Number),
        evicted: [],
      });
      expect(registered.expiresAt).toBeGreaterThan(Date.now() + 59 * 86_400_000);
      expect((await devices({ action: 'list', userId: user })).devices).toEqual([
        expect.objectContaining({ id: registered.id, kind: 'webpush', origin: webPush.origin }),
      ]);

      // The next start: the browser's subscription is reused, the registration renewed.
      const again = await push.registerPush(pw, registration, DEV_VAPID.VAPID_PUBLIC_KEY);
      expect(calls.subscribe).toBe(1);
      expect(again.id).toBe(registered.id);
      expect(again.evicted).toEqual([]);
      expect(again.expiresAt).toBeGreaterThanOrEqual(registered.expiresAt);
      expect((await devices({ action: 'list', userId: user })).devices).toHaveLength(1);
    } finally {
      pw.close();
    }

    // The user is gone ($disconnect has run): an acknowledged message nobody acks is pushed to this browser.
    await eventually(async () => (await stack.probe.userLive(user)).size === 0, 15_000, 'offline');
    const subscription = current()?.json as StandInSubscription;
    const notify = { title: 'Call from Bo', body: 'Tap to answer', data: { call: 'c-1' } };
    const sent = await publishOk(stack.offline, {
      id: 'pc-1',
      userId: user,
      data: { ring: true },
      ack: { timeoutSeconds: 1, notify },
    });
    expect(sent.recipients).toBe(0);
    const pushed = await eventually(
      async () => {
        const s = await status('pc-1', user);
        return s.state === 'pushed' && s;
      },
      25_000,
      'pc-1 pushed',
      100,
    );
    expect(pushed.push).toMatchObject({ devices: 1, sent: 1, failed: 0, removed: 0 });
    const [received, ...more] = pushesTo(subscription);
    expect(more).toEqual([]);
    expect(JSON.parse(received?.text ?? 'null')).toEqual({
      ...notify,
      id: 'pc-1',
      cursor: sent.cursor,
    });
    // Signed with the key the browser subscribed with (the service refuses any other).
    expect(received?.vapid).toMatchObject({ k: DEV_VAPID.VAPID_PUBLIC_KEY, aud: webPush.origin });
    expect(webPush.refused).toEqual([]);

    // Logout: the registration and the browser's subscription both go.
    const later = await connect(user);
    try {
      expect(await push.unregisterPush(later, registration)).toBe(true);
      expect(calls.unsubscribe).toBe(1);
      expect(current()).toBeNull();
      expect((await devices({ action: 'list', userId: user })).devices).toEqual([]);
      // Nothing left to remove: false, and no request needed.
      expect(await push.unregisterPush(later, registration)).toBe(false);
    } finally {
      later.close();
    }
  });

  it('unregisterPush with keepSubscription leaves the browser subscribed; a second user can register it', async () => {
    const { registration, calls, current } = browser();
    const bo = await connect('pc-bo');
    try {
      const first = await push.registerPush(bo, registration, DEV_VAPID.VAPID_PUBLIC_KEY);
      expect(await push.unregisterPush(bo, registration, { keepSubscription: true })).toBe(true);
      expect(calls.unsubscribe).toBe(0);
      expect(current()).not.toBeNull();
      expect((await devices({ action: 'list', userId: 'pc-bo' })).devices).toEqual([]);
      // Removing what the server no longer has: false.
      expect(await push.unregisterPush(bo, registration, { keepSubscription: true })).toBe(false);
      // The same browser, another user: the kept subscription is reused (same device id).
      const cy = await connect('pc-cy');
      try {
        const second = await push.registerPush(cy, registration, DEV_VAPID.VAPID_PUBLIC_KEY);
        expect(calls.subscribe).toBe(1);
        expect(second.id).toBe(first.id);
        expect((await devices({ action: 'list', userId: 'pc-cy' })).devices).toHaveLength(1);
      } finally {
        cy.close();
      }
    } finally {
      bo.close();
    }
  });

  it("reports the devices the server evicted past the user's limit (PUSH_MAX_DEVICES 2)", async () => {
    const pw = await connect('pc-dee');
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await push.registerPush(pw, browser().registration, DEV_VAPID.VAPID_PUBLIC_KEY);
        expect(r.evicted).toEqual(i < 2 ? [] : [ids[0]]);
        ids.push(r.id);
      }
      const listed = (await devices({ action: 'list', userId: 'pc-dee' })).devices;
      expect(listed.map((d: { id: string }) => d.id).sort()).toEqual(ids.slice(1).sort());
    } finally {
      pw.close();
    }
  });

  it("rejects with the server's error code: an endpoint on a host not allowed, bad keys", async () => {
    const pw = await connect('pc-eve');
    try {
      const elsewhere = browser((key) => ({
        ...webPush.subscribe(key),
        endpoint: 'https://push.attacker.example/x',
      }));
      const refused = await push
        .registerPush(pw, elsewhere.registration, DEV_VAPID.VAPID_PUBLIC_KEY)
        .then(
          () => undefined,
          (error: Error & { code?: string }) => error,
        );
      expect(refused).toBeInstanceOf(Error);
      expect(refused?.code).toBe('invalid_request');
      expect(refused?.message).toMatch(/not a known push service/);

      const badKeys = browser((key) => {
        const s = webPush.subscribe(key);
        return { ...s, keys: { ...s.keys, p256dh: 'AAAA' } };
      });
      await expect(
        push.registerPush(pw, badKeys.registration, DEV_VAPID.VAPID_PUBLIC_KEY),
      ).rejects.toMatchObject({ code: 'invalid_request', message: /p256dh must be 65 bytes/ });

      expect((await devices({ action: 'list', userId: 'pc-eve' })).devices).toEqual([]);
      // The connection is still up and served: a good subscription registers on it.
      expect(pw.state).toBe('connected');
      const good = await push.registerPush(pw, browser().registration, DEV_VAPID.VAPID_PUBLIC_KEY);
      expect((await devices({ action: 'list', userId: 'pc-eve' })).devices).toEqual([
        expect.objectContaining({ id: good.id }),
      ]);
    } finally {
      pw.close();
    }
  });

  it("rejects with 'disconnected' when the client is not connected, before subscribing", async () => {
    const pw = new lib.Pushwire({
      url: stack.offline.wsUrl({}),
      token: await devToken('pc-fay'),
      storage: null,
      WebSocket: WebSocket as unknown as Client.SocketClass,
    });
    const { registration, calls } = browser();
    await expect(
      push.registerPush(pw, registration, DEV_VAPID.VAPID_PUBLIC_KEY),
    ).rejects.toMatchObject({ code: 'disconnected' });
    // The browser subscribed (registerPush subscribes first); the server has nothing.
    expect(calls.subscribe).toBe(1);
    expect((await devices({ action: 'list', userId: 'pc-fay' })).devices).toEqual([]);
  });
});
