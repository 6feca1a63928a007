/**
 * The world of the model-based test (issue 21): the real client library
 * (client/pushwire.ts, bundled as shipped and run in a `vm` context whose
 * clock and randomness the harness owns) against the real session, registry,
 * publish, fan-out and kick code on a private Redis, joined by an in-process
 * socket pair. Nothing here is an emulator of pushwire: the stand-ins are for
 * what AWS runs (API Gateway's sockets and its management API, which can fail,
 * time out and close on command) and for the host (timers, storage).
 *
 * Determinism: one task runs at a time (a `$connect`, a frame, a
 * `$disconnect`, a frame landing at a client), chosen by a seeded PRNG among
 * the heads of per-connection lanes; client timers and the server's clock
 * (`Date`, faked) follow one virtual clock that only commands move; Redis key
 * TTLs are moved with it. So a fast-check seed and path replay a run exactly
 * (Redis's own clock, which makes cursors, is the one real clock: the harness
 * keeps the virtual clock within minutes of it).
 */
import { createHmac } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { buildSync } from 'esbuild';
import type { Redis } from 'ioredis';
import { vi } from 'vitest';
import type * as ClientModule from '../../client/pushwire.js';
import { kick } from '../../lib/admin/kick.js';
import { createTokenVerifier, topicAllowed } from '../../lib/auth/tokens.js';
import { createRedis } from '../../lib/clients.js';
import { RedisDedupStore } from '../../lib/delivery/dedup.js';
import { type PublishDeps, type PublishResult, publish } from '../../lib/delivery/publish.js';
import { webSocketErrors } from '../../lib/edge/middleware.js';
import { callWithRetry, type Gateway, type GatewayResult } from '../../lib/gateway/gateway.js';
import { encodeFrame } from '../../lib/protocol/frames.js';
import { RedisRegistry } from '../../lib/registry/redis.js';
import { connect, disconnect, handleFrame, type SessionDeps } from '../../lib/session/session.js';
import { prng } from '../helpers/prng.js';

export const ENDPOINT = 'https://model.execute-api.eu-west-1.amazonaws.com/prod';
const SECRET = 'model-secret-model-secret-model-secret-0123456789';
const PREFIX = 'pwm:';
/** The management API's per-attempt timeout (MANAGEMENT_API_TIMEOUT_MS's default). */
export const MANAGEMENT_TIMEOUT_MS = 5_000;
/**
 * Tokens issued up to this long before Redis's data began are admitted
 * (tokenEpochGraceMs; 60 s by default, short here so the model's minutes
 * test it): a revocation older than this when Redis loses its data outlives it.
 */
const TOKEN_EPOCH_GRACE_MS = 1_000;
/** Client timings, short so the model's minutes stay few (virtual time). */
export const CLIENT_TIMING = {
  pingInterval: 10_000,
  pongTimeout: 3_000,
  connectTimeout: 5_000,
  minDelay: 200,
  maxDelay: 3_000,
};

// ---------------------------------------------------------------------------
// The client library, bundled once per worker as the build ships it (private
// members mangled), evaluated in a context per world.

let bundled: string | undefined;
function clientBundle(): string {
  if (bundled === undefined) {
    const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
    const out = buildSync({
      entryPoints: [join(root, 'client/pushwire.ts')],
      bundle: true,
      format: 'iife',
      globalName: '__pushwire',
      target: 'es2020',
      mangleProps: /_$/,
      write: false,
    });
    bundled = out.outputFiles[0]?.text ?? '';
  }
  return bundled;
}

export { prng };

// ---------------------------------------------------------------------------
// Virtual time.

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

class Clock {
  now: number;
  /** Time moved since Redis's key TTLs were last moved with it. */
  redisDebt = 0;
  /** Total virtual time added (kept well under the client's 300 s floor; see the header). */
  advanced = 0;
  readonly #timers = new Map<number, Timer>();
  #next = 1;

  constructor(start: number) {
    this.now = start;
    vi.setSystemTime(start);
  }

  move(ms: number): void {
    if (ms <= 0) return;
    this.now += ms;
    this.advanced += ms;
    this.redisDebt += ms;
    vi.setSystemTime(this.now);
  }

  setTimeout = (fn: () => void, ms?: number): number => {
    const id = this.#next++;
    const delay = Number.isFinite(ms) ? Math.max(0, Number(ms)) : 0;
    this.#timers.set(id, { id, at: this.now + delay, fn });
    return id;
  };

  clearTimeout = (id: unknown): void => {
    this.#timers.delete(id as number);
  };

