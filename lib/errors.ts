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

/**
 * A publish whose `id` another attempt is still running (its lease, about the
 * publish timeout, has not run out). Nothing was sent; retry later for the
 * first attempt's result, or to deliver if that attempt died. A 5xx on
 * purpose: the invocation fails (it is not answered as a bad request), so
 * Lambda retries an asynchronous one, and one whose retries all come within
 * the lease ends in its on-failure destination rather than being dropped.
 */
export class PublishInProgressError extends PushwireError {
  override name = 'PublishInProgressError';
  constructor(id: string) {
    super(
      'in_progress',
      `a publish with id ${JSON.stringify(id)} is still in progress; retry later for its result`,
      503,
    );
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

/**
 * The connection's token has expired: nothing more is delivered to it, and
 * its next frame is answered with this and the socket is closed, so the
 * client reconnects with a fresh token.
 */
export class TokenExpiredError extends PushwireError {
  override name = 'TokenExpiredError';
  constructor() {
    super('token_expired', 'your token has expired: reconnect with a fresh one', 401, true, {
      closesConnection: true,
    });
  }
}

/**
 * The user's tokens were revoked (kick with revoke) at or after this
 * connection's was issued: like `token_expired`, answered and closed.
 */
export class TokenRevokedError extends PushwireError {
  override name = 'TokenRevokedError';
  constructor() {
    super('token_revoked', 'your token was revoked: reconnect with a new one', 401, true, {
      closesConnection: true,
    });
  }
}

/** A per-connection or per-user limit (topics, connections): the request is refused, nothing changes. */
export class LimitError extends PushwireError {
  override name = 'LimitError';
  constructor(code: 'too_many_topics' | 'too_many_connections', message: string) {
    super(code, message, 429);
  }
}

/**
 * Too many requests of one kind in a time window (replays). Its error frame
 * says when to retry (`retryAfter`, seconds) and, for a refused subscribe,
 * which `topic`, so a client can retry just that one.
 */
export class RateLimitedError extends PushwireError {
  override name = 'RateLimitedError';
  /** What the error frame adds: `retryAfter` (seconds) and a refused subscribe's `topic`. */
  readonly extra: { retryAfter: number; topic?: string };
  constructor(message: string, retryAfter: number, topic?: string) {
    super('rate_limited', message, 429);
    this.extra = topic === undefined ? { retryAfter } : { retryAfter, topic };
  }
}

/**
 * Something we depend on (the identity provider's JWKS) is unreachable: the
 * request may succeed if retried, unlike a refused token (401).
 */
export class UnavailableError extends PushwireError {
  override name = 'UnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', message, 503, true, options);
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
  /** Fields the error frame carries besides code and message. */
  extra?: { retryAfter: number; topic?: string };
} {
  if (error instanceof PushwireError && error.expose) {
    return {
      code: error.code,
      message: error.message,
      status: error.status,
      closesConnection: error.closesConnection,
      ...(error instanceof RateLimitedError && { extra: error.extra }),
    };
  }
  // Something failed on our side (Redis blocked or down, the management API
  // failing): what a frame did may be half done (a subscribe without its
  // answer, a replay cut short), so the socket is closed after the error
  // frame and any client reconnects, resuming and re-subscribing from its
  // cursors, rather than going on with a subscription it may not have.
  return { code: 'internal', message: 'internal error', status: 500, closesConnection: true };
}
