import pMap from 'p-map';
import type { Device, DeviceStore, MobileDevice, WebPushDevice } from './devices.js';
import { snsMessage } from './payloads.js';
import { type Attempted, type RetryBounds, type TryOutcome, withRetries } from './retry.js';
import { SnsError, type SnsMobile } from './sns.js';
import type { Notify, PushedMessage, PushOutcome, PushSender } from './types.js';
import type { VapidKeys } from './webpush.js';

/**
 * The PushSender (lib/push/types.ts): a user's fallback push, to every
 * registered device in parallel (at most `concurrency` at once), each with
 * bounded retries; devices the provider reports gone or disabled are removed.
 */

export interface PushLog {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
}

export interface PushSenderDeps {
  devices: DeviceStore;
  /** Web Push, when VAPID keys are configured. */
  webPush?: {
    vapid: VapidKeys;
    send: (d: WebPushDevice, n: Notify, m: PushedMessage) => Promise<TryOutcome>;
  };
  /** SNS mobile push, when any platform application is configured. */
  sns?: SnsMobile;
  concurrency: number;
  retry: RetryBounds;
  logger: PushLog;
  /** Counts per outcome (metrics PushSent, PushFailed, PushRemoved). */
  count?: (outcome: 'sent' | 'failed' | 'removed', n: number) => void;
  wait?: (ms: number) => Promise<unknown>;
}

/** An SNS call's outcome as a try. */
export async function snsTry(call: () => Promise<unknown>): Promise<TryOutcome> {
  try {
    await call();
    return { kind: 'sent' };
  } catch (error) {
    if (error instanceof SnsError) {
      if (error.gone) return { kind: 'gone', reason: error.message };
      if (error.retryable) return { kind: 'retry', reason: error.message };
      return { kind: 'failed', reason: error.message };
    }
    // Network errors, timeouts: SNS may not have seen it.
    return { kind: 'retry', reason: (error as Error).message };
  }
}

export function createPushSender(deps: PushSenderDeps): PushSender {
  const tryOnce = (device: Device, notify: Notify, message: PushedMessage): Promise<TryOutcome> => {
    if (device.kind === 'webpush') {
      if (!deps.webPush)
        return Promise.resolve({
          kind: 'failed',
          reason: 'Web Push is not configured (VAPID keys)',
        });
      return deps.webPush.send(device, notify, message);
    }
    const sns = deps.sns;
    if (!sns)
      return Promise.resolve({ kind: 'failed', reason: 'SNS mobile push is not configured' });
    const { message: body, attributes } = snsMessage(device.platform, notify, message);
    return snsTry(() => sns.publish((device as MobileDevice).endpointArn, body, attributes));
  };

  return {
    async send(userId, notify, message): Promise<PushOutcome> {
      const devices = await deps.devices.list(userId);
      const outcome: PushOutcome = { devices: devices.length, sent: 0, failed: 0, removed: 0 };
      const results = await pMap(
        devices,
        async (device): Promise<Attempted> => {
          try {
            return await withRetries(() => tryOnce(device, notify, message), deps.retry, deps.wait);
          } catch (error) {
            return { kind: 'failed', reason: (error as Error).message, attempts: 1 };
          }
        },
        { concurrency: deps.concurrency },
      );
      await Promise.all(
        results.map(async (result, i) => {
          const device = devices[i] as Device;
          if (result.kind === 'sent') {
            outcome.sent++;
            return;
          }
          if (result.kind === 'gone') {
            // Removed unless registered again meanwhile; the SNS endpoint goes with it.
            const removed = await deps.devices.removeIfUnchanged(userId, device).catch(() => false);
            if (removed) {
              outcome.removed++;
              if (device.kind === 'mobile')
                await deps.sns?.deleteEndpoint(device.endpointArn).catch(() => undefined);
            } else outcome.failed++;
            deps.logger.info('push device gone', {
              userId,
              device: device.id,
              kind: device.kind,
              reason: result.reason,
              removed,
            });
            return;
          }
          outcome.failed++;
          deps.logger.warn('push failed', {
            userId,
            device: device.id,
            kind: device.kind,
            messageId: message.id,
            reason: result.reason,
            attempts: result.attempts,
          });
        }),
      );
      if (outcome.sent) deps.count?.('sent', outcome.sent);
      if (outcome.failed) deps.count?.('failed', outcome.failed);
      if (outcome.removed) deps.count?.('removed', outcome.removed);
      return outcome;
    },
  };
}
