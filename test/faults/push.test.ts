/**
 * Push provider faults (issue 18): a Web Push service behind a fault proxy
 * (throttling storms without Retry-After, 5xx, reset sockets, answers lost
 * after the push landed) and SNS answering Throttling or 500 by script. What
 * must hold: every push ends in an outcome (sent, failed, removed) that adds
 * up to the user's devices; no device is tried more than PUSH_MAX_ATTEMPTS
 * times; none is removed for a fault that is not "gone"; every push the
 * service accepted decrypts to the right content. Real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialsProvider } from '../../lib/aws/signing.js';
import { DeviceStore } from '../../lib/push/devices.js';
import { createPushSender } from '../../lib/push/sender.js';
import { deviceOperation } from '../../lib/push/service.js';
import { SnsMobile, snsCaller } from '../../lib/push/sns.js';
import type { PushOutcome } from '../../lib/push/types.js';
import { sendWebPush } from '../../lib/push/webpush.js';
import { createKeys } from '../../lib/registry/keys.js';
import { DEV_VAPID } from '../../scripts/local-env.js';
import {
  type LocalWebPush,
  startLocalWebPush,
  subscriptionId,
} from '../../scripts/local-webpush.js';
import { type Fault, FaultProxy, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { useRedis } from '../helpers/redis-matrix.js';
import { SnsStandIn } from '../helpers/sns-stand-in.js';

const env = useRedis('standalone');
const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'AKIAPUSHFAULTS', secretAccessKey: 'faults' };
const FCM_APP = `arn:aws:sns:${REGION}:123456789012:app/GCM/pushwire-faults`;
const VAPID = {
  publicKey: DEV_VAPID.VAPID_PUBLIC_KEY,
  privateKey: DEV_VAPID.VAPID_PRIVATE_KEY,
  subject: DEV_VAPID.VAPID_SUBJECT,
};
const ATTEMPTS = 3;
const USERS = 15;

let proxy: FaultProxy;
let webPush: LocalWebPush;
let sns: SnsStandIn;
let store: DeviceStore;
let round = 0;

beforeAll(async () => {
  proxy = await FaultProxy.start();
  webPush = await startLocalWebPush({ publicOrigin: () => proxy.url });
  proxy.target = webPush.url;
  sns = await SnsStandIn.start({
    region: REGION,
    secretFor: (id) => (id === CREDENTIALS.accessKeyId ? CREDENTIALS.secretAccessKey : undefined),
    applications: [FCM_APP],
  });
  store = new DeviceStore(env.redis, {
    key: createKeys('pwfaults:').devices,
    maxDevices: 10,
    ttlSeconds: 3_600,
  });
});
afterAll(async () => {
  await webPush?.close();
  await sns?.stop();
  await proxy?.stop();
});

const snsMobile = () =>
  new SnsMobile(
    snsCaller({ region: REGION, credentials: credentialsProvider(CREDENTIALS), endpoint: sns.url }),
  );

/**
 * Fails the first `times` requests to each push resource (path) with
 * `fault`: every retry of a Web Push is encrypted afresh (new salt, new
 * key), so a request is known by where it goes, not by its body.
 */
function failFirstPerPath(times: number, fault: () => Fault): (req: ProxiedRequest) => Fault {
  const seen = new Map<string, number>();
  return (req) => {
    const n = seen.get(req.path) ?? 0;
    seen.set(req.path, n + 1);
    return n < times ? fault() : { kind: 'pass' };
  };
}

const sender = createPushSenderForFaults();
function createPushSenderForFaults() {
  return () =>
    createPushSender({
      devices: store,
      webPush: {
        vapid: VAPID,
        send: (d, n, m) => sendWebPush(d, n, m, { vapid: VAPID, timeoutMs: 400 }),
      },
      sns: snsMobile(),
      concurrency: 8,
      retry: { attempts: ATTEMPTS, baseDelayMs: 20, retryAfterCapMs: 2_000 },
      logger: { info: () => {}, warn: () => {} },
    });
}

/** USERS users with one browser and one phone each. */
async function users(): Promise<{ userId: string; endpoint: string }[]> {
  round++;
  const made: { userId: string; endpoint: string }[] = [];
  for (let i = 0; i < USERS; i++) {
    const userId = `fault-${round}-${i}`;
    const subscription = webPush.subscribe(VAPID.publicKey);
    const deps = {
      store,
      config: {
        vapid: { publicKey: VAPID.publicKey, subject: VAPID.subject, privateKey: VAPID.privateKey },
        webPushHosts: ['127.0.0.1'],
        allowHttpEndpoints: true,
        snsApplications: { fcm: FCM_APP },
      },
      sns: snsMobile(),
      logger: { warn: () => {} },
    };
    await deviceOperation({ action: 'register', userId, webpush: subscription }, deps);
    await deviceOperation(
      { action: 'register', userId, mobile: { platform: 'fcm', token: `tok-${userId}` } },
      deps,
    );
    made.push({ userId, endpoint: subscription.endpoint });
  }
  return made;
}

