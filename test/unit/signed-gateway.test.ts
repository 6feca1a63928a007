import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManagementApiError, SignedHttpGateway } from '../../lib/gateway/signed.js';
import { verifySigV4 } from '../helpers/sigv4.js';

// A local HTTP server stands in for the management API: real sockets, real
// requests; each test scripts the status codes it answers with.
interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The client socket's port: equal across requests when a socket is reused. */
  remotePort: number | undefined;
}

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
let server: Server;
let endpoint: string;
let seen: Seen[];
let answers: number[];
/** Requests whose socket the server destroys instead of answering (a connection reset). */
let resetNext = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (resetNext > 0) {
        resetNext--;
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
          remotePort: req.socket.remotePort,
        });
        req.socket.destroy();
        return;
      }
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        remotePort: req.socket.remotePort,
      });
      const code = answers.shift() ?? 200;
      // 0: never answer (a management API that hangs); the client's deadline must end it.
      if (code === 0) return;
      // -1: answer 200 and start the body, then never finish it (a trickling peer).
      if (code === -1) {
        res.writeHead(200, { 'content-length': '100' });
        res.write('{');
        return;
      }
      res.writeHead(code);
      res.end('{"message":"scripted"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/prod`;
});
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);
beforeEach(() => {
  seen = [];
  answers = [];
  resetNext = 0;
});

const gatewayWith = (extra: Partial<ConstructorParameters<typeof SignedHttpGateway>[0]> = {}) =>
  new SignedHttpGateway({
    region: 'eu-west-1',
    credentials: async () => credentials,
    sleep: async () => undefined,
    ...extra,
  });

