/** The outcome of one call to a connection: done, or the connection no longer exists. */
export type GatewayResult = 'ok' | 'gone';

/**
 * The gateway port: post to or close one connection. A 410 is a value, not an
 * exception, because a vanished connection is an ordinary event in fan-out.
 * Anything else (a 4xx, or throttling, a 5xx, a reset or a timeout that
 * outlived its retries) throws.
 */
export interface Gateway {
  post(endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult>;
  close(endpoint: string, connectionId: string): Promise<GatewayResult>;
}

export function isGone(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  // Real API Gateway says GoneException; serverless-offline's bare 410 reaches
  // the SDK as an "Unknown" error carrying only the status code.
  return e?.name === 'GoneException' || e?.$metadata?.httpStatusCode === 410;
}

export function isThrottled(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    e?.name === 'LimitExceededException' ||
    e?.name === 'ThrottlingException' ||
    e?.$metadata?.httpStatusCode === 429
  );
}

/** Socket-level failures worth another attempt: the peer reset or dropped the connection, or no answer came. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);
const TRANSIENT_NAMES = new Set([
  // The SDK's (and our signed client's) name for a request that got no answer in time.
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalServerErrorException',
  'ServiceUnavailableException',
]);

/**
 * A failure that another attempt may not meet: a 5xx from the management API,
 * a reset or refused socket, or no answer within the request timeout. A post
 * that timed out may have landed; retrying it can deliver the frame twice,
 * which the at-least-once promise allows (clients dedupe by message id).
 */
export function isTransient(error: unknown): boolean {
  const e = error as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  if (e === null || typeof e !== 'object') return false;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500 && status <= 599) return true;
  if (e.name !== undefined && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.code !== undefined && TRANSIENT_CODES.has(e.code)) return true;
  return e.message === 'socket hang up';
}

/** Worth retrying: throttled, or transient. */
export const isRetryable = (error: unknown): boolean => isThrottled(error) || isTransient(error);

export const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Bounds of the retries of one management API call. The `throttle*` names
 * predate the retrying of transient failures; they bound both alike.
 */
export interface RetryPolicy {
  throttleMaxAttempts: number;
  throttleBudgetMs: number;
  throttleBaseDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

/**
 * One management API call: 'ok', 'gone' on a 410; throttling and transient
 * failures (5xx, resets, timeouts) retried with exponential backoff and full
 * jitter within a bound on attempts and time; anything else (or a failure
 * that outlived the bounds) is thrown.
 */
export async function callWithRetry(
  send: () => Promise<unknown>,
  policy: RetryPolicy,
): Promise<GatewayResult> {
  const { throttleMaxAttempts, throttleBudgetMs, throttleBaseDelayMs, sleep, random } = policy;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await send();
      return 'ok';
    } catch (error) {
      if (isGone(error)) return 'gone';
      if (!isRetryable(error) || attempt >= throttleMaxAttempts) throw error;
      // Full jitter: spreads retries of a throttled fan-out instead of
      // letting them hit the account limit again in lockstep.
      const delay = Math.floor(random() * throttleBaseDelayMs * 2 ** (attempt - 1));
      if (Date.now() - started + delay > throttleBudgetMs) throw error;
      await sleep(delay);
    }
  }
}
