import { createECDH, randomBytes } from 'node:crypto';
import ece from 'http_ece';
import { describe, expect, it } from 'vitest';
import { loadPushConfig } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import type { WebPushDevice } from '../../lib/push/devices.js';
import { PAYLOAD_MAX_BYTES, pushPayload, snsMessage } from '../../lib/push/payloads.js';
import { parseRetryAfter, type TryOutcome, withRetries } from '../../lib/push/retry.js';
import { snsTry } from '../../lib/push/sender.js';
import { hostAllowed } from '../../lib/push/service.js';
import { SnsError, xmlField } from '../../lib/push/sns.js';
import { classifyWebPush, webPushRequest } from '../../lib/push/webpush.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import { verifyVapid } from '../../scripts/local-webpush.js';

const VAPID = {
  publicKey: DEV_VAPID.VAPID_PUBLIC_KEY,
  privateKey: DEV_VAPID.VAPID_PRIVATE_KEY,
  subject: 'mailto:ops@example.com',
};

function subscription(): {
  device: WebPushDevice;
  ecdh: ReturnType<typeof createECDH>;
  auth: string;
} {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16).toString('base64url');
  return {
    ecdh,
    auth,
    device: {
      kind: 'webpush',
      id: 'w_test',
      endpoint: 'https://push.example.net/push/abc',
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
      registeredAt: 0,
      expiresAt: 1,
    },
  };
}

describe('payloads', () => {
  it('carries the notify content and the message it stands in for', () => {
    expect(
      pushPayload({ title: 't', body: 'b', tag: 'g', data: { a: 1 } }, { id: 'm', cursor: '1-0' }),
    ).toEqual({ title: 't', body: 'b', tag: 'g', data: { a: 1 }, id: 'm', cursor: '1-0' });
  });

  it('leaves out data that would not fit a provider, and says so', () => {
    const payload = pushPayload({ title: 't', data: 'x'.repeat(PAYLOAD_MAX_BYTES) }, { id: 'm' });
    expect(payload).toEqual({ title: 't', id: 'm', truncated: true });
  });

  it('builds the SNS message per platform: APNs alert with thread and collapse id, FCM v1 with string data', () => {
    const notify = { title: 'T', tag: 'x', urgency: 'low' as const, ttlSeconds: 5 };
    const apns = snsMessage('apns_sandbox', notify, { id: 'm' });
    expect(Object.keys(apns.message)).toEqual(['default', 'APNS_SANDBOX']);
    expect(JSON.parse(apns.message['APNS_SANDBOX'] as string)).toEqual({
      aps: { alert: { title: 'T' }, sound: 'default', 'thread-id': 'x' },
      pushwire: { id: 'm' },
    });
    expect(apns.attributes).toEqual({
      'AWS.SNS.MOBILE.APNS.PUSH_TYPE': 'alert',
      'AWS.SNS.MOBILE.APNS.PRIORITY': '5',
      'AWS.SNS.MOBILE.APNS_SANDBOX.TTL': '5',
      'AWS.SNS.MOBILE.APNS.COLLAPSE_ID': 'x',
    });
    const fcm = snsMessage('fcm', { title: 'T' }, { id: 'm' });
    const v1 = JSON.parse(fcm.message['GCM'] as string).fcmV1Message.message;
    expect(v1.data).toEqual({ pushwire: '{"id":"m"}' });
    expect(v1.android).toEqual({ priority: 'normal', ttl: '86400s' });
  });
});

