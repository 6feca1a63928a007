import { PushwireError, UnavailableError } from '../errors.js';
import type { ReplyFrame } from '../protocol/frames.js';

/** Hands a request to the `devices` function (Lambda Invoke): its answer. */
export type DevicesRelay = (request: unknown) => Promise<unknown>;

/**
 * push_register / push_unregister (PW-N1): always for the connection's own
 * user (a frame cannot name another; its shape is strict). The `devices`
 * function validates the subscription or token and talks to SNS, so
 * `$default` carries none of that.
 */
export async function pushDevices(
  userId: string,
  frame: {
    action: 'push_register' | 'push_unregister';
    id?: string | undefined;
    webpush?: unknown;
    mobile?: unknown;
  },
  relay: DevicesRelay,
): Promise<ReplyFrame> {
  const { action, ref: _ref, ...target } = frame as typeof frame & { ref?: string };
  type Answer = {
    error?: { code: string; message: string };
    registered?: { id: string; expiresAt: number };
    evicted?: { id: string }[];
    removed?: boolean;
    id?: string;
  };
  let r: Answer;
  try {
    r = ((await relay({
      action: action === 'push_register' ? 'register' : 'remove',
      userId,
      ...target,
    })) ?? {}) as Answer;
  } catch (error) {
    throw new UnavailableError('push device registration failed: try again', { cause: error });
  }
  if (r.error) throw new PushwireError(r.error.code, r.error.message, 400);
  if (r.registered)
    return {
      type: 'push_registered',
      id: r.registered.id,
      expiresAt: r.registered.expiresAt,
      ...(r.evicted?.length && { evicted: r.evicted.map((d) => d.id) }),
    };
  if (typeof r.id === 'string')
    return { type: 'push_unregistered', id: r.id, removed: r.removed === true };
  throw new UnavailableError('push device registration failed: try again');
}
