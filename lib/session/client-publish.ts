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
 * A client's publish (issue 16), as `$default` handles it: the grant and the
 * size and rate limits are checked here; the publish hook, storing and
 * delivering are the `publish` function's, handed the request through
 * Lambda Invoke (`relay`; lib/delivery/client-relay.ts). In `$default`
 * itself the delivery code (chunks, deliver workers, dedup) would add ~14 KB
 * to a bundle with ~6 KB left under its target; this way it adds the Invoke
 * call and one hop.
 */

/** The publish frame as parsed (lib/protocol/frames.ts). */
export interface PublishFrame {
  topic: string;
  data: unknown;
  id?: string | undefined;
  echo?: boolean | undefined;
  ephemeral?: boolean | undefined;
}

/** What `$default` hands the `publish` function. */
export interface ClientPublishEnvelope {
  clientPublish: {
    /** The publishing user: from the connection's token, never from the frame. */
    from: string;
    connectionId: string;
    request: {
      topic: string;
      data: unknown;
      id: string;
      exceptConnectionId?: string;
      ephemeral?: true;
    };
  };
}

export interface ClientPublishDeps {
  registry: Pick<ConnectionRegistry, 'countPublish'>;
  /** Runs the publish (the `publish` function): its result, or `{ error: { code, message } }`. */
  relay: (envelope: ClientPublishEnvelope) => Promise<unknown>;
  /** Publishes per connection per window of `windowSeconds`. */
  rate: number;
  windowSeconds: number;
  /** Largest `data`, serialised, in bytes. */
  maxBytes: number;
}

export interface PublishedFrame {
  type: 'published';
  topic: string;
  id: string;
  cursor?: string;
  duplicate?: true;
}

export async function clientPublish(
  connection: Pick<Connection, 'connectionId' | 'userId' | 'publishTopics'>,
  frame: PublishFrame,
  deps: ClientPublishDeps,
): Promise<PublishedFrame> {
  const { topic } = frame;
  if (!topicAllowed(topic, connection.publishTopics ?? [])) {
    throw new ForbiddenError(`your token does not allow publishing to "${topic}"`);
  }
  const size = Buffer.byteLength(JSON.stringify(frame.data));
  if (size > deps.maxBytes) {
    throw new TooLargeError(`data is ${size} bytes, over ${deps.maxBytes}`);
  }
  const { count, resetMs } = await deps.registry.countPublish(
    connection.connectionId,
    deps.windowSeconds * 1000,
  );
  if (count > deps.rate) {
    throw new RateLimitedError(
      `at most ${deps.rate} publishes per connection per ${deps.windowSeconds} s`,
      Math.ceil(resetMs / 1000) || 1,
      topic,
    );
  }
  // Without an id a retry cannot be told from a new message: one is made up
  // (the client library always sends its own, reused by its retries).
  const id = frame.id ?? randomUUID();
  let r: {
    error?: { code: string; message: string };
    id?: unknown;
    cursor?: unknown;
    duplicate?: unknown;
  };
  let failure: unknown;
  try {
    r = ((await deps.relay({
      clientPublish: {
        from: connection.userId,
        connectionId: connection.connectionId,
        request: {
          topic,
          data: frame.data,
          id,
          // Echo is the default: the sender sees its message in order with the others.
          ...(frame.echo === false && { exceptConnectionId: connection.connectionId }),
          ...(frame.ephemeral && { ephemeral: true }),
        },
      },
    })) ?? {}) as typeof r;
  } catch (error) {
    failure = error;
    r = {};
  }
  // A refusal: the hook's (hook_denied, hook_failed) or the request's (too_large).
  if (r.error) throw new PushwireError(r.error.code, r.error.message, 400);
  // Failed, or an answer that is not this publish's: the client retries with the id.
  if (r.id !== id)
    throw new UnavailableError('publish failed: retry with the same id', { cause: failure });
  return {
    type: 'published',
    topic,
    id,
    ...(typeof r.cursor === 'string' && { cursor: r.cursor }),
    ...(r.duplicate === true && { duplicate: true }),
  };
}
