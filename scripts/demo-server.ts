/**
 * The demo page's server (`npm run demo`), for local use beside `npm start`:
 * serves demo/index.html and the built client, mints dev tokens with the dev
 * secret, and publishes through the Lambda Invoke API, as a backend would.
 * It also stands in for a phone: a Web Push service of its own (the local
 * stand-in, which verifies VAPID and decrypts) where `POST /push/subscribe`
 * registers a subscription for a user (the `devices` function), and
 * `GET /push/received?user=` lists the pushes it received for that user, so
 * a ring nobody answers shows its push on the page (issue 18).
 * Nothing of it is deployed.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { USER_ID_PATTERN } from '../lib/constants.js';
import { CLIENT_BUNDLE, writeClientBundle } from './build-client.js';
import { DEV_AWS_ENV } from './local-env.js';
import { type ReceivedPush, startLocalWebPush, subscriptionId } from './local-webpush.js';
import { devToken } from './token.js';

const PAGE = join(dirname(fileURLToPath(import.meta.url)), '../demo/index.html');

const MAX_BODY_BYTES = 64 * 1024;

export interface DemoOptions {
  /** Port of the page (0: any free one). */
  port: number;
  /** WebSocket URL of pushwire as the browser reaches it, e.g. ws://localhost:3001. */
  wsUrl: string;
  /** serverless-offline's Lambda port, where `publish` is invoked. */
  lambdaPort: number;
  /** Function name prefix (service-stage-). */
  functionPrefix?: string;
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

class BadRequest extends Error {}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
    if (typeof body === 'object' && body !== null && !Array.isArray(body))
      return body as Record<string, unknown>;
  } catch {}
  throw new BadRequest('send a JSON object');
}

function send(response: ServerResponse, status: number, body: unknown, type = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  response.end(text);
}

export async function startDemoServer(options: DemoOptions): Promise<DemoServer> {
  // The page loads the client as apps do: the built ESM file.
  await writeClientBundle();
  const prefix = options.functionPrefix ?? 'pushwire-local-';
  const lambda = new LambdaClient({
    region: DEV_AWS_ENV.AWS_REGION,
    endpoint: `http://localhost:${options.lambdaPort}`,
    credentials: {
      accessKeyId: DEV_AWS_ENV.AWS_ACCESS_KEY_ID,
      secretAccessKey: DEV_AWS_ENV.AWS_SECRET_ACCESS_KEY,
    },
  });

  // The "phone": pushes for the demo's users land here, decrypted (npm start
  // allows http endpoints on 127.0.0.1 and signs with its dev VAPID keys).
  const phone = await startLocalWebPush();
  const ownerOf = new Map<string, string>();
  const pushes: (ReceivedPush & { user: string; at: number })[] = [];
  const phoneWatch = setInterval(() => {
    for (const push of phone.received.splice(0)) {
      const user = ownerOf.get(push.subscriptionId);
      if (user) pushes.push({ ...push, user, at: Date.now() });
    }
    pushes.splice(0, Math.max(0, pushes.length - 200));
  }, 200);

  async function publish(body: Record<string, unknown>): Promise<[number, unknown]> {
    const { userId, topic, data, exceptConnectionId, id, ack } = body;
    if ((typeof userId === 'string') === (typeof topic === 'string'))
      throw new BadRequest('give either "userId" or "topic"');
    const event = {
      ...(typeof userId === 'string' && { userId }),
      ...(typeof topic === 'string' && { topic }),
      ...(typeof exceptConnectionId === 'string' && { exceptConnectionId }),
      // An acknowledged message (issue 18): the page's "Ring".
      ...(typeof id === 'string' && { id }),
      ...(ack !== undefined && { ack }),
      data,
    };
    return invoke('publish', event);
  }

  /** An acknowledged message's delivery status (issue 18), as a backend asks it. */
  async function invoke(name: string, event: unknown): Promise<[number, unknown]> {
    const response = await lambda.send(
      new InvokeCommand({
        FunctionName: `${prefix}${name}`,
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    const result = JSON.parse(Buffer.from(response.Payload ?? new Uint8Array()).toString());
    if (response.FunctionError) return [502, { error: { code: 'internal', message: result } }];
    return [result && typeof result === 'object' && 'error' in result ? 400 : 200, result];
  }

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://demo').pathname;
    const handle = async () => {
      if (request.method === 'GET' && (path === '/' || path === '/index.html')) {
        const page = readFileSync(PAGE, 'utf8').replace('%WS_URL%', options.wsUrl);
        return send(response, 200, page, 'text/html; charset=utf-8');
      }
      if (request.method === 'GET' && path === '/pushwire.js') {
        return send(response, 200, readFileSync(CLIENT_BUNDLE, 'utf8'), 'text/javascript');
      }
      if (request.method === 'POST' && path === '/token') {
        const { user } = await readJson(request);
        // The server's rule for a token's `sub`: a name it would refuse at the
        // handshake is refused here, where the page can say so.
        if (typeof user !== 'string' || !USER_ID_PATTERN.test(user))
          throw new BadRequest(
            'a user name is 1-256 printable characters without whitespace, "{", "}" or "|"',
          );
        // Every topic allowed, publishing to chat rooms, member lists of every
        // topic with the name shown in them (issue 16): a demo, not a policy.
        const claims = { presence: ['*'], info: { name: user } };
        return send(response, 200, {
          token: await devToken(user, { topics: ['*'], publish: ['chat:*'], claims }),
        });
      }
      if (request.method === 'POST' && path === '/publish') {
        const [status, result] = await publish(await readJson(request));
        return send(response, status, result);
      }
      if (request.method === 'POST' && path === '/status') {
        const { id, userId } = await readJson(request);
        const [status, result] = await invoke('status', { id, userId });
        return send(response, status, result);
      }
      if (request.method === 'POST' && path === '/push/subscribe') {
        const { user } = await readJson(request);
        if (typeof user !== 'string' || !USER_ID_PATTERN.test(user))
          throw new BadRequest('name the user whose phone this is');
        const subscription = phone.subscribe();
        const [status, result] = await invoke('devices', {
          action: 'register',
          userId: user,
          webpush: subscription,
        });
        if (status === 200) ownerOf.set(subscriptionId(subscription.endpoint), user);
        return send(response, status, result);
      }
      if (request.method === 'GET' && path === '/push/received') {
        const user = new URL(request.url ?? '/', 'http://demo').searchParams.get('user');
        return send(response, 200, {
          pushes: pushes
            .filter((p) => p.user === user)
            .map((p) => ({ at: p.at, payload: JSON.parse(p.text), vapid: p.vapid.sub })),
        });
      }
      send(response, 404, { error: { code: 'not_found', message: `${request.method} ${path}` } });
    };
    handle().catch((error: unknown) => {
      if (error instanceof BadRequest)
        return send(response, 400, { error: { code: 'invalid_request', message: error.message } });
      send(response, 502, {
        error: {
          code: 'unavailable',
          message: `${(error as Error).message} (is \`npm start\` running?)`,
        },
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    close: async () => {
      clearInterval(phoneWatch);
      await phone.close();
      lambda.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
