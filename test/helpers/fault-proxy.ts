import { createHash } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from '../../scripts/redis-server.js';

/**
 * What the proxy does with one request:
 * - `pass`: forward it and relay the answer;
 * - `delay`: forward it after `ms` (a slow management API);
 * - `status`: answer with this status without forwarding (429 throttling,
 *   5xx, 410 for a connection that is in fact alive);
 * - `reset`: destroy the socket without forwarding (a reset connection);
 * - `lost-answer`: forward it (the post lands), then hold the answer for
 *   `ms` and destroy the socket: the caller times out on a request that
 *   succeeded, the case that makes retries deliver twice on the wire;
 * - `function-error`: answer 200 with `X-Amz-Function-Error` without
 *   forwarding, as Lambda's Invoke API reports a function that threw.
 */
export type Fault =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'status'; status: number }
  | { kind: 'reset' }
  | { kind: 'lost-answer'; ms: number }
  | { kind: 'function-error' };

export interface ProxiedRequest {
  method: string;
  path: string;
  body: Buffer;
  /** The n-th request the proxy has seen (from 1). */
  n: number;
}

/**
 * Fails the first `times` attempts of every distinct request (same method,
 * path and body: a retry of the same post or invoke) with `fault`, then lets
 * it through: a fault that a retry policy is meant to absorb.
 */
export function failFirst(
  times: number,
  fault: Fault | ((req: ProxiedRequest) => Fault),
  applies: (req: ProxiedRequest) => boolean = () => true,
): (req: ProxiedRequest) => Fault {
  const attempts = new Map<string, number>();
  return (req) => {
    if (!applies(req)) return { kind: 'pass' };
    const key = createHash('sha1')
      .update(req.method)
      .update(req.path)
      .update(req.body)
      .digest('hex');
    const seen = attempts.get(key) ?? 0;
    attempts.set(key, seen + 1);
    if (seen >= times) return { kind: 'pass' };
    return typeof fault === 'function' ? fault(req) : fault;
  };
}

/**
 * A fault-injecting HTTP proxy, put in front of serverless-offline's
 * management API (`@connections`, via WS_CALLBACK_URL) or its Lambda Invoke
 * API (via LAMBDA_ENDPOINT). `decide` is swapped per scenario; by default
 * every request passes. `target` may be set (or changed, after a restart)
 * once the real server's port is known.
 */
export class FaultProxy {
  target = '';
  decide: (req: ProxiedRequest) => Fault = () => ({ kind: 'pass' });
  readonly counts: Record<Fault['kind'], number> = {
    pass: 0,
    delay: 0,
    status: 0,
    reset: 0,
    'lost-answer': 0,
    'function-error': 0,
  };
  #seen = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly port: number;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('request', (req, res) => this.#handle(req, res));
  }

  static async start(): Promise<FaultProxy> {
    const port = await freePort();
    const server = createServer({ keepAlive: true });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return new FaultProxy(server, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Faults injected so far (every kind but `pass` and `delay`). */
  get injected(): number {
    return this.#seen - this.counts.pass - this.counts.delay;
  }

  reset(): void {
    this.decide = () => ({ kind: 'pass' });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const n = ++this.#seen;
      const fault = this.decide({ method: req.method ?? 'GET', path: req.url ?? '/', body, n });
      this.counts[fault.kind]++;
      switch (fault.kind) {
        case 'status':
          res.writeHead(fault.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ message: `injected ${fault.status}` }));
          return;
        case 'reset':
          req.socket.destroy();
          return;
        case 'function-error':
          res.writeHead(200, {
            'content-type': 'application/json',
            'x-amz-function-error': 'Unhandled',
          });
          res.end(JSON.stringify({ errorType: 'Error', errorMessage: 'injected worker failure' }));
          return;
        case 'delay':
          // A caller that died meanwhile (a crashed publish) never sent it.
          setTimeout(() => {
            if (!req.socket.destroyed) this.#forward(req, body, res);
          }, fault.ms);
          return;
        case 'pass':
          this.#forward(req, body, res);
          return;
        case 'lost-answer':
          this.#forward(req, body, res, fault.ms);
      }
    });
  }

  #forward(req: IncomingMessage, body: Buffer, res: ServerResponse, loseAnswerAfterMs?: number) {
    const target = new URL(this.target);
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        if (loseAnswerAfterMs !== undefined) {
          answer.resume();
          setTimeout(() => req.socket.destroy(), loseAnswerAfterMs);
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    upstream.end(body);
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
