import * as v from 'valibot';
import { PushwireError, toPublicError, ValidationError } from '../errors.js';
import { type MetricsRecorder, recordBy } from '../observability/metrics.js';
import { describeIssues } from '../protocol/frames.js';
import type { Operations } from './operations.js';

/**
 * The HTTP API: `POST /publish`, `/presence`, `/kick`, `/status`, `/devices`, each taking the same
 * JSON body as the Lambda of that name. Unlike a Lambda Invoke, a refusal is
 * an HTTP status a caller cannot overlook: 400 for a bad request, 413 for a
 * message over API Gateway's limit, 500 for our failures, always with
 * `{"error":{"code","message"}}`.
 *
 * Reads both API Gateway payload formats: REST (1.0, what the template and
 * serverless-offline use) and HTTP API (2.0).
 */

const HttpEvent = v.looseObject({
  body: v.optional(v.nullable(v.string())),
  isBase64Encoded: v.optional(v.boolean()),
  /** REST: the resource path, `/publish`. */
  resource: v.optional(v.string()),
  path: v.optional(v.string()),
  /** HTTP API: the raw path (with the stage when not `$default`). */
  rawPath: v.optional(v.string()),
  httpMethod: v.optional(v.string()),
  requestContext: v.optional(
    v.looseObject({ http: v.optional(v.looseObject({ method: v.optional(v.string()) })) }),
  ),
});

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export interface HttpLogger {
  info(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

const ROUTES = ['publish', 'presence', 'kick', 'status', 'devices'] as const;
type Route = (typeof ROUTES)[number];

const json = (statusCode: number, value: unknown): HttpResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
});

class NotFoundError extends PushwireError {
  override name = 'NotFoundError';
  constructor(path: string) {
    super(
      'not_found',
      `no route ${path}: POST /publish, /presence, /kick, /status or /devices`,
      404,
    );
  }
}

class MethodNotAllowedError extends PushwireError {
  override name = 'MethodNotAllowedError';
  constructor(method: string) {
    super('method_not_allowed', `${method} is not allowed: use POST with a JSON body`, 405);
  }
}

function route(event: v.InferOutput<typeof HttpEvent>): Route {
  // The resource routes (`/{proxy+}` catches every other path); the path is
  // what the caller asked for.
  const resource = event.resource ?? event.rawPath ?? event.path ?? '';
  const name = resource.split('/').filter(Boolean).pop() ?? '';
  if (!(ROUTES as readonly string[]).includes(name))
    throw new NotFoundError(event.path ?? event.rawPath ?? (resource || '/'));
  const method = event.httpMethod ?? event.requestContext?.http?.method ?? 'POST';
  if (method !== 'POST') throw new MethodNotAllowedError(method);
  return name as Route;
}

function body(event: v.InferOutput<typeof HttpEvent>): unknown {
  if (event.body == null || event.body === '')
    throw new ValidationError('the request needs a JSON body');
  const text = event.isBase64Encoded
    ? Buffer.from(event.body, 'base64').toString('utf8')
    : event.body;
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('the body is not valid JSON');
  }
}

/** One HTTP request in, its response out; never throws. */
export async function handleHttp(
  event: unknown,
  deps: { operations: Operations; logger: HttpLogger; metrics?: MetricsRecorder },
): Promise<HttpResponse> {
  try {
    const parsed = v.safeParse(HttpEvent, event);
    if (!parsed.success)
      throw new ValidationError(`not an API Gateway HTTP event: ${describeIssues(parsed.issues)}`);
    const name = route(parsed.output);
    const request = body(parsed.output);
    return json(200, await deps.operations[name](request));
  } catch (error) {
    const shown = toPublicError(error);
    if (shown.status >= 500) {
      deps.logger.error('http request failed', { error });
      deps.metrics?.addMetric('InternalErrors', 'Count', 1);
    } else {
      deps.logger.info('http request refused', { code: shown.code, reason: shown.message });
      if (deps.metrics) recordBy(deps.metrics, 'RequestsRefused', 'reason', shown.code);
    }
    return json(shown.status, { error: { code: shown.code, message: shown.message } });
  }
}
