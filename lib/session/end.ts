import type { DisconnectReason, EventSink } from '../events/types.js';
import type { Connection, ConnectionRegistry } from '../registry/types.js';

/**
 * Forgets a connection and, if this call removed it, reports why
 * (`disconnected`). Whoever removes the records reports: `$disconnect`, a
 * kick, a token expiry, a post that found it gone; so each connection's end
 * is reported once, by the first to see it.
 */
export async function endConnection(
  deps: { registry: ConnectionRegistry; events?: EventSink | undefined },
  connectionId: string,
  reason: DisconnectReason,
): Promise<Connection | null> {
  const connection = await deps.registry.remove(connectionId);
  if (connection)
    deps.events?.emit('disconnected', { connectionId, userId: connection.userId, reason });
  return connection;
}
