import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { credentialsProvider } from '../../lib/aws/signing.js';
import type { PushConfig } from '../../lib/config.js';
import { ValidationError } from '../../lib/errors.js';
import { DeviceStore, type MobileDevice, type WebPushDevice } from '../../lib/push/devices.js';
import { createPushSender } from '../../lib/push/sender.js';
import { deviceOperation, PushUnsupportedError } from '../../lib/push/service.js';
import { SnsMobile, snsCaller } from '../../lib/push/sns.js';
import type { PushSender } from '../../lib/push/types.js';
import { sendWebPush, type VapidKeys } from '../../lib/push/webpush.js';
import { createKeys } from '../../lib/registry/keys.js';
import {
  type LocalWebPush,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { useRedis } from '../helpers/redis-matrix.js';
import { SnsStandIn } from '../helpers/sns-stand-in.js';

/**
 * Push devices and the PushSender against a real redis-server, the Web Push
 * stand-in (VAPID verified, payload decrypted) and the SNS stand-in (every
 * signature recomputed).
 */

const env = useRedis('standalone');
const keys = createKeys('pwtest:');
const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIAPUSHTEST', secretAccessKey: 'push-test-secret' };
const ACCOUNT = '123456789012';
const APNS_APP = `arn:aws:sns:${REGION}:${ACCOUNT}:app/APNS/pushwire-test`;
const FCM_APP = `arn:aws:sns:${REGION}:${ACCOUNT}:app/GCM/pushwire-test`;
const APNS_TOKEN = 'a'.repeat(64);
const FCM_TOKEN = 'fcm-token:APA91bH_test_0123456789';
const VAPID: VapidKeys = {
  publicKey:
    'BOucSBtlTGlWTam_qp7OiXdSD-avemv68zSVtFNDU9pVJ_jTKTJcrHUWQTl6CTcMeTZlWAm-aWpL52YvL_HwRtY',
  privateKey: 'EJzLoCoX24GPbk8RydrpUySsLzOyguGsANKe2mWmnD0',
  subject: 'mailto:ops@example.com',
};
const RETRY = { attempts: 3, baseDelayMs: 5, retryAfterCapMs: 2_000 };

let webPush: LocalWebPush;
let sns: SnsStandIn;
let clock = 1_800_000_000_000;
let user = 0;
let userId = '';

const store = (max = 3, ttlSeconds = 3_600) =>
  new DeviceStore(env.redis, {
    key: (u) => keys.devices(u),
    maxDevices: max,
    ttlSeconds,
    now: () => clock,
  });

const pushConfig = (): Pick<
  PushConfig,
  'vapid' | 'webPushHosts' | 'allowHttpEndpoints' | 'snsApplications'
> => ({
  vapid: { publicKey: VAPID.publicKey, subject: VAPID.subject, privateKey: VAPID.privateKey },
  webPushHosts: ['127.0.0.1'],
  allowHttpEndpoints: true,
  snsApplications: { apns: APNS_APP, fcm: FCM_APP },
});

const snsMobile = () =>
  new SnsMobile(
    snsCaller({ region: REGION, credentials: credentialsProvider(CREDENTIALS), endpoint: sns.url }),
  );

const quiet = { info: () => {}, warn: () => {} };

const devices = (max = 3) => {
  const s = store(max);
  return {
    store: s,
    op: (input: Record<string, unknown>) =>
      deviceOperation(
        { userId, ...input },
        { store: s, config: pushConfig(), sns: snsMobile(), logger: quiet },
      ),
  };
};

const sender = (s: DeviceStore): PushSender =>
  createPushSender({
    devices: s,
    webPush: {
      vapid: VAPID,
      send: (d, n, m) => sendWebPush(d, n, m, { vapid: VAPID, timeoutMs: 2_000 }),
    },
    sns: snsMobile(),
    concurrency: 4,
    retry: RETRY,
    logger: quiet,
  });

beforeAll(async () => {
  webPush = await startLocalWebPush();
  sns = await SnsStandIn.start({
    region: REGION,
    secretFor: (id) => (id === CREDENTIALS.accessKeyId ? CREDENTIALS.secretAccessKey : undefined),
    applications: [APNS_APP, FCM_APP],
  });
});

afterAll(async () => {
  await webPush?.close();
  await sns?.stop();
});

beforeEach(() => {
  userId = `push-user-${++user}`;
  clock += 1_000;
});

describe('device registry in Redis', () => {
  it('registers a browser subscription once however often it is registered, refreshing its TTL', async () => {
    const { op, store: s } = devices();
    const subscription = webPush.subscribe(VAPID.publicKey);
    const first = await op({ action: 'register', webpush: subscription });
    clock += 60_000;
    const again = await op({ action: 'register', webpush: subscription });
    expect(first).toMatchObject({ registered: { kind: 'webpush', origin: webPush.origin } });
    expect(again).toMatchObject({
      registered: { id: (first as { registered: { id: string } }).registered.id },
    });
    expect((again as { registered: { expiresAt: number } }).registered.expiresAt).toBe(
      clock + 3_600_000,
    );
    expect(await s.list(userId)).toHaveLength(1);
    const ttl = await env.redis.pttl(keys.devices(userId));
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
  });

  it('keeps at most PUSH_MAX_DEVICES per user, evicting the least recently registered', async () => {
    const { op, store: s } = devices(3);
    const subs = [0, 1, 2, 3].map(() => webPush.subscribe());
    const ids: string[] = [];
    for (const sub of subs) {
      clock += 1_000;
      const r = (await op({ action: 'register', webpush: sub })) as {
        registered: { id: string };
        evicted: { id: string }[];
      };
      ids.push(r.registered.id);
      if (ids.length <= 3) expect(r.evicted).toEqual([]);
      else expect(r.evicted.map((d) => d.id)).toEqual([ids[0]]);
    }
    expect((await s.list(userId)).map((d) => d.id).sort()).toEqual(ids.slice(1).sort());
    // Registering an existing device again at the limit evicts nothing.
    const r = (await op({ action: 'register', webpush: subs[1] })) as { evicted: unknown[] };
    expect(r.evicted).toEqual([]);
  });

  it('forgets devices past their TTL, and a user who never registers again entirely', async () => {
    const s = store(5, 10);
    const { op } = {
      op: (input: Record<string, unknown>) =>
        deviceOperation({ userId, ...input }, { store: s, config: pushConfig(), logger: quiet }),
    };
    await op({ action: 'register', webpush: webPush.subscribe() });
    clock += 11_000;
    expect(await s.list(userId)).toEqual([]);
    const r = await s.register(userId, {
      kind: 'webpush',
      id: 'w_0000000000000000000000',
      endpoint: `${webPush.origin}/push/x`,
      keys: { p256dh: 'x', auth: 'y' },
    });
    expect(r.expired).toHaveLength(1);
    expect(await env.redis.hlen(keys.devices(userId))).toBe(1);
    const ttl = await env.redis.pttl(keys.devices(userId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
  });

  it('lists and removes by id or by subscription, for that user only', async () => {
    const { op } = devices();
    const sub = webPush.subscribe();
    const { registered } = (await op({ action: 'register', webpush: sub })) as {
      registered: { id: string };
    };
    const other = userId;
    userId = `${other}-other`;
    expect(await op({ action: 'remove', id: registered.id })).toEqual({
      removed: false,
      id: registered.id,
    });
    userId = other;
    expect(await op({ action: 'list' })).toMatchObject({
      devices: [{ id: registered.id }],
      max: 3,
    });
    expect(await op({ action: 'remove', webpush: sub })).toEqual({
      removed: true,
      id: registered.id,
    });
    expect(await op({ action: 'list' })).toMatchObject({ devices: [] });
  });

  it('refuses bad subscriptions and tokens with clear errors', async () => {
    const { op } = devices();
    const sub = webPush.subscribe();
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { action: 'register', webpush: { ...sub, keys: { ...sub.keys, p256dh: 'AAAA' } } },
        /p256dh must be 65 bytes/,
      ],
      [
        { action: 'register', webpush: { ...sub, keys: { ...sub.keys, auth: '!!' } } },
        /auth must be base64url/,
      ],
      [
        { action: 'register', webpush: { ...sub, endpoint: 'https://evil.example.com/push/1' } },
        /not a known push service/,
      ],
      [
        {
          action: 'register',
          webpush: { ...sub, endpoint: `${sub.endpoint}${'x'.repeat(2_100)}` },
        },
        /at most 2048/,
      ],
      [{ action: 'register' }, /exactly one of webpush/],
      [
        { action: 'register', webpush: sub, mobile: { platform: 'fcm', token: FCM_TOKEN } },
        /exactly one of webpush/,
      ],
      [
        { action: 'register', mobile: { platform: 'wns', token: FCM_TOKEN } },
        /apns, apns_sandbox or fcm/,
      ],
      [
        { action: 'register', mobile: { platform: 'apns', token: 'not-hex-token' } },
        /APNs must be the device token in hex/,
      ],
      [{ action: 'register', webpush: sub, extra: 1 }, /extra/],
      [{ action: 'remove', id: 'nope' }, /device id/],
      [{ action: 'list', userId: 'a b' }, /user id/],
    ];
    for (const [input, message] of cases) {
      const outcome = op(input);
      await expect(outcome, JSON.stringify(input).slice(0, 120)).rejects.toBeInstanceOf(
        ValidationError,
      );
      await expect(outcome).rejects.toThrow(message);
    }
  });

  it('refuses a kind of device the deployment is not configured for', async () => {
    const s = store();
    const outcome = deviceOperation(
      { userId, action: 'register', mobile: { platform: 'apns_sandbox', token: APNS_TOKEN } },
      { store: s, config: pushConfig(), sns: snsMobile(), logger: quiet },
    );
    await expect(outcome).rejects.toBeInstanceOf(PushUnsupportedError);
    await expect(outcome).rejects.toThrow(/apns_sandbox is not configured/);
    const noVapid = deviceOperation(
      { userId, action: 'register', webpush: webPush.subscribe() },
      { store: s, config: { ...pushConfig(), vapid: undefined } as never, logger: quiet },
    );
    await expect(noVapid).rejects.toThrow(/Web Push is not configured/);
  });
});

describe('SNS platform endpoints', () => {
  it('creates one endpoint per token (idempotent), takes over one with other attributes, deletes on removal', async () => {
    const { op } = devices();
    const r1 = (await op({
      action: 'register',
      mobile: { platform: 'apns', token: APNS_TOKEN },
    })) as {
      registered: { id: string; platform: string };
    };
    expect(r1.registered).toMatchObject({ kind: 'mobile', platform: 'apns' });
    const endpoint = sns.endpointFor(APNS_TOKEN) as { arn: string };
    expect(endpoint).toMatchObject({ enabled: true, customUserData: userId });
    await op({ action: 'register', mobile: { platform: 'apns', token: APNS_TOKEN } });
    expect([...sns.endpoints.values()].filter((e) => e.token === APNS_TOKEN)).toHaveLength(1);

    // Disabled by SNS (APNs refused the token), then the app registers it again (another user now).
    sns.disable(endpoint.arn);
    const first = userId;
    userId = `${first}-next`;
    await op({ action: 'register', mobile: { platform: 'apns', token: APNS_TOKEN } });
    expect(sns.endpointFor(APNS_TOKEN)).toMatchObject({
      arn: endpoint.arn,
      enabled: true,
      customUserData: userId,
    });

    const stored = (await store().list(userId))[0] as MobileDevice;
    expect(stored.endpointArn).toBe(endpoint.arn);
    await op({ action: 'remove', mobile: { platform: 'apns', token: APNS_TOKEN } });
    expect(sns.endpoints.has(endpoint.arn)).toBe(false);
    expect(sns.signatureFailures).toEqual([]);
    expect(sns.malformed).toEqual([]);
  });
});

describe('PushSender', () => {
  const notify = {
    title: 'Incoming call',
    body: 'Alice is calling',
    tag: 'call-42',
    data: { room: 42 },
    ttlSeconds: 60,
    urgency: 'high' as const,
  };

  it('pushes to every device: Web Push decrypted by the push service, SNS per platform', async () => {
    const { op, store: s } = devices(5);
    const sub = webPush.subscribe(VAPID.publicKey);
    await op({ action: 'register', webpush: sub });
    await op({ action: 'register', mobile: { platform: 'fcm', token: `${FCM_TOKEN}-${userId}` } });
    await op({
      action: 'register',
      mobile: { platform: 'apns', token: `${'b'.repeat(63)}${user % 10}` },
    });
    const before = sns.published.length;

    const outcome = await sender(s).send(userId, notify, { id: 'm-1', cursor: '1800000000000-0' });

    expect(outcome).toEqual({ devices: 3, sent: 3, failed: 0, removed: 0 });
    const push = webPush.received.find((p) => p.subscriptionId === subscriptionId(sub.endpoint));
    expect(push).toBeDefined();
    expect(JSON.parse(push?.text ?? '')).toEqual({
      title: 'Incoming call',
      body: 'Alice is calling',
      tag: 'call-42',
      data: { room: 42 },
      id: 'm-1',
      cursor: '1800000000000-0',
    });
    expect(push).toMatchObject({ ttl: 60, urgency: 'high', topic: 'call-42' });
    expect(push?.vapid).toMatchObject({
      sub: 'mailto:ops@example.com',
      aud: webPush.origin,
      k: VAPID.publicKey,
    });

    const published = sns.published.slice(before);
    const fcm = published.find((p) => p.platformKey === 'GCM');
    expect(fcm?.payload).toEqual({
      fcmV1Message: {
        message: {
          notification: { title: 'Incoming call', body: 'Alice is calling' },
          data: {
            pushwire: JSON.stringify({ data: { room: 42 }, id: 'm-1', cursor: '1800000000000-0' }),
          },
          android: {
            priority: 'high',
            ttl: '60s',
            collapse_key: 'call-42',
            notification: { tag: 'call-42' },
          },
        },
      },
    });
    const apns = published.find((p) => p.platformKey === 'APNS');
    expect(apns?.payload).toEqual({
      aps: {
        alert: { title: 'Incoming call', body: 'Alice is calling' },
        sound: 'default',
        'thread-id': 'call-42',
      },
      pushwire: { data: { room: 42 }, id: 'm-1', cursor: '1800000000000-0' },
    });
    expect(apns?.attributes).toMatchObject({
      'AWS.SNS.MOBILE.APNS.PUSH_TYPE': 'alert',
      'AWS.SNS.MOBILE.APNS.COLLAPSE_ID': 'call-42',
      'AWS.SNS.MOBILE.APNS.TTL': '60',
    });
    expect(webPush.refused).toEqual([]);
    expect(sns.malformed).toEqual([]);
  });

  it('removes a subscription the push service reports gone (410) and an endpoint SNS reports disabled', async () => {
    const { op, store: s } = devices(5);
    const gone = webPush.subscribe();
    const kept = webPush.subscribe();
    await op({ action: 'register', webpush: gone });
    await op({ action: 'register', webpush: kept });
    const token = `${FCM_TOKEN}-disabled-${userId}`;
    await op({ action: 'register', mobile: { platform: 'fcm', token } });
    webPush.expire(subscriptionId(gone.endpoint));
    const arn = sns.endpointFor(token)?.arn as string;
    sns.disable(arn);

    const outcome = await sender(s).send(userId, { title: 'hi' }, { id: 'm-2' });

    expect(outcome).toEqual({ devices: 3, sent: 1, failed: 0, removed: 2 });
    const left = await s.list(userId);
    expect(left.map((d) => (d as WebPushDevice).endpoint)).toEqual([kept.endpoint]);
    expect(sns.endpoints.has(arn)).toBe(false);
    // Gone is not retried.
    expect(webPush.attempts.get(subscriptionId(gone.endpoint))).toBe(1);
  });

  it('retries a throttling push service within bounds (Retry-After), then reports it failed', async () => {
    const { op, store: s } = devices(5);
    const slow = webPush.subscribe();
    const down = webPush.subscribe();
    const tooLong = webPush.subscribe();
    for (const sub of [slow, down, tooLong]) await op({ action: 'register', webpush: sub });
    webPush.script(subscriptionId(slow.endpoint), [
      { status: 429, retryAfter: '1' },
      { status: 503 },
    ]);
    webPush.script(subscriptionId(down.endpoint), [
      { status: 500 },
      { status: 500 },
      { status: 500 },
      { status: 500 },
    ]);
    webPush.script(subscriptionId(tooLong.endpoint), [{ status: 429, retryAfter: '3600' }]);

    const started = Date.now();
    const outcome = await sender(s).send(userId, { title: 'hi' }, { id: 'm-3' });

    expect(outcome).toEqual({ devices: 3, sent: 1, failed: 2, removed: 0 });
    expect(webPush.attempts.get(subscriptionId(slow.endpoint))).toBe(3);
    expect(webPush.attempts.get(subscriptionId(down.endpoint))).toBe(RETRY.attempts);
    expect(webPush.attempts.get(subscriptionId(tooLong.endpoint))).toBe(1);
    // The 1 s Retry-After was waited for.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect((await s.list(userId)).length).toBe(3);
  });

  it('retries SNS throttling within bounds, then reports it failed', async () => {
    const { op, store: s } = devices(5);
    await op({
      action: 'register',
      mobile: { platform: 'fcm', token: `${FCM_TOKEN}-throttled-${userId}` },
    });
    sns.fail('Publish', 2, { status: 400, code: 'Throttling' });
    expect(await sender(s).send(userId, { title: 'a' }, { id: 'm-4' })).toEqual({
      devices: 1,
      sent: 1,
      failed: 0,
      removed: 0,
    });
    sns.fail('Publish', 5, { status: 400, code: 'Throttling' });
    const publishes = sns.calls.filter((c) => c.action === 'Publish').length;
    expect(await sender(s).send(userId, { title: 'b' }, { id: 'm-5' })).toEqual({
      devices: 1,
      sent: 0,
      failed: 1,
      removed: 0,
    });
    expect(sns.calls.filter((c) => c.action === 'Publish').length - publishes).toBe(RETRY.attempts);
    sns.clearFailures();
  });

  it('sends nothing, and says so, for a user with no devices', async () => {
    expect(await sender(store()).send(userId, { title: 'x' }, { id: 'm-6' })).toEqual({
      devices: 0,
      sent: 0,
      failed: 0,
      removed: 0,
    });
  });
});
