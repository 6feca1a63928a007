import { topicAllowed } from '../auth/tokens.js';
import { PushwireError } from '../errors.js';

/**
 * The optional publish hook (issue 16): a deployment's function that every
 * client publish to matching topics passes through before it is stored and
 * delivered (validate, moderate, enrich). Called by the `publish` function
 * (Lambda Invoke, signed) with a HookRequest; it answers `{"allow":true}`,
 * `{"allow":true,"data":…}` (the data replaced) or `{"allow":false,
 * "reason":"…"}`. A hook that fails, times out or answers anything else
 * refuses the publish with `hook_failed`, which a client can tell from a
 * refusal (`hook_denied`).
 */

export interface HookRequest {
  topic: string;
  data: unknown;
  id: string;
  userId: string;
  connectionId: string;
  ephemeral: boolean;
}

export interface PublishHook {
  /** Grant patterns of the topics it sees (PUBLISH_HOOK_TOPICS). */
  topics: string[];
  timeoutMs: number;
  /** Invokes the hook: its parsed answer; throws when it failed. */
  call: (request: HookRequest, timeoutMs: number) => Promise<unknown>;
}

/** The hook refused the publish; its reason is the message. */
export class HookDeniedError extends PushwireError {
  override name = 'HookDeniedError';
  constructor(reason?: string) {
    super('hook_denied', reason ? `refused: ${reason}` : 'refused by the publish hook', 403);
  }
}

/** The hook failed, timed out or answered nonsense: refused, but not by the hook. */
export class HookFailedError extends PushwireError {
  override name = 'HookFailedError';
  constructor(why: string) {
    super('hook_failed', `the publish hook failed (${why}): nothing was published`, 424);
  }
}

/**
 * Passes a client publish through the hook, when one is configured for its
 * topic: the data to publish (the client's, or the hook's replacement), or
 * a HookDeniedError / HookFailedError.
 */
export async function applyHook(
  hook: PublishHook | undefined,
  request: HookRequest,
): Promise<unknown> {
  if (!hook || !topicAllowed(request.topic, hook.topics)) return request.data;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HookFailedError(`no answer within ${hook.timeoutMs} ms`)),
      hook.timeoutMs,
    );
  });
  let answer: unknown;
  try {
    answer = await Promise.race([hook.call(request, hook.timeoutMs), timeout]);
  } catch (error) {
    if (error instanceof HookFailedError) throw error;
    throw new HookFailedError(error instanceof Error ? error.message.slice(0, 200) : 'error');
  } finally {
    clearTimeout(timer);
  }
  const a = answer as { allow?: unknown; reason?: unknown; data?: unknown } | null;
  if (typeof a !== 'object' || a === null || typeof a.allow !== 'boolean') {
    throw new HookFailedError('its answer has no boolean "allow"');
  }
  if (!a.allow)
    throw new HookDeniedError(typeof a.reason === 'string' ? a.reason.slice(0, 500) : undefined);
  return a.data === undefined ? request.data : a.data;
}
