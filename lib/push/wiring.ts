import { credentialsProvider } from '../aws/signing.js';
import { config, logger, redis, registry } from '../clients.js';
import { loadPushConfig, type PushConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { signedFetcher } from '../secret-fetcher.js';
import { DeviceStore } from './devices.js';
import { type DeviceResult, deviceOperation } from './service.js';
import { SnsMobile, snsCaller } from './sns.js';
import type { VapidKeys } from './webpush.js';

/**
 * Builds the push code's clients from the configuration: loaded only by
 * `import()` from lib/aws-clients.ts, so only the functions that register
 * devices or send pushes carry the SNS calls (and only the sender,
 * ./sender-wiring.ts, carries web-push).
 */

let built: Promise<Built> | undefined;

export interface Built {
  push: PushConfig;
  store: DeviceStore;
  sns?: SnsMobile;
}

/** The VAPID keys, the private one read from SSM: only where pushes are sent (that role alone may read it). */
export async function readVapid(push: PushConfig): Promise<VapidKeys | undefined> {
  const vapid = push.vapid;
  if (!vapid) return undefined;
  let privateKey = vapid.privateKey;
  if (privateKey === undefined) {
    const c = config();
    const name = vapid.privateKeyParameter as string;
    try {
      privateKey = (
        await signedFetcher({
          region: c.region,
          credentials: credentialsProvider(c.credentials),
          ...(c.secretEndpoints.ssm && { ssmEndpoint: c.secretEndpoints.ssm }),
          ...(c.secretEndpoints.secretsManager && {
            secretsManagerEndpoint: c.secretEndpoints.secretsManager,
          }),
        })(name)
      ).trim();
    } catch (error) {
      // The parameter's name, never its value.
      throw new ConfigError(
        `VAPID_PRIVATE_KEY_PARAMETER names "${name}", which cannot be read: ${(error as Error).name}: ${(error as Error).message.slice(0, 200)}`,
      );
    }
  }
  if (!/^[A-Za-z0-9_-]{42,44}$/.test(privateKey))
    throw new ConfigError('the VAPID private key must be 32 bytes, base64url (43 characters)');
  return { publicKey: vapid.publicKey, privateKey, subject: vapid.subject };
}

export function build(): Promise<Built> {
  built ??= (async () => {
    const c = config();
    const push = loadPushConfig();
    const store = new DeviceStore(redis(), {
      key: (userId) => registry().keys.devices(userId),
      maxDevices: push.maxDevices,
      ttlSeconds: push.deviceTtlSeconds,
    });
    const sns =
      Object.keys(push.snsApplications).length > 0
        ? new SnsMobile(
            snsCaller({
              region: c.region,
              credentials: credentialsProvider(c.credentials),
              timeoutMs: push.requestTimeoutMs,
              ...(push.snsEndpoint && { endpoint: push.snsEndpoint }),
            }),
          )
        : undefined;
    return { push, store, ...(sns && { sns }) };
  })().catch((error: unknown) => {
    built = undefined;
    throw error;
  });
  return built;
}

export async function buildDeviceOperation(): Promise<(input: unknown) => Promise<DeviceResult>> {
  const { push, store, sns } = await build();
  return (input) =>
    deviceOperation(input, {
      store,
      config: push,
      ...(sns && { sns }),
      logger: logger(),
    });
}
