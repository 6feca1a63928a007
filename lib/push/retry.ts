/**
 * Bounded retries for push providers: at most `attempts` tries; between
 * them, the provider's Retry-After when it gave one (capped at
 * `retryAfterCapMs`: a Retry-After past the cap gives up at once, rather
 * than hold the function), else exponential backoff with jitter.
 */

export interface RetryBounds {
  attempts: number;
  /** First backoff (ms), doubled each time. */
  baseDelayMs: number;
  /** Longest wait the fallback accepts between tries (Retry-After included). */
  retryAfterCapMs: number;
}

export const DEFAULT_RETRY: RetryBounds = { attempts: 3, baseDelayMs: 200, retryAfterCapMs: 5_000 };

/** What one try ended in. */
export type TryOutcome =
  | { kind: 'sent' }
  | { kind: 'gone'; reason: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'retry'; reason: string; retryAfterMs?: number };

export interface Attempted {
  kind: 'sent' | 'gone' | 'failed';
  reason?: string;
  /** Tries made (1 = no retry). */
  attempts: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seconds or an HTTP date (RFC 9110), as ms from now; undefined when absent or malformed. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1_000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export async function withRetries(
  once: () => Promise<TryOutcome>,
  bounds: RetryBounds,
  wait: (ms: number) => Promise<unknown> = sleep,
): Promise<Attempted> {
  for (let attempt = 1; ; attempt++) {
    const outcome = await once();
    if (outcome.kind !== 'retry') return { ...outcome, attempts: attempt };
    if (attempt >= bounds.attempts)
      return {
        kind: 'failed',
        reason: `${outcome.reason} (after ${attempt} tries)`,
        attempts: attempt,
      };
    const backoff = bounds.baseDelayMs * 2 ** (attempt - 1);
    const delay = outcome.retryAfterMs ?? backoff / 2 + Math.random() * (backoff / 2);
    if (delay > bounds.retryAfterCapMs)
      return {
        kind: 'failed',
        reason: `${outcome.reason}; Retry-After ${Math.ceil(delay / 1_000)} s is past the ${bounds.retryAfterCapMs} ms cap`,
        attempts: attempt,
      };
    await wait(delay);
  }
}
