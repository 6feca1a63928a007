import * as v from 'valibot';
import { ValidationError } from '../errors.js';
import { describeIssues } from '../protocol/frames.js';

/** The parts of API Gateway WebSocket events we use, parsed rather than trusted. */
const RequestContext = v.object({
  connectionId: v.pipe(v.string(), v.minLength(1)),
  domainName: v.optional(v.string(), 'localhost'),
  stage: v.optional(v.string(), 'local'),
  connectedAt: v.optional(v.number()),
});

/**
 * A binary frame's bytes. API Gateway base64-encodes them (isBase64Encoded);
 * serverless-offline hands the raw bytes over instead (a Uint8Array once
 * through its worker thread).
 */
const Bytes = v.instance(Uint8Array);

export const WebSocketEvent = v.object({
  requestContext: RequestContext,
  queryStringParameters: v.optional(v.nullable(v.record(v.string(), v.optional(v.string())))),
  body: v.optional(v.nullable(v.union([v.string(), Bytes]))),
  isBase64Encoded: v.optional(v.boolean()),
});

export type WebSocketEvent = v.InferOutput<typeof WebSocketEvent>;

export function parseWebSocketEvent(event: unknown): WebSocketEvent {
  const parsed = v.safeParse(WebSocketEvent, event);
  if (!parsed.success)
    throw new ValidationError(
      `not an API Gateway WebSocket event: ${describeIssues(parsed.issues)}`,
    );
  return parsed.output;
}

/**
 * The frame text of a `$default` event. A binary frame is read as UTF-8 text,
 * so one holding a JSON frame is answered like the same text frame.
 */
export function frameBody(event: WebSocketEvent): string | undefined {
  const body = event.body;
  if (body == null) return undefined;
  if (typeof body !== 'string') return Buffer.from(body).toString('utf8');
  return event.isBase64Encoded ? Buffer.from(body, 'base64').toString('utf8') : body;
}
