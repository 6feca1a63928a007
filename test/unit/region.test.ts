import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { publish } from '../../lib/delivery/publish.js';
import { regionInHost, regionOf } from '../../lib/gateway/region.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import { SignedHttpGateway } from '../../lib/gateway/signed.js';
import { createKeys } from '../../lib/registry/keys.js';
import { fakeRegistry } from './fakes.js';

// SigV4 binds each signature to a region: API Gateway answers 403 to a post
// signed for any region but the one of the API holding the connection.

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const EU = 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod';
const AP = 'https://def456.execute-api.ap-southeast-2.amazonaws.com/live';
const CUSTOM = 'https://push.example.com/ws';

/** The region in an Authorization header's credential scope. */
const scopeRegion = (authorization: unknown) =>
  /Credential=[^/]+\/\d{8}\/([^/]+)\/execute-api\/aws4_request/.exec(String(authorization))?.[1];

describe('regionOf', () => {
  it.each([
    [EU, 'eu-west-1'],
    [AP, 'ap-southeast-2'],
    ['https://x1.execute-api.us-gov-west-1.amazonaws.com/prod', 'us-gov-west-1'],
    ['https://x1.execute-api.cn-north-1.amazonaws.com.cn/prod', 'cn-north-1'],
    ['https://X1.EXECUTE-API.EU-CENTRAL-2.AMAZONAWS.COM/prod', 'eu-central-2'],
  ])('reads the region of an execute-api host: %s', (endpoint, region) => {
    expect(regionOf(endpoint, 'us-east-1')).toBe(region);
  });

  it.each([
    CUSTOM,
    'http://localhost:3001',
    'https://abc.execute-api.eu-west-1.amazonaws.com.evil.example/prod',
    'https://execute-api.eu-west-1.amazonaws.com/prod',
    'not a url',
  ])('falls back for a host that names no region: %s', (endpoint) => {
    expect(regionInHost(endpoint)).toBeUndefined();
    expect(regionOf(endpoint, 'sa-east-1')).toBe('sa-east-1');
  });
});

describe('WS_CALLBACK_REGION', () => {
  const base = { REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) };

  it("defaults to the Lambda's own region", () => {
    expect(loadConfig({ ...base, AWS_REGION: 'eu-north-1' }).callbackRegion).toBe('eu-north-1');
  });

  it('is the region given beside a custom domain', () => {
    const config = loadConfig({
      ...base,
      AWS_REGION: 'eu-north-1',
      WS_CALLBACK_URL: CUSTOM,
      WS_CALLBACK_REGION: 'us-west-2',
    });
    expect(config.callbackRegion).toBe('us-west-2');
  });

  it('refuses something that is not a region name, naming the variable', () => {
    expect(() => loadConfig({ ...base, WS_CALLBACK_REGION: 'Europe' })).toThrow(
      /WS_CALLBACK_REGION must be a region name/,
    );
  });
});

// The signed adapter over real sockets: execute-api host names resolve to a
// local server, which records what it is sent.
interface Seen {
  host: string;
  url: string;
  headers: IncomingHttpHeaders;
}
let server: Server;
let port: number;
let seen: Seen[];
const toLoopback: LookupFunction = (_host, options, callback) => {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else (callback as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4);
};
/** A local endpoint whose host name is `host` (http, on the local server's port). */
const local = (endpoint: string) => {
  const url = new URL(endpoint);
  return `http://${url.hostname}:${port}${url.pathname}`;
};

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ host: String(req.headers.host), url: req.url ?? '', headers: req.headers });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen = [];
});

const signedGateway = (region = 'us-east-1') =>
  new SignedHttpGateway({ region, credentials: async () => credentials, lookup: toLoopback });

