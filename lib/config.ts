import * as v from 'valibot';
import { checkTokenOptions } from './auth/tokens.js';
import { API_GATEWAY_IDLE_SECONDS, TOPIC_GRANT_PATTERN } from './constants.js';
import { ConfigError } from './errors.js';
import { EVENT_TYPES, type EventType } from './events/types.js';
import { REGION_NAME, regionInHost } from './gateway/region.js';

/**
 * The only reader of process.env. Everything is validated once, at cold start,
 * and a bad or missing variable fails with its name rather than at the first
 * request that happens to need it.
 */

const int = (name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.transform((s) => Number(s)),
    v.number(`${name} must be an integer from ${min} to ${max}`),
    v.check(
      (n) => Number.isInteger(n) && n >= min && n <= max,
      `${name} must be an integer from ${min} to ${max}`,
    ),
  );

const optionalText = v.optional(v.pipe(v.string(), v.trim(), v.minLength(1)));
const url = (name: string) =>
  v.optional(v.pipe(v.string(), v.trim(), v.url(`${name} must be a URL`)));

const redisUrl = (name: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(
        /^rediss?:\/\//,
        `${name} must start with redis:// or rediss:// (several, comma-separated, for a cluster)`,
      ),
    ),
  );
const flag = (name: string) =>
  v.optional(v.picklist(['true', 'false', '1', '0'], `${name} must be true or false`), 'false');
const isTrue = (s: string) => s === 'true' || s === '1';
/** Comma-separated topic names or prefix grants (`room:*`); empty by default. */
const topicList = (name: string, example: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.transform((s) =>
        s
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
      ),
      v.check(
        (ts) => ts.every((t) => TOPIC_GRANT_PATTERN.test(t)),
        `${name} must be comma-separated topic names or prefixes like "${example}"`,
      ),
    ),
    '',
  );

