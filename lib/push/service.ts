import * as v from 'valibot';
import type { PushConfig } from '../config.js';
import { PushwireError, UnavailableError, ValidationError } from '../errors.js';
import { describeIssues, UserId } from '../protocol/frames.js';
import {
  type Device,
  type DeviceStore,
  type DeviceSummary,
  type MobileDevice,
  mobileDeviceId,
  summarize,
  webPushDeviceId,
} from './devices.js';
import { SnsError, type SnsMobile } from './sns.js';
import { NotifySchema } from './types.js';

/**
 * Registering, removing and listing a user's push devices: one operation for
 * every way in (the app over its socket through `$default`, services through
 * Invoke, HTTP and the server SDK), so each validates and answers alike.
 */

/** A kind of device this deployment cannot push to (no VAPID keys, no SNS application for the platform). */
export class PushUnsupportedError extends PushwireError {
  override name = 'PushUnsupportedError';
  constructor(message: string) {
    super('push_unsupported', message, 400);
  }
}

const b64url = (name: string, bytes: number, check?: (b: Buffer) => boolean) =>
  v.pipe(
    v.string(`${name} must be a string`),
    v.regex(/^[A-Za-z0-9_-]+={0,2}$/, `${name} must be base64url`),
    v.check((s) => {
      const decoded = Buffer.from(s, 'base64url');
      return decoded.length === bytes && (check?.(decoded) ?? true);
    }, `${name} must be ${bytes} bytes, base64url`),
  );

/** A browser PushSubscription's JSON (PushSubscription.toJSON()). */
export const WebPushSubscription = v.object({
  endpoint: v.pipe(
    v.string('webpush.endpoint must be a string'),
    v.maxLength(2_048, 'webpush.endpoint is at most 2048 characters'),
    v.url('webpush.endpoint must be a URL'),
  ),
  // Browsers add expirationTime (null); accepted and ignored.
  expirationTime: v.optional(v.nullable(v.number())),
  keys: v.object(
    {
      // An uncompressed P-256 point: 65 bytes starting with 0x04.
      p256dh: b64url('webpush.keys.p256dh', 65, (b) => b[0] === 4),
      auth: b64url('webpush.keys.auth', 16),
    },
    'webpush.keys must be an object with p256dh and auth',
  ),
});

export const MobileRegistration = v.strictObject({
  platform: v.picklist(
    ['apns', 'apns_sandbox', 'fcm'],
    'mobile.platform must be apns, apns_sandbox or fcm',
  ),
  token: v.pipe(
    v.string('mobile.token must be a string'),
    v.regex(
      /^[A-Za-z0-9_:.-]{8,4096}$/,
      'mobile.token must be 8-4096 characters of A-Z a-z 0-9 _ : . -',
    ),
  ),
});

const Target = {
  webpush: v.optional(WebPushSubscription),
  mobile: v.optional(MobileRegistration),
};

export const DeviceRequest = v.variant('action', [
  v.strictObject({ action: v.literal('register'), userId: UserId, ...Target }),
  v.strictObject({
    action: v.literal('remove'),
    userId: UserId,
    id: v.optional(
      v.pipe(
        v.string('id must be a string'),
        v.regex(/^[wm]_[A-Za-z0-9_-]{22}$/, 'id must be a device id as register answered'),
      ),
    ),
    ...Target,
  }),
  v.strictObject({ action: v.literal('list'), userId: UserId }),
]);
export type DeviceRequest = v.InferOutput<typeof DeviceRequest>;

export type DeviceResult =
  | { registered: DeviceSummary; evicted: DeviceSummary[] }
  | { removed: boolean; id: string }
  | { devices: DeviceSummary[]; max: number };

export interface DeviceServiceDeps {
  store: DeviceStore;
  config: Pick<PushConfig, 'vapid' | 'webPushHosts' | 'allowHttpEndpoints' | 'snsApplications'>;
  /** When any SNS platform application is configured. */
  sns?: SnsMobile;
  logger: { warn(message: string, extra: Record<string, unknown>): void };
}

/** Whether a host matches one of the allowed names (`*.example.com`: any subdomain). */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase();
  return allowed.some((a) => (a.startsWith('*.') ? h.endsWith(a.slice(1)) : h === a));
}

function checkEndpoint(endpoint: string, config: DeviceServiceDeps['config']): void {
  const url = new URL(endpoint);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && config.allowHttpEndpoints))
    throw new ValidationError('webpush.endpoint must be an https:// URL');
  if (url.username || url.password)
    throw new ValidationError('webpush.endpoint must not carry credentials');
  if (!hostAllowed(url.hostname, config.webPushHosts))
    throw new ValidationError(
      `webpush.endpoint's host ${url.hostname} is not a known push service (PUSH_WEBPUSH_HOSTS: ${config.webPushHosts.join(', ')})`,
    );
}

type Target =
  | { webpush: v.InferOutput<typeof WebPushSubscription> }
  | { mobile: v.InferOutput<typeof MobileRegistration> };

