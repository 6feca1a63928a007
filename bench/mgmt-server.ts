/**
 * A local stand-in for API Gateway's management API, in its own process:
 * `POST /@connections/{id}` answers 200 for a registered connection id and
 * 410 (GoneException, as API Gateway says it) for any other. It counts
 * deliveries and remembers when the last one arrived. `DELETE
 * /@connections/{id}` (a connection closed because a post to it finally
 * failed) answers 204, as API Gateway does, and is counted as `closed`.
 *
 * Admin routes (used by the orchestrator only):
 *   POST /_admin/register   body: connection ids, one per line
 *   POST /_admin/reset      clears counters (not registrations)
 *   POST /_admin/clear      forgets every registration
 *   GET  /_admin/stats      { delivered, distinct, gone, throttled, bytes, firstAt, lastAt } (Date.now() ms)
 *   POST /_admin/limits     body JSON { rate, burst, latencyMs, sigma }: the account's throttle
 *                           and each post's latency (rate 0: no throttle; latencyMs 0: none)
 *
 * As AWS, it can throttle: a token bucket for the whole "account" (every
 * worker, every connection of this server), refilled at `rate` per second and
 * holding at most `burst`, checked as each post arrives; past it a post is
 * answered 429 LimitExceededException. API Gateway's documented default is
 * 10,000 requests/s with a 5,000-request bucket per account and region,
 * across all its APIs including the WebSocket callback (@connections) API;
 * AWS documents no separate figure for @connections (docs/pacing.md). Each
 * post that is let through answers after a lognormal latency (median
 * `latencyMs`, shape `sigma`: 20 ms and 0.5 give a p99 of ~64 ms).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const registered = new Set<string>();
const fresh = () => ({
  delivered: 0,
  gone: 0,
  throttled: 0,
  /** DELETEs: connections closed after a post to them finally failed. */
  closed: 0,
  bytes: 0,
  firstAt: 0,
  lastAt: 0,
  /** Connections that got at least one post (delivered counts doubles too). */
  distinct: 0,
});
/** Who got a post since the last reset. */
let reached = new Set<string>();
let stats = fresh();
let limits = { rate: 0, burst: 0, latencyMs: 0, sigma: 0.5 };
let tokens = 0;
let refilledAt = performance.now();
const THROTTLED_BODY = '{"message":"Rate exceeded"}';

/** One token from the account's bucket, or false: throttled. */
function admit(): boolean {
  if (limits.rate === 0) return true;
  const t = performance.now();
  tokens = Math.min(limits.burst, tokens + ((t - refilledAt) * limits.rate) / 1000);
  refilledAt = t;
  if (tokens < 1) return false;
  tokens--;
  return true;
}

/** A lognormal latency: median latencyMs, shape sigma (Box-Muller). */
function latency(): number {
  if (limits.latencyMs === 0) return 0;
  const u = 1 - Math.random();
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  return limits.latencyMs * Math.exp(limits.sigma * normal);
}
const GONE_BODY = '{"message":null}';
const PREFIX = '/@connections/';

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => resolve(Buffer.concat(parts).toString()));
    req.on('error', reject);
  });
}

function post(req: IncomingMessage, res: ServerResponse, id: string): void {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  req.on('end', () => {
    if (!admit()) {
      stats.throttled++;
      res.writeHead(429, {
        'content-type': 'application/json',
        'x-amzn-errortype': 'LimitExceededException',
        'content-length': String(THROTTLED_BODY.length),
      });
      res.end(THROTTLED_BODY);
      return;
    }
    const wait = latency();
    if (wait > 0) setTimeout(answer, wait);
    else answer();
  });
  const answer = () => {
    if (registered.has(id)) {
      const t = Date.now();
      stats.delivered++;
      if (!reached.has(id)) {
        reached.add(id);
        stats.distinct++;
      }
      stats.bytes += bytes;
      if (stats.firstAt === 0) stats.firstAt = t;
      stats.lastAt = t;
      res.writeHead(200, { 'content-length': '0' });
      res.end();
    } else {
      stats.gone++;
      res.writeHead(410, {
        'content-type': 'application/json',
        'x-amzn-errortype': 'GoneException',
        'content-length': String(GONE_BODY.length),
      });
      res.end(GONE_BODY);
    }
  };
}

async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  let body: unknown = { ok: true };
  if (path === '/_admin/register') {
    for (const id of (await readBody(req)).split('\n')) if (id) registered.add(id);
    body = { registered: registered.size };
  } else if (path === '/_admin/reset') {
    await readBody(req);
    stats = fresh();
    reached = new Set();
  } else if (path === '/_admin/limits') {
    limits = { ...limits, ...(JSON.parse(await readBody(req)) as Partial<typeof limits>) };
    tokens = limits.burst;
    refilledAt = performance.now();
    body = limits;
  } else if (path === '/_admin/clear') {
    await readBody(req);
    registered.clear();
  } else if (path === '/_admin/stats') {
    body = stats;
  } else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'POST' && url.startsWith(PREFIX)) {
    post(req, res, decodeURIComponent(url.slice(PREFIX.length)));
    return;
  }
  if (req.method === 'DELETE' && url.startsWith(PREFIX)) {
    stats.closed++;
    req.resume();
    res.writeHead(204).end();
    return;
  }
  admin(req, res, url).catch((error: unknown) => {
    res.writeHead(500).end(String(error));
  });
});
// Longer than any pause in the benchmark, so keep-alive sockets stay usable.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ type: 'ready', port: typeof address === 'object' && address?.port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
