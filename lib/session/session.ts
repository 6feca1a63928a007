import { type Identity, type TokenVerifier, topicAllowed } from '../auth/tokens.js';
import { callbackEndpoint } from '../edge/events.js';
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
  /** Time bounds of a replay (defaults: DEFAULT_REPLAY). */
  replay?: ReplayBounds;
  /** Time this invocation has left (Lambda's context.getRemainingTimeInMillis). */
  remainingMs?: () => number;
  logger?: { warn(message: string, extra: Record<string, unknown>): void };
  now?: () => number;
}

export interface ReplayBounds {
  /** Longest a replay may run before it gives up and makes the connection live. */
  budgetMs: number;
  /**
   * Added to the budget for the lease: a post started just before the
   * deadline may finish, and clocks of functions may differ a little.
   */
  graceMs: number;
}

export const DEFAULT_REPLAY: ReplayBounds = { budgetMs: 5_000, graceMs: 2_000 };

/** Left to the handler after the replay's deadline, to answer and close the invocation. */
const ANSWER_MARGIN_MS = 1_000;

export interface ConnectInput {
  connectionId: string;
  domainName: string;
  stage: string;
  token?: string;
  since?: string;
  connectedAt?: number;
}

export { callbackEndpoint };

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

type FrameDeps = Pick<
  SessionDeps,
  'registry' | 'gateway' | 'replay' | 'remainingMs' | 'logger' | 'now'
>;

/** When a replay starting now must stop, and when its lease ends. */
function replayWindow(deps: FrameDeps): { deadline: number; leaseEnd: number } {
  const { budgetMs, graceMs } = deps.replay ?? DEFAULT_REPLAY;
  const now = (deps.now ?? Date.now)();
  const left = deps.remainingMs ? deps.remainingMs() - ANSWER_MARGIN_MS : budgetMs;
  const deadline = now + Math.max(0, Math.min(budgetMs, left));
  return { deadline, leaseEnd: deadline + graceMs };
}

/**
 * Replays history to a connection, then makes it live. Whatever happens, the
 * connection ends up live (or, if even that failed, live at its lease's end):
 * the reply says whether everything was replayed and, if the replay stopped
 * early, where to resume from. A connection gone meanwhile is an error.
 */
async function catchUp(
  deps: FrameDeps,
  audience: Audience,
  connection: Connection,
  since: string,
  window: { deadline: number; leaseEnd: number } | 'begin',
): Promise<{ recovered: boolean; cursor?: string }> {
  let bounds = window;
  if (bounds === 'begin') {
    bounds = replayWindow(deps);
    if (!(await deps.registry.beginResume(audience, connection, bounds.leaseEnd))) {
      throw new UnknownConnectionError(connection.connectionId);
    }
  }
  const outcome = await replay(
    audience,
    connection,
    since,
    { ...deps, ...(deps.now && { now: deps.now }) },
    bounds.deadline,
  );
  if (outcome.gone) throw new UnknownConnectionError(connection.connectionId);
  if (outcome.complete) return { recovered: outcome.recovered };
  deps.logger?.warn('replay stopped before catching up; the connection is live again', {
    connectionId: connection.connectionId,
    stream: `${audience.kind}:${audience.name}`,
    replayed: outcome.replayed,
    cursor: outcome.cursor,
    reason:
      outcome.stoppedBy instanceof Error ? outcome.stoppedBy.message : String(outcome.stoppedBy),
  });
  return { recovered: false, cursor: outcome.cursor };
}

/**
 * `$default`: one client frame in, the reply frame out. Bad frames are
 * answered with an error and change nothing; good ones renew the TTLs.
 */
export async function handleFrame(
  connectionId: string,
  body: string | undefined,
  deps: FrameDeps,
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
    // beginResume again: renews the lease taken at connect (the first frame
    // may come late), and takes the member back if that lease ran out.
    const result = await catchUp(deps, audience, connection, connection.pendingSince, 'begin');
    // Not fatal to the frame: the connection is live whatever this says.
    await post(deps, connection, { type: 'resumed', ...result }).catch((error: unknown) =>
      deps.logger?.warn('could not post resumed', {
        connectionId,
        reason: error instanceof Error ? error.message : String(error),
      }),
    );
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
        if (!(await deps.registry.subscribe(connection, frame.topic))) {
          throw new UnknownConnectionError(connectionId);
        }
        return { type: 'subscribed', topic: frame.topic };
      }
      const window = replayWindow(deps);
      if (!(await deps.registry.subscribe(connection, frame.topic, window.leaseEnd))) {
        throw new UnknownConnectionError(connectionId);
      }
      const audience = deps.registry.topicAudience(frame.topic);
      // From here the member is resuming: whatever fails, catchUp makes it live.
      const posted = await post(deps, connection, { type: 'subscribed', topic: frame.topic }).then(
        () => true,
        () => false,
      );
      const result = posted
        ? await catchUp(deps, audience, connection, frame.since, window)
        : await giveUp(deps, audience, connection, frame.since);
      return { type: 'resumed', topic: frame.topic, ...result };
    }
    case 'unsubscribe':
      await deps.registry.unsubscribe(connection, frame.topic);
      return { type: 'unsubscribed', topic: frame.topic };
    case 'resume': {
      const audience = deps.registry.userAudience(connection.userId);
      const result = await catchUp(deps, audience, connection, frame.since, 'begin');
      return { type: 'resumed', ...result };
    }
  }
}

/** A replay that could not even start: live again, told to resume from where it asked. */
async function giveUp(
  deps: FrameDeps,
  audience: Audience,
  connection: Connection,
  since: string,
): Promise<{ recovered: false; cursor: string }> {
  await deps.registry.endResume(audience, connection).catch(() => undefined);
  return { recovered: false, cursor: since };
}
