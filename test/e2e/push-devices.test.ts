import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_AWS_ENV, DEV_VAPID } from '../../scripts/local-env.js';
import {
  type LocalWebPush,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { devToken } from '../../scripts/token.js';
import { createPushwire, InvalidRequestError, PushwireError } from '../../server/index.js';
import type { Frame } from '../helpers/client.js';
import { contractFetch } from '../helpers/contract.js';
import type { TrackedClient } from '../helpers/offline.js';
import { SnsStandIn } from '../helpers/sns-stand-in.js';
import { connectTracked, untilPasses, useStack } from '../helpers/stack.js';

/**
 * Push devices and the push itself (issue 18; docs/push.md, PW-D) end to end
 * under `npm start`: registration over the socket ($default hands it to the
 * `devices` function through serverless-offline's Lambda Invoke), over HTTP
 * and Invoke; pushes decrypted by the Web Push stand-in (VAPID verified),
 * and SNS mobile push through the SNS stand-in (every signature recomputed).
 */

const REGION = DEV_AWS_ENV.AWS_REGION;
const APNS_APP = `arn:aws:sns:${REGION}:123456789012:app/APNS/pushwire-e2e`;
const FCM_APP = `arn:aws:sns:${REGION}:123456789012:app/GCM/pushwire-e2e`;

let webPush: LocalWebPush;
let sns: SnsStandIn;
const env: Record<string, string> = {
  PUSH_WEBPUSH_HOSTS: '127.0.0.1',
  PUSH_MAX_DEVICES: '3',
  PUSH_RETRY_BASE_MS: '20',
  PUSH_MAX_ATTEMPTS: '3',
  PUSH_RETRY_AFTER_CAP_MS: '2000',
  SNS_APNS_APPLICATION_ARN: APNS_APP,
  SNS_FCM_APPLICATION_ARN: FCM_APP,
};

// Before the stack starts: its functions are told where the SNS stand-in is.
beforeAll(async () => {
  webPush = await startLocalWebPush();
  sns = await SnsStandIn.start({
    region: REGION,
    secretFor: (id) =>
      id === DEV_AWS_ENV.AWS_ACCESS_KEY_ID ? DEV_AWS_ENV.AWS_SECRET_ACCESS_KEY : undefined,
    applications: [APNS_APP, FCM_APP],
  });
  env['AWS_ENDPOINT_URL_SNS'] = sns.url;
});
const stack = useStack({ env });
afterAll(async () => {
  await webPush?.close();
  await sns?.stop();
});

let refs = 0;
async function send(c: TrackedClient, frame: Record<string, unknown>): Promise<Frame> {
  const ref = `d${++refs}`;
  return c.client.request({ ...frame, ref }, (f) => f['ref'] === ref);
}

async function connectAs(userId: string): Promise<TrackedClient> {
  return connectTracked(stack, stack.offline, userId, await devToken(userId));
}

async function http(body: unknown) {
  const response = await contractFetch(`http://localhost:${stack.offline.httpPort}/devices`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
  return { status: response.status, json: (await response.json()) as any };
}

// biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
const invoke = (payload: unknown) => stack.offline.invoke<any>('devices', payload);

describe('registration over the socket (PW-N1, PW-N2)', () => {
  it("registers the connection's own user's subscription, and unregisters it", async () => {
    const alice = await connectAs('push-alice');
    const subscription = webPush.subscribe(DEV_VAPID.VAPID_PUBLIC_KEY);
    const reply = await send(alice, { action: 'push_register', webpush: subscription });
    expect(reply).toMatchObject({ type: 'push_registered', id: expect.stringMatching(/^w_/) });
    expect(reply['expiresAt']).toBeGreaterThan(Date.now() + 59 * 86_400_000);

    const listed = await invoke({ action: 'list', userId: 'push-alice' });
    expect(listed.devices).toEqual([
      expect.objectContaining({ id: reply['id'], kind: 'webpush', origin: webPush.origin }),
    ]);
    // Nobody else has it.
    expect((await invoke({ action: 'list', userId: 'push-bob' })).devices).toEqual([]);

    const removed = await send(alice, { action: 'push_unregister', id: reply['id'] });
    expect(removed).toMatchObject({ type: 'push_unregistered', id: reply['id'], removed: true });
    expect((await invoke({ action: 'list', userId: 'push-alice' })).devices).toEqual([]);
  });

  it('refuses a frame naming another user, bad keys, and kinds not configured, with clear errors', async () => {
    const mallory = await connectAs('push-mallory');
    const subscription = webPush.subscribe();
    const other = await send(mallory, {
      action: 'push_register',
      userId: 'push-alice',
      webpush: subscription,
    });
    expect(other).toMatchObject({ type: 'error', code: 'invalid_frame' });
    expect(String(other['message'])).toMatch(/userId/);

    const badKey = await send(mallory, {
      action: 'push_register',
      webpush: { ...subscription, keys: { ...subscription.keys, p256dh: 'AAAA' } },
    });
    expect(badKey).toMatchObject({ type: 'error', code: 'invalid_request' });
    expect(String(badKey['message'])).toMatch(/p256dh must be 65 bytes/);

    const elsewhere = await send(mallory, {
      action: 'push_register',
      webpush: { ...subscription, endpoint: 'https://push.attacker.example/x' },
    });
    expect(elsewhere).toMatchObject({ type: 'error', code: 'invalid_request' });
    expect(String(elsewhere['message'])).toMatch(/not a known push service/);

    const sandbox = await send(mallory, {
      action: 'push_register',
      mobile: { platform: 'apns_sandbox', token: 'c'.repeat(64) },
    });
    expect(sandbox).toMatchObject({ type: 'error', code: 'push_unsupported' });
    expect((await invoke({ action: 'list', userId: 'push-mallory' })).devices).toEqual([]);
    // Still connected and served.
    expect(await send(mallory, { action: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('registration by services: HTTP and Invoke (PW-N4)', () => {
  it('registers, lists, evicts past the limit, and removes', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await http({
        action: 'register',
        userId: 'push-carol',
        webpush: webPush.subscribe(),
      });
      expect(r.status).toBe(200);
      ids.push(r.json.registered.id);
      expect(r.json.evicted.map((d: { id: string }) => d.id)).toEqual(i < 3 ? [] : [ids[0]]);
    }
    const listed = await http({ action: 'list', userId: 'push-carol' });
    expect(listed.json).toMatchObject({ max: 3 });
    expect(listed.json.devices.map((d: { id: string }) => d.id).sort()).toEqual(
      ids.slice(1).sort(),
    );
    expect((await http({ action: 'remove', userId: 'push-carol', id: ids[1] })).json).toEqual({
      removed: true,
      id: ids[1],
    });
    const bad = await http({
      action: 'register',
      userId: 'push-carol',
      mobile: { platform: 'fcm' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: 'invalid_request' });
  });

  it('creates an SNS platform endpoint for a mobile token, and deletes it on removal', async () => {
    const token = 'd'.repeat(64);
    const r = await invoke({
      action: 'register',
      userId: 'push-dave',
      mobile: { platform: 'apns', token },
    });
    expect(r.registered).toMatchObject({ kind: 'mobile', platform: 'apns' });
    const endpoint = sns.endpointFor(token);
    expect(endpoint).toMatchObject({
      applicationArn: APNS_APP,
      enabled: true,
      customUserData: 'push-dave',
    });
    const removed = await invoke({
      action: 'remove',
      userId: 'push-dave',
      mobile: { platform: 'apns', token },
    });
    expect(removed).toEqual({ removed: true, id: r.registered.id });
    expect(sns.endpoints.has(endpoint?.arn ?? '')).toBe(false);
    expect(sns.signatureFailures).toEqual([]);
    expect(sns.malformed).toEqual([]);
  });
});

describe("npm start's own Web Push service", () => {
  it('hands out a subscription, and prints each push to it decrypted', async () => {
    const url = /local Web Push service (http:\/\/127\.0\.0\.1:\d+)/.exec(
      stack.offline.output(),
    )?.[1];
    expect(url).toBeDefined();
    const response = await fetch(`${url}/subscribe`, {
      method: 'POST',
      body: JSON.stringify({ applicationServerKey: DEV_VAPID.VAPID_PUBLIC_KEY }),
    });
    expect(response.status).toBe(201);
    const subscription = (await response.json()) as { endpoint: string };
    await invoke({ action: 'register', userId: 'push-local', webpush: subscription });
    const outcome = await invoke({
      action: 'push',
      userId: 'push-local',
      id: 'local-1',
      notify: { title: 'Hello from npm start' },
    });
    expect(outcome).toMatchObject({ sent: 1, failed: 0 });
    await untilPasses(async () =>
      expect(stack.offline.output()).toContain(
        `pushwire push ${subscriptionId(subscription.endpoint)} {"title":"Hello from npm start","id":"local-1"}`,
      ),
    );
  });
});

describe('the server SDK (PW-N4)', () => {
  it('registers, lists and removes devices over Lambda Invoke and over HTTP, with typed errors', async () => {
    const overInvoke = createPushwire({
      lambda: {
        stage: 'local',
        clientConfig: {
          region: REGION,
          endpoint: `http://localhost:${stack.offline.lambdaPort}`,
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        },
      },
    });
    const overHttp = createPushwire({
      http: { url: `http://localhost:${stack.offline.httpPort}`, fetch: contractFetch },
    });
    const subscription = webPush.subscribe();
    const { registered } = await overInvoke.registerDevice('push-sdk', { webpush: subscription });
    expect((await overHttp.listDevices('push-sdk')).devices.map((d) => d.id)).toEqual([
      registered.id,
    ]);
    expect(await overHttp.removeDevice('push-sdk', { webpush: subscription })).toEqual({
      removed: true,
      id: registered.id,
    });
    await expect(
      overHttp.registerDevice('push-sdk', { mobile: { platform: 'apns', token: 'nothex' } }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    const unsupported = overInvoke.registerDevice('push-sdk', {
      mobile: { platform: 'apns_sandbox', token: 'e'.repeat(64) },
    });
    await expect(unsupported).rejects.toBeInstanceOf(PushwireError);
    await expect(unsupported).rejects.toMatchObject({ code: 'push_unsupported' });
  });
});

describe('pushes (the PushSender, through the devices function)', () => {
  it('pushes to a browser (decrypted by the push service, VAPID checked) and a phone, with the notify content', async () => {
    const erin = await connectAs('push-erin');
    const subscription = webPush.subscribe(DEV_VAPID.VAPID_PUBLIC_KEY);
    await send(erin, { action: 'push_register', webpush: subscription });
    await invoke({
      action: 'register',
      userId: 'push-erin',
      mobile: { platform: 'fcm', token: 'erin-fcm:APA91b-e2e' },
    });

    const outcome = await invoke({
      action: 'push',
      userId: 'push-erin',
      id: 'call-1',
      notify: {
        title: 'Call from Alice',
        body: 'Tap to answer',
        tag: 'call',
        urgency: 'high',
        ttlSeconds: 30,
      },
    });

    expect(outcome).toEqual({ id: 'call-1', devices: 2, sent: 2, failed: 0, removed: 0 });
    const push = webPush.received.find(
      (p) => p.subscriptionId === subscriptionId(subscription.endpoint),
    );
    expect(JSON.parse(push?.text ?? 'null')).toEqual({
      title: 'Call from Alice',
      body: 'Tap to answer',
      tag: 'call',
      id: 'call-1',
    });
    expect(push).toMatchObject({ urgency: 'high', ttl: 30, topic: 'call' });
    expect(push?.vapid).toMatchObject({
      k: DEV_VAPID.VAPID_PUBLIC_KEY,
      sub: DEV_VAPID.VAPID_SUBJECT,
    });
    const published = sns.published.find(
      (p) => p.targetArn === sns.endpointFor('erin-fcm:APA91b-e2e')?.arn,
    );
    expect(published?.payload).toMatchObject({
      fcmV1Message: {
        message: { notification: { title: 'Call from Alice', body: 'Tap to answer' } },
      },
    });
  });

  it('prunes a subscription the push service reports gone (410) and an endpoint SNS reports disabled', async () => {
    const gone = webPush.subscribe();
    await invoke({ action: 'register', userId: 'push-frank', webpush: gone });
    await invoke({
      action: 'register',
      userId: 'push-frank',
      mobile: { platform: 'fcm', token: 'frank-fcm:APA91b-e2e' },
    });
    webPush.expire(subscriptionId(gone.endpoint));
    const arn = sns.endpointFor('frank-fcm:APA91b-e2e')?.arn as string;
    sns.disable(arn);

    const outcome = await invoke({ action: 'push', userId: 'push-frank', notify: { title: 'x' } });

    expect(outcome).toMatchObject({ devices: 2, sent: 0, failed: 0, removed: 2 });
    expect((await invoke({ action: 'list', userId: 'push-frank' })).devices).toEqual([]);
    expect(sns.endpoints.has(arn)).toBe(false);
  });

  it('retries a throttling provider within bounds, then reports the push failed', async () => {
    const slow = webPush.subscribe();
    await invoke({ action: 'register', userId: 'push-gina', webpush: slow });
    webPush.script(subscriptionId(slow.endpoint), [
      { status: 429, retryAfter: '1' },
      { status: 429 },
      { status: 429 },
    ]);
    const outcome = await invoke({ action: 'push', userId: 'push-gina', notify: { title: 'x' } });
    expect(outcome).toMatchObject({ devices: 1, sent: 0, failed: 1, removed: 0 });
    expect(webPush.attempts.get(subscriptionId(slow.endpoint))).toBe(3);
    // Kept: a throttled device is not a gone one.
    expect((await invoke({ action: 'list', userId: 'push-gina' })).devices).toHaveLength(1);
    // Logged by the function (its output reaches npm start's a moment after the answer).
    await untilPasses(async () => expect(stack.offline.output()).toMatch(/"push failed"/));
  });
});
