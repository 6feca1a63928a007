/**
 * The `deliver` function as Lambda would run it, on loopback: a few worker
 * processes (node:cluster, sharing one port) answering Lambda's Invoke API
 * (`POST /2015-03-31/functions/{name}/invocations`, RequestResponse) by
 * calling the real handler of functions/deliver.ts. The publish function's
 * own signed Lambda Invoke (lib/delivery/lambda-invoke.ts) talks to it through LAMBDA_ENDPOINT.
 * Like a Lambda instance, each worker runs one invocation at a time (the
 * others wait in its queue).
 *
 * The primary sums what the workers report (invocations, their wall time,
 * the peak RSS of any worker): IPC in { type: 'stats' } (answered with
 * { type: 'stats', invocations, ms, peakRss }) and { type: 'reset' }.
 *
 * Env: BENCH_WORKER_PORT, BENCH_WORKERS, plus what the function reads
 * (REDIS_URL, JWT_SECRET, AWS_*, FANOUT_CONCURRENCY...).
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { handler } from '../functions/deliver.js';
import { lambdaContext } from './common.js';

const port = Number(process.env['BENCH_WORKER_PORT']);
const workers = Number(process.env['BENCH_WORKERS'] ?? 2);

if (cluster.isPrimary) {
  let totals = { invocations: 0, ms: 0, peakRss: 0 };
  cluster.on('message', (_worker, message: { type?: string; ms?: number; rss?: number }) => {
    if (message.type === 'invocation') {
      totals.invocations++;
      totals.ms += message.ms ?? 0;
    }
    if (message.type === 'invocation' || message.type === 'rss')
      totals.peakRss = Math.max(totals.peakRss, message.rss ?? 0);
  });
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'stats') process.send?.({ type: 'stats', ...totals });
    if (message.type === 'reset') totals = { invocations: 0, ms: 0, peakRss: 0 };
  });
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) process.send?.({ type: 'ready', port });
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
} else {
  // One invocation at a time per worker, as in a Lambda instance.
  let queue: Promise<unknown> = Promise.resolve();
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const name = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '')?.[1];
      if (req.method !== 'POST' || !name) {
        res.writeHead(404).end();
        return;
      }
      const event = JSON.parse(Buffer.concat(parts).toString()) as unknown;
      const context = lambdaContext(decodeURIComponent(name), 120_000) as never;
      const done = queue.then(async () => {
        const t0 = performance.now();
        try {
          return await (handler(event, context) as Promise<unknown>);
        } finally {
          // What Lambda bills: the invocation's duration (not its wait in this queue).
          process.send?.({
            type: 'invocation',
            ms: performance.now() - t0,
            rss: process.memoryUsage.rss(),
          });
        }
      });
      queue = done.catch(() => undefined);
      // Lambda answers 200 either way and flags a failed function in a header.
      done
        .then((result) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
        })
        .catch((error: unknown) => {
          res
            .writeHead(200, {
              'content-type': 'application/json',
              'x-amz-function-error': 'Unhandled',
            })
            .end(JSON.stringify({ errorMessage: String(error) }));
        });
    });
  });
  server.keepAliveTimeout = 120_000;
  server.listen(port, '127.0.0.1');
  setInterval(() => process.send?.({ type: 'rss', rss: process.memoryUsage.rss() }), 100).unref();
  process.on('SIGTERM', () => process.exit(0));
}
