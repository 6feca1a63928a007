import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import * as v from 'valibot';
import { reason } from '../delivery/fanout.js';
import { PushwireError, toPublicError } from '../errors.js';
import type { EventSink } from '../events/types.js';
import type { Gateway } from '../gateway/gateway.js';
import { type MetricsRecorder, recordBy } from '../observability/metrics.js';
import { callbackEndpoint } from '../protocol/endpoint.js';
import { encodeFrame } from '../protocol/frames.js';
import { frameBody, WebSocketEvent } from './events.js';

export interface WebSocketResponse {
  statusCode: number;
  body?: string;
}

export interface WebSocketErrorsOptions {
  logger: () => Logger;
  /**
   * The management API, for errors that close the connection (`$default`
   * only: on `$connect` there is no socket yet, on `$disconnect` none left).
   * Without it such errors are answered like any other.
   */
  gateway?: () => Gateway;
  /** Fixed callback URL (custom domain, serverless-offline); else derived from the event. */
  callbackUrl?: () => string | undefined;
  /** Counts refusals (by reason, for `$connect`) and internal errors. */
  metrics?: () => MetricsRecorder;
  /** `connect`: a refusal is a refused handshake, logged and counted as one. */
  route?: 'connect' | 'default' | 'disconnect';
  /** Reports refusals of `connect` and `default` as `refused` lifecycle events. */
  events?: () => EventSink;
}

/**
 * Maps every error of a WebSocket route to its response in one place: the
 * status (what `$connect` refuses the handshake with) and an error frame as
 * body (what `$default`'s route response sends back). Internal errors are
 * logged whole and shown to the client only as `internal`.
 *
 * An error that `closesConnection` (`unknown_connection`, `token_expired`,
 * and `internal`: see toPublicError) is posted to the connection through the management API and the connection
 * is then closed (DeleteConnection), so any WebSocket client sees the reason
 * and then a close, and reconnects. The frame cannot go as the route
 * response: API Gateway sends that after the handler returns, i.e. after the
 * close. The endpoint comes from this event and is built per request, never
 * stored in the options, so one request's endpoint cannot leak into the next
 * warm invocation.
 */
export function webSocketErrors(
  options: WebSocketErrorsOptions,
): MiddlewareObj<unknown, WebSocketResponse> {
  return {
    onError: async (request) => {
      const error = request.error;
      const shown = toPublicError(error);
      // API Gateway shows a refused handshake's client only the HTTP status,
      // so the reason lives here, with the connection id to find it by.
      // (Undefined fields are left out of the JSON log line.)
      const context = {
        route: options.route,
        connectionId: (request.event as { requestContext?: { connectionId?: unknown } })
          ?.requestContext?.connectionId,
      };
      if (shown.status >= 500) {
        options.logger().error('request failed', { ...context, error: error as Error });
        options.metrics?.().addMetric('InternalErrors', 'Count', 1);
      } else {
        options
          .logger()
          .info(options.route === 'connect' ? 'handshake refused' : 'request refused', {
            ...context,
            code: shown.code,
            reason: shown.message,
          });
        if (options.route === 'connect' && options.metrics)
          recordBy(options.metrics(), 'HandshakesRefused', 'reason', shown.code);
        if (
          options.events &&
          options.route !== 'disconnect' &&
          typeof context.connectionId === 'string'
        )
          options.events().emit('refused', {
            connectionId: context.connectionId,
            route: options.route ?? 'default',
            code: shown.code,
          });
      }
      const body = encodeFrame({
        type: 'error',
        code: shown.code,
        message: shown.message,
        ...shown.extra,
        ref: refOf(request.event),
      });
      if (shown.closesConnection && options.gateway) {
        const event = v.safeParse(WebSocketEvent, request.event);
        if (event.success) {
          const { connectionId, domainName, stage } = event.output.requestContext;
          const endpoint = callbackEndpoint(domainName, stage, options.callbackUrl?.());
          await closeWithError(options.gateway(), endpoint, connectionId, body, options.logger());
          request.response = { statusCode: shown.status };
          return;
        }
      }
      request.response = { statusCode: shown.status, body };
    },
  };
}

/** The `ref` of the frame an error answers (PW-F3), if it had a valid one. */
function refOf(event: unknown): string | undefined {
  try {
    const { ref } = JSON.parse(frameBody(event as WebSocketEvent) as string);
    if (typeof ref === 'string' && ref && ref.length < 65) return ref;
  } catch {}
}

/**
 * Posts the error frame, then closes the connection. Best effort: a client
 * already gone (410) needs neither, and a failure is logged, not thrown (the
 * frame's error is what this request answers with).
 */
async function closeWithError(
  gateway: Gateway,
  endpoint: string,
  connectionId: string,
  frame: string,
  logger: Logger,
): Promise<void> {
  try {
    if ((await gateway.post(endpoint, connectionId, Buffer.from(frame))) === 'gone') return;
    await gateway.close(endpoint, connectionId);
    logger.info('connection closed after error', { connectionId });
  } catch (error) {
    logger.warn('could not close the connection after an error', {
      connectionId,
      reason: reason(error),
    });
  }
}

/**
 * For functions services invoke directly (publish, presence, kick): a bad
 * request comes back as `{ error: { code, message } }` and is not retried by
 * Lambda; anything else is thrown, so an async invocation is retried.
 */
export function invokeErrors(options: {
  logger: () => Logger;
  metrics?: () => MetricsRecorder;
}): MiddlewareObj<unknown, unknown> {
  return {
    onError: async (request) => {
      const error = request.error;
      if (error instanceof PushwireError && error.expose && error.status < 500) {
        options.logger().info('request refused', { code: error.code, reason: error.message });
        if (options.metrics) recordBy(options.metrics(), 'RequestsRefused', 'reason', error.code);
        request.response = { error: { code: error.code, message: error.message } };
        return;
      }
      options.logger().error('invocation failed', { error: error as Error });
      options.metrics?.().addMetric('InternalErrors', 'Count', 1);
    },
  };
}

/**
 * Awaits the secrets named by parameter (SSM, Secrets Manager) before the
 * handler runs: fetched at the first invocation of a container, then kept.
 * A failure answers this invocation (as an internal error) and is retried by
 * the next one.
 */
export function secretsLoaded(load: () => Promise<void>): MiddlewareObj<unknown, unknown> {
  return {
    before: async () => {
      await load();
    },
  };
}

/** Left to a function after its last management API call, to answer (and flush its metrics). */
export const ANSWER_MARGIN_MS = 1_000;

/**
 * When an invocation's management API calls must be done (ms since 1970):
 * its end less ANSWER_MARGIN_MS; undefined without a Lambda context (tests).
 */
export function invocationDeadline(context: unknown): number | undefined {
  const remaining = (context as { getRemainingTimeInMillis?: () => number } | undefined)
    ?.getRemainingTimeInMillis;
  return typeof remaining === 'function'
    ? Date.now() + remaining.call(context) - ANSWER_MARGIN_MS
    : undefined;
}
