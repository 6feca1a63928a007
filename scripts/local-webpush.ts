import { createECDH, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import ece from 'http_ece';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';

/**
 * A stand-in Web Push service (RFC 8030) for `npm start` and the tests. It
 * hands out subscriptions with real P-256 key pairs and auth secrets
 * (`POST /subscribe`, or `subscribe()` in-process), and for every push:
 * - verifies the VAPID JWT (RFC 8292): `Authorization: vapid t=…, k=…`,
 *   ES256 by the key `k`, `aud` = this service's origin, `exp` in the future
 *   and at most 24 h away, `sub` a mailto: or https: URL; and `k` the
 *   applicationServerKey the subscription was made with, when given;
 * - checks TTL (required), Urgency and Topic;
 * - decrypts the aes128gcm body (RFC 8291) with the subscription's private
 *   key and auth secret (http_ece), so a wrong encryption is a 400, never a
 *   "received".
 * Scripted answers (`script`) make it answer 410, 429 with Retry-After or
 * 500 instead, to test what the sender does with them.
 */

export interface StandInSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ReceivedPush {
  subscriptionId: string;
  /** The decrypted payload (UTF-8). */
  text: string;
  ttl: number;
  urgency: string;
  topic?: string;
  vapid: { sub: string; aud: string; exp: number; k: string };
}

/** One scripted answer instead of a 201 (consumed in order, per subscription or for any). */
export interface ScriptedAnswer {
  status: number;
  retryAfter?: string;
}

export interface LocalWebPush {
  url: string;
  origin: string;
  subscribe(applicationServerKey?: string): StandInSubscription;
  /** Answers for the next pushes to this subscription id (or '*' for any). */
  script(subscriptionId: string, answers: ScriptedAnswer[]): void;
  /** Pushes accepted (201) and decrypted, in order. */
  received: ReceivedPush[];
  /** Requests refused with the reason (bad VAPID, bad encryption, unknown subscription). */
  refused: { path: string; status: number; reason: string }[];
  /** Every request, scripted ones included: attempts per subscription. */
  attempts: Map<string, number>;
  /** Forgets a subscription: pushes to it are answered 410 Gone. */
  expire(subscriptionId: string): void;
  close(): Promise<void>;
}

interface Held {
  ecdh: ReturnType<typeof createECDH>;
  auth: string;
  applicationServerKey?: string;
  gone: boolean;
}

const readBody = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });

/** Verifies `Authorization: vapid t=<JWT>, k=<key>` for `audience`; the claims, or throws. */
export async function verifyVapid(
  authorization: string | undefined,
  audience: string,
  now = Date.now(),
): Promise<ReceivedPush['vapid']> {
  const match = /^vapid\s+t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization ?? '');
  if (!match)
    throw new Error(`Authorization is not "vapid t=…, k=…": ${authorization ?? '(none)'}`);
  const [, token, k] = match as unknown as [string, string, string];
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) throw new Error('k is not an uncompressed P-256 key');
  if (decodeProtectedHeader(token).alg !== 'ES256') throw new Error('the JWT is not ES256');
  const key = await importJWK(
    {
      kty: 'EC',
      crv: 'P-256',
      x: raw.subarray(1, 33).toString('base64url'),
      y: raw.subarray(33).toString('base64url'),
    },
    'ES256',
  );
  const { payload } = await jwtVerify(token, key, {
    algorithms: ['ES256'],
    audience,
    currentDate: new Date(now),
  });
  const exp = payload.exp as number;
  if (exp === undefined) throw new Error('the JWT has no exp');
  if (exp * 1_000 > now + 24 * 3_600_000 + 60_000) throw new Error('exp is more than 24 h away');
  const sub = String(payload.sub ?? '');
  if (!/^(mailto:|https:\/\/)\S+$/.test(sub))
    throw new Error(`sub is not mailto: or https: (${sub})`);
  return { sub, aud: audience, exp, k };
}

