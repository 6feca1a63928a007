import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import { PushwireError, toPublicError } from '../errors.js';
import { MetricName, type MetricsRecorder, recordBy } from '../observability/metrics.js';
import { encodeFrame } from './protocol.js';

export interface WebSocketResponse {
  statusCode: number;
  body?: string;
}

/**
 * Maps every error of a WebSocket route to its response in one place: the
 * status (what `$connect` refuses the handshake with) and an error frame as
 * body (what `$default`'s route response sends back). Internal errors are
 * logged whole and shown to the client only as `internal`.
 */
export function webSocketErrors(options: {
  logger: () => Logger;
  /** Counts refusals (by reason, for `$connect`) and internal errors. */
  metrics?: () => MetricsRecorder;
  /** `connect`: a refusal is a refused handshake, and counted as one. */
  route?: 'connect' | 'default' | 'disconnect';
}): MiddlewareObj<unknown, WebSocketResponse> {
  return {
    onError: async (request) => {
      const error = request.error;
      const shown = toPublicError(error);
      // API Gateway shows a refused handshake's client only the HTTP status,
      // so the reason lives here, with the connection id to find it by.
      const connectionId = (request.event as { requestContext?: { connectionId?: unknown } })
        ?.requestContext?.connectionId;
      const context = {
        ...(options.route && { route: options.route }),
        ...(typeof connectionId === 'string' && { connectionId }),
      };
      if (shown.status >= 500) {
        options.logger().error('request failed', { ...context, error: error as Error });
        options.metrics?.().addMetric(MetricName.InternalErrors, 'Count', 1);
      } else {
        options
          .logger()
          .info(options.route === 'connect' ? 'handshake refused' : 'request refused', {
            ...context,
            code: shown.code,
            reason: shown.message,
          });
        if (options.route === 'connect' && options.metrics)
          recordBy(options.metrics(), MetricName.HandshakesRefused, 'reason', shown.code);
      }
      request.response = {
        statusCode: shown.status,
        body: encodeFrame({ type: 'error', code: shown.code, message: shown.message }),
      };
    },
  };
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
        if (options.metrics)
          recordBy(options.metrics(), MetricName.RequestsRefused, 'reason', error.code);
        request.response = { error: { code: error.code, message: error.message } };
        return;
      }
      options.logger().error('invocation failed', { error: error as Error });
      options.metrics?.().addMetric(MetricName.InternalErrors, 'Count', 1);
    },
  };
}
