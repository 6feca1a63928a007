/**
 * One error taxonomy. Every error a caller can see is a PushwireError with a
 * stable `code` (sent to clients in error frames and returned by `publish`),
 * an HTTP-ish `status`, and `expose` telling whether its message is safe to
 * show outside (a Redis failure's text is not).
 */
export class PushwireError extends Error {
  override name = 'PushwireError';
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;
  /**
   * On a WebSocket frame: after the error frame, close the socket (through the
   * management API), so that any client, not only ours, reconnects. For errors
   * no later frame on this connection can recover from (`unknown_connection`,
   * `token_expired`). Only honoured for exposed errors.
   */
  readonly closesConnection: boolean;

  constructor(
    code: string,
    message: string,
    status: number,
    expose = true,
    options?: ErrorOptions & { closesConnection?: boolean },
  ) {
    super(message, options);
    this.code = code;
    this.status = status;
    this.expose = expose;
    this.closesConnection = options?.closesConnection ?? false;
  }
}

/** The caller sent something we cannot parse or accept (bad JSON, wrong shape). */
export class ValidationError extends PushwireError {
  override name = 'ValidationError';
  constructor(message: string, code = 'invalid_request') {
    super(code, message, 400);
  }
}

/** A message or frame over an API Gateway size limit. */
export class TooLargeError extends PushwireError {
  override name = 'TooLargeError';
  constructor(message: string) {
    super('too_large', message, 413);
  }
}

export class UnauthorizedError extends PushwireError {
  override name = 'UnauthorizedError';
  constructor(message = 'a valid token is required') {
    super('unauthorized', message, 401);
  }
}

export class ForbiddenError extends PushwireError {
  override name = 'ForbiddenError';
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

/**
 * The connection the frame came from is not (or no longer) registered: its
 * records expired, were removed by a kick, or were lost with Redis's data. No
 * frame can fix that, so the socket is closed after the error frame; the
 * client reconnects and is registered afresh.
 */
export class UnknownConnectionError extends PushwireError {
  override name = 'UnknownConnectionError';
  constructor(connectionId: string) {
    super('unknown_connection', `connection ${connectionId} is not registered`, 410, true, {
      closesConnection: true,
    });
  }
}

/** Missing or malformed configuration: raised at cold start, never at request time. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Turns anything thrown into what a caller may see. */
export function toPublicError(error: unknown): {
  code: string;
  message: string;
  status: number;
  closesConnection: boolean;
} {
  if (error instanceof PushwireError && error.expose) {
    return {
      code: error.code,
      message: error.message,
      status: error.status,
      closesConnection: error.closesConnection,
    };
  }
  return { code: 'internal', message: 'internal error', status: 500, closesConnection: false };
}
