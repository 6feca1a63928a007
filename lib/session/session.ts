import { type Identity, type TokenVerifier, topicAllowed } from '../auth/tokens.js';
import { callbackEndpoint } from '../edge/events.js';
import { encodeFrame, parseClientFrame, type ServerFrame } from '../edge/protocol.js';
import {
  ForbiddenError,
  LimitError,
  RateLimitedError,
  TokenExpiredError,
  UnauthorizedError,
  UnknownConnectionError,
  ValidationError,
} from '../errors.js';
import type { EventSink } from '../events/types.js';
import type { Gateway } from '../gateway/gateway.js';
import { isCursor } from '../registry/cursor.js';
import type { Audience, Connection, ConnectionRegistry } from '../registry/types.js';
import { endConnection } from './end.js';
import { type ResumeOutcome, replay } from './resume.js';

/** What the WebSocket handlers need, injected so tests hand in real Redis or mocked AWS. */
export interface SessionDeps {
  registry: ConnectionRegistry;
  gateway: Gateway;
  verifyToken: TokenVerifier;
  /** Fixed callback URL (custom domain, serverless-offline); else derived from the event. */
  callbackUrl?: string;
  /** Told how each history replay ended (the Replays metric). */
  onReplay?: (outcome: ResumeOutcome) => void;
  /** Per-connection and per-user limits; unset ones are not enforced. */
  limits?: Partial<SessionLimits>;
  /** Time bounds of a replay (defaults: DEFAULT_REPLAY). */
  replay?: ReplayBounds;
  /** Time this invocation has left (Lambda's context.getRemainingTimeInMillis). */
  remainingMs?: () => number;
  logger?: { warn(message: string, extra: Record<string, unknown>): void };
  /** Clock (ms), injectable for tests. */
  now?: () => number;
  /** Lifecycle events (connected, subscribed, ...): lib/events/. */
  events?: EventSink;
}

export interface SessionLimits {
  topicsPerConnection: number;
  connectionsPerUser: number;
  replaysPerMinute: number;
}

/** Refuses a token of a user revoked after (or in the same second as) it was issued. */
function checkRevocation(identity: Identity, revokedAt: number | null): void {
  if (revokedAt !== null && identity.issuedAt <= revokedAt) {
    throw new UnauthorizedError(
      "token revoked: this user's tokens issued before the revocation are refused; get a new one",
    );
  }
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
  deps: Pick<SessionDeps, 'registry' | 'verifyToken' | 'callbackUrl' | 'limits' | 'events'>,
): Promise<Identity & { endpoint: string }> {
  const identity = await deps.verifyToken(input.token);
  if (input.since !== undefined && !isCursor(input.since)) {
    throw new ValidationError('since must be a cursor like "1732752000000-0"', 'invalid_cursor');
  }
  const admission = await deps.registry.admission(identity.userId);
  checkRevocation(identity, admission.revokedAt);
  // Checked, then registered: connects racing each other may pass the limit
  // by as many as race; the limit is there against one client opening
  // hundreds, which it still stops.
  const maxConnections = deps.limits?.connectionsPerUser;
  if (maxConnections !== undefined && admission.connections >= maxConnections) {
    throw new LimitError(
      'too_many_connections',
      `this user already has ${admission.connections} connections (at most ${maxConnections})`,
    );
  }
  const endpoint = callbackEndpoint(input.domainName, input.stage, deps.callbackUrl);
  await deps.registry.register({
    connectionId: input.connectionId,
    userId: identity.userId,
    endpoint,
    connectedAt: input.connectedAt ?? Date.now(),
    allowedTopics: identity.topics,
    tokenExpiresAt: identity.expiresAt,
    ...(input.since !== undefined && { pendingSince: input.since }),
  });
  deps.events?.emit('connected', {
    connectionId: input.connectionId,
    userId: identity.userId,
    connectedAt: input.connectedAt ?? Date.now(),
    ...(identity.expiresAt !== undefined && { tokenExpiresAt: identity.expiresAt }),
  });
  return { ...identity, endpoint };
}