const EnvSchema = v.object({
  REDIS_URL: redisUrl('REDIS_URL'),
  REDIS_CLUSTER: v.optional(
    v.picklist(['true', 'false', '1', '0', ''], 'REDIS_CLUSTER must be true or false'),
    'false',
  ),
  REDIS_PREFIX: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^[^{}]*$/,
        'REDIS_PREFIX must not contain { or } (they are Redis Cluster hash tags)',
      ),
    ),
    'pw:',
  ),
  JWT_SECRET: optionalText,
  JWT_JWKS_URL: url('JWT_JWKS_URL'),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: optionalText,
  WS_CALLBACK_URL: url('WS_CALLBACK_URL'),
  // Region of the API behind WS_CALLBACK_URL (a custom domain names none); default AWS_REGION.
  WS_CALLBACK_REGION: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(REGION_NAME, 'WS_CALLBACK_REGION must be a region name such as eu-west-1'),
    ),
  ),
  // Just over API Gateway's idle timeout: a connection that said nothing for that long is gone.
  CONNECTION_TTL_SECONDS: int('CONNECTION_TTL_SECONDS', API_GATEWAY_IDLE_SECONDS + 60, 10),
  HISTORY_SIZE: int('HISTORY_SIZE', 100, 0, 100_000),
  HISTORY_TTL_SECONDS: int('HISTORY_TTL_SECONDS', 86_400, 1),
  DEDUP_TTL_SECONDS: int('DEDUP_TTL_SECONDS', 86_400, 1),
  FANOUT_CONCURRENCY: int('FANOUT_CONCURRENCY', 100, 1, 10_000),
  FANOUT_CHUNK: int('FANOUT_CHUNK', 2_000, 1, 100_000),
  FANOUT_PARALLEL_CHUNKS: int('FANOUT_PARALLEL_CHUNKS', 8, 1, 1_000),
  THROTTLE_MAX_ATTEMPTS: int('THROTTLE_MAX_ATTEMPTS', 5, 1, 20),
  THROTTLE_BUDGET_MS: int('THROTTLE_BUDGET_MS', 5_000, 1),
  // Delivery under faults (issue 7): byte-bounded chunks, chunk retries, the
  // per-request deadline of management API calls, the publish lease.
  // Lambda's synchronous invoke payload limit is 6 MB; 5 MiB leaves room.
  FANOUT_CHUNK_MAX_BYTES: int('FANOUT_CHUNK_MAX_BYTES', 5 * 1024 * 1024, 256 * 1024, 6_000_000),
  DELIVER_ATTEMPTS: int('DELIVER_ATTEMPTS', 2, 1, 10),
  // Largest `data` a publish takes, as JSON (PW-S1.1; docs/limits.md): over
  // 128 KB a message goes as parts. Bounded by the deliver chunk (the data
  // travels once in every chunk) and Lambda's 6 MB synchronous invoke.
  MAX_PUBLISH_BYTES: int('MAX_PUBLISH_BYTES', 1024 * 1024, 1024, 5 * 1024 * 1024),
  MANAGEMENT_API_TIMEOUT_MS: int('MANAGEMENT_API_TIMEOUT_MS', 5_000, 100, 120_000),
  // Paced delivery (issue 19, docs/pacing.md): posts per second for the whole
  // deployment, shared through Redis by publish and every deliver worker; 0
  // turns pacing off. API Gateway's default account quota is 10,000/s with a
  // 5,000-token burst, shared with every API of the account and with inbound
  // traffic: half of each leaves the rest room. PACE_RESERVE tokens of the
  // burst are kept for small publishes (delivered by publish itself).
  PACE_RATE: int('PACE_RATE', 5_000, 0, 1_000_000),
  PACE_BURST: int('PACE_BURST', 1_000, 1, 1_000_000),
  PACE_RESERVE: int('PACE_RESERVE', 200, 0, 1_000_000),
  // Just over publish's 300 s function timeout: an attempt that died stops blocking its id then.
  PUBLISH_LEASE_SECONDS: int('PUBLISH_LEASE_SECONDS', 310, 1, 86_400),
  DELIVER_FUNCTION_NAME: v.optional(v.pipe(v.string(), v.minLength(1)), 'pushwire-local-deliver'),
  LAMBDA_ENDPOINT: url('LAMBDA_ENDPOINT'),
  AWS_REGION: v.optional(v.pipe(v.string(), v.minLength(1)), 'us-east-1'),
  // Replay (issue 7): a replay gives up after the budget (the connection goes
  // live, told to resume); past budget + grace a replay that died no longer
  // keeps publishes away from its connection. Well under $default's 29 s.
  REPLAY_BUDGET_MS: int('REPLAY_BUDGET_MS', 5_000, 100, 25_000),
  REPLAY_LEASE_GRACE_MS: int('REPLAY_LEASE_GRACE_MS', 2_000, 100, 60_000),
  // Lambda sets these from the function's role; they sign management API
  // posts and Lambda Invoke (lib/aws/signing.ts).
  AWS_ACCESS_KEY_ID: optionalText,
  AWS_SECRET_ACCESS_KEY: optionalText,
  AWS_SESSION_TOKEN: optionalText,
  // --- security (issue 9) ---
  // The serverless stage; anything but `local` is a deployed stage, where
  // secrets come from parameters and Redis must use TLS.
  STAGE: v.optional(v.pipe(v.string(), v.minLength(1)), 'local'),
  // SSM Parameter Store names (or Secrets Manager ARNs) holding secrets.
  JWT_SECRET_PARAMETER: optionalText,
  REDIS_URL_PARAMETER: optionalText,
  REDIS_PASSWORD_PARAMETER: optionalText,
  REDIS_ALLOW_PLAINTEXT: flag('REDIS_ALLOW_PLAINTEXT'),
  JWT_MAX_TOKEN_AGE: int('JWT_MAX_TOKEN_AGE', 3_600, 60, 30 * 86_400),
  JWT_CLOCK_TOLERANCE_SECONDS: int('JWT_CLOCK_TOLERANCE_SECONDS', 30, 0, 300),
  MAX_TOPICS_PER_CONNECTION: int('MAX_TOPICS_PER_CONNECTION', 100, 1, 10_000),
  MAX_CONNECTIONS_PER_USER: int('MAX_CONNECTIONS_PER_USER', 50, 1, 100_000),
  REPLAYS_PER_MINUTE: int('REPLAYS_PER_MINUTE', 10, 1, 10_000),
  // This API's endpoint (the template sets it): `deliver` may post to it,
  // WS_CALLBACK_URL and the peers' (WS_PEERS) and to no other endpoint.
  WS_API_ENDPOINT: url('WS_API_ENDPOINT'),
  // The other APIs sharing this Redis (docs/deploying.md; build/peers.cjs
  // reads the same setting to grant the roles ManageConnections on them).
  WS_PEERS: v.optional(v.string()),
  // --- client publish (issue 16) ---
  // Per connection: publishes per window (a fixed window, 1 s by default;
  // Pusher allows 10/s), and the largest `data` (serialised, bytes; API
  // Gateway takes frames of at most 32 KB from a client anyway).
  CLIENT_PUBLISH_RATE: int('CLIENT_PUBLISH_RATE', 10, 1, 10_000),
  CLIENT_PUBLISH_WINDOW_SECONDS: int('CLIENT_PUBLISH_WINDOW_SECONDS', 1, 1, 3_600),
  CLIENT_PUBLISH_MAX_BYTES: int('CLIENT_PUBLISH_MAX_BYTES', 32 * 1024, 16, 32 * 1024),
  // The function `$default` hands a client's publish to (the template sets it).
  PUBLISH_FUNCTION_NAME: v.optional(v.pipe(v.string(), v.minLength(1)), 'pushwire-local-publish'),
  // The function `$default` hands push_register/push_unregister to (issue 18; the template sets it).
  DEVICES_FUNCTION_NAME: v.optional(v.pipe(v.string(), v.minLength(1)), 'pushwire-local-devices'),
  // Optional hook every client publish to a matching topic passes through
  // (docs/clients.md, "Publish hook"): a function name or ARN, the topics
  // (grant patterns as in tokens: names, `prefix:*`, `*`; default `*`), and
  // how long it may take before the publish is refused with hook_failed.
  PUBLISH_HOOK_FUNCTION: optionalText,
  PUBLISH_HOOK_TOPICS: v.optional(
    v.pipe(
      v.string(),
      v.transform((s) => s.split(',').flatMap((t) => t.trim() || [])),
      v.check(
        (l) => l.every((t) => TOPIC_GRANT_PATTERN.test(t)),
        'PUBLISH_HOOK_TOPICS: topic grants (chat:1, chat:*, *), comma-separated',
      ),
    ),
  ),
  PUBLISH_HOOK_TIMEOUT_MS: int('PUBLISH_HOOK_TIMEOUT_MS', 2_000, 10, 20_000),
  // The SDK's standard per-service endpoint overrides (tests' stand-ins).
  // Presence (issue 16): topics whose joins and leaves are fanned out (grant
  // patterns, comma-separated), the size above which they are coalesced, the
  // interval they are gathered over, and (set only on the functions whose
  // role may invoke it) the function that fans them out.
  PRESENCE_EVENTS_TOPICS: topicList('PRESENCE_EVENTS_TOPICS', 'room:*'),
  // Delta topics (issue 17): topics whose subscribers may ask for fossil
  // deltas against the previous message instead of whole messages.
  DELTA_TOPICS: topicList('DELTA_TOPICS', 'doc:*'),
  PRESENCE_COALESCE_ABOVE: int('PRESENCE_COALESCE_ABOVE', 100, 0, 10_000_000),
  PRESENCE_INTERVAL_MS: int('PRESENCE_INTERVAL_MS', 2_000, 100, 60_000),
  PRESENCE_EVENTS_FUNCTION_NAME: optionalText,
  AWS_ENDPOINT_URL_SSM: url('AWS_ENDPOINT_URL_SSM'),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: url('AWS_ENDPOINT_URL_SECRETS_MANAGER'),
  // Lifecycle events to EventBridge (docs/events.md): the types to send
  // (comma-separated, or `all`; none by default), the bus, and how many
  // records wait in Redis for the `events` relay before the oldest are dropped.
  EVENTS: v.optional(v.string(), ''),
  EVENTS_BUS: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(
        /^[A-Za-z0-9._\-/]{1,256}$/,
        'EVENTS_BUS must be the name of an event bus in this account and region (not an ARN)',
      ),
    ),
    'default',
  ),
  EVENTS_OUTBOX_MAX: int('EVENTS_OUTBOX_MAX', 100_000, 100, 10_000_000),
  AWS_ENDPOINT_URL_EVENTBRIDGE: url('AWS_ENDPOINT_URL_EVENTBRIDGE'),
  // Acknowledged messages (issue 18, docs/acks.md): the SQS queue their
  // timeouts wait in (the template sets it), and where SQS is reached when
  // not at the region's endpoint (`npm start`: the local stand-in).
  ACK_QUEUE_URL: url('ACK_QUEUE_URL'),
  AWS_ENDPOINT_URL_SQS: url('AWS_ENDPOINT_URL_SQS'),
});

