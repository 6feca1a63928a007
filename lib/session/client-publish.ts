import { randomUUID } from 'node:crypto';
import { topicAllowed } from '../auth/tokens.js';
import {
  ForbiddenError,
  PushwireError,
  RateLimitedError,
  TooLargeError,
  UnavailableError,
} from '../errors.js';
import type { Connection, ConnectionRegistry } from '../registry/types.js';

/**
 * A client's publish (issue 16), as `$default` handles it: the grant, the
 * size and rate limits and the optional hook are checked here; storing and
 * delivering is the `publish` function's, handed the request through Lambda
 * Invoke (`relay`). The delivery code (chunks, deliver workers, dedup) would
 * add ~14 KB to `$default`'s bundle, more than its size target leaves; this
 * way it adds the Invoke call (~1.4 KB) and one hop.
 */

/** The publish frame as parsed (lib/edge/protocol.ts). */
export interface PublishFrame {
  topic: string;
  data: unknown;
  id?: string | undefined;
  echo?: boolean | undefined;
  ephemeral?: boolean | undefined;
}

/** What `$default` hands the `publish` function (functions/publish.ts reads it). */
export interface ClientPublishEnvelope {
  clientPublish: {
    /** The publishing user: from the connection's token, never from the frame. */
    from: string;
    request: {
      topic: string;
      data: unknown;
      id: string;
      exceptConnectionId?: string;
      ephemeral?: true;
    };
  };
}

/** What the publish hook is called with. */
export interface HookRequest {
  topic: string;
  data: unknown;
  id: string;
  userId: string;
  connectionId: string;
  ephemeral: boolean;
}

/** What the hook answers: allow (maybe with replaced data) or deny (with a reason). */
export type HookAnswer = { allow: true; data?: unknown } | { allow: false; reason?: string };

export interface ClientPublishDeps {
  registry: Pick<ConnectionRegistry, 'countPublish'>;
  /** Runs the publish (the `publish` function); answers its result or `{ error }`. */
  relay: (envelope: ClientPublishEnvelope) => Promise<unknown>;
  ratePerSecond: number;
  /** Largest `data`, serialised, in bytes. */
  maxBytes: number;
  hook?: {
    /** Grant patterns of the topics it sees. */
    topics: string[];
    timeoutMs: number;
    call: (request: HookRequest) => Promise<unknown>;
  };
}

export interface PublishedFrame {
  type: 'published';
  topic: string;
  id: string;
  cursor?: string;
  duplicate?: true;
}

/** The hook refused the publish; its reason is the message. */
export class HookDeniedError extends PushwireError {
  override name = 'HookDeniedError';
  constructor(reason?: string) {
    super('hook_denied', reason ? `refused: ${reason}` : 'refused by the publish hook', 403);
  }
}

/** The hook failed, timed out or answered nonsense: the publish is refused, but not by it. */
export class HookFailedError extends PushwireError {
  override name = 'HookFailedError';
  constructor(why: string) {
    super('hook_failed', `the publish hook failed (${why}): nothing was published`, 502);
  }
}

export async function clientPublish(
  connection: Pick<Connection, 'connectionId' | 'userId' | 'publishTopics'>,
  frame: PublishFrame,
  deps: ClientPublishDeps,
): Promise<PublishedFrame> {
  if (!topicAllowed(frame.topic, connection.publishTopics ?? [])) {
    throw new ForbiddenError(`your token does not allow publishing to topic "${frame.topic}"`);
  }
  const size = Buffer.byteLength(JSON.stringify(frame.data));
  if (size > deps.maxBytes) {
    throw new TooLargeError(`data is ${size} bytes; a client may publish at most ${deps.maxBytes}`);
  }
  const { count, resetMs } = await deps.registry.countPublish(connection.connectionId);
  if (count > deps.ratePerSecond) {
    throw new RateLimitedError(
      `at most ${deps.ratePerSecond} publishes per connection per second: try again later`,
      Math.max(1, Math.ceil(resetMs / 1000)),
      frame.topic,
    );
  }
  // Without an id a retry cannot be told from a new message: one is made up
  // (the client library always sends its own, reused by its retries).
  const id = frame.id ?? randomUUID();
  let data = frame.data;
  const hook = deps.hook;
  if (hook && topicAllowed(frame.topic, hook.topics)) {
    const answer = await askHook(hook, {
      topic: frame.topic,
      data,
      id,
      userId: connection.userId,
      connectionId: connection.connectionId,
      ephemeral: frame.ephemeral === true,
    });
    if (!answer.allow) throw new HookDeniedError(answer.reason);
    if ('data' in answer && answer.data !== undefined) data = answer.data;
  }
  let result: unknown;
  try {
    result = await deps.relay({
      clientPublish: {
        from: connection.userId,
        request: {
          topic: frame.topic,
          data,
          id,
          // Echo is the default: the sender sees its message in order with the others.
          ...(frame.echo === false && { exceptConnectionId: connection.connectionId }),
          ...(frame.ephemeral && { ephemeral: true }),
        },
      },
    });
  } catch (error) {
    throw new UnavailableError(
      'the publish could not be completed: retry with the same id (it is delivered once)',
      { cause: error },
    );
  }
  return publishedFrame(frame.topic, id, result);
}

/** The `publish` function's answer as the ack, or its refusal as the error it names. */
function publishedFrame(topic: string, id: string, result: unknown): PublishedFrame {
  const r = (result ?? {}) as {
    error?: { code?: unknown; message?: unknown };
    id?: unknown;
    cursor?: unknown;
    duplicate?: unknown;
  };
  if (r.error) {
    const code = String(r.error.code);
    const message = String(r.error.message);
    // Refusals of the request itself (the hook's replaced data too large, say).
    throw code === 'too_large' ? new TooLargeError(message) : new PushwireError(code, message, 400);
  }
  if (r.id !== id) {
    throw new UnavailableError('the publish answered unexpectedly: retry with the same id');
  }
  return {
    type: 'published',
    topic,
    id,
    ...(typeof r.cursor === 'string' && { cursor: r.cursor }),
    ...(r.duplicate === true && { duplicate: true }),
  };
}

/** Calls the hook within its timeout; anything but a well-formed answer is a failure. */
async function askHook(
  hook: NonNullable<ClientPublishDeps['hook']>,
  request: HookRequest,
): Promise<HookAnswer> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HookFailedError(`no answer within ${hook.timeoutMs} ms`)),
      hook.timeoutMs,
    );
  });
  let answer: unknown;
  try {
    answer = await Promise.race([hook.call(request), timeout]);
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
  if (!a.allow) {
    return {
      allow: false,
      ...(typeof a.reason === 'string' && { reason: a.reason.slice(0, 500) }),
    };
  }
  return { allow: true, ...('data' in a && { data: a.data }) };
}
