import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import { PushwireError, toPublicError } from '../errors.js';
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
}): MiddlewareObj<unknown, WebSocketResponse> {
  return {
    onError: async (request) => {
      const error = request.error;
      const shown = toPublicError(error);
      if (shown.status >= 500) options.logger().error('request failed', { error: error as Error });
      else options.logger().info('request refused', { code: shown.code, reason: shown.message });
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
export function invokeErrors(options: { logger: () => Logger }): MiddlewareObj<unknown, unknown> {
  return {
    onError: async (request) => {
      const error = request.error;
      if (error instanceof PushwireError && error.expose && error.status < 500) {
        options.logger().info('request refused', { code: error.code, reason: error.message });
        request.response = { error: { code: error.code, message: error.message } };
        return;
      }
      options.logger().error('invocation failed', { error: error as Error });
    },
  };
}
