/** Every error the SDK throws: a stable `code` from pushwire, or one of its own. */
export class PushwireError extends Error {
  override name = 'PushwireError';
  readonly code: string;
  readonly status: number | undefined;

  constructor(code: string, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options?.status;
  }
}

/** pushwire refused the request as malformed; sending it again will not help. */
export class InvalidRequestError extends PushwireError {
  override name = 'InvalidRequestError';
  constructor(message: string, options?: { status?: number }) {
    super('invalid_request', message, options);
  }
}

/** The message is over the deployment's MAX_PUBLISH_BYTES, or the request over its way in's limit. */
export class TooLargeError extends PushwireError {
  override name = 'TooLargeError';
  constructor(message: string, options?: { status?: number }) {
    super('too_large', message, options);
  }
}

/** Every attempt failed for a reason worth retrying (throttling, errors, network). */
export class UnavailableError extends PushwireError {
  override name = 'UnavailableError';
  readonly attempts: number;
  constructor(message: string, attempts: number, options?: { status?: number; cause?: unknown }) {
    super('unavailable', message, options);
    this.attempts = attempts;
  }
}

export function toError(reply: { code: string; message: string; status?: number }): PushwireError {
  const options = reply.status === undefined ? undefined : { status: reply.status };
  if (reply.code === 'invalid_request') return new InvalidRequestError(reply.message, options);
  if (reply.code === 'too_large') return new TooLargeError(reply.message, options);
  return new PushwireError(reply.code, reply.message, options);
}