  /** The earliest timer due at or before `until` (ties by creation order). */
  due(until: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers.values())
      if (t.at <= until && (!best || t.at < best.at || (t.at === best.at && t.id < best.id)))
        best = t;
    if (best) this.#timers.delete(best.id);
    return best;
  }
}

// ---------------------------------------------------------------------------
// What the oracle records.

export type StreamKey = string; // 'u' (the tab's user's stream) or 't:<topic>'

export interface Violation {
  kind: 'lost' | 'duplicate' | 'revoked' | 'ungranted' | 'expired' | 'order' | 'corrupt' | 'stuck';
  detail: string;
}

interface Published {
  id: string;
  seq: number;
  dataJson: string;
  /** Per stream, the tabs that must get it (or a gap after `seq`). */
  streams: { stream: StreamKey; user?: number; topic?: number; tabs: Set<number> }[];
}

interface Handed {
  id: string;
  stream: StreamKey;
  cursor?: string;
  seq: number;
  dataJson: string;
}

// ---------------------------------------------------------------------------
// Storage shared by tabs.

export class ModelStorage {
  readonly map = new Map<string, string>();
  full = false;
  constructor(readonly async: boolean) {}
  getItem = (key: string): string | null | Promise<string | null> => {
    const value = this.map.get(key) ?? null;
    return this.async ? Promise.resolve(value) : value;
  };
  setItem = (key: string, value: string): unknown => {
    if (this.full) {
      const error = new Error('QuotaExceededError');
      if (this.async) return Promise.reject(error);
      throw error;
    }
    this.map.set(key, value);
    return this.async ? Promise.resolve() : undefined;
  };
}

// ---------------------------------------------------------------------------
// Connections: one socket pair each.

type Up = { kind: 'connect' } | { kind: 'frame'; body: string } | { kind: 'disconnect' };
type Down = { kind: 'open' } | { kind: 'message'; data: string } | { kind: 'close' };

interface Claims {
  sub: string;
  iat: number;
  exp: number;
  topics: string[];
}

interface Conn {
  id: string;
  tab: Tab;
  socket: ModelSocket;
  url: URL;
  claims: Claims | undefined;
  up: Up[];
  down: Down[];
  /** `$connect` succeeded: API Gateway lets posts through. */
  open: boolean;
  /** The socket is closed (by the client, the network or the server). */
  closed: boolean;
}

interface SocketHandlers {
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
}

class ModelSocket implements SocketHandlers {
  onopen: unknown = null;
  onmessage: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  conn!: Conn;
  send(data: string): void {
    if (this.conn.closed) return;
    this.conn.up.push({ kind: 'frame', body: data });
  }
  close(): void {
    this.conn.tab.world.closeConn(this.conn, 'client');
  }
}

export interface Tab {
  index: number;
  world: World;
  user: number;
  /** Keeps one token (see WorldParams.tabs); `token` is it once made. */
  stale: boolean;
  token?: string;
  storage: ModelStorage;
  client: ClientModule.Pushwire;
  /** Topics (indexes) the app subscribed to. */
  topics: Set<number>;
  /** Since when (seq) the server holds the tab's membership of the user's stream / each topic. */
  userJoined: number | undefined;
  joined: Map<number, number>;
  /** Last seq the app unsubscribed from each topic. */
  unsubscribedAt: Map<number, number>;
  handed: Handed[];
  gaps: { stream: StreamKey; seq: number }[];
  errors: { code: string; seq: number }[];
  /** When the page reloaded (seq). */
  reloads: number[];
  conns: Conn[];
}

export interface WorldParams {
  users: string[];
  topics: string[];
  /** Per user: the topic indexes its tokens grant ('*' when `wildcard`). */
  grants: number[][];
  wildcard: boolean[];
  /**
   * `stale`: the tab keeps the token it was first given, across reloads (a
   * stolen token): it is checked for what it must not receive only.
   */
  tabs: { user: number; storage: number; stale?: boolean }[];
  asyncStorage: boolean[];
  historySize: number;
  replaysPerMinute: number;
  tokenLifetimeSeconds: number;
  /** Short, so a stream can go quiet for longer than it within the run's virtual minutes. */
  historyTtlSeconds: number;
  seed: number;
}

export type Fault = 'error' | 'throttle' | 'timeout' | 'timeout-landed';

const silentLog = { info: () => undefined, warn: () => undefined };
const loggerStub = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

