import { type Identity, type TokenVerifier, topicAllowed } from '../auth/tokens.js';
import { closeUntold } from '../delivery/fanout.js';
import {
  ForbiddenError,
  LimitError,
  RateLimitedError,
  TokenExpiredError,
  TokenRevokedError,
  UnauthorizedError,
  UnknownConnectionError,
  ValidationError,
} from '../errors.js';
import type { EventSink } from '../events/types.js';
import type { Gateway } from '../gateway/gateway.js';
import { listMembers } from '../presence/members.js';
import { callbackEndpoint } from '../protocol/endpoint.js';
import {
  type ClientFrame,
  encodeFrame,
  parseClientFrame,
  type ReplyFrame,
  type ServerFrame,
} from '../protocol/frames.js';
import { isCursor } from '../registry/cursor.js';
import type { Recipient } from '../registry/keys.js';
import type { Audience, Connection, ConnectionRegistry } from '../registry/types.js';
import { type ClientPublishDeps, clientPublish } from './client-publish.js';
import { endConnection } from './end.js';
import { type DevicesRelay, pushDevices } from './push-devices.js';
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
  /** Told of each connection closed because a frame could not reach it (a metric). */
  onClosed?: () => void;
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
  /** Client publish (issue 16): without it, a publish frame is refused as forbidden. */
  clientPublish?: ClientPublishDeps;
  /**
   * Acks of acknowledged messages (issue 18, lib/acks/client-ack.ts): wired
   * only in the `ack` route's function; elsewhere an ack frame is refused.
   */
  acks?: (
    connection: Connection,
    ids: string[],
    post: (to: Recipient, frame: ServerFrame) => Promise<void>,
  ) => Promise<ReplyFrame>;
  /** Push device registration (issue 18): the relay to the `devices` function. */
  devices?: DevicesRelay;
}

export interface SessionLimits {
  topicsPerConnection: number;
  connectionsPerUser: number;
  replaysPerMinute: number;
}

/** Whether a token issued at `issuedAt` is refused by a revocation at `revokedAt` (same second included). */
const revoked = (issuedAt?: number, revokedAt?: number | null): boolean =>
  issuedAt !== undefined && revokedAt != null && issuedAt <= revokedAt;

/**
 * Whether a token has expired, by our clock, with no tolerance: the one rule
 * for the handshake, a refresh and every frame. (JWT_CLOCK_TOLERANCE_SECONDS
 * forgives an `iat` a little in the future; an `exp` it forgave would be
 * accepted at `$connect` only to be closed at the first frame, its member
 * scores already past.)
 */
const expired = (expiresAt: number | undefined, now: number): boolean =>
  expiresAt !== undefined && expiresAt <= now;

const REVOKED =
  "token revoked: this user's tokens issued before the revocation are refused; get a new one";
const BEFORE_EPOCH =
  'token issued before the server lost its data (and any revocation with it): get a new one';

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

/**
 * `$connect`: verify the token, then record the connection. A refused token
 * writes nothing, and neither does a `$connect` that fails half-way: API
 * Gateway sends no `$disconnect` for a connection whose `$connect` failed.
 */
export async function connect(
  input: ConnectInput,
  deps: Pick<SessionDeps, 'registry' | 'verifyToken' | 'callbackUrl' | 'limits' | 'now' | 'events'>,
): Promise<Identity & { endpoint: string }> {
  const identity = await deps.verifyToken(input.token);
  if (expired(identity.expiresAt, (deps.now ?? Date.now)())) {
    throw new UnauthorizedError('token expired');
  }
  if (input.since !== undefined && !isCursor(input.since)) {
    throw new ValidationError('since must be a cursor like "1732752000000-0"', 'invalid_cursor');
  }
  const endpoint = callbackEndpoint(input.domainName, input.stage, deps.callbackUrl);
  const maxConnections = deps.limits?.connectionsPerUser;
  // Revocation and the per-user cap are checked where the member is added
  // (atomically; see admit.lua), so a kick with revoke or connects racing
  // this one cannot slip past them.
  const outcome = await deps.registry
    .register(
      {
        connectionId: input.connectionId,
        userId: identity.userId,
        endpoint,
        connectedAt: input.connectedAt ?? Date.now(),
        allowedTopics: identity.topics,
        ...(identity.publish?.length && { publishTopics: identity.publish }),
        tokenExpiresAt: identity.expiresAt,
        tokenIssuedAt: identity.issuedAt,
        ...(identity.presenceTopics && { presenceTopics: identity.presenceTopics }),
        ...(identity.info !== undefined && { info: identity.info }),
        ...(input.since !== undefined && { pendingSince: input.since }),
      },
      maxConnections,
    )
    .catch(async (error: unknown) => {
      await deps.registry.remove(input.connectionId).catch(() => undefined);
      throw error;
    });
  if (outcome === 'revoked') throw new UnauthorizedError(REVOKED);
  if (outcome === 'issued_before_epoch') throw new UnauthorizedError(BEFORE_EPOCH);
  if (outcome === 'too_many_connections') {
    throw new LimitError(
      'too_many_connections',
      `this user already has ${maxConnections} connections (at most ${maxConnections})`,
    );
  }
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
  deps: Pick<SessionDeps, 'gateway' | 'remainingMs' | 'now'>,
  connection: Connection,
  frame: ServerFrame,
): Promise<void> {
  await deps.gateway.post(
    connection.endpoint,
    connection.connectionId,
    Buffer.from(encodeFrame(frame)),
    callDeadline(deps),
  );
}

