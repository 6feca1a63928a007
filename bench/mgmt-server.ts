/**
 * A local stand-in for API Gateway's management API, in its own process:
 * `POST /@connections/{id}` answers 200 for a registered connection id and
 * 410 (GoneException, as API Gateway says it) for any other. It counts
 * deliveries and remembers when the last one arrived.
 *
 * Admin routes (used by the orchestrator only):
 *   POST /_admin/register   body: connection ids, one per line
 *   POST /_admin/reset      clears counters (not registrations)
 *   POST /_admin/clear      forgets every registration
 *   GET  /_admin/stats      { delivered, gone, bytes, firstAt, lastAt } (Date.now() ms)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const registered = new Set<string>();
let stats = { delivered: 0, gone: 0, bytes: 0, firstAt: 0, lastAt: 0 };
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
    if (registered.has(id)) {
      const t = Date.now();
      stats.delivered++;
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
  });
}

async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  let body: unknown = { ok: true };
  if (path === '/_admin/register') {
    for (const id of (await readBody(req)).split('\n')) if (id) registered.add(id);
    body = { registered: registered.size };
  } else if (path === '/_admin/reset') {
    await readBody(req);
    stats = { delivered: 0, gone: 0, bytes: 0, firstAt: 0, lastAt: 0 };
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
