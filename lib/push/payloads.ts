import type { MobilePlatform } from './devices.js';
import type { Notify, PushedMessage } from './types.js';

/**
 * What a push carries, per provider. Every provider takes about 4 KB (Web
 * Push: 4,096 bytes of encrypted record, RFC 8291 leaves ~3,993 of
 * plaintext; APNs and FCM: 4 KB of payload): a notification whose `data`
 * would pass PAYLOAD_MAX_BYTES goes without it and says so (`truncated`),
 * so the app fetches the message by its id (and cursor) on opening.
 */

export const PAYLOAD_MAX_BYTES = 3_800;

/** What the app or service worker receives (Web Push: the decrypted body, JSON). */
export interface PushPayload {
  title: string;
  body?: string;
  tag?: string;
  data?: unknown;
  /** The message the notification stands in for. */
  id: string;
  cursor?: string;
  /** `data` was left out to fit the provider's limit. */
  truncated?: true;
}

export function pushPayload(notify: Notify, message: PushedMessage): PushPayload {
  const payload: PushPayload = {
    title: notify.title,
    ...(notify.body !== undefined && { body: notify.body }),
    ...(notify.tag !== undefined && { tag: notify.tag }),
    ...(notify.data !== undefined && { data: notify.data }),
    id: message.id,
    ...(message.cursor !== undefined && { cursor: message.cursor }),
  };
  if (Buffer.byteLength(JSON.stringify(payload)) <= PAYLOAD_MAX_BYTES) return payload;
  const { data: _dropped, ...rest } = payload;
  return { ...rest, truncated: true };
}

/** The default lifetime of a notification at the push service: 1 day. */
export const DEFAULT_PUSH_TTL_SECONDS = 86_400;

/** The SNS key of each platform in a MessageStructure=json message. */
export const SNS_KEY: Record<MobilePlatform, 'APNS' | 'APNS_SANDBOX' | 'GCM'> = {
  apns: 'APNS',
  apns_sandbox: 'APNS_SANDBOX',
  fcm: 'GCM',
};

/**
 * The SNS Publish message for one platform endpoint (MessageStructure=json:
 * each value a JSON string), and its message attributes (APNs push type,
 * collapse id and TTL; FCM TTL).
 */
export function snsMessage(
  platform: MobilePlatform,
  notify: Notify,
  message: PushedMessage,
): { message: Record<string, string>; attributes: Record<string, string> } {
  const payload = pushPayload(notify, message);
  const ttl = String(notify.ttlSeconds ?? DEFAULT_PUSH_TTL_SECONDS);
  const { title, body, tag, ...app } = payload;
  if (platform === 'fcm') {
    const high = notify.urgency === 'high';
    const fcm = {
      fcmV1Message: {
        message: {
          notification: { title, ...(body !== undefined && { body }) },
          // FCM data values are strings: the app parses `pushwire`.
          data: { pushwire: JSON.stringify(app) },
          android: {
            priority: high ? 'high' : 'normal',
            ttl: `${ttl}s`,
            ...(tag !== undefined && { collapse_key: tag, notification: { tag } }),
          },
        },
      },
    };
    return {
      message: { default: title, GCM: JSON.stringify(fcm) },
      attributes: { 'AWS.SNS.MOBILE.FCM.TTL': ttl },
    };
  }
  const apns = {
    aps: {
      alert: { title, ...(body !== undefined && { body }) },
      sound: 'default',
      ...(tag !== undefined && { 'thread-id': tag }),
    },
    pushwire: app,
  };
  return {
    message: { default: title, [SNS_KEY[platform]]: JSON.stringify(apns) },
    attributes: {
      'AWS.SNS.MOBILE.APNS.PUSH_TYPE': 'alert',
      'AWS.SNS.MOBILE.APNS.PRIORITY':
        notify.urgency === 'very-low' || notify.urgency === 'low' ? '5' : '10',
      [`AWS.SNS.MOBILE.${SNS_KEY[platform]}.TTL`]: ttl,
      ...(tag !== undefined && { 'AWS.SNS.MOBILE.APNS.COLLAPSE_ID': tag }),
    },
  };
}