function oneTarget(
  request: {
    webpush?: v.InferOutput<typeof WebPushSubscription> | undefined;
    mobile?: v.InferOutput<typeof MobileRegistration> | undefined;
  },
  what: string,
): Target {
  if (request.webpush && !request.mobile) return { webpush: request.webpush };
  if (request.mobile && !request.webpush) return { mobile: request.mobile };
  throw new ValidationError(
    `${what} needs exactly one of webpush (a PushSubscription) or mobile ({platform, token})`,
  );
}

/** Deletes SNS endpoints of devices that are gone from the registry (best effort: they cost nothing). */
async function dropEndpoints(deps: DeviceServiceDeps, devices: Device[]): Promise<void> {
  await Promise.all(
    devices
      .filter((d): d is MobileDevice => d.kind === 'mobile')
      .map((d) =>
        deps.sns?.deleteEndpoint(d.endpointArn).catch((error: unknown) =>
          deps.logger.warn('could not delete an SNS endpoint', {
            device: d.id,
            reason: (error as Error).message,
          }),
        ),
      ),
  );
}

export async function deviceOperation(
  input: unknown,
  deps: DeviceServiceDeps,
): Promise<DeviceResult> {
  const parsed = v.safeParse(DeviceRequest, input);
  if (!parsed.success) throw new ValidationError(describeIssues(parsed.issues));
  const request = parsed.output;
  const { store, config } = deps;
  if (request.action === 'list') {
    return { devices: (await store.list(request.userId)).map(summarize), max: store.maxDevices };
  }
  if (request.action === 'remove') {
    let id = request.id;
    if (id === undefined) {
      const target = oneTarget(request, 'remove');
      id =
        'webpush' in target
          ? webPushDeviceId(target.webpush.endpoint)
          : mobileDeviceId(target.mobile.platform, target.mobile.token);
    } else if (request.webpush || request.mobile)
      throw new ValidationError(
        'remove takes an id, or the webpush subscription or mobile token, not both',
      );
    const removed = await store.remove(request.userId, id);
    if (removed) await dropEndpoints(deps, [removed]);
    return { removed: removed !== undefined, id };
  }
  const target = oneTarget(request, 'register');
  let result: Awaited<ReturnType<DeviceStore['register']>>;
  if ('webpush' in target) {
    if (!config.vapid)
      throw new PushUnsupportedError('Web Push is not configured on this deployment (VAPID keys)');
    const { endpoint, keys } = target.webpush;
    checkEndpoint(endpoint, config);
    result = await store.register(request.userId, {
      kind: 'webpush',
      id: webPushDeviceId(endpoint),
      endpoint,
      keys: { p256dh: keys.p256dh, auth: keys.auth },
    });
  } else {
    const { platform, token } = target.mobile;
    const application = config.snsApplications[platform];
    if (!application || !deps.sns)
      throw new PushUnsupportedError(
        `mobile push to ${platform} is not configured on this deployment (no SNS platform application)`,
      );
    if (platform !== 'fcm' && !/^[0-9a-fA-F]{64,200}$/.test(token))
      throw new ValidationError(
        'mobile.token for APNs must be the device token in hex (64 characters or more)',
      );
    // CustomUserData names the user: an operator looking at SNS sees whose endpoint it is.
    const endpointArn = await deps.sns
      .endpointFor(application, token, request.userId.slice(0, 256))
      .catch((error: unknown) => {
        if (error instanceof SnsError && !error.retryable)
          throw new ValidationError(`SNS refused the device token: ${error.message}`);
        throw new UnavailableError(`SNS is unavailable: ${(error as Error).message}; try again`, {
          cause: error,
        });
      });
    result = await store.register(request.userId, {
      kind: 'mobile',
      id: mobileDeviceId(platform, token),
      platform,
      token,
      endpointArn,
    });
    // The same token registered by another user keeps one SNS endpoint: not deleted here.
  }
  await dropEndpoints(
    deps,
    [...result.evicted, ...result.expired].filter(
      (d) => d.kind !== 'mobile' || d.endpointArn !== (result.device as MobileDevice).endpointArn,
    ),
  );
  return { registered: summarize(result.device), evicted: result.evicted.map(summarize) };
}

/**
 * `{action: "push", userId, notify, id?}`: a push to every device of the user
 * now (the `devices` function only: a service's direct notification, and the
 * way to try a registration out). Answers the PushOutcome.
 */
export const PushRequest = v.strictObject({
  action: v.literal('push'),
  userId: UserId,
  notify: NotifySchema,
  id: v.optional(
    v.pipe(
      v.string('id must be a string'),
      v.regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'id must be 1-128 characters of A-Z a-z 0-9 _ . : -'),
    ),
  ),
});

export function parsePushRequest(input: unknown): v.InferOutput<typeof PushRequest> {
  const parsed = v.safeParse(PushRequest, input);
  if (!parsed.success) throw new ValidationError(describeIssues(parsed.issues));
  return parsed.output;
}