describe('SignedHttpGateway', () => {
  it('posts the frame to /{stage}/@connections/{id} and answers ok on 2xx', async () => {
    // Prepare
    const data = Buffer.from('{"type":"message","data":1}');
    // Act
    const result = await gatewayWith().post(endpoint, 'abc=', data);
    // Assess
    expect(result).toBe('ok');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe('POST');
    expect(seen[0]?.url).toBe('/prod/@connections/abc%3D');
    expect(seen[0]?.body.equals(data)).toBe(true);
    expect(seen[0]?.headers['x-amz-content-sha256']).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
  });

  it('signs with SigV4 for execute-api in its region, as the spec computes it', async () => {
    // Prepare
    const data = Buffer.from('hello');
    // Act
    await gatewayWith().post(endpoint, 'c1', data);
    // Assess: recompute the signature from the request the server received,
    // step by step as AWS documents SigV4, independently of the signer.
    const request = seen[0] as Seen;
    expect(String(request.headers.authorization)).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*x-amz-content-sha256[^,]*, Signature=[0-9a-f]{64}$/,
    );
    const secretFor = (id: string) =>
      id === credentials.accessKeyId ? credentials.secretAccessKey : undefined;
    expect(verifySigV4(request, secretFor)).toEqual({
      ok: true,
      region: 'eu-west-1',
      service: 'execute-api',
      accessKeyId: 'AKIDEXAMPLE',
    });
  });

  it('signs posts to ids of every shape as the spec computes them, through one gateway', async () => {
    // Prepare: API Gateway's base64 ids (=, +, /), characters encodeURIComponent
    // leaves alone but SigV4 escapes (!'()*), dots, non-ASCII; the plain ones
    // take the canonical-URI fast path, the others canonicalPath.
    const ids = ['L0SM9cOFvHcCIhw=', 'a+b/c==', "x!'()*y", '~a_b-c.d', '...', 'é✓', 'p%3D'];
    const gateway = gatewayWith();
    const secretFor = (id: string) =>
      id === credentials.accessKeyId ? credentials.secretAccessKey : undefined;
    // Act
    for (const id of ids) await gateway.post(endpoint, id, Buffer.from(id));
    // Assess
    expect(seen).toHaveLength(ids.length);
    expect(seen.map((r) => [r.url, verifySigV4(r, secretFor).ok])).toEqual(
      seen.map((r) => [r.url, true]),
    );
  });

  it("signs a post to a peer's endpoint (a custom domain, WS_PEERS) for the peer's region", async () => {
    // Prepare: the peer's URL names no region; WS_PEERS says us-east-1
    const gateway = gatewayWith({ regions: { [endpoint]: 'us-east-1' } });
    // Act
    await gateway.post(endpoint, 'c1', Buffer.from('hello'));
    // Assess: signed for the peer's region, not ours (API Gateway refuses any other)
    const secretFor = (id: string) =>
      id === credentials.accessKeyId ? credentials.secretAccessKey : undefined;
    expect(verifySigV4(seen[0] as Seen, secretFor)).toMatchObject({
      ok: true,
      region: 'us-east-1',
    });
  });

  it('answers gone on 410, as for a connection that no longer exists', async () => {
    answers = [410];
    expect(await gatewayWith().post(endpoint, 'dead', Buffer.from('x'))).toBe('gone');
  });

  it('retries a throttled post (429) and then succeeds', async () => {
    // Prepare
    answers = [429, 429];
    const delays: number[] = [];
    const gateway = gatewayWith({
      sleep: async (ms) => void delays.push(ms),
      random: () => 1,
      throttleBaseDelayMs: 10,
    });
    // Act
    const result = await gateway.post(endpoint, 'c1', Buffer.from('x'));
    // Assess
    expect(result).toBe('ok');
    expect(seen).toHaveLength(3);
    expect(delays).toEqual([10, 20]);
  });

  it('gives up on throttling after the attempts allowed, with an SDK-shaped error', async () => {
    answers = [429, 429, 429];
    const error = await gatewayWith({ throttleMaxAttempts: 3 })
      .post(endpoint, 'c1', Buffer.from('x'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManagementApiError);
    expect((error as ManagementApiError).name).toBe('LimitExceededException');
    expect((error as ManagementApiError).$metadata.httpStatusCode).toBe(429);
    expect(seen).toHaveLength(3);
  });

  it('retries a 5xx like throttling and then succeeds', async () => {
    answers = [500, 503, 200];
    expect(await gatewayWith().post(endpoint, 'c1', Buffer.from('x'))).toBe('ok');
    expect(seen).toHaveLength(3);
  });

  it('gives up on a 5xx after the attempts allowed, naming the status', async () => {
    answers = [502, 502];
    const error = await gatewayWith({ throttleMaxAttempts: 2 })
      .post(endpoint, 'c1', Buffer.from('x'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManagementApiError);
    expect((error as ManagementApiError).message).toMatch(/HTTP 502/);
    expect(seen).toHaveLength(2);
  });

  it('throws on a 4xx other than 410 and 429 without retrying, naming the status', async () => {
    answers = [403];
    await expect(gatewayWith().post(endpoint, 'c1', Buffer.from('x'))).rejects.toThrow(/HTTP 403/);
    expect(seen).toHaveLength(1);
  });

  it('ends a request that gets no answer at its deadline and retries it', async () => {
    answers = [0, 200];
    const started = Date.now();
    const result = await gatewayWith({ requestTimeoutMs: 300 }).post(
      endpoint,
      'c1',
      Buffer.from('x'),
    );
    expect(result).toBe('ok');
    expect(seen).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('retries a timed-out post once with the defaults, where the timeout equals the budget (issue 21, item 3)', async () => {
    // Prepare: MANAGEMENT_API_TIMEOUT_MS = THROTTLE_BUDGET_MS, as the defaults (5 s each), scaled down.
    answers = [0, 200];
    const gateway = gatewayWith({ requestTimeoutMs: 300, throttleBudgetMs: 300 });

    // Act
    const result = await gateway.post(endpoint, 'c1', Buffer.from('x'));

    // Assess: the budget starts after the timed-out attempt, so the retry ran and landed
    expect(result).toBe('ok');
    expect(seen).toHaveLength(2);
  });

  it("ends an attempt at the caller's deadline and starts no retry past it", async () => {
    // Prepare: an answer that never comes, then one that does; a deadline well
    // before the request timeout, and a budget that alone would allow the retry
    answers = [0, 200];
    const gateway = gatewayWith({ requestTimeoutMs: 2_000, throttleBudgetMs: 60_000 });

    // Act
    const error = await gateway
      .post(endpoint, 'c1', Buffer.from('x'), Date.now() + 200)
      .catch((e: unknown) => e);

    // Assess: one attempt, ended by the deadline (not the 5 s timeout), no retry after it
    expect(error).toMatchObject({ name: 'TimeoutError' });
    expect(seen).toHaveLength(1);
  });

  it('gives up on a management API that never answers, with a TimeoutError', async () => {
    answers = [0, 0];
    const error = await gatewayWith({ requestTimeoutMs: 200, throttleMaxAttempts: 2 })
      .post(endpoint, 'c1', Buffer.from('x'))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(seen).toHaveLength(2);
  });

  it('ends a request whose answer starts but never finishes, at the same deadline', async () => {
    answers = [-1, -1];
    const error = await gatewayWith({ requestTimeoutMs: 200, throttleMaxAttempts: 2 })
      .post(endpoint, 'c1', Buffer.from('x'))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'TimeoutError' });
    expect(seen).toHaveLength(2);
  });

  it('retries a post whose connection the server resets', async () => {
    resetNext = 1;
    expect(await gatewayWith().post(endpoint, 'c1', Buffer.from('x'))).toBe('ok');
    expect(seen).toHaveLength(2);
  });

  it('closes a connection with DELETE', async () => {
    expect(await gatewayWith().close(endpoint, 'c9')).toBe('ok');
    expect(seen[0]?.method).toBe('DELETE');
    expect(seen[0]?.url).toBe('/prod/@connections/c9');
  });

  it('reuses keep-alive sockets across posts to one endpoint', async () => {
    const gateway = gatewayWith({ maxSockets: 1 });
    for (let i = 0; i < 5; i++) await gateway.post(endpoint, `c${i}`, Buffer.from('x'));
    // Assess: all five came over one client socket
    expect(seen).toHaveLength(5);
    expect(seen[0]?.remotePort).toBeTypeOf('number');
    expect(new Set(seen.map((s) => s.remotePort)).size).toBe(1);
  });

  it('gives up on a request left unanswered past requestTimeoutMs', async () => {
    // Prepare: a server that reads the request and never answers.
    const silent = createServer((req) => req.resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      // Act
      const outcome = gatewayWith({ requestTimeoutMs: 100 }).post(
        `http://127.0.0.1:${port}`,
        'c1',
        Buffer.from('x'),
      );
      // Assess
      await expect(outcome).rejects.toThrow(/no answer from the management API within 100 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('asks for credentials once while they are valid, again when they near expiry', async () => {
    // Prepare: credentials valid for 10 minutes, then for an hour.
    let asked = 0;
    const soon = () => new Date(Date.now() + (asked === 1 ? 60_000 : 3_600_000));
    const gateway = gatewayWith({
      credentials: async () => {
        asked++;
        return { ...credentials, sessionToken: `t${asked}`, expiration: soon() };
      },
    });
    // Act: the first credentials expire within the refresh margin (5 min), so the second post asks again.
    await Promise.all([1, 2, 3].map((i) => gateway.post(endpoint, `c${i}`, Buffer.from('x'))));
    await gateway.post(endpoint, 'c4', Buffer.from('x'));
    await gateway.post(endpoint, 'c5', Buffer.from('x'));
    // Assess
    expect(asked).toBe(2);
    expect(seen.map((s) => s.headers['x-amz-security-token'])).toEqual([
      't1',
      't1',
      't1',
      't2',
      't2',
    ]);
  });
});
