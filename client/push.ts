/**
 * pushwire/push: registers the browser for push fallback (docs/push.md). A
 * separate import, so apps without push do not download it.
 *
 *   import { registerPush } from 'pushwire/push';
 *   const sw = await navigator.serviceWorker.register('/sw.js');
 *   await registerPush(client, sw, VAPID_PUBLIC_KEY);
 *
 * Call it at every start (it renews the registration's lifetime on the
 * server); `unregisterPush` at logout, so the next user of this browser gets
 * none of this user's notifications. The service worker shows them: its
 * `push` event's `event.data.json()` is `{title, body?, tag?, data?, id,
 * cursor?, truncated?}`.
 */

import type { Frame } from './pushwire.js';

/** The part of a Pushwire client this uses: its `request` (pushwire core). */
export interface PushClient {
  request(frame: object): Promise<Frame>;
}

/** What a browser's PushSubscription gives (no DOM types needed). */
export interface SubscriptionLike {
  toJSON(): { endpoint?: string; keys?: Record<string, string> };
  unsubscribe(): Promise<boolean>;
}

/** The part of a ServiceWorkerRegistration used here. */
export interface RegistrationLike {
  pushManager: {
    getSubscription(): Promise<SubscriptionLike | null>;
    subscribe(options: {
      userVisibleOnly: boolean;
      applicationServerKey: Uint8Array;
    }): Promise<SubscriptionLike>;
  };
}

export interface PushRegistered {
  /** The device's id on the server (push_unregister takes it). */
  id: string;
  /** When the registration lapses unless renewed (ms). */
  expiresAt: number;
  /** Devices of this user the server dropped to stay within its limit. */
  evicted: string[];
}

declare const atob: (data: string) => string;

/** A base64url key (the VAPID public key) as the bytes pushManager.subscribe() takes. */
export function applicationServerKey(base64url: string): Uint8Array {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** The frame that registers a subscription; send it yourself if you do not use the client library. */
export const pushRegisterFrame = (subscription: SubscriptionLike) => ({
  action: 'push_register',
  webpush: subscription.toJSON(),
});

/**
 * Subscribes this browser (or reuses its subscription) and registers it for
 * the connected user. Rejects with the server's error (`code`:
 * invalid_request, push_unsupported, …) or the browser's (permission denied).
 */
export async function registerPush(
  client: PushClient,
  registration: RegistrationLike,
  vapidPublicKey: string,
): Promise<PushRegistered> {
  const manager = registration.pushManager;
  const subscription =
    (await manager.getSubscription()) ??
    (await manager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: applicationServerKey(vapidPublicKey),
    }));
  const reply = await client.request(pushRegisterFrame(subscription));
  return { id: String(reply.id), expiresAt: Number(reply.expiresAt), evicted: reply.evicted ?? [] };
}

/**
 * Removes this browser's registration for the connected user and, unless
 * `keepSubscription`, its PushSubscription: whether the server had it.
 */
export async function unregisterPush(
  client: PushClient,
  registration: RegistrationLike,
  options: { keepSubscription?: boolean } = {},
): Promise<boolean> {
  const subscription = await registration.pushManager.getSubscription();
  if (!subscription) return false;
  const reply = await client.request({ action: 'push_unregister', webpush: subscription.toJSON() });
  if (!options.keepSubscription) await subscription.unsubscribe();
  return reply.removed === true;
}
