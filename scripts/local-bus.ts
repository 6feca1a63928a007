import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';

/**
 * A local stand-in for an EventBridge bus: answers PutEvents as EventBridge
 * does, after checking the request's shape (target, content type, 1-10
 * entries within 256 KB, each with Source, DetailType, EventBusName and a
 * Detail that is a JSON object). `npm start` prints what it receives; the
 * sandbox test and unit tests add a SigV4 check (`verify`) and scripted
 * partial failures.
 */

export interface BusEntry {
  Source: string;
  DetailType: string;
  Detail: string;
  EventBusName: string;
  Time?: number;
}

export interface BusRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * An HTTP server that reads each request's body whole and hands the request
 * to `handle`: the shape the local stand-ins (the bus, the ack queue) and
 * the sandbox's check. Nothing else is done for them.
 */
export function requestServer(handle: (request: BusRequest, res: ServerResponse) => void): Server {
  return createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () =>
      handle(
        {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(parts),
        },
        res,
      ),
    );
  });
}

/** The entries of a well-formed PutEvents request, or why it is not one. */
export function parsePutEvents(request: BusRequest): { entries: BusEntry[] } | { error: string } {
  if (request.method !== 'POST' || request.url !== '/') return { error: 'not POST /' };
  if (request.headers['x-amz-target'] !== 'AWSEvents.PutEvents')
    return { error: `x-amz-target is ${request.headers['x-amz-target']}` };
  if (request.headers['content-type'] !== 'application/x-amz-json-1.1')
    return { error: `content-type is ${request.headers['content-type']}` };
  if (request.body.byteLength > 256 * 1024) return { error: 'request over 256 KB' };
  let body: { Entries?: unknown };
  try {
    body = JSON.parse(request.body.toString('utf8'));
  } catch {
    return { error: 'body is not JSON' };
  }
  const entries = body.Entries;
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > 10)
    return { error: 'Entries must hold 1 to 10 entries' };
  for (const entry of entries as Partial<BusEntry>[]) {
    for (const field of ['Source', 'DetailType', 'Detail', 'EventBusName'] as const)
      if (typeof entry[field] !== 'string' || entry[field] === '')
        return { error: `an entry has no ${field}` };
    try {
      const detail = JSON.parse(entry.Detail as string);
      if (typeof detail !== 'object' || detail === null || Array.isArray(detail))
        return { error: 'a Detail is not a JSON object' };
    } catch {
      return { error: 'a Detail is not JSON' };
    }
    if (entry.Time !== undefined && typeof entry.Time !== 'number')
      return { error: 'a Time is not epoch seconds' };
  }
  return { entries: entries as BusEntry[] };
}

export interface LocalBus {
  url: string;
  /** Every entry accepted, in order. */
  received: BusEntry[];
  /** Requests refused, with why (shape or signature). */
  refused: string[];
  /** The next `count` entries are answered failed with `code` (a partial failure). */
  failNext(count: number, code?: string): void;
  close(): Promise<void>;
}

export async function startLocalBus(
  options: {
    /** Why the request's signature is not acceptable, or undefined when it is. */
    verify?: (request: BusRequest) => string | undefined;
    onEntry?: (entry: BusEntry) => void;
    port?: number;
  } = {},
): Promise<LocalBus> {
  const received: BusEntry[] = [];
  const refused: string[] = [];
  let failing = 0;
  let failCode = 'ThrottlingException';
  const server: Server = requestServer((request, res) => {
    const denied = options.verify?.(request);
    if (denied !== undefined) {
      refused.push(`signature: ${denied}`);
      res
        .writeHead(403, { 'content-type': 'application/x-amz-json-1.1' })
        .end(JSON.stringify({ __type: 'AccessDeniedException', message: denied }));
      return;
    }
    const parsed = parsePutEvents(request);
    if ('error' in parsed) {
      refused.push(parsed.error);
      res
        .writeHead(400, { 'content-type': 'application/x-amz-json-1.1' })
        .end(JSON.stringify({ __type: 'ValidationException', message: parsed.error }));
      return;
    }
    let failed = 0;
    const answers = parsed.entries.map((entry) => {
      if (failing > 0) {
        failing--;
        failed++;
        return { ErrorCode: failCode, ErrorMessage: 'scripted failure' };
      }
      received.push(entry);
      options.onEntry?.(entry);
      return { EventId: randomUUID() };
    });
    res
      .writeHead(200, { 'content-type': 'application/x-amz-json-1.1' })
      .end(JSON.stringify({ FailedEntryCount: failed, Entries: answers }));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    refused,
    failNext(count, code = 'ThrottlingException') {
      failing = count;
      failCode = code;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