export interface Config {
  redis: {
    urls: string[];
    cluster: boolean;
    prefix: string;
    /** Parameter holding the whole URL (list); `urls` is empty until it is resolved. */
    urlParameter?: string;
    /** Parameter holding the password put into `urls` once resolved. */
    passwordParameter?: string;
  };
  jwt: {
    secret?: string;
    /** Parameter holding the HS256 secret; `secret` is unset until it is resolved. */
    secretParameter?: string;
    jwksUrl?: string;
    issuer?: string;
    audience?: string;
    maxTokenAgeSeconds: number;
    clockToleranceSeconds: number;
  };
  stage: string;
  /** Any stage but `local`: secrets by parameter only, TLS to Redis. */
  deployed: boolean;
  allowPlaintextRedis: boolean;
  limits: { topicsPerConnection: number; connectionsPerUser: number; replaysPerMinute: number };
  /** Client publish (issue 16): its limits, the function it is handed to, the optional hook. */
  clientPublish: {
    rate: number;
    windowSeconds: number;
    maxBytes: number;
    functionName: string;
    hook?: { functionName: string; topics: string[]; timeoutMs: number };
  };
  /** The `devices` function (push device registration, issue 18). */
  devicesFunctionName: string;
  /** Endpoints `deliver` may post to: this API's, the callback URL, the peers'. */
  allowedEndpoints: string[];
  /**
   * `deliver` may also post to any endpoint the registry recorded a
   * connection with: `npm start` (no IAM), or WS_PEERS=account.
   */
  acceptRecordedEndpoints: boolean;
  /** Signing region of each peer endpoint (WS_PEERS): a custom domain names none. */
  peerRegions: Record<string, string>;
  /** Where secrets are fetched from, when not the region's public endpoints. */
  secretEndpoints: { ssm?: string; secretsManager?: string };
  callbackUrl?: string;
  /**
   * Signing region for management API endpoints whose host names no region
   * (custom domains, serverless-offline); execute-api hosts sign for their own.
   */
  callbackRegion: string;
  connectionTtlSeconds: number;
  history: { size: number; ttlSeconds: number };
  dedupTtlSeconds: number;
  fanout: {
    concurrency: number;
    chunk: number;
    parallelChunks: number;
    throttleMaxAttempts: number;
    throttleBudgetMs: number;
  };
  delivery: {
    chunkMaxBytes: number;
    /** Largest `data` of a publish, as JSON bytes (MAX_PUBLISH_BYTES). */
    maxPublishBytes: number;
    deliverAttempts: number;
    managementApiTimeoutMs: number;
    publishLeaseSeconds: number;
  };
  /** Paced delivery: the account-wide rate (0: unpaced), its burst, and the small publishes' reserve. */
  pace: { rate: number; burst: number; reserve: number };
  deliverFunctionName: string;
  lambdaEndpoint?: string;
  region: string;
  replay: { budgetMs: number; graceMs: number };
  presence: {
    /** Topic names or patterns whose joins and leaves are fanned out. */
    eventTopics: string[];
    /** Above this many users a topic's events are coalesced into presence_diff (0: never). */
    coalesceAbove: number;
    intervalMs: number;
    /** The function fanning events out, where this function may invoke it. */
    eventsFunctionName?: string;
  };
  /** Topic names or prefixes (`doc:*`) whose subscribers may ask for deltas (docs/protocol.md PW-D1). */
  deltaTopics: string[];
  /** Absent when the environment has none: signing then fails with their names. */
  credentials?: AwsCredentials;
  /** Lifecycle events: the types sent (empty: none), where, and the outbox's bound. */
  events: { types: EventType[]; bus: string; outboxMax: number; endpoint?: string };
  /** Acknowledged messages (issue 18): their timeout queue; unset, an ack publish is refused. */
  acks: { queueUrl?: string; sqsEndpoint?: string };
}

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

