import { checkTokenOptions } from './auth/tokens.js';
import { type Config, checkRedisTransport } from './config.js';
import { ConfigError } from './errors.js';

/** Reads one secret by name: an SSM parameter name or ARN, or a Secrets Manager ARN. */
export type SecretFetcher = (name: string) => Promise<string>;

/**
 * Fills in the secrets a config names by parameter (JWT secret, Redis URL or
 * password). Runs once per cold start; the result holds the values and is
 * checked as a plain config would be (secret length, TLS on deployed stages).
 * A parameter that cannot be read fails with its name, never its value.
 */
export async function resolveSecrets(config: Config, fetch: SecretFetcher): Promise<Config> {
  const { jwt, redis } = config;
  const read = async (variable: string, name: string | undefined) => {
    if (name === undefined) return undefined;
    try {
      const value = (await fetch(name)).trim();
      if (value === '') throw new Error('it is empty');
      return value;
    } catch (error) {
      throw new ConfigError(
        `${variable} names "${name}", which cannot be read: ${(error as Error).name}: ${safeReason(error)}`,
      );
    }
  };
  const [secret, url, password] = await Promise.all([
    read('JWT_SECRET_PARAMETER', jwt.secretParameter),
    read('REDIS_URL_PARAMETER', redis.urlParameter),
    read('REDIS_PASSWORD_PARAMETER', redis.passwordParameter),
  ]);
  const resolved: Config = { ...config, jwt: { ...jwt }, redis: { ...redis } };
  if (secret !== undefined) {
    resolved.jwt.secret = secret;
    checkTokenOptions(resolved.jwt);
  }
  if (url !== undefined) {
    resolved.redis.urls = url
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (resolved.redis.urls.some((u) => !/^rediss?:\/\//.test(u))) {
      throw new ConfigError(
        `REDIS_URL_PARAMETER "${redis.urlParameter}" must hold redis:// or rediss:// URLs`,
      );
    }
  }
  if (password !== undefined) {
    resolved.redis.urls = resolved.redis.urls.map((u) => {
      const parsed = new URL(u);
      parsed.password = encodeURIComponent(password);
      return parsed.toString();
    });
  }
  checkRedisTransport(resolved.redis.urls, config);
  return resolved;
}

/** An SDK error's message, minus anything that could echo a value back. */
function safeReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.slice(0, 200);
}
