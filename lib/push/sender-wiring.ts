import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { logger } from '../clients.js';
import { tally } from '../observability/metrics.js';
import { createPushSender } from './sender.js';
import type { PushSender } from './types.js';
import { sendWebPush } from './webpush.js';
import { build, readVapid } from './wiring.js';

/** The PushSender of lib/aws-clients.ts `pushSender()`: Web Push (web-push) and SNS. */
export async function buildPushSender(): Promise<PushSender> {
  const { push, store, sns } = await build();
  const vapid = await readVapid(push);
  const agents = {
    http: new HttpAgent({ keepAlive: true }),
    https: new HttpsAgent({ keepAlive: true }),
  };
  return createPushSender({
    devices: store,
    ...(vapid && {
      webPush: {
        vapid,
        send: (device, notify, message) =>
          sendWebPush(device, notify, message, { vapid, timeoutMs: push.requestTimeoutMs, agents }),
      },
    }),
    ...(sns && { sns }),
    concurrency: push.concurrency,
    retry: push.retry,
    logger: logger(),
    count: (outcome, n) =>
      tally(
        outcome === 'sent' ? 'PushSent' : outcome === 'failed' ? 'PushFailed' : 'PushRemoved',
        n,
      ),
  });
}