describe('bounded retries', () => {
  const script = (outcomes: TryOutcome[]) => {
    let calls = 0;
    return {
      once: async () => outcomes[Math.min(calls++, outcomes.length - 1)] as TryOutcome,
      calls: () => calls,
    };
  };
  const bounds = { attempts: 3, baseDelayMs: 100, retryAfterCapMs: 1_000 };

  it('tries at most `attempts` times, waiting backoff or Retry-After between, then reports failed', async () => {
    const waits: number[] = [];
    const s = script([
      { kind: 'retry', reason: '503', retryAfterMs: 700 },
      { kind: 'retry', reason: '500' },
    ]);
    const result = await withRetries(s.once, bounds, async (ms) => waits.push(ms));
    expect(result).toEqual({ kind: 'failed', reason: '500 (after 3 tries)', attempts: 3 });
    expect(s.calls()).toBe(3);
    expect(waits[0]).toBe(700);
    expect(waits[1]).toBeGreaterThanOrEqual(100);
    expect(waits[1]).toBeLessThanOrEqual(200);
  });

  it('gives up at once on a Retry-After past the cap, and never retries gone or failed', async () => {
    const long = script([{ kind: 'retry', reason: '429', retryAfterMs: 60_000 }]);
    expect(await withRetries(long.once, bounds, async () => {})).toMatchObject({
      kind: 'failed',
      attempts: 1,
    });
    expect(
      (await withRetries(script([{ kind: 'gone', reason: '410' }]).once, bounds)).attempts,
    ).toBe(1);
    expect(
      (await withRetries(script([{ kind: 'failed', reason: '400' }]).once, bounds)).attempts,
    ).toBe(1);
    const later = script([{ kind: 'retry', reason: '429' }, { kind: 'sent' }]);
    expect(await withRetries(later.once, bounds, async () => {})).toEqual({
      kind: 'sent',
      attempts: 2,
    });
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('7')).toBe(7_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('classifies push service answers (RFC 8030) and SNS errors', async () => {
    expect(classifyWebPush(201, undefined)).toEqual({ kind: 'sent' });
    expect(classifyWebPush(410, undefined).kind).toBe('gone');
    expect(classifyWebPush(404, undefined).kind).toBe('gone');
    expect(classifyWebPush(429, '3')).toMatchObject({ kind: 'retry', retryAfterMs: 3_000 });
    expect(classifyWebPush(502, undefined).kind).toBe('retry');
    expect(classifyWebPush(403, undefined).kind).toBe('failed');
    expect(classifyWebPush(413, undefined).kind).toBe('failed');
    const fails = (e: unknown) => snsTry(async () => Promise.reject(e));
    expect((await fails(new SnsError('EndpointDisabled', 400, 'x'))).kind).toBe('gone');
    expect((await fails(new SnsError('NotFound', 404, 'x'))).kind).toBe('gone');
    expect((await fails(new SnsError('Throttling', 400, 'x'))).kind).toBe('retry');
    expect((await fails(new SnsError('InternalError', 500, 'x'))).kind).toBe('retry');
    expect((await fails(new SnsError('InvalidParameter', 400, 'x'))).kind).toBe('failed');
    expect((await fails(new Error('socket hang up'))).kind).toBe('retry');
  });
});

describe('Web Push request', () => {
  it('is aes128gcm-encrypted for the subscription and VAPID-signed for the push service origin', async () => {
    const { device, ecdh, auth } = subscription();
    const request = webPushRequest(
      device,
      { title: 'hello', urgency: 'high', ttlSeconds: 9, tag: 'tg' },
      { id: 'm1' },
      VAPID,
    );
    expect(request.headers).toMatchObject({
      TTL: '9',
      Urgency: 'high',
      Topic: 'tg',
      'Content-Encoding': 'aes128gcm',
    });
    const text = ece
      .decrypt(request.body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth })
      .toString();
    expect(JSON.parse(text)).toEqual({ title: 'hello', tag: 'tg', id: 'm1' });
    const claims = await verifyVapid(request.headers['Authorization'], 'https://push.example.net');
    expect(claims).toMatchObject({ sub: 'mailto:ops@example.com', k: VAPID.publicKey });
    await expect(
      verifyVapid(request.headers['Authorization'], 'https://other.example'),
    ).rejects.toThrow(/aud/);
  });

  it('cannot be decrypted with another subscription keys (the stand-in would refuse it)', () => {
    const { device } = subscription();
    const other = subscription();
    const request = webPushRequest(device, { title: 'x' }, { id: 'm' }, VAPID);
    expect(() =>
      ece.decrypt(request.body, {
        version: 'aes128gcm',
        privateKey: other.ecdh,
        authSecret: other.auth,
      }),
    ).toThrow();
  });
});

describe('configuration and checks', () => {
  it('reads SNS answers', () => {
    expect(xmlField('<R><EndpointArn>arn:a&amp;b</EndpointArn></R>', 'EndpointArn')).toBe(
      'arn:a&b',
    );
    expect(xmlField('<R/>', 'EndpointArn')).toBeUndefined();
  });

  it('matches push service hosts, wildcards only for subdomains', () => {
    const hosts = ['fcm.googleapis.com', '*.push.apple.com'];
    expect(hostAllowed('fcm.googleapis.com', hosts)).toBe(true);
    expect(hostAllowed('web.push.apple.com', hosts)).toBe(true);
    expect(hostAllowed('push.apple.com.evil.example', hosts)).toBe(false);
    expect(hostAllowed('evilfcm.googleapis.com', hosts)).toBe(false);
  });

  it('refuses a VAPID private key by value on a deployed stage, half a key pair, and bad ARNs', () => {
    const deployed = { STAGE: 'prod', VAPID_PUBLIC_KEY: VAPID.publicKey };
    expect(() => loadPushConfig({ ...deployed, VAPID_PRIVATE_KEY: VAPID.privateKey })).toThrow(
      /VAPID_PRIVATE_KEY must not be given by value/,
    );
    expect(() => loadPushConfig({ STAGE: 'prod', VAPID_PUBLIC_KEY: VAPID.publicKey })).toThrow(
      ConfigError,
    );
    expect(() =>
      loadPushConfig({ SNS_FCM_APPLICATION_ARN: 'arn:aws:sns:eu-west-1:1:topic' }),
    ).toThrow(/SNS_FCM_APPLICATION_ARN must be an SNS platform application ARN/);
    expect(() => loadPushConfig({ PUSH_MAX_DEVICES: '0' })).toThrow(/PUSH_MAX_DEVICES/);
    expect(() => loadPushConfig({ STAGE: 'prod', PUSH_ALLOW_HTTP_ENDPOINTS: 'true' })).toThrow(
      /local stage only/,
    );
    const c = loadPushConfig({ ...deployed, VAPID_PRIVATE_KEY_PARAMETER: '/pushwire/prod/vapid' });
    expect(c.vapid).toEqual({
      publicKey: VAPID.publicKey,
      subject: 'mailto:push@example.invalid',
      privateKeyParameter: '/pushwire/prod/vapid',
    });
    expect(c).toMatchObject({ maxDevices: 10, deviceTtlSeconds: 60 * 86_400, snsApplications: {} });
  });
});
