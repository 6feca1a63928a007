import * as v from 'valibot';
import { ValidationError } from '../errors.js';
import { describeIssues } from './protocol.js';

/** The parts of API Gateway WebSocket events we use, parsed rather than trusted. */
const RequestContext = v.object({
  connectionId: v.pipe(v.string(), v.minLength(1)),
  domainName: v.optional(v.string(), 'localhost'),
  stage: v.optional(v.string(), 'local'),
  connectedAt: v.optional(v.number()),
});

export const WebSocketEvent = v.object({
  requestContext: RequestContext,
  queryStringParameters: v.optional(v.nullable(v.record(v.string(), v.optional(v.string())))),
  body: v.optional(v.nullable(v.string())),
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

/** The frame text of a `$default` event (API Gateway base64-encodes binary frames). */
export function frameBody(event: WebSocketEvent): string | undefined {
  if (event.body == null) return undefined;
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

/** Where the management API of the API holding a connection lives. */
export function callbackEndpoint(domainName: string, stage: string, callbackUrl?: string): string {
  return callbackUrl ?? `https://${domainName}/${stage}`;
}
