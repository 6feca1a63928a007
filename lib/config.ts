import * as v from 'valibot';
import { API_GATEWAY_IDLE_SECONDS } from './constants.js';
import { ConfigError } from './errors.js';

/**
 * The only reader of process.env. Everything is validated once, at cold start,
 * and a bad or missing variable fails with its name rather than at the first
 * request that happens to need it.
 */

const int = (name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.transform((s) => Number(s)),
    v.number(),
    v.check(
      (n) => Number.isInteger(n) && n >= min && n <= max,
      `${name} must be an integer from ${min} to ${max}`,
    ),
  );

const optionalText = v.optional(v.pipe(v.string(), v.trim(), v.minLength(1)));
const url = (name: string) =>
  v.optional(v.pipe(v.string(), v.trim(), v.url(`${name} must be a URL`)));

const EnvSchema = v.object({
  REDIS_URL: v.pipe(
    v.string('Environment variable REDIS_URL is required'),
    v.trim(),
    v.regex(
      /^rediss?:\/\//,
      'REDIS_URL must start with redis:// or rediss:// (several, comma-separated, for a cluster)',
    ),
  ),
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
  DELIVER_FUNCTION_NAME: v.optional(v.pipe(v.string(), v.minLength(1)), 'pushwire-local-deliver'),
  LAMBDA_ENDPOINT: url('LAMBDA_ENDPOINT'),
  AWS_REGION: v.optional(v.pipe(v.string(), v.minLength(1)), 'us-east-1'),
  // Lambda sets these from the function's role; they sign management API
  // posts and Lambda Invoke (lib/aws-signing.ts).
  AWS_ACCESS_KEY_ID: optionalText,
  AWS_SECRET_ACCESS_KEY: optionalText,
  AWS_SESSION_TOKEN: optionalText,
});

export interface Config {
  redis: { urls: string[]; cluster: boolean; prefix: string };
  jwt: { secret?: string; jwksUrl?: string; issuer?: string; audience?: string };
  callbackUrl?: string;
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
  deliverFunctionName: string;
  lambdaEndpoint?: string;
  region: string;
  /** Absent when the environment has none: signing then fails with their names. */
  credentials?: AwsCredentials;
}

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

type Defined<T> = { [K in keyof T]?: Exclude<T[K], undefined> };
const defined = <T extends object>(o: T): Defined<T> =>
  Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined)) as Defined<T>;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable is an unset one (serverless.yml passes '' for "not configured").
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  if (present['REDIS_URL'] === undefined)
    throw new ConfigError('Environment variable REDIS_URL is required');
  const parsed = v.safeParse(EnvSchema, present);
  if (!parsed.success) {
    const problems = parsed.issues.map((issue) => {
      const key = issue.path?.map((p) => String(p.key)).join('.') ?? '';
      return issue.message.includes(key) ? issue.message : `${key}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.output;
  if (!e.JWT_SECRET && !e.JWT_JWKS_URL) {
    throw new ConfigError('Environment variable JWT_SECRET or JWT_JWKS_URL is required');
  }
  return {
    redis: {
      urls: e.REDIS_URL.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      cluster: e.REDIS_CLUSTER === 'true' || e.REDIS_CLUSTER === '1',
      prefix: e.REDIS_PREFIX,
    },
    jwt: defined({
      secret: e.JWT_SECRET,
      jwksUrl: e.JWT_JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    }),
    ...defined({
      callbackUrl: e.WS_CALLBACK_URL?.replace(/\/+$/, ''),
      lambdaEndpoint: e.LAMBDA_ENDPOINT,
    }),
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
    deliverFunctionName: e.DELIVER_FUNCTION_NAME,
    region: e.AWS_REGION,
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
