import { createHash } from 'node:crypto';
import type { Cluster, Redis, Result } from 'ioredis';
import registerLua from './scripts/register.lua';
import removeLua from './scripts/remove.lua';

/**
 * The push devices of each user, in Redis: one HASH per user (in the user's
 * slot, `{u:userId}`), device id -> JSON record. Every record carries its own
 * expiry (PUSH_DEVICE_TTL_DAYS after its last registration; Redis 7.0 has no
 * per-field TTL), and the HASH's TTL is refreshed by every registration, so a
 * user who never comes back leaves nothing behind.
 */

export type MobilePlatform = 'apns' | 'apns_sandbox' | 'fcm';

interface DeviceBase {
  id: string;
  /** When last registered (ms): the oldest is evicted first at the limit. */
  registeredAt: number;
  expiresAt: number;
}

/** A browser's PushSubscription (RFC 8030 endpoint, RFC 8291 keys). */
export interface WebPushDevice extends DeviceBase {
  kind: 'webpush';
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** An app's APNs or FCM token, and the SNS platform endpoint made for it. */
export interface MobileDevice extends DeviceBase {
  kind: 'mobile';
  platform: MobilePlatform;
  token: string;
  endpointArn: string;
}

export type Device = WebPushDevice | MobileDevice;

/** A device as services and apps see it: no keys, no token. */
export interface DeviceSummary {
  id: string;
  kind: Device['kind'];
  platform?: MobilePlatform;
  /** The push service's origin (Web Push). */
  origin?: string;
  registeredAt: number;
  expiresAt: number;
}

export const summarize = (d: Device): DeviceSummary => ({
  id: d.id,
  kind: d.kind,
  ...(d.kind === 'mobile' ? { platform: d.platform } : { origin: new URL(d.endpoint).origin }),
  registeredAt: d.registeredAt,
  expiresAt: d.expiresAt,
});

const digest = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/** A stable id: the same subscription or token registered again is the same device. */
export const webPushDeviceId = (endpoint: string): string => `w_${digest(endpoint)}`;
export const mobileDeviceId = (platform: MobilePlatform, token: string): string =>
  `m_${digest(`${platform}\n${token}`)}`;

export interface RegisterResult {
  /** The record this registration replaced (same id), if any. */
  previous?: Device;
  /** Devices removed to stay within the per-user limit (least recently registered first). */
  evicted: Device[];
  /** Records found expired and dropped on the way. */
  expired: Device[];
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    pwDeviceRegister(
      key: string,
      now: number,
      id: string,
      record: string,
      max: number,
      ttlMs: number,
    ): Result<[string | null, string, string], Context>;
    pwDeviceRemove(key: string, id: string, only: string): Result<string | null, Context>;
  }
}

const parse = (json: string): Device | undefined => {
  try {
    return JSON.parse(json) as Device;
  } catch {
    return undefined;
  }
};

export interface DeviceStoreOptions {
  /** The user's devices HASH (lib/registry/keys.ts `devices`). */
  key: (userId: string) => string;
  maxDevices: number;
  ttlSeconds: number;
  now?: () => number;
}

export class DeviceStore {
  readonly #redis: Redis | Cluster;
  readonly #options: DeviceStoreOptions;

  constructor(redis: Redis | Cluster, options: DeviceStoreOptions) {
    this.#redis = redis;
    this.#options = options;
    if (typeof (redis as Partial<Redis>).pwDeviceRegister !== 'function') {
      redis.defineCommand('pwDeviceRegister', { numberOfKeys: 1, lua: registerLua });
      redis.defineCommand('pwDeviceRemove', { numberOfKeys: 1, lua: removeLua });
    }
  }

  get maxDevices(): number {
    return this.#options.maxDevices;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  /** When a device registered now expires. */
  expiresAt(): number {
    return this.#now() + this.#options.ttlSeconds * 1_000;
  }

  /** Adds or refreshes a device (its `registeredAt`/`expiresAt` are set here). */
  async register(
    userId: string,
    device:
      | Omit<WebPushDevice, 'registeredAt' | 'expiresAt'>
      | Omit<MobileDevice, 'registeredAt' | 'expiresAt'>,
  ): Promise<RegisterResult & { device: Device }> {
    const now = this.#now();
    const record = { ...device, registeredAt: now, expiresAt: this.expiresAt() } as Device;
    const [previous, evicted, expired] = await this.#redis.pwDeviceRegister(
      this.#options.key(userId),
      now,
      record.id,
      JSON.stringify(record),
      this.#options.maxDevices,
      this.#options.ttlSeconds * 1_000,
    );
    const list = (json: string) => {
      const parsed = JSON.parse(json) as unknown;
      return Array.isArray(parsed) ? (parsed as Device[]) : [];
    };
    const before = previous ? parse(previous) : undefined;
    return {
      device: record,
      ...(before && { previous: before }),
      evicted: list(evicted),
      expired: list(expired),
    };
  }

  /** The user's devices that have not expired. */
  async list(userId: string): Promise<Device[]> {
    const now = this.#now();
    const all = await this.#redis.hgetall(this.#options.key(userId));
    return Object.values(all)
      .map(parse)
      .filter((d): d is Device => d !== undefined && d.expiresAt > now);
  }

  /** Removes a device by id: the removed record, or undefined when there was none. */
  async remove(userId: string, id: string): Promise<Device | undefined> {
    const removed = await this.#redis.pwDeviceRemove(this.#options.key(userId), id, '');
    return removed ? parse(removed) : undefined;
  }

  /**
   * Removes a device the provider reported gone, unless it was registered
   * again meanwhile (a fresh record must not go with the stale one).
   */
  async removeIfUnchanged(userId: string, device: Device): Promise<boolean> {
    const removed = await this.#redis.pwDeviceRemove(
      this.#options.key(userId),
      device.id,
      JSON.stringify(device),
    );
    return removed !== null;
  }
}