/** `$disconnect`: forget the connection. Idempotent; TTLs cover a disconnect that never comes. */
export async function disconnect(
  connectionId: string,
  deps: Pick<SessionDeps, 'registry' | 'events'>,
): Promise<boolean> {
  return (await endConnection(deps, connectionId, 'client_close')) !== null;
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
  | 'registry'
  | 'gateway'
  | 'replay'
  | 'remainingMs'
  | 'logger'
  | 'now'
  | 'limits'
  | 'onReplay'
  | 'events'
> &
  Partial<Pick<SessionDeps, 'verifyToken'>>;

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
  deps.onReplay?.(outcome);
  if (outcome.gone) throw new UnknownConnectionError(connection.connectionId);
  if (outcome.complete) return { recovered: outcome.recovered };
  deps.logger?.warn('replay stopped before catching up; the connection is live again', {
    connectionId: connection.connectionId,
    stream: `${audience.kind}:${audience.name}`,
    replayed: outcome.replayed,
    cursor: outcome.cursor,
    reason:
      outcome.stoppedBy instanceof Error
        ? `${outcome.stoppedBy.name}: ${outcome.stoppedBy.message}`
        : String(outcome.stoppedBy),
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
  // Its member scores stopped at the token's exp (touch cannot raise them
  // past it): it receives nothing more, and now it is told and closed.
  const now = (deps.now ?? Date.now)();
  if (connection.tokenExpiresAt !== undefined && connection.tokenExpiresAt <= now) {
    // Forgotten here (its close follows), so its end is reported with this reason.
    await endConnection(deps, connectionId, 'token_expired');
    throw new TokenExpiredError();
  }

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

  const maxTopics = deps.limits?.topicsPerConnection;
  const tooManyTopics = () =>
    new LimitError(
      'too_many_topics',
      `a connection may subscribe to at most ${maxTopics} topics: unsubscribe from one first`,
    );

  switch (frame.action) {
    case 'ping': {
      // The connection's own id, so an app can pass it as a publish's
      // `exceptConnectionId` (Pusher's socket_id); the client library pings
      // first. And the epoch (when this Redis's data began): no stream holds
      // anything older, so a client need never resume from before it, unless
      // what it last saw is older (then its data was lost, and a resume from
      // there is told so).
      const marked = await readEpoch(deps);
      return marked === null
        ? { type: 'pong', connectionId }
        : { type: 'pong', connectionId, epoch: marked };
    }
    case 'subscribe': {
      if (!topicAllowed(frame.topic, connection.allowedTopics)) {
        throw new ForbiddenError(`your token does not allow topic "${frame.topic}"`);
      }
      if (frame.since === undefined) {
        const outcome = await deps.registry.subscribe(
          connection,
          frame.topic,
          undefined,
          maxTopics,
        );
        if (outcome === 'too_many_topics') throw tooManyTopics();
        if (outcome === 'gone') throw new UnknownConnectionError(connectionId);
        subscribed(deps, connection, frame.topic);
        return { type: 'subscribed', topic: frame.topic };
      }
      await countReplay(deps, connectionId);
      const window = replayWindow(deps);
      const outcome = await deps.registry.subscribe(
        connection,
        frame.topic,
        window.leaseEnd,
        maxTopics,
      );
      if (outcome === 'too_many_topics') throw tooManyTopics();
      if (outcome === 'gone') throw new UnknownConnectionError(connectionId);
      subscribed(deps, connection, frame.topic);
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
      if (await deps.registry.unsubscribe(connection, frame.topic))
        unsubscribed(deps, connection, frame.topic, 'client');
      return { type: 'unsubscribed', topic: frame.topic };
    case 'auth':
      return refresh(connection, frame.token, deps);
    case 'resume': {
      await countReplay(deps, connectionId);
      const audience = deps.registry.userAudience(connection.userId);
      const result = await catchUp(deps, audience, connection, frame.since, 'begin');
      return { type: 'resumed', ...result };
    }
  }
}

const subscribed = (deps: Pick<SessionDeps, 'events'>, c: Connection, topic: string) =>
  deps.events?.emit('subscribed', { connectionId: c.connectionId, userId: c.userId, topic });

const unsubscribed = (
  deps: Pick<SessionDeps, 'events'>,
  c: Connection,
  topic: string,
  reason: 'client' | 'token_refresh',
) =>
  deps.events?.emit('unsubscribed', {
    connectionId: c.connectionId,
    userId: c.userId,
    topic,
    reason,
  });

/** The epoch for a pong; a pong goes without it if it cannot be read (pings must not fail on it). */
async function readEpoch(deps: Pick<SessionDeps, 'registry'>): Promise<string | null> {
  try {
    return await deps.registry.epoch();
  } catch {
    return null;
  }
}

/** Replays cost up to a whole history of posts each: bounded per connection per minute. */
async function countReplay(
  deps: Pick<SessionDeps, 'registry' | 'limits'>,
  connectionId: string,
): Promise<void> {
  const max = deps.limits?.replaysPerMinute;
  if (max === undefined) return;
  if ((await deps.registry.countReplay(connectionId)) > max) {
    throw new RateLimitedError(
      `at most ${max} replays (resume, subscribe with since) per connection per minute: try again later`,
      60,
    );
  }
}

/**
 * `auth`: a fresh token for the same user extends the connection's life in
 * place (as Centrifugo's refresh does). Its grants replace the old ones;
 * topics they no longer allow are left.
 */
async function refresh(
  connection: Connection,
  token: string,
  deps: Pick<SessionDeps, 'registry' | 'events'> & Partial<Pick<SessionDeps, 'verifyToken'>>,
): Promise<ServerFrame> {
  if (!deps.verifyToken) throw new Error('handleFrame needs verifyToken for auth frames');
  const identity = await deps.verifyToken(token);
  if (identity.userId !== connection.userId) {
    throw new ForbiddenError(
      'a refreshed token must be for the same user ("sub") as the connection',
    );
  }
  checkRevocation(identity, (await deps.registry.admission(identity.userId)).revokedAt);
  await deps.registry.refreshToken(connection.connectionId, identity.expiresAt, identity.topics);
  for (const topic of connection.topics) {
    if (
      !topicAllowed(topic, identity.topics) &&
      (await deps.registry.unsubscribe(connection, topic))
    )
      unsubscribed(deps, connection, topic, 'token_refresh');
  }
  return { type: 'authenticated', expiresAt: identity.expiresAt };
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
