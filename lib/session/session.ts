import { type Identity, type TokenVerifier, topicAllowed } from '../auth/tokens.js';
import { encodeFrame, parseClientFrame, type ServerFrame } from '../edge/protocol.js';
import { ForbiddenError, UnknownConnectionError, ValidationError } from '../errors.js';
import type { Gateway } from '../gateway/gateway.js';
import { isCursor } from '../registry/cursor.js';
import type { Audience, Connection, ConnectionRegistry } from '../registry/types.js';
import { replay } from './resume.js';

/** What the WebSocket handlers need, injected so tests hand in real Redis or mocked AWS. */
export interface SessionDeps {
  registry: ConnectionRegistry;
  gateway: Gateway;
  verifyToken: TokenVerifier;
  /** Fixed callback URL (custom domain, serverless-offline); else derived from the event. */
  callbackUrl?: string;
}

export interface ConnectInput {
  connectionId: string;
  domainName: string;
  stage: string;
  token?: string;
  since?: string;
  connectedAt?: number;
}

/** Where the management API of the API holding a connection lives. */
export function callbackEndpoint(domainName: string, stage: string, callbackUrl?: string): string {
  return callbackUrl ?? `https://${domainName}/${stage}`;
}

/** `$connect`: verify the token, then record the connection. A refused token writes nothing. */
export async function connect(
  input: ConnectInput,
  deps: Pick<SessionDeps, 'registry' | 'verifyToken' | 'callbackUrl'>,
): Promise<Identity & { endpoint: string }> {
  const identity = await deps.verifyToken(input.token);
  if (input.since !== undefined && !isCursor(input.since)) {
    throw new ValidationError('since must be a cursor like "1732752000000-0"', 'invalid_cursor');
  }
  const endpoint = callbackEndpoint(input.domainName, input.stage, deps.callbackUrl);
  await deps.registry.register({
    connectionId: input.connectionId,
    userId: identity.userId,
    endpoint,
    connectedAt: input.connectedAt ?? Date.now(),
    allowedTopics: identity.topics,
    ...(input.since !== undefined && { pendingSince: input.since }),
  });
  return { ...identity, endpoint };
}

/** `$disconnect`: forget the connection. Idempotent; TTLs cover a disconnect that never comes. */
export async function disconnect(
  connectionId: string,
  deps: Pick<SessionDeps, 'registry'>,
): Promise<boolean> {
  return (await deps.registry.remove(connectionId)) !== null;
}

async function post(
  deps: Pick<SessionDeps, 'gateway'>,
  connection: Connection,
  frame: ServerFrame,
): Promise<void> {
  await deps.gateway.post(
    connection.endpoint,
    connection.connectionId,
    Buffer.from(encodeFrame(frame)),
  );
}

/** Replays history to a connection, then makes it live; a connection gone meanwhile is an error. */
async function catchUp(
  deps: Pick<SessionDeps, 'registry' | 'gateway'>,
  audience: Audience,
  connection: Connection,
  since: string,
): Promise<boolean> {
  const outcome = await replay(audience, connection, since, deps);
  if (outcome.gone) throw new UnknownConnectionError(connection.connectionId);
  return outcome.recovered;
}

/**
 * `$default`: one client frame in, the reply frame out. Bad frames are
 * answered with an error and change nothing; good ones renew the TTLs.
 */
export async function handleFrame(
  connectionId: string,
  body: string | undefined,
  deps: Pick<SessionDeps, 'registry' | 'gateway'>,
): Promise<ServerFrame> {
  const frame = parseClientFrame(body);
  const connection = await deps.registry.touch(connectionId);
  if (!connection) throw new UnknownConnectionError(connectionId);

  // A `?since=` given at connect is replayed here, at the first frame: API
  // Gateway lets nobody post to a connection until `$connect` has returned.
  // Frames sent right after connecting are handled side by side and each may
  // have read it: only the one that clears it replays (else all would, doubling
  // every message, and the losers would find the member gone from resuming).
  if (
    connection.pendingSince !== undefined &&
    (await deps.registry.clearPendingSince(connectionId))
  ) {
    const audience = deps.registry.userAudience(connection.userId);
    const recovered = await catchUp(deps, audience, connection, connection.pendingSince);
    await post(deps, connection, { type: 'resumed', recovered });
  }

  switch (frame.action) {
    case 'ping':
      // The connection's own id, so an app can pass it as a publish's
      // `exceptConnectionId` (Pusher's socket_id); the client library pings first.
      return { type: 'pong', connectionId };
    case 'subscribe': {
      if (!topicAllowed(frame.topic, connection.allowedTopics)) {
        throw new ForbiddenError(`your token does not allow topic "${frame.topic}"`);
      }
      if (frame.since === undefined) {
        await deps.registry.subscribe(connection, frame.topic, false);
        return { type: 'subscribed', topic: frame.topic };
      }
      await deps.registry.subscribe(connection, frame.topic, true);
      await post(deps, connection, { type: 'subscribed', topic: frame.topic });
      const audience = deps.registry.topicAudience(frame.topic);
      const recovered = await catchUp(deps, audience, connection, frame.since);
      return { type: 'resumed', topic: frame.topic, recovered };
    }
    case 'unsubscribe':
      await deps.registry.unsubscribe(connection, frame.topic);
      return { type: 'unsubscribed', topic: frame.topic };
    case 'resume': {
      const audience = deps.registry.userAudience(connection.userId);
      await deps.registry.beginResume(audience, connection);
      return { type: 'resumed', recovered: await catchUp(deps, audience, connection, frame.since) };
    }
  }
}
