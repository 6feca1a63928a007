import * as v from 'valibot';
import { UserId } from '../edge/protocol.js';
import { ValidationError } from '../errors.js';
import type { PublishOrigin } from './publish.js';

/**
 * A client's publish as `$default` hands it to the `publish` function
 * (lib/session/client-publish.ts builds it): the request, and the user it
 * came from, taken from the connection's token. Only principals allowed to
 * invoke `publish` (`$default`'s role, and services) can send one.
 */
const Envelope = v.strictObject({
  clientPublish: v.strictObject({ from: UserId, request: v.record(v.string(), v.unknown()) }),
});

/** The request and origin of a relayed client publish; undefined for any other event. */
export function relayedClientPublish(
  event: unknown,
): { request: unknown; origin: PublishOrigin } | undefined {
  if (typeof event !== 'object' || event === null || !('clientPublish' in event)) return undefined;
  const parsed = v.safeParse(Envelope, event);
  if (!parsed.success) throw new ValidationError('invalid client publish envelope');
  const { from, request } = parsed.output.clientPublish;
  return { request, origin: { from } };
}