export class World {
  readonly params: WorldParams;
  readonly clock: Clock;
  readonly random: () => number;
  readonly redis: Redis;
  registry!: RedisRegistry;
  readonly tabs: Tab[] = [];
  readonly conns = new Map<string, Conn>();
  readonly published: Published[] = [];
  readonly violations: Violation[] = [];
  /** Per user, the model's grants now (topic indexes), changed by commands. */
  readonly grants: Set<number>[];
  readonly ungrantedAt = new Map<string, number>();
  readonly revokedAt = new Map<number, number>();
  faults: { conn: string | undefined; fault: Fault }[] = [];
  /** Features left out (MODEL_WITHOUT); see commands.ts. */
  without: ReadonlySet<string> = new Set();
  storages: ModelStorage[] = [];
  /** Publish requests that carried an id, for retries. */
  readonly #withIds: { request: Record<string, unknown>; dataJson: string; losses: number }[] = [];
  /** How many times Redis lost its data so far. */
  #losses = 0;
  /** Events in order: publishes, hand-overs and gaps compare by it. */
  seq = 0;
  actions = 0;
  tasks = 0;
  readonly #client: typeof ClientModule;
  readonly #verify = createTokenVerifier({ secret: SECRET });
  readonly #gateway: Gateway;
  #connSeq = 0;
  /** When the server task or publish now running began (virtual time). */
  #workStartedAt = 0;
  readonly #errors = webSocketErrors({
    logger: () => loggerStub as never,
    gateway: () => this.#gateway,
    callbackUrl: () => ENDPOINT,
    route: 'default',
  });

  private constructor(params: WorldParams, redis: Redis) {
    this.params = params;
    this.redis = redis;
    this.random = prng(params.seed);
    this.clock = new Clock(Date.now());
    this.grants = params.grants.map((g) => new Set(g));
    const context = vm.createContext({
      setTimeout: this.clock.setTimeout,
      clearTimeout: this.clock.clearTimeout,
      atob,
      Date,
      Math: Object.assign(Object.create(Math) as Math, { random: prng(params.seed ^ 0x5bd1e995) }),
    });
    vm.runInContext(clientBundle(), context);
    this.#client = (context as unknown as { __pushwire: typeof ClientModule }).__pushwire;
    this.#gateway = this.#makeGateway();
  }

  static async create(params: WorldParams, redisUrl: string): Promise<World> {
    vi.useFakeTimers({ toFake: ['Date'] });
    const redis = createRedis([redisUrl], false, undefined, silentLog) as Redis;
    await redis.flushall();
    const world = new World(params, redis);
    world.#newRegistry();
    const storages = params.asyncStorage.map((a) => new ModelStorage(a));
    world.storages = storages;
    params.tabs.forEach((t, index) => {
      const tab: Tab = {
        index,
        world,
        user: t.user,
        stale: t.stale === true,
        storage: storages[t.storage] ?? (storages[0] as ModelStorage),
        client: undefined as unknown as ClientModule.Pushwire,
        topics: new Set(),
        userJoined: undefined,
        joined: new Map(),
        unsubscribedAt: new Map(),
        handed: [],
        gaps: [],
        errors: [],
        reloads: [],
        conns: [],
      };
      world.tabs.push(tab);
      world.#start(tab);
    });
    await world.settle();
    return world;
  }

  async dispose(): Promise<void> {
    for (const tab of this.tabs) tab.client.close();
    this.redis.disconnect();
    vi.useRealTimers();
  }

  #newRegistry(): void {
    this.registry = new RedisRegistry(this.redis, {
      prefix: PREFIX,
      connectionTtlSeconds: 660,
      historySize: this.params.historySize,
      historyTtlSeconds: this.params.historyTtlSeconds,
      pendingLeaseMs: 7_000,
      tokenEpochGraceMs: TOKEN_EPOCH_GRACE_MS,
    });
  }

  // -------------------------------------------------------------------------
  // Tokens: HS256 signed here (synchronously, so a token() call settles in a
  // microtask), checked by the real verifier.

  token(user: number): string {
    const iat = Math.floor(this.clock.now / 1000);
    const claims: Claims = {
      sub: this.params.users[user] as string,
      iat,
      exp: iat + this.params.tokenLifetimeSeconds,
      topics: this.params.wildcard[user]
        ? ['*']
        : [...(this.grants[user] ?? [])].map((t) => this.params.topics[t] as string),
    };
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
  }

  #claims(token: string | null): Claims | undefined {
    try {
      return JSON.parse(Buffer.from((token ?? '').split('.')[1] ?? '', 'base64url').toString());
    } catch {
      return undefined;
    }
  }

  // -------------------------------------------------------------------------
  // Tabs.

  #start(tab: Tab): void {
    const world = this;
    const Socket = class extends ModelSocket {
      constructor(url: string) {
        super();
        world.#openConn(tab, this, url);
      }
    };
    if (tab.stale && tab.token === undefined) tab.token = this.token(tab.user);
    const client = new this.#client.Pushwire({
      url: 'wss://model.test/prod',
      token: tab.stale ? (tab.token as string) : () => this.token(tab.user),
      storage: tab.storage,
      WebSocket: Socket,
      ...CLIENT_TIMING,
    });
    tab.client = client;
    client.on('message', (m) => {
      tab.handed.push({
        id: m.id,
        stream: m.topic === undefined ? 'u' : `t:${this.params.topics.indexOf(m.topic)}:${m.topic}`,
        ...(m.cursor !== undefined && { cursor: m.cursor }),
        seq: ++this.seq,
        dataJson: JSON.stringify(m.data),
      });
    });
    client.on('gap', (g) => {
      tab.gaps.push({
        stream: g.topic === undefined ? 'u' : `t:${this.params.topics.indexOf(g.topic)}:${g.topic}`,
        seq: ++this.seq,
      });
    });
    client.on('error', (e) => tab.errors.push({ code: e.code, seq: ++this.seq }));
    for (const t of tab.topics) client.subscribe(this.params.topics[t] as string);
    client.connect();
  }

  #openConn(tab: Tab, socket: ModelSocket, raw: string): void {
    const n = ++this.#connSeq;
    // API Gateway's ids: 16 characters of base64 ending in '='.
    const id = `${n.toString(36).padStart(6, '0')}Mdl${tab.index}${'x'.repeat(5)}=`.slice(0, 16);
    const url = new URL(raw);
    const conn: Conn = {
      id,
      tab,
      socket,
      url,
      claims: this.#claims(url.searchParams.get('token')),
      up: [{ kind: 'connect' }],
      down: [],
      open: false,
      closed: false,
    };
    socket.conn = conn;
    this.conns.set(id, conn);
    tab.conns.push(conn);
  }

  /** The socket closes: by the client, the network (frames in flight lost) or the server. */
  closeConn(conn: Conn, by: 'client' | 'network' | 'server'): void {
    if (conn.closed) return;
    conn.closed = true;
    if (by !== 'server') conn.down = [];
    if (by === 'network') conn.up = conn.up.filter((u) => u.kind === 'connect');
    if (by !== 'client') conn.down.push({ kind: 'close' });
    conn.up.push({ kind: 'disconnect' });
  }

  current(tab: Tab): Conn | undefined {
    const last = tab.conns.at(-1);
    return last && !last.closed ? last : undefined;
  }

  // -------------------------------------------------------------------------
  // The management API: the real retry loop around attempts that fail,
  // time out (in virtual time) or land, as commanded.

  #makeGateway(): Gateway {
    const policy = {
      throttleMaxAttempts: 5,
      throttleBudgetMs: 5_000,
      throttleBaseDelayMs: 50,
      requestTimeoutMs: MANAGEMENT_TIMEOUT_MS,
      sleep: async (ms: number) => this.clock.move(ms),
      random: this.random,
    };
    const attempt = (connectionId: string, data: Uint8Array | undefined) => {
      const index = this.faults.findIndex((f) => f.conn === undefined || f.conn === connectionId);
      const fault = index >= 0 ? this.faults.splice(index, 1)[0]?.fault : undefined;
      const conn = this.conns.get(connectionId);
      const fail = (name: string, status?: number) =>
        Promise.reject(
          Object.assign(new Error(name), {
            name,
            ...(status !== undefined && { $metadata: { httpStatusCode: status } }),
          }),
        );
      if (fault === 'error') return fail('InternalServerErrorException', 500);
      if (fault === 'throttle') return fail('LimitExceededException', 429);
      // Past the virtual-time budget a timeout is an error (see the header).
      if (fault === 'timeout' && this.clock.advanced > 120_000) return fail('TimeoutError');
      if (fault === 'timeout') {
        this.clock.move(MANAGEMENT_TIMEOUT_MS);
        return fail('TimeoutError');
      }
      if (!conn?.open || conn.closed) return fail('GoneException', 410);
      if (data) this.#land(conn, Buffer.from(data).toString('utf8'));
      else this.closeConn(conn, 'server');
      if (fault === 'timeout-landed') {
        if (this.clock.advanced <= 120_000) this.clock.move(MANAGEMENT_TIMEOUT_MS);
        return fail('TimeoutError');
      }
      return Promise.resolve();
    };
    return {
      post: (_e, connectionId, data): Promise<GatewayResult> =>
        callWithRetry(() => attempt(connectionId, data), policy),
      close: (_e, connectionId): Promise<GatewayResult> =>
        callWithRetry(() => attempt(connectionId, undefined), policy),
    };
  }

  /** Parts of messages over 128 KB (PW-F6) per connection, joined to check the message they make. */
  readonly #parts = new WeakMap<Conn, Map<string, string[]>>();
  #joined(conn: Conn, part: { id: string; n: number; of: number; data: string }) {
    const open = this.#parts.get(conn) ?? new Map<string, string[]>();
    this.#parts.set(conn, open);
    const got = open.get(part.id) ?? [];
    got[part.n] = part.data;
    open.set(part.id, got);
    if (Object.keys(got).length < part.of) return [];
    open.delete(part.id);
    return [JSON.parse(got.join('')) as { id?: string; topic?: string }];
  }

  /** A post reaches the client's socket: checked against entitlement first. */
  #land(conn: Conn, text: string): void {
    let frame: { type?: string; id?: string; topic?: string; messages?: { topic?: string }[] };
    try {
      frame = JSON.parse(text);
    } catch {
      frame = {};
    }
    const messages =
      frame.type === 'message'
        ? [frame]
        : frame.type === 'batch'
          ? (frame.messages ?? []).map((m) => ({ ...m, id: (m as { id?: string }).id }))
          : frame.type === 'part'
            ? this.#joined(conn, frame as { id: string; n: number; of: number; data: string })
            : [];
    const claims = conn.claims;
    const user = conn.tab.user;
    for (const m of messages) {
      const what = `message ${m.id} to ${conn.id} (tab ${conn.tab.index})`;
      const revoked = this.revokedAt.get(user);
      if (claims && revoked !== undefined && claims.iat * 1000 <= revoked)
        this.violations.push({ kind: 'revoked', detail: `${what} after its token was revoked` });
      if (claims && m.topic !== undefined && !topicAllowed(m.topic, claims.topics))
        this.violations.push({
          kind: 'ungranted',
          detail: `${what}: token does not grant ${m.topic}`,
        });
      // Judged when the server began the work that posted it: a post decided
      // before exp may land after it, its retries having taken that long.
      if (claims && claims.exp * 1000 < this.#workStartedAt)
        this.violations.push({ kind: 'expired', detail: `${what} after its token expired` });
    }
    conn.down.push({ kind: 'message', data: text });
  }

  // -------------------------------------------------------------------------
  // Server side of one task.

  #sessionDeps(): SessionDeps {
    return {
      registry: this.registry,
      gateway: this.#gateway,
      verifyToken: this.#verify,
      callbackUrl: ENDPOINT,
      limits: {
        topicsPerConnection: 100,
        connectionsPerUser: 50,
        replaysPerMinute: this.params.replaysPerMinute,
      },
      logger: silentLog,
    };
  }

  publishDeps(): PublishDeps {
    return {
      registry: this.registry,
      dedup: new RedisDedupStore(this.redis, (id) => this.registry.keys.dedup(id), {
        ttlSeconds: 86_400,
        leaseSeconds: 330,
      }),
      gateway: this.#gateway,
      maxPublishBytes: 200_000,
      prune: (connectionId) => this.registry.remove(connectionId),
      logger: silentLog,
      concurrency: 4,
      chunkSize: 2,
      chunkMaxBytes: 5 * 1024 * 1024,
      parallelChunks: 2,
      deliverAttempts: 2,
    };
  }

  async #runUp(conn: Conn, item: Up): Promise<void> {
    this.#workStartedAt = this.clock.now;
    const deps = this.#sessionDeps();
    if (item.kind === 'connect') {
      const token = conn.url.searchParams.get('token') ?? undefined;
      const since = conn.url.searchParams.get('since') ?? undefined;
      try {
        await connect(
          {
            connectionId: conn.id,
            domainName: 'model.test',
            stage: 'prod',
            ...(token !== undefined && { token }),
            ...(since !== undefined && { since }),
          },
          deps,
        );
      } catch {
        // A refused handshake: the client sees the socket close unopened.
        if (!conn.closed) {
          conn.closed = true;
          conn.down.push({ kind: 'close' });
        }
        return;
      }
      conn.open = true;
      if (conn.closed) return; // $disconnect is queued behind.
      conn.down.push({ kind: 'open' });
      if (conn.tab.userJoined === undefined) conn.tab.userJoined = ++this.seq;
      return;
    }
    if (item.kind === 'disconnect') {
      conn.open = false;
      await disconnect(conn.id, deps).catch(() => undefined);
      return;
    }
    let reply: string | undefined;
    try {
      const frame = await handleFrame(conn.id, item.body, deps);
      reply = encodeFrame(frame);
      this.#observe(conn, item.body, frame);
    } catch (error) {
      const request = {
        event: {
          requestContext: { connectionId: conn.id, domainName: 'model.test', stage: 'prod' },
        },
        error,
        response: undefined as { statusCode: number; body?: string } | undefined,
      };
      await this.#errors.onError?.(request as never);
      reply = request.response?.body;
    }
    // The route response goes after the handler's own posts.
    if (reply !== undefined && conn.open && !conn.closed)
      conn.down.push({ kind: 'message', data: reply });
  }

  /** A subscribe the server answered: from now the tab's membership of the topic is held. */
  #observe(conn: Conn, body: string, frame: { type: string }): void {
    if (frame.type !== 'subscribed' && frame.type !== 'resumed') return;
    let topicName: unknown;
    try {
      topicName = (JSON.parse(body) as { action?: string; topic?: unknown }).topic;
    } catch {
      return;
    }
    const topic = this.params.topics.indexOf(String(topicName));
    const tab = conn.tab;
    if (topic < 0 || this.current(tab) !== conn || !tab.topics.has(topic)) return;
    if (!tab.joined.has(topic)) tab.joined.set(topic, ++this.seq);
  }

  #deliverDown(conn: Conn, item: Down): void {
    const socket = conn.socket;
    if (item.kind === 'open') (socket.onopen as () => void)?.();
    else if (item.kind === 'message')
      (socket.onmessage as (e: { data: unknown }) => void)?.({ data: item.data });
    else {
      (socket.onerror as () => void)?.();
      (socket.onclose as () => void)?.();
    }
  }

  // -------------------------------------------------------------------------
  // Scheduling.

  /** Lets microtasks (a token, an async storage read) run to their end. */
  async #idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Moves Redis's key TTLs by the virtual time passed (keys due are deleted, as Redis would). */
  async #syncRedisClock(): Promise<void> {
    const debt = Math.floor(this.clock.redisDebt);
    if (debt <= 0) return;
    this.clock.redisDebt -= debt;
    await this.redis.eval(
      `local d = tonumber(ARGV[1])
       for _, k in ipairs(redis.call('KEYS', ARGV[2])) do
         local t = redis.call('PTTL', k)
         if t > 0 then
           if t <= d then redis.call('DEL', k) else redis.call('PEXPIRE', k, t - d) end
         end
       end
       return 0`,
      0,
      debt,
      `${PREFIX}*`,
    );
  }

  /** Runs one task (a due timer first); false when there was none. */
  async step(): Promise<boolean> {
    await this.#idle();
    await this.#syncRedisClock();
    const timer = this.clock.due(this.clock.now);
    if (timer) {
      timer.fn();
      await this.#idle();
      return true;
    }
    const lanes: { conn: Conn; up: boolean }[] = [];
    for (const conn of this.conns.values()) {
      if (conn.up.length > 0) lanes.push({ conn, up: true });
      if (conn.down.length > 0) lanes.push({ conn, up: false });
    }
    if (lanes.length === 0) return false;
    const lane = lanes[Math.floor(this.random() * lanes.length)] as { conn: Conn; up: boolean };
    this.tasks++;
    if (lane.up) await this.#runUp(lane.conn, lane.conn.up.shift() as Up);
    else this.#deliverDown(lane.conn, lane.conn.down.shift() as Down);
    await this.#idle();
    // Done with: no tasks left, and unreachable.
    if (lane.conn.closed && !lane.conn.open && lane.conn.up.length === 0)
      if (lane.conn.down.length === 0) this.conns.delete(lane.conn.id);
    return true;
  }

  async run(tasks: number): Promise<void> {
    for (let i = 0; i < tasks; i++) if (!(await this.step())) return;
  }

  /** Runs tasks until none is left (bounded: a livelock is reported as `stuck`). */
  async settle(limit = 5_000): Promise<void> {
    for (let i = 0; i < limit; i++) if (!(await this.step())) return;
    this.violations.push({ kind: 'stuck', detail: `still busy after ${limit} tasks` });
  }

  /** Moves virtual time on, firing client timers as they fall due and settling between. */
  async advance(ms: number): Promise<void> {
    const until = this.clock.now + ms;
    for (;;) {
      await this.settle();
      const timer = this.clock.due(until);
      if (!timer) break;
      this.clock.move(timer.at - this.clock.now);
      timer.fn();
    }
    this.clock.move(until - this.clock.now);
    await this.settle();
  }

  // -------------------------------------------------------------------------
  // Commands.

  /** A publish with an id, sent again (as a caller retries one it is unsure of). */
  async retry(back: number): Promise<void> {
    const earlier = this.#withIds.at(-1 - (back % Math.max(1, this.#withIds.length)));
    // Left out while open (KNOWN_OPEN): a retry of a publish from before Redis lost its data.
    if (earlier && earlier.losses < this.#losses && this.without.has('retryAfterLoss')) return;
    if (earlier) await this.publish(earlier.request, earlier.dataJson);
  }

  async publish(request: Record<string, unknown>, dataJson: string): Promise<void> {
    if (request['id'] === undefined) delete request['id'];
    else this.#withIds.push({ request, dataJson, losses: this.#losses });
    const seq = ++this.seq;
    const streams: Published['streams'] = [];
    const users =
      (request['userIds'] as number[] | undefined) ??
      (request['userId'] === undefined ? [] : [request['userId'] as number]);
    for (const user of users) {
      const tabs = new Set(
        this.tabs.filter((t) => t.user === user && t.userJoined !== undefined).map((t) => t.index),
      );
      streams.push({ stream: 'u', user, tabs });
    }
    const topic = request['topic'] as number | undefined;
    if (topic !== undefined) {
      const tabs = new Set(
        this.tabs
          .filter(
            (t) =>
              t.topics.has(topic) &&
              t.joined.has(topic) &&
              (this.params.wildcard[t.user] || this.grants[t.user]?.has(topic)),
          )
          .map((t) => t.index),
      );
      streams.push({
        stream: `t:${topic}:${this.params.topics[topic]}`,
        topic,
        tabs,
      });
    }
    const wire: Record<string, unknown> = { data: JSON.parse(dataJson) };
    if (request['id'] !== undefined) wire['id'] = request['id'];
    if (request['userId'] !== undefined)
      wire['userId'] = this.params.users[request['userId'] as number];
    if (request['userIds'] !== undefined)
      wire['userIds'] = (request['userIds'] as number[]).map((u) => this.params.users[u]);
    if (topic !== undefined) wire['topic'] = this.params.topics[topic];
    let result: PublishResult;
    this.#workStartedAt = this.clock.now;
    try {
      result = await publish(wire, this.publishDeps());
    } catch {
      return; // The caller is told it failed: nothing is promised.
    }
    if (result.duplicate) return; // A retry of a publish that completed: nothing new.
    this.published.push({ id: result.id, seq, dataJson, streams });
  }

  subscribe(tab: Tab, topic: number): void {
    if (tab.topics.has(topic)) return;
    tab.topics.add(topic);
    tab.client.subscribe(this.params.topics[topic] as string);
  }

  unsubscribe(tab: Tab, topic: number): void {
    if (!tab.topics.delete(topic)) return;
    tab.joined.delete(topic);
    tab.unsubscribedAt.set(topic, ++this.seq);
    tab.client.unsubscribe(this.params.topics[topic] as string);
  }

  drop(tab: Tab): void {
    const conn = tab.conns.at(-1);
    if (conn && !conn.closed) {
      this.closeConn(conn, 'network');
    }
  }

  /** The page reloads: a new client on the same storage, subscribing to the same topics. */
  async reload(tab: Tab): Promise<void> {
    tab.client.close();
    // An async storage's failure of the last write (at close) is told by now.
    await this.#idle();
    tab.reloads.push(++this.seq);
    // Told that its storage fails, the new page may know nothing the old one
    // did: it is due what comes after its own joins (see check()).
    if (tab.errors.some((e) => /storage/.test(e.code))) {
      tab.userJoined = undefined;
      tab.joined.clear();
    }
    this.#start(tab);
  }

  async kick(user: number, revoke: boolean): Promise<void> {
    if (revoke) this.revokedAt.set(user, this.clock.now);
    await kick(
      { userId: this.params.users[user], ...(revoke && { revoke: true }) },
      {
        registry: this.registry,
        gateway: this.#gateway,
        logger: silentLog,
        revocationTtlSeconds: 3_630,
      },
    ).catch(() => undefined);
  }

  ungrant(user: number, topic: number): void {
    if (this.grants[user]?.delete(topic)) this.ungrantedAt.set(`${user}/${topic}`, ++this.seq);
    for (const tab of this.tabs) if (tab.user === user) tab.joined.delete(topic);
  }

  grant(user: number, topic: number): void {
    this.grants[user]?.add(topic);
  }

  /** Redis restarts empty (its data and scripts gone; connections reset). */
  async redisLosesData(): Promise<void> {
    this.#losses++;
    // Only revocations older than the grace are promised to outlive the loss.
    for (const [user, at] of this.revokedAt)
      if (at >= this.clock.now - TOKEN_EPOCH_GRACE_MS) this.revokedAt.delete(user);
    await this.redis.flushall();
    await this.redis.script('FLUSH');
    await this.redis.client('KILL', 'TYPE', 'normal').catch(() => undefined);
    await this.redis.ping();
    // A new publish instance would mark the epoch afresh; so does this one's next $connect.
    this.#newRegistry();
  }

  // -------------------------------------------------------------------------
  // The end: everything heals, then the property is checked.

  async heal(): Promise<void> {
    this.faults = [];
    for (const s of this.tabs) s.storage.full = false;
    let quiet = 0;
    for (let i = 0; i < 150 && quiet < 15; i++) {
      await this.advance(1_000);
      // A tab on a stale token may be refused for good (expired, revoked).
      const settled = this.tabs.every((t) => t.stale || t.client.state === 'connected');
      quiet = settled ? quiet + 1 : 0;
    }
    if (quiet < 15)
      this.violations.push({
        kind: 'stuck',
        detail: `tabs not connected after healing: ${this.tabs.map((t) => t.client.state).join(',')}`,
      });
  }

  check(): Violation[] {
    const out = [...this.violations];
    for (const tab of this.tabs) {
      // A stale token's tab is owed nothing: it is checked as it lands (#land).
      if (tab.stale) continue;
      // Order is promised for what the tab subscribed to: a message published
      // before its subscription began may come late from a resume's floor.
      // (Joined again since, e.g. by a page that reloaded knowing nothing,
      // what was published before is not promised in order either.)
      const intended = new Set<string>();
      for (const p of this.published)
        for (const s of p.streams) {
          if (!s.tabs.has(tab.index)) continue;
          const since = s.topic === undefined ? tab.userJoined : tab.joined.get(s.topic);
          if (since !== undefined && since > p.seq) continue;
          intended.add(`${s.stream}\u0000${p.id}`);
        }
      const counts = new Map<string, Handed[]>();
      const newest = new Map<StreamKey, string>();
      for (const h of tab.handed) {
        const key = `${h.stream}\u0000${h.id}`;
        const again = counts.has(key);
        counts.set(key, [...(counts.get(key) ?? []), h]);
        const before = newest.get(h.stream);
        // A message handed over again is judged as a duplicate, not for order.
        if (h.cursor !== undefined && !again) {
          if (before !== undefined && cmp(h.cursor, before) < 0 && intended.has(key))
            out.push({
              kind: 'order',
              detail: `tab ${tab.index} got ${h.id} (${h.cursor}) after ${before} on ${h.stream}`,
            });
          if (before === undefined || cmp(h.cursor, before) > 0) newest.set(h.stream, h.cursor);
        }
      }
      // Told that its storage fails (an `error`), a tab may get a message again after a reload.
      const told = tab.errors.find((e) => /storage/.test(e.code))?.seq ?? Number.POSITIVE_INFINITY;
      for (const [key, list] of counts)
        if (list.length > 1 && (list[1] as Handed).seq < told)
          out.push({
            kind: 'duplicate',
            detail: `tab ${tab.index} got ${key.replace('\u0000', ' ')} ${list.length} times`,
          });
      for (const p of this.published)
        for (const s of p.streams) {
          if (!s.tabs.has(tab.index)) continue;
          if (s.topic !== undefined) {
            if (!tab.topics.has(s.topic)) continue;
            if ((tab.unsubscribedAt.get(s.topic) ?? -1) > p.seq) continue;
            if ((this.ungrantedAt.get(`${tab.user}/${s.topic}`) ?? -1) > p.seq) continue;
          }
          const got = counts.get(`${s.stream}\u0000${p.id}`) ?? [];
          for (const g of got)
            if (g.dataJson !== p.dataJson)
              out.push({ kind: 'corrupt', detail: `tab ${tab.index} got ${p.id} with other data` });
          if (got.length > 0) continue;
          if (tab.gaps.some((g) => g.stream === s.stream && g.seq > p.seq)) continue;
          // Told its storage fails, the page that reloads next may know nothing of
          // what the one before was due (nothing was written for it to resume from).
          if (tab.reloads.some((r) => r > p.seq && r > told)) continue;
          out.push({
            kind: 'lost',
            detail: `tab ${tab.index} (user ${tab.user}) never got ${p.id} on ${s.stream} (published at #${p.seq}) and no gap told it`,
          });
        }
    }
    return out;
  }
}

function cmp(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}
