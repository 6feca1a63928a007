import pMap from 'p-map';
import * as v from 'valibot';
import { MAX_TARGETS } from '../constants.js';
import { type FanoutLogger, reason } from '../delivery/fanout.js';
import { ValidationError } from '../errors.js';
import type { EventSink } from '../events/types.js';
import type { Gateway } from '../gateway/gateway.js';
import { describeIssues, encodeFrame, UserId } from '../protocol/frames.js';
import type { ConnectionRegistry } from '../registry/types.js';
import { endConnection } from '../session/end.js';

const KickRequestSchema = v.pipe(
  v.strictObject({
    userId: v.optional(UserId),
    revoke: v.optional(v.boolean('revoke must be true or false')),
    connectionIds: v.optional(
      v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1), v.maxLength(MAX_TARGETS)),
    ),
  }),
  v.check(
    (r) => (r.userId === undefined) !== (r.connectionIds === undefined),
    'give exactly one of userId, connectionIds',
  ),
  v.check((r) => !r.revoke || r.userId !== undefined, 'revoke needs a userId'),
);

export interface KickResult {
  /** The user's tokens issued until now are refused at `$connect` (kick with `revoke: true`). */
  revoked?: true;
  connections: number;
  closed: number;
  gone: number;
  failed: number;
}

/**
 * Server-side disconnect (log-out, token revocation, bans): closes each
 * connection through the management API and removes its records. Records are
 * removed even when the close fails, so a banned connection receives no more
 * pushes; API Gateway's own $disconnect for it is then a no-op.
 */
export async function kick(
  input: unknown,
  deps: {
    registry: ConnectionRegistry;
    gateway: Gateway;
    logger: FanoutLogger;
    /** Reports each connection kicked (`disconnected`, reason `kick`). */
    events?: EventSink;
    /**
     * How long a revocation must be remembered: as long as a token issued
     * before it could still be valid (JWT_MAX_TOKEN_AGE + clock tolerance).
     */
    revocationTtlSeconds?: number;
    now?: () => number;
  },
): Promise<KickResult> {
  const parsed = v.safeParse(KickRequestSchema, input);
  if (!parsed.success)
    throw new ValidationError(`invalid kick request: ${describeIssues(parsed.issues)}`);
  const { userId, connectionIds, revoke } = parsed.output;
  // Revoke before looking the user up: a $connect adds its member only after
  // checking the revocation in the same script (admit.lua, the user's slot),
  // so it is either found below and closed, or refused. A connection this
  // kick cannot remove or close is refused at its next frame.
  if (revoke && userId !== undefined) {
    if (deps.revocationTtlSeconds === undefined) throw new Error('kick needs revocationTtlSeconds');
    await deps.registry.revokeUser(userId, (deps.now ?? Date.now)(), deps.revocationTtlSeconds);
  }
  const targets =
    userId !== undefined
      ? (await deps.registry.lookupUser(userId)).map((r) => r.connectionId)
      : [...new Set(connectionIds)];
  const farewell = Buffer.from(
    encodeFrame(
      revoke
        ? {
            type: 'error',
            code: 'revoked',
            message: "this user's tokens were revoked: sign in again",
          }
        : { type: 'error', code: 'kicked', message: 'the server closed this connection' },
    ),
  );
  const result: KickResult = {
    ...(revoke && { revoked: true as const }),
    connections: targets.length,
    closed: 0,
    gone: 0,
    failed: 0,
  };
  await pMap(
    targets,
    async (connectionId) => {
      const connection = await endConnection(deps, connectionId, 'kick');
      if (!connection) {
        result.gone++;
        return;
      }
      try {
        // API Gateway's DeleteConnection carries no close code or reason, so
        // the reason goes first as a last frame (docs/protocol.md PW-X2).
        // Best effort: a client that misses it still sees the close.
        await deps.gateway.post(connection.endpoint, connectionId, farewell);
      } catch {}
      try {
        const outcome = await deps.gateway.close(connection.endpoint, connectionId);
        if (outcome === 'ok') result.closed++;
        else result.gone++;
      } catch (error) {
        result.failed++;
        deps.logger.warn('could not close connection', { connectionId, reason: reason(error) });
      }
    },
    { concurrency: 32 },
  );
  return result;
}