async function pushAll(list: { userId: string }[]): Promise<PushOutcome[]> {
  const push = sender();
  return Promise.all(
    list.map((u) => push.send(u.userId, { title: `to ${u.userId}` }, { id: `m-${u.userId}` })),
  );
}

function checkInvariants(list: { userId: string; endpoint: string }[], outcomes: PushOutcome[]) {
  for (const o of outcomes) expect(o.sent + o.failed + o.removed).toBe(o.devices);
  for (const u of list)
    expect(webPush.attempts.get(subscriptionId(u.endpoint)) ?? 0).toBeLessThanOrEqual(ATTEMPTS);
  // Every accepted push decrypts to its user's content.
  for (const u of list)
    for (const p of webPush.received.filter((r) => r.subscriptionId === subscriptionId(u.endpoint)))
      expect(JSON.parse(p.text)).toEqual({ title: `to ${u.userId}`, id: `m-${u.userId}` });
  expect(webPush.refused).toEqual([]);
  expect(sns.signatureFailures).toEqual([]);
}

describe('push provider faults', () => {
  it('a throttling storm (every request 429 twice, SNS Throttling twice) is absorbed by the retries', async () => {
    const list = await users();
    const before = proxy.counts.status;
    proxy.decide = failFirstPerPath(2, () => ({ kind: 'status', status: 429 }));
    for (const u of list)
      sns.failTarget(sns.endpointFor(`tok-${u.userId}`)?.arn ?? '', 2, {
        status: 400,
        code: 'Throttling',
      });
    const outcomes = await pushAll(list);
    proxy.reset();
    sns.clearFailures();
    checkInvariants(list, outcomes);
    expect(outcomes).toEqual(list.map(() => ({ devices: 2, sent: 2, failed: 0, removed: 0 })));
    // Two tries answered 429 by the proxy, the third reached the push service.
    for (const u of list) expect(webPush.attempts.get(subscriptionId(u.endpoint))).toBe(1);
    expect(proxy.counts.status - before).toBe(2 * USERS);
    console.log(
      `push faults: 429 storm: ${USERS * 2} devices, ${USERS * 2} sent, ${proxy.counts.status - before} 429s and ${2 * USERS} SNS Throttling absorbed`,
    );
  });

  it('a provider that stays down: bounded retries, then reported failed, and no device removed', async () => {
    const list = await users();
    const before = proxy.counts.status;
    proxy.decide = () => ({ kind: 'status', status: 503 });
    sns.fail('Publish', 10 * USERS, { status: 500, code: 'InternalError' });
    const outcomes = await pushAll(list);
    proxy.reset();
    sns.clearFailures();
    checkInvariants(list, outcomes);
    expect(outcomes.every((o) => o.sent === 0 && o.failed === 2 && o.removed === 0)).toBe(true);
    expect(proxy.counts.status - before).toBe(ATTEMPTS * USERS);
    for (const u of list) {
      expect(webPush.attempts.get(subscriptionId(u.endpoint)) ?? 0).toBe(0);
      expect(await store.list(u.userId)).toHaveLength(2);
    }
    console.log(
      `push faults: provider down: ${USERS * 2} devices, all reported failed after ${ATTEMPTS} tries`,
    );
  });

  it('reset sockets and answers lost after the push landed: sent (a lost answer may push twice), none lost', async () => {
    const list = await users();
    let n = 0;
    proxy.decide = failFirstPerPath(1, () =>
      n++ % 2 === 0 ? { kind: 'reset' } : { kind: 'lost-answer', ms: 1_000 },
    );
    const outcomes = await pushAll(list);
    proxy.reset();
    checkInvariants(list, outcomes);
    expect(outcomes.every((o) => o.sent === 2 && o.failed === 0)).toBe(true);
    const received = list.map(
      (u) => webPush.received.filter((r) => r.subscriptionId === subscriptionId(u.endpoint)).length,
    );
    // Each browser got its push: once, or twice when the first answer was lost.
    expect(received.every((count) => count >= 1 && count <= 2)).toBe(true);
    console.log(
      `push faults: resets and lost answers: ${USERS} browsers, ${received.filter((c) => c === 2).length} pushed twice (lost answers), 0 missed`,
    );
  });
});
