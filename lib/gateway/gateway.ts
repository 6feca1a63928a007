/** The outcome of one call to a connection: done, or the connection no longer exists. */
export type GatewayResult = 'ok' | 'gone';

/**
 * The gateway port: post to or close one connection. A 410 is a value, not an
 * exception, because a vanished connection is an ordinary event in fan-out.
 * Anything else (a 4xx, or throttling, a 5xx, a reset or a timeout that
 * outlived its retries) throws.
 */
export interface Gateway {
  /**
   * `deadline` (ms since 1970): no attempt starts, and none runs, past it
   * (the invocation's end, less what the caller needs to answer).
   */
  post(
    endpoint: string,
    connectionId: string,
    data: Uint8Array,
    deadline?: number,
  ): Promise<GatewayResult>;
  close(endpoint: string, connectionId: string, deadline?: number): Promise<GatewayResult>;
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
  /**
   * Told of each call about to be retried, with the error it answers (the
   * ThrottledRetries metric counts them all; pacing lowers its rate only for
   * a throttle, never for a 5xx or a timeout).
   */
  onThrottle?: (error: unknown) => void;
}

/**
 * One management API call: 'ok', 'gone' on a 410; throttling and transient
 * failures (5xx, resets, timeouts) retried with exponential backoff and full
 * jitter within a bound on attempts and time; anything else (or a failure
 * that outlived the bounds) is thrown. The first attempt is a plain promise
 * chain: no async frame per post on the fan-out's hot path, where nearly
 * every call succeeds at once.
 *
 * The time budget starts when the first attempt has failed, not when it
 * started: an attempt that timed out has used the whole request timeout
 * (MANAGEMENT_API_TIMEOUT_MS, as long as the budget by default), and counting
 * it would leave no retry for exactly the failure most worth one. `deadline`
 * (the invocation's) bounds every retry whatever the budget says.
 */
export function callWithRetry(
  send: () => Promise<unknown>,
  policy: RetryPolicy,
  deadline?: number,
): Promise<GatewayResult> {
  return send().then(ok, (error: unknown) => retry(error, send, policy, Date.now(), deadline));
}

const ok = (): GatewayResult => 'ok';

async function retry(
  first: unknown,
  send: () => Promise<unknown>,
  policy: RetryPolicy,
  started: number,
  deadline = Number.POSITIVE_INFINITY,
): Promise<GatewayResult> {
  const { throttleMaxAttempts, throttleBudgetMs, throttleBaseDelayMs, sleep, random } = policy;
  let error = first;
  for (let attempt = 1; ; attempt++) {
    if (isGone(error)) return 'gone';
    if (!isRetryable(error) || attempt >= throttleMaxAttempts) throw error;
    // Full jitter: spreads retries of a throttled fan-out instead of
    // letting them hit the account limit again in lockstep.
    const delay = Math.floor(random() * throttleBaseDelayMs * 2 ** (attempt - 1));
    const at = Date.now() + delay;
    if (at - started > throttleBudgetMs || at >= deadline) throw error;
    policy.onThrottle?.(error);
    await sleep(delay);
    try {
      await send();
      return 'ok';
    } catch (next) {
      error = next;
    }
  }
}