/** When this invocation's management API calls must be done (its end less the answer's time). */
function callDeadline(deps: Pick<SessionDeps, 'remainingMs' | 'now'>): number | undefined {
  return deps.remainingMs
    ? (deps.now ?? Date.now)() + deps.remainingMs() - ANSWER_MARGIN_MS
    : undefined;
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
  | 'onClosed'
  | 'events'
  | 'clientPublish'
  | 'acks'
  | 'devices'
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
  const callsEndBy = callDeadline(deps);
  const outcome = await replay(
    audience,
    connection,
    since,
    {
      ...deps,
      ...(deps.now && { now: deps.now }),
      ...(callsEndBy !== undefined && { callsEndBy }),
    },
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
): Promise<ReplyFrame> {
  const frame = parseClientFrame(body);
  // The reply carries the frame's `ref` (PW-F3); errors get it in webSocketErrors.
  return { ...(await answer(connectionId, frame, deps)), ref: frame.ref };
}

async function answer(
  connectionId: string,
  frame: ClientFrame,
  deps: FrameDeps,
): Promise<ReplyFrame> {
  const connection = await deps.registry.touch(connectionId, frame.action === 'ping');
  if (!connection) throw new UnknownConnectionError(connectionId);
  // Its member scores stopped at the token's exp (touch cannot raise them
  // past it): it receives nothing more, and now it is told and closed.
  if (expired(connection.tokenExpiresAt, (deps.now ?? Date.now)())) {
    // Forgotten here (its close follows), so its end is reported with this reason.
    await endConnection(deps, connectionId, 'token_expired');
    throw new TokenExpiredError();
  }
  // Revoked since it connected (or refreshed), and not closed by the kick
  // (its close or removal failed): forgotten, told and closed now.
  if (revoked(connection.tokenIssuedAt, connection.revokedAt)) {
    await deps.registry.remove(connectionId);
    throw new TokenRevokedError();
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
    // The connection is live whatever this says; but a client that is not
    // told how its replay ended may have missed messages (a replay that
    // failed) and would never know: it is closed instead, and resumes again.
    const told = await post(deps, connection, { type: 'resumed', ...result }).then(
      () => true,
      (error: unknown) => {
        deps.logger?.warn('could not post resumed; closing the connection', {
          connectionId,
          reason: error instanceof Error ? error.message : String(error),
        });
        return false;
      },
    );
    if (!told) {
      const deadline = callDeadline(deps);
      const closed = await closeUntold(
        {
          gateway: deps.gateway,
          prune: (id) => deps.registry.remove(id),
          ...(deps.onClosed && { onClosed: deps.onClosed }),
          ...(deadline !== undefined && { deadline }),
        },
        connection.endpoint,
        connectionId,
      );
      if (closed instanceof Error) {
        deps.logger?.warn('could not close a connection that a frame could not reach', {
          connectionId,
          reason: closed.message,
        });
      }
      // Answered, not thrown: the error middleware would post and close again
      // through the API that just failed. Pruned, so its next frame is told too.
      const shown = new UnknownConnectionError(connectionId);
      return { type: 'error', code: shown.code, message: shown.message };
    }
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
      // And where the user stream stands, so a client that never heard from
      // it resumes from an exact cursor rather than a time floor.
      const marked = await readEpoch(deps);
      return {
        type: 'pong',
        connectionId,
        ...(marked !== null && { epoch: marked }),
        ...(connection.userCursor !== undefined && { cursor: connection.userCursor }),
      };
    }
    case 'subscribe': {
      // Checked here against the grants read above (no Redis work for a
      // plainly forbidden topic), and again where the topic is written.
      const forbidden = () =>
        new ForbiddenError(`your token does not allow topic "${frame.topic}"`);
      if (!topicAllowed(frame.topic, connection.allowedTopics)) throw forbidden();
      // Deltas (PW-D1): asked for, on a topic DELTA_TOPICS names; elsewhere
      // the subscription is a plain one (and `subscribed` says no `delta`).
      const delta = frame.delta === 'fossil' && deps.registry.isDeltaTopic(frame.topic);
      const deltaField = delta ? { delta: 'fossil' as const } : {};
      if (frame.since === undefined) {
        // With where the stream stood when the member was written: the
        // client's starting cursor, so a later resume is exact (no false gap).
        const { outcome, cursor } = await deps.registry.subscribeWithCursor(
          connection,
          frame.topic,
          maxTopics,
          delta,
        );
        if (outcome === 'too_many_topics') throw tooManyTopics();
        if (outcome === 'gone') throw new UnknownConnectionError(connectionId);
        if (outcome === 'forbidden') throw forbidden();
        if (outcome === 'left') return { type: 'unsubscribed', topic: frame.topic };
        subscribed(deps, connection, frame.topic);
        return {
          type: 'subscribed',
          topic: frame.topic,
          ...(cursor !== undefined && { cursor }),
          ...deltaField,
        };
      }
      await countReplay(deps, connectionId, frame.topic);
      const window = replayWindow(deps);
      const outcome = await deps.registry.subscribe(
        connection,
        frame.topic,
        window.leaseEnd,
        maxTopics,
        delta,
      );
      if (outcome === 'too_many_topics') throw tooManyTopics();
      if (outcome === 'gone') throw new UnknownConnectionError(connectionId);
      if (outcome === 'forbidden') throw forbidden();
      if (outcome === 'left') return { type: 'unsubscribed', topic: frame.topic };
      subscribed(deps, connection, frame.topic);
      const audience = deps.registry.topicAudience(frame.topic);
      // From here the member is resuming: whatever fails, catchUp makes it live.
      const posted = await post(deps, connection, {
        type: 'subscribed',
        topic: frame.topic,
        ...deltaField,
        ref: frame.ref,
      }).then(
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
    case 'publish':
      if (!deps.clientPublish) throw new ForbiddenError('client publish is not enabled here');
      return clientPublish(connection, frame, deps.clientPublish);
    case 'push_register':
    case 'push_unregister':
      if (!deps.devices) throw new ForbiddenError('push registration is not enabled here');
      return pushDevices(connection.userId, frame, deps.devices);
    case 'presence': {
      // Only who is subscribed sees who else is (and only with the grant).
      if (!connection.topics.includes(frame.topic))
        throw new ForbiddenError(`subscribe to topic "${frame.topic}" before asking who is on it`);
      if (!topicAllowed(frame.topic, connection.presenceTopics ?? []))
        throw new ForbiddenError(
          `your token does not allow the member list of topic "${frame.topic}" ("presence" claim)`,
        );
      const list = await listMembers(deps.registry, frame.topic, frame);
      return { type: 'presence', topic: frame.topic, ...list };
    }
    case 'ack':
      // PW-K2, in the `ack` route's function (functions/ack.ts).
      if (!deps.acks) throw new ForbiddenError('ack frames are handled by the ack route');
      return deps.acks(connection, frame.ids, (to, f) => post(deps, to as Connection, f));
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

/**
 * Replays cost up to a whole history of posts each: bounded per connection
 * per minute. The first replay of each stream on a connection is free (for
 * as many streams as a connection may have: its topics and its own): a
 * client reconnecting with all its topics resubscribes each from its cursor,
 * and refusing the 11th of those would lose that topic's messages until the
 * client retried. Those replays cost what a reconnection costs, which the
 * topic and connection limits already bound. `topic`: the stream replayed
 * (undefined: the user's own).
 */
async function countReplay(
  deps: Pick<SessionDeps, 'registry' | 'limits'>,
  connectionId: string,
  topic?: string,
): Promise<void> {
  const max = deps.limits?.replaysPerMinute;
  if (max === undefined) return;
  // 60: the window's length (registry.countReplay), the longest a refused replay must wait.
  const free = (deps.limits?.topicsPerConnection ?? 100) + 1;
  if ((await deps.registry.countReplay(connectionId, topic ?? '', free)) > max) {
    throw new RateLimitedError(
      `at most ${max} replays (resume, subscribe with since) per connection per minute: try again later`,
      60,
      topic,
    );
  }
}

/**
 * `auth`: a fresh token for the same user extends the connection's life in
 * place (as Centrifugo's refresh does). Its grants replace the old ones;
 * topics they no longer allow are left, including one a subscribe side by
 * side is adding (the registry stores the grants and reads the topics in one
 * step, and a subscribe checks the stored grants).
 */
async function refresh(
  connection: Connection,
  token: string,
  deps: Pick<SessionDeps, 'registry' | 'now' | 'events'> &
    Partial<Pick<SessionDeps, 'verifyToken'>>,
): Promise<ReplyFrame> {
  if (!deps.verifyToken) throw new Error('handleFrame needs verifyToken for auth frames');
  const identity = await deps.verifyToken(token);
  if (expired(identity.expiresAt, (deps.now ?? Date.now)())) {
    throw new UnauthorizedError('token expired');
  }
  if (identity.userId !== connection.userId) {
    throw new ForbiddenError(
      'a refreshed token must be for the same user ("sub") as the connection',
    );
  }
  // The revocation as this frame's touch read it: a kick after that removes
  // the connection, and the refresh below then finds it gone.
  if (revoked(identity.issuedAt, connection.revokedAt)) {
    throw new UnauthorizedError(REVOKED);
  }
  if (!(await deps.registry.refreshToken(connection.connectionId, identity))) {
    throw new UnknownConnectionError(connection.connectionId);
  }
  // The topics the new grants leave (the registry left them atomically above).
  for (const topic of connection.topics) {
    if (!topicAllowed(topic, identity.topics))
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