type Defined<T> = { [K in keyof T]?: Exclude<T[K], undefined> };
const defined = <T extends object>(o: T): Defined<T> =>
  Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined)) as Defined<T>;

/** Bytes of a deliver chunk kept for its envelope and recipients, past the largest data. */
const CHUNK_ROOM = 64 * 1024;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable is an unset one (serverless.yml passes '' for "not configured").
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  if (present['REDIS_URL'] === undefined && present['REDIS_URL_PARAMETER'] === undefined)
    throw new ConfigError('Environment variable REDIS_URL (or REDIS_URL_PARAMETER) is required');
  const parsed = v.safeParse(EnvSchema, present);
  if (!parsed.success) {
    const problems = parsed.issues.map((issue) => {
      const key = issue.path?.map((p) => String(p.key)).join('.') ?? '';
      return issue.message.includes(key) ? issue.message : `${key}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.output;
  checkSecrets(e);
  // Unset, it is 1 MiB or what a smaller FANOUT_CHUNK_MAX_BYTES leaves room for.
  const maxPublishBytes =
    present['MAX_PUBLISH_BYTES'] === undefined
      ? Math.min(e.MAX_PUBLISH_BYTES, e.FANOUT_CHUNK_MAX_BYTES - CHUNK_ROOM)
      : e.MAX_PUBLISH_BYTES;
  if (maxPublishBytes > e.FANOUT_CHUNK_MAX_BYTES - CHUNK_ROOM)
    throw new ConfigError(
      `Invalid configuration: MAX_PUBLISH_BYTES (${maxPublishBytes}) must leave ${CHUNK_ROOM} bytes of FANOUT_CHUNK_MAX_BYTES (${e.FANOUT_CHUNK_MAX_BYTES}) for recipients: every deliver chunk carries the data once`,
    );
  if (e.PACE_RESERVE >= e.PACE_BURST)
    throw new ConfigError('Invalid configuration: PACE_RESERVE must be less than PACE_BURST');
  const jwt = {
    ...defined({
      secret: e.JWT_SECRET,
      secretParameter: e.JWT_SECRET_PARAMETER,
      jwksUrl: e.JWT_JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    }),
    maxTokenAgeSeconds: e.JWT_MAX_TOKEN_AGE,
    clockToleranceSeconds: e.JWT_CLOCK_TOLERANCE_SECONDS,
  };
  // A secret still to be fetched is checked (length) once it is resolved.
  if (jwt.secretParameter === undefined) checkTokenOptions(jwt);
  const redis = {
    urls: e.REDIS_URL === undefined ? [] : splitUrls(e.REDIS_URL),
    cluster: isTrue(e.REDIS_CLUSTER),
    prefix: e.REDIS_PREFIX,
    ...defined({
      urlParameter: e.REDIS_URL_PARAMETER,
      passwordParameter: e.REDIS_PASSWORD_PARAMETER,
    }),
  };
  const deployed = e.STAGE !== 'local';
  const allowPlaintextRedis = isTrue(e.REDIS_ALLOW_PLAINTEXT);
  checkRedisTransport(redis.urls, { deployed, allowPlaintextRedis });
  const callbackUrl = e.WS_CALLBACK_URL?.replace(/\/+$/, '');
  const peers = parsePeers(e.WS_PEERS);
  return {
    redis,
    jwt,
    stage: e.STAGE,
    deployed,
    allowPlaintextRedis,
    limits: {
      topicsPerConnection: e.MAX_TOPICS_PER_CONNECTION,
      connectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      replaysPerMinute: e.REPLAYS_PER_MINUTE,
    },
    clientPublish: {
      rate: e.CLIENT_PUBLISH_RATE,
      windowSeconds: e.CLIENT_PUBLISH_WINDOW_SECONDS,
      maxBytes: e.CLIENT_PUBLISH_MAX_BYTES,
      functionName: e.PUBLISH_FUNCTION_NAME,
      ...(e.PUBLISH_HOOK_FUNCTION && {
        hook: {
          functionName: e.PUBLISH_HOOK_FUNCTION,
          topics: e.PUBLISH_HOOK_TOPICS?.length ? e.PUBLISH_HOOK_TOPICS : ['*'],
          timeoutMs: e.PUBLISH_HOOK_TIMEOUT_MS,
        },
      }),
    },
    devicesFunctionName: e.DEVICES_FUNCTION_NAME,
    secretEndpoints: defined({
      ssm: e.AWS_ENDPOINT_URL_SSM,
      secretsManager: e.AWS_ENDPOINT_URL_SECRETS_MANAGER,
    }),
    allowedEndpoints: [
      e.WS_API_ENDPOINT?.replace(/\/+$/, ''),
      callbackUrl,
      ...Object.keys(peers.regions),
    ].filter((u): u is string => u !== undefined),
    acceptRecordedEndpoints: !deployed || peers.account,
    peerRegions: peers.regions,
    ...defined({ callbackUrl, lambdaEndpoint: e.LAMBDA_ENDPOINT }),
    connectionTtlSeconds: e.CONNECTION_TTL_SECONDS,
    history: { size: e.HISTORY_SIZE, ttlSeconds: e.HISTORY_TTL_SECONDS },
    dedupTtlSeconds: e.DEDUP_TTL_SECONDS,
    fanout: {
      concurrency: e.FANOUT_CONCURRENCY,
      chunk: e.FANOUT_CHUNK,
      parallelChunks: e.FANOUT_PARALLEL_CHUNKS,
      throttleMaxAttempts: e.THROTTLE_MAX_ATTEMPTS,
      throttleBudgetMs: e.THROTTLE_BUDGET_MS,
    },
    delivery: {
      chunkMaxBytes: e.FANOUT_CHUNK_MAX_BYTES,
      maxPublishBytes,
      deliverAttempts: e.DELIVER_ATTEMPTS,
      managementApiTimeoutMs: e.MANAGEMENT_API_TIMEOUT_MS,
      publishLeaseSeconds: e.PUBLISH_LEASE_SECONDS,
    },
    pace: { rate: e.PACE_RATE, burst: e.PACE_BURST, reserve: e.PACE_RESERVE },
    deliverFunctionName: e.DELIVER_FUNCTION_NAME,
    region: e.AWS_REGION,
    callbackRegion: e.WS_CALLBACK_REGION ?? e.AWS_REGION,
    replay: { budgetMs: e.REPLAY_BUDGET_MS, graceMs: e.REPLAY_LEASE_GRACE_MS },
    presence: {
      eventTopics: e.PRESENCE_EVENTS_TOPICS,
      coalesceAbove: e.PRESENCE_COALESCE_ABOVE,
      intervalMs: e.PRESENCE_INTERVAL_MS,
      ...defined({ eventsFunctionName: e.PRESENCE_EVENTS_FUNCTION_NAME }),
    },
    deltaTopics: e.DELTA_TOPICS,
    events: {
      types: parseEventTypes(e.EVENTS),
      bus: e.EVENTS_BUS,
      outboxMax: e.EVENTS_OUTBOX_MAX,
      ...defined({ endpoint: e.AWS_ENDPOINT_URL_EVENTBRIDGE }),
    },
    acks: defined({ queueUrl: e.ACK_QUEUE_URL, sqsEndpoint: e.AWS_ENDPOINT_URL_SQS }),
    ...(e.AWS_ACCESS_KEY_ID &&
      e.AWS_SECRET_ACCESS_KEY && {
        credentials: {
          accessKeyId: e.AWS_ACCESS_KEY_ID,
          secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
          ...(e.AWS_SESSION_TOKEN && { sessionToken: e.AWS_SESSION_TOKEN }),
        },
      }),
  };
}

/**
 * WS_PEERS: comma-separated `https://{api}.execute-api.{region}.amazonaws.com/{stage}`,
 * `{url}={region}:{api}/{stage}` (a custom domain) or `account`. Read in
 * full, strictly, by build/peers.cjs at package time (a template cannot
 * carry a malformed one); here only what the functions need, kept small for
 * the `default` bundle: each peer's endpoint and signing region.
 * test/unit/peers.test.ts holds the two readings to each other.
 */
export function parsePeers(text = ''): { account: boolean; regions: Record<string, string> } {
  const regions: Record<string, string> = {};
  let account = false;
  for (const raw of text.split(',')) {
    const [url = '', api] = raw.trim().split('=');
    const endpoint = url.replace(/\/+$/, '');
    const region = api ? api.split(':')[0] : regionInHost(endpoint);
    if (endpoint === 'account' && !api) account = true;
    else if (region && REGION_NAME.test(region) && URL.canParse(endpoint))
      regions[endpoint] = region;
    else if (endpoint) throw new ConfigError(`WS_PEERS: "${raw.trim()}" is not a peer`);
  }
  return { account, regions };
}

/** `EVENTS`: a comma-separated list of event types, or `all`. */
export function parseEventTypes(list: string): EventType[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return [...EVENT_TYPES];
  const unknown = names.filter((n) => !(EVENT_TYPES as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new ConfigError(
      `EVENTS names unknown event types (${unknown.join(', ')}): give some of ${EVENT_TYPES.join(', ')}, or all`,
    );
  return [...new Set(names)] as EventType[];
}

const splitUrls = (list: string): string[] =>
  list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Where secrets may come from. Deployed, a secret is named by parameter, never
 * given by value: a value in the environment is also in the CloudFormation
 * template, the Lambda console and every `get-function-configuration`.
 */
function checkSecrets(e: v.InferOutput<typeof EnvSchema>): void {
  const deployed = e.STAGE !== 'local';
  if (e.JWT_SECRET !== undefined && e.JWT_SECRET_PARAMETER !== undefined) {
    throw new ConfigError('JWT_SECRET and JWT_SECRET_PARAMETER are both set: give one');
  }
  if (e.JWT_SECRET_PARAMETER !== undefined && e.JWT_JWKS_URL !== undefined) {
    throw new ConfigError(
      'JWT_SECRET_PARAMETER and JWT_JWKS_URL are both set: give exactly one (a secret would be ignored)',
    );
  }
  if (e.REDIS_URL !== undefined && e.REDIS_URL_PARAMETER !== undefined) {
    throw new ConfigError('REDIS_URL and REDIS_URL_PARAMETER are both set: give one');
  }
  if (e.REDIS_PASSWORD_PARAMETER !== undefined && e.REDIS_URL === undefined) {
    throw new ConfigError('REDIS_PASSWORD_PARAMETER needs REDIS_URL (without its password)');
  }
  if (deployed && e.JWT_SECRET !== undefined) {
    throw new ConfigError(
      `JWT_SECRET must not be given by value on the deployed stage "${e.STAGE}": store it in SSM Parameter Store or Secrets Manager and set JWT_SECRET_PARAMETER`,
    );
  }
  if (
    e.REDIS_URL !== undefined &&
    splitUrls(e.REDIS_URL).some((u) => URL.canParse(u) && new URL(u).password !== '') &&
    (deployed || e.REDIS_PASSWORD_PARAMETER !== undefined)
  ) {
    throw new ConfigError(
      'REDIS_URL must not carry a password on a deployed stage (or beside REDIS_PASSWORD_PARAMETER): use REDIS_PASSWORD_PARAMETER or REDIS_URL_PARAMETER',
    );
  }
}

/** Deployed, Redis traffic (tokens' user ids, every message) goes over TLS unless explicitly allowed. */
export function checkRedisTransport(
  urls: readonly string[],
  options: { deployed: boolean; allowPlaintextRedis: boolean },
): void {
  if (!options.deployed || options.allowPlaintextRedis) return;
  if (urls.some((u) => !u.startsWith('rediss://'))) {
    throw new ConfigError(
      'REDIS_URL must be rediss:// (TLS) on a deployed stage; set REDIS_ALLOW_PLAINTEXT=true to accept redis://',
    );
  }
}

/** Push fallback (issue 18, docs/push.md): devices, providers and their bounds. */
export interface PushConfig {
  maxDevices: number;
  deviceTtlSeconds: number;
  /** Devices of one user pushed to at once. */
  concurrency: number;
  retry: { attempts: number; baseDelayMs: number; retryAfterCapMs: number };
  requestTimeoutMs: number;
  vapid?: {
    publicKey: string;
    subject: string;
    /** Locally (npm start) only; deployed, the private key is read from `privateKeyParameter`. */
    privateKey?: string;
    privateKeyParameter?: string;
  };
  /** Host names (`*.` wildcards) a Web Push endpoint may have: each is a URL pushwire POSTs to. */
  webPushHosts: string[];
  /** http:// push endpoints (the local stand-in); never on a deployed stage. */
  allowHttpEndpoints: boolean;
  /** SNS platform application ARN per platform; a platform without one is refused at registration. */
  snsApplications: Partial<Record<'apns' | 'apns_sandbox' | 'fcm', string>>;
  snsEndpoint?: string;
}

/** The browsers' push services (Chrome/Edge via FCM, Firefox, Edge legacy, Safari). */
export const DEFAULT_WEBPUSH_HOSTS =
  'fcm.googleapis.com,*.push.services.mozilla.com,*.notify.windows.com,*.push.apple.com';

/**
 * The push part of the configuration, read only by the code that registers
 * devices or sends pushes (its schema is built here, inside the function, so
 * the bundles of routes that never push do not carry it).
 */
export function loadPushConfig(env: Record<string, string | undefined> = process.env): PushConfig {
  const arn = (name: string) =>
    v.optional(
      v.pipe(
        v.string(),
        v.trim(),
        v.regex(
          /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:app\/(APNS|APNS_SANDBOX|GCM)\/[^/\s]+$/,
          `${name} must be an SNS platform application ARN (arn:aws:sns:<region>:<account>:app/<APNS|APNS_SANDBOX|GCM>/<name>)`,
        ),
      ),
    );
  const Schema = v.object({
    STAGE: v.optional(v.string(), 'local'),
    PUSH_MAX_DEVICES: int('PUSH_MAX_DEVICES', 10, 1, 1_000),
    PUSH_DEVICE_TTL_DAYS: int('PUSH_DEVICE_TTL_DAYS', 60, 1, 3_650),
    PUSH_CONCURRENCY: int('PUSH_CONCURRENCY', 8, 1, 100),
    PUSH_MAX_ATTEMPTS: int('PUSH_MAX_ATTEMPTS', 3, 1, 10),
    PUSH_RETRY_BASE_MS: int('PUSH_RETRY_BASE_MS', 200, 1, 60_000),
    PUSH_RETRY_AFTER_CAP_MS: int('PUSH_RETRY_AFTER_CAP_MS', 5_000, 0, 600_000),
    PUSH_REQUEST_TIMEOUT_MS: int('PUSH_REQUEST_TIMEOUT_MS', 5_000, 100, 60_000),
    VAPID_PUBLIC_KEY: v.optional(
      v.pipe(
        v.string(),
        v.trim(),
        v.regex(
          /^[A-Za-z0-9_-]{86,88}$/,
          'VAPID_PUBLIC_KEY must be a P-256 public key, base64url (87 characters)',
        ),
      ),
    ),
    VAPID_PRIVATE_KEY: optionalText,
    VAPID_PRIVATE_KEY_PARAMETER: optionalText,
    VAPID_SUBJECT: v.optional(
      v.pipe(
        v.string(),
        v.trim(),
        v.regex(/^(mailto:|https:\/\/)\S+$/, 'VAPID_SUBJECT must be a mailto: or https: URL'),
      ),
    ),
    PUSH_WEBPUSH_HOSTS: v.optional(v.string(), DEFAULT_WEBPUSH_HOSTS),
    PUSH_ALLOW_HTTP_ENDPOINTS: flag('PUSH_ALLOW_HTTP_ENDPOINTS'),
    SNS_APNS_APPLICATION_ARN: arn('SNS_APNS_APPLICATION_ARN'),
    SNS_APNS_SANDBOX_APPLICATION_ARN: arn('SNS_APNS_SANDBOX_APPLICATION_ARN'),
    SNS_FCM_APPLICATION_ARN: arn('SNS_FCM_APPLICATION_ARN'),
    AWS_ENDPOINT_URL_SNS: url('AWS_ENDPOINT_URL_SNS'),
  });
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = v.safeParse(Schema, present);
  if (!parsed.success)
    throw new ConfigError(
      `Invalid push configuration: ${parsed.issues.map((i) => i.message).join('; ')}`,
    );
  const e = parsed.output;
  const deployed = e.STAGE !== 'local';
  if (e.VAPID_PRIVATE_KEY !== undefined && e.VAPID_PRIVATE_KEY_PARAMETER !== undefined)
    throw new ConfigError(
      'VAPID_PRIVATE_KEY and VAPID_PRIVATE_KEY_PARAMETER are both set: give one',
    );
  if (deployed && e.VAPID_PRIVATE_KEY !== undefined)
    throw new ConfigError(
      `VAPID_PRIVATE_KEY must not be given by value on the deployed stage "${e.STAGE}": store it in SSM Parameter Store and set VAPID_PRIVATE_KEY_PARAMETER`,
    );
  const hasPrivate =
    e.VAPID_PRIVATE_KEY !== undefined || e.VAPID_PRIVATE_KEY_PARAMETER !== undefined;
  if (hasPrivate !== (e.VAPID_PUBLIC_KEY !== undefined))
    throw new ConfigError(
      'Web Push needs both VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY_PARAMETER (or, locally, VAPID_PRIVATE_KEY); give both or neither',
    );
  if (deployed && isTrue(e.PUSH_ALLOW_HTTP_ENDPOINTS))
    throw new ConfigError('PUSH_ALLOW_HTTP_ENDPOINTS is for the local stage only');
  return {
    maxDevices: e.PUSH_MAX_DEVICES,
    deviceTtlSeconds: e.PUSH_DEVICE_TTL_DAYS * 86_400,
    concurrency: e.PUSH_CONCURRENCY,
    retry: {
      attempts: e.PUSH_MAX_ATTEMPTS,
      baseDelayMs: e.PUSH_RETRY_BASE_MS,
      retryAfterCapMs: e.PUSH_RETRY_AFTER_CAP_MS,
    },
    requestTimeoutMs: e.PUSH_REQUEST_TIMEOUT_MS,
    ...(e.VAPID_PUBLIC_KEY !== undefined && {
      vapid: {
        publicKey: e.VAPID_PUBLIC_KEY,
        subject: e.VAPID_SUBJECT ?? 'mailto:push@example.invalid',
        ...defined({
          privateKey: e.VAPID_PRIVATE_KEY,
          privateKeyParameter: e.VAPID_PRIVATE_KEY_PARAMETER,
        }),
      },
    }),
    webPushHosts: e.PUSH_WEBPUSH_HOSTS.split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
    allowHttpEndpoints: isTrue(e.PUSH_ALLOW_HTTP_ENDPOINTS),
    snsApplications: defined({
      apns: e.SNS_APNS_APPLICATION_ARN,
      apns_sandbox: e.SNS_APNS_SANDBOX_APPLICATION_ARN,
      fcm: e.SNS_FCM_APPLICATION_ARN,
    }),
    ...defined({ snsEndpoint: e.AWS_ENDPOINT_URL_SNS }),
  };
}
