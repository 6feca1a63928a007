import { type Agent as HttpAgent, request as httpRequest } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import webpush from 'web-push';
import type { WebPushDevice } from './devices.js';
import { DEFAULT_PUSH_TTL_SECONDS, pushPayload } from './payloads.js';
import { parseRetryAfter, type TryOutcome } from './retry.js';
import type { Notify, PushedMessage } from './types.js';

/**
 * One Web Push (RFC 8030) request: the payload encrypted for the
 * subscription (RFC 8291, aes128gcm) and signed with the VAPID key (RFC
 * 8292) by the `web-push` library; sent here, so the answer's status and
 * Retry-After decide what happens next.
 */

export interface VapidKeys {
  /** Uncompressed P-256 public key, base64url (what browsers take as applicationServerKey). */
  publicKey: string;
  /** The private scalar, base64url. */
  privateKey: string;
  /** mailto: or https: contact for the push services. */
  subject: string;
}

export interface WebPushSendOptions {
  vapid: VapidKeys;
  timeoutMs: number;
  agents?: { http?: HttpAgent; https?: HttpsAgent };
}

/** The request web-push builds: encrypted body, VAPID Authorization, TTL, Urgency, Topic. */
export function webPushRequest(
  device: WebPushDevice,
  notify: Notify,
  message: PushedMessage,
  vapid: VapidKeys,
): { endpoint: string; headers: Record<string, string>; body: Buffer } {
  const details = webpush.generateRequestDetails(
    { endpoint: device.endpoint, keys: device.keys },
    JSON.stringify(pushPayload(notify, message)),
    {
      vapidDetails: vapid,
      TTL: notify.ttlSeconds ?? DEFAULT_PUSH_TTL_SECONDS,
      urgency: notify.urgency ?? 'normal',
      ...(notify.tag !== undefined && { topic: notify.tag }),
      contentEncoding: 'aes128gcm',
    },
  );
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(details.headers)) headers[name] = String(value);
  return { endpoint: details.endpoint, headers, body: details.body as Buffer };
}

/** What an answer from a push service means (RFC 8030 §5, §8.4). */
export function classifyWebPush(status: number, retryAfter: string | undefined): TryOutcome {
  if (status >= 200 && status < 300) return { kind: 'sent' };
  if (status === 404 || status === 410)
    return { kind: 'gone', reason: `push service answered ${status}: subscription gone` };
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return {
      kind: 'retry',
      reason: `push service answered ${status}`,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    };
  }
  // 400 (bad request), 401/403 (VAPID refused), 413 (too large): retrying cannot help.
  return { kind: 'failed', reason: `push service answered ${status}` };
}

/** Sends one Web Push; network errors and timeouts are retryable. */
export function sendWebPush(
  device: WebPushDevice,
  notify: Notify,
  message: PushedMessage,
  options: WebPushSendOptions,
): Promise<TryOutcome> {
  let built: ReturnType<typeof webPushRequest>;
  try {
    built = webPushRequest(device, notify, message, options.vapid);
  } catch (error) {
    // Keys a browser would never produce: nothing to retry.
    return Promise.resolve({
      kind: 'failed',
      reason: `cannot encrypt: ${(error as Error).message}`,
    });
  }
  const url = new URL(built.endpoint);
  const secure = url.protocol === 'https:';
  const agent = secure ? options.agents?.https : options.agents?.http;
  return new Promise<TryOutcome>((resolve) => {
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        headers: built.headers,
        timeout: options.timeoutMs,
        ...(agent && { agent }),
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve(
            classifyWebPush(
              res.statusCode ?? 0,
              typeof retryAfter === 'string' ? retryAfter : undefined,
            ),
          );
        });
        res.on('error', (error) => resolve({ kind: 'retry', reason: error.message }));
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${url.host} did not answer within ${options.timeoutMs} ms`)),
    );
    req.on('error', (error) => resolve({ kind: 'retry', reason: error.message }));
    req.end(built.body);
  });
}
