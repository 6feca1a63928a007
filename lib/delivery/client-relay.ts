import * as v from 'valibot';
import { ValidationError } from '../errors.js';
import { UserId } from '../protocol/frames.js';
import type { PublishOrigin } from './publish.js';
import { applyHook, type PublishHook } from './publish-hook.js';

/**
 * A client's publish as `$default` hands it to the `publish` function
 * (lib/session/client-publish.ts builds it): the request, the user it came
 * from (from the connection's token) and the connection. Only principals
 * allowed to invoke `publish` (`$default`'s role, and services) can send one.
 */
const Envelope = v.strictObject({
  clientPublish: v.strictObject({
    from: UserId,
    connectionId: v.pipe(v.string(), v.minLength(1)),
    request: v.looseObject({ topic: v.string(), id: v.string(), data: v.unknown() }),
  }),
});

export type Relayed = v.InferOutput<typeof Envelope>['clientPublish'];

/** A relayed client publish; undefined for any other event (a service's request). */
export function relayedClientPublish(event: unknown): Relayed | undefined {
  if (typeof event !== 'object' || event === null || !('clientPublish' in event)) return undefined;
  const parsed = v.safeParse(Envelope, event);
  if (!parsed.success) throw new ValidationError('invalid client publish envelope');
  return parsed.output.clientPublish;
}

/**
 * The request to publish after the hook (if one sees its topic), and its
 * origin. A retry of the same id passes the hook again (its answer then
 * matters only if the first attempt did not complete): a hook should answer
 * the same message alike.
 */
export async function hookedRequest(
  relayed: Relayed,
  hook: PublishHook | undefined,
): Promise<{ request: Record<string, unknown>; origin: PublishOrigin }> {
  const { request, from, connectionId } = relayed;
  const data = await applyHook(hook, {
    topic: request.topic,
    data: request.data,
    id: request.id,
    userId: from,
    connectionId,
    ephemeral: request['ephemeral'] === true,
  });
  return { request: { ...request, data }, origin: { from } };
}