describe('SignedHttpGateway signs for the endpoint’s region', () => {
  it('signs a post to an execute-api host for the region in its name, not its own', async () => {
    // Act
    await signedGateway('us-east-1').post(local(EU), 'c1=', Buffer.from('hi'));
    // Assess
    expect(seen).toHaveLength(1);
    expect(seen[0]?.host).toBe(`abc123.execute-api.eu-west-1.amazonaws.com:${port}`);
    expect(scopeRegion(seen[0]?.headers.authorization)).toBe('eu-west-1');
  });

  it('signs a custom domain for the configured region', async () => {
    // Act
    await signedGateway('us-west-2').post(local(CUSTOM), 'c1', Buffer.from('hi'));
    await signedGateway('us-west-2').close(local(CUSTOM), 'c2');
    // Assess
    expect(seen.map((s) => scopeRegion(s.headers.authorization))).toEqual([
      'us-west-2',
      'us-west-2',
    ]);
  });

  it('closes a connection with a signature for its API’s region', async () => {
    // Act
    await signedGateway('us-east-1').close(local(AP), 'c9');
    // Assess
    expect(seen[0]?.url).toBe('/live/@connections/c9');
    expect(scopeRegion(seen[0]?.headers.authorization)).toBe('ap-southeast-2');
  });
});

describe('a publish whose audience spans APIs in two regions', () => {
  it('signs every post for the region of the API holding that connection', async () => {
    // Prepare: one topic, members on an API in eu-west-1 and one in ap-southeast-2.
    const keys = createKeys('pw:');
    const members = [
      { connectionId: 'eu-1', endpoint: local(EU) },
      { connectionId: 'ap-1', endpoint: local(AP) },
      { connectionId: 'eu-2', endpoint: local(EU) },
      { connectionId: 'ap-2', endpoint: local(AP) },
    ];
    const { registry } = fakeRegistry({
      topicAudience: (topic) => keys.audience('topic', topic),
      publish: async () => ({ cursor: '1-0', count: members.length, members }),
    });
    // Act
    const result = await publish(
      { topic: 'news', data: 'hi' },
      {
        registry,
        dedup: {
          claim: async () => ({ state: 'claimed' as const, token: 't' }),
          complete: async () => undefined,
          release: async () => undefined,
        },
        gateway: signedGateway('us-east-1'),
        prune: async () => undefined,
        logger: { warn: () => undefined },
        concurrency: 4,
        chunkSize: 100,
        chunkMaxBytes: 5 * 1024 * 1024,
        parallelChunks: 1,
        deliverAttempts: 1,
      },
    );
    // Assess
    expect(result.delivered).toBe(4);
    const byConnection = Object.fromEntries(
      seen.map((s) => [
        s.url.split('/').pop(),
        { host: s.host.split('.')[0], region: scopeRegion(s.headers.authorization) },
      ]),
    );
    expect(byConnection).toEqual({
      'eu-1': { host: 'abc123', region: 'eu-west-1' },
      'eu-2': { host: 'abc123', region: 'eu-west-1' },
      'ap-1': { host: 'def456', region: 'ap-southeast-2' },
      'ap-2': { host: 'def456', region: 'ap-southeast-2' },
    });
  });
});

describe('AwsGateway (SDK) signs for the endpoint’s region', () => {
  /** The SDK client of `endpoint`, its HTTP handler replaced by one that records the signed request. */
  function recordingClient(gateway: AwsGateway, endpoint: string, sink: IncomingHttpHeaders[]) {
    const client = gateway.client(endpoint);
    (client.config as { requestHandler: unknown }).requestHandler = {
      handle: async (request: { headers: IncomingHttpHeaders }) => {
        sink.push(request.headers);
        return {
          response: { statusCode: 200, headers: {}, body: Readable.from([]) },
        };
      },
    };
    return client;
  }

  it('builds each endpoint’s client for the region in its host, or the configured one', async () => {
    // Prepare
    const gateway = new AwsGateway({ region: 'us-west-2', sleep: async () => undefined });
    const headers: IncomingHttpHeaders[] = [];
    for (const endpoint of [EU, AP, CUSTOM]) {
      const client = recordingClient(gateway, endpoint, headers);
      client.config.credentials = async () => credentials;
    }
    // Act
    for (const endpoint of [EU, AP, CUSTOM]) await gateway.post(endpoint, 'c1', Buffer.from('x'));
    // Assess
    expect(headers.map((h) => scopeRegion(h.authorization))).toEqual([
      'eu-west-1',
      'ap-southeast-2',
      'us-west-2',
    ]);
    expect(await gateway.client(AP).config.region()).toBe('ap-southeast-2');
  });
});
