import { describe, expect, it } from 'vitest';
import { applicationServerKey, pushRegisterFrame } from '../../client/push.js';
import { DEV_VAPID } from '../../scripts/local-env.js';

/** client/push.ts's pure parts (pushwire/push; end to end: test/e2e/push-client.test.ts). */

describe('applicationServerKey', () => {
  it('decodes the VAPID public key (base64url, no padding) to its 65 bytes', () => {
    const key = applicationServerKey(DEV_VAPID.VAPID_PUBLIC_KEY);
    expect(key).toBeInstanceOf(Uint8Array);
    expect(key.length).toBe(65);
    expect(key[0]).toBe(4);
    expect(Buffer.from(key).equals(Buffer.from(DEV_VAPID.VAPID_PUBLIC_KEY, 'base64url'))).toBe(
      true,
    );
  });

  it('maps - and _ to + and /, with or without padding', () => {
    const bytes = [0xfb, 0xff, 0xbf, 0xfe];
    const url = Buffer.from(bytes).toString('base64url');
    expect(url).toBe('-_-__g');
    expect([...applicationServerKey(url)]).toEqual(bytes);
    expect([...applicationServerKey(`${url}==`)]).toEqual(bytes);
    expect([...applicationServerKey('AQ')]).toEqual([1]);
    expect([...applicationServerKey('AQ==')]).toEqual([1]);
    expect([...applicationServerKey('AQI')]).toEqual([1, 2]);
    expect([...applicationServerKey('AQI=')]).toEqual([1, 2]);
    expect([...applicationServerKey('AQID')]).toEqual([1, 2, 3]);
    expect([...applicationServerKey('')]).toEqual([]);
  });

  it('throws on text that is not base64url', () => {
    expect(() => applicationServerKey('not base64!')).toThrow();
  });
});

describe('pushRegisterFrame', () => {
  it("is the push_register frame carrying the subscription's JSON", () => {
    const json = { endpoint: 'https://push.example/x', keys: { p256dh: 'p', auth: 'a' } };
    expect(pushRegisterFrame({ toJSON: () => json, unsubscribe: async () => true })).toEqual({
      action: 'push_register',
      webpush: json,
    });
  });
});