export async function startLocalWebPush(
  options: {
    port?: number;
    host?: string;
    onPush?: (push: ReceivedPush) => void;
    /** The origin senders reach it at, when not its own (a proxy in front: the fault tests). */
    publicOrigin?: () => string;
  } = {},
): Promise<LocalWebPush> {
  const held = new Map<string, Held>();
  const scripts = new Map<string, ScriptedAnswer[]>();
  const received: ReceivedPush[] = [];
  const refused: LocalWebPush['refused'] = [];
  const attempts = new Map<string, number>();
  let origin = '';

  const subscribe = (applicationServerKey?: string): StandInSubscription => {
    const id = randomUUID();
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = randomBytes(16).toString('base64url');
    held.set(id, {
      ecdh,
      auth,
      gone: false,
      ...(applicationServerKey && { applicationServerKey }),
    });
    return {
      endpoint: `${options.publicOrigin?.() ?? origin}/push/${id}`,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
    };
  };

  const answer = (res: ServerResponse, status: number, body = '', headers = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const body = await readBody(req);
    if (req.method === 'POST' && path === '/subscribe') {
      let key: string | undefined;
      try {
        key = body.length
          ? (JSON.parse(body.toString()) as { applicationServerKey?: string }).applicationServerKey
          : undefined;
      } catch {
        return answer(res, 400, 'body must be JSON');
      }
      const subscription = subscribe(key);
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(subscription));
    }
    const id = /^\/push\/([0-9a-f-]{36})$/.exec(path)?.[1];
    const refuse = (status: number, reason: string) => {
      refused.push({ path, status, reason });
      answer(res, status, reason);
    };
    if (req.method !== 'POST' || !id) return refuse(404, 'no such push resource');
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
    const sub = held.get(id);
    if (!sub) return refuse(404, 'unknown subscription');
    if (sub.gone) return answer(res, 410, 'subscription expired');
    const scripted = scripts.get(id)?.shift() ?? scripts.get('*')?.shift();
    if (scripted)
      return answer(res, scripted.status, 'scripted', {
        ...(scripted.retryAfter !== undefined && { 'retry-after': scripted.retryAfter }),
      });
    let vapid: ReceivedPush['vapid'];
    try {
      vapid = await verifyVapid(req.headers.authorization, options.publicOrigin?.() ?? origin);
    } catch (error) {
      return refuse(403, `VAPID: ${(error as Error).message}`);
    }
    if (sub.applicationServerKey && sub.applicationServerKey !== vapid.k)
      return refuse(403, 'VAPID key is not the subscription applicationServerKey');
    const ttl = req.headers['ttl'];
    if (typeof ttl !== 'string' || !/^\d+$/.test(ttl)) return refuse(400, 'TTL header required');
    const urgency = req.headers['urgency'] ?? 'normal';
    if (!['very-low', 'low', 'normal', 'high'].includes(String(urgency)))
      return refuse(400, `bad Urgency ${urgency}`);
    const topic = req.headers['topic'];
    if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(String(topic)))
      return refuse(400, `bad Topic ${topic}`);
    if (req.headers['content-encoding'] !== 'aes128gcm')
      return refuse(
        415,
        `Content-Encoding must be aes128gcm, not ${req.headers['content-encoding']}`,
      );
    let text: string;
    try {
      text = ece
        .decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth })
        .toString('utf8');
    } catch (error) {
      return refuse(400, `cannot decrypt: ${(error as Error).message}`);
    }
    const push: ReceivedPush = {
      subscriptionId: id,
      text,
      ttl: Number(ttl),
      urgency: String(urgency),
      ...(typeof topic === 'string' && { topic }),
      vapid,
    };
    received.push(push);
    options.onPush?.(push);
    answer(res, 201, '', { location: `${origin}/message/${randomUUID()}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => answer(res, 500, String(error)));
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const address = server.address() as AddressInfo;
  origin = `http://${options.host ?? '127.0.0.1'}:${address.port}`;
  return {
    url: origin,
    origin,
    subscribe,
    script: (id, answers) => scripts.set(id, [...(scripts.get(id) ?? []), ...answers]),
    received,
    refused,
    attempts,
    expire: (id) => {
      const sub = held.get(id);
      if (sub) sub.gone = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The subscription id in a stand-in endpoint. */
export const subscriptionId = (endpoint: string): string =>
  endpoint.slice(endpoint.lastIndexOf('/') + 1);
