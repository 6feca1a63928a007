import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import { powertoolsFetcher, resolveSecrets } from '../../lib/secrets.js';

const JWT_SECRET = 'k'.repeat(48);
const PASSWORD = 'p@ss/word with spaces';
const ssm = mockClient(SSMClient);
const secretsManager = mockClient(SecretsManagerClient);

beforeEach(() => {
  ssm.reset();
  secretsManager.reset();
});
afterEach(() => {
  ssm.reset();
  secretsManager.reset();
});

/** Config as a deployed stage's template gives it: names of parameters, no values. */
const deployed = (env: Record<string, string>) =>
  loadConfig({ STAGE: 'prod', AWS_REGION: 'us-east-1', ...env });

describe('resolveSecrets with Powertools Parameters (SSM mocked)', () => {
  it('reads the JWT secret and the whole Redis URL from SecureString parameters, decrypted', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand, { Name: '/pushwire/prod/jwt-secret', WithDecryption: true })
      .resolves({ Parameter: { Value: JWT_SECRET } })
      .on(GetParameterCommand, { Name: '/pushwire/prod/redis-url', WithDecryption: true })
      .resolves({ Parameter: { Value: 'rediss://:pw@cache.example:6379' } });
    const config = deployed({
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
      REDIS_URL_PARAMETER: '/pushwire/prod/redis-url',
    });

    // Act
    const resolved = await resolveSecrets(config, powertoolsFetcher);

    // Assess
    expect(config.jwt.secret).toBeUndefined();
    expect(config.redis.urls).toEqual([]);
    expect(resolved.jwt.secret).toBe(JWT_SECRET);
    expect(resolved.redis.urls).toEqual(['rediss://:pw@cache.example:6379']);
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(2);
  });

  it('puts a password from Secrets Manager into a REDIS_URL given without one', async () => {
    // Prepare
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:pushwire/prod/redis-AbCdEf';
    secretsManager
      .on(GetSecretValueCommand, { SecretId: arn })
      .resolves({ SecretString: PASSWORD });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JWT_SECRET } });
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      REDIS_PASSWORD_PARAMETER: arn,
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    });

    // Act
    const resolved = await resolveSecrets(config, powertoolsFetcher);

    // Assess
    const url = new URL(resolved.redis.urls[0] as string);
    expect(decodeURIComponent(url.password)).toBe(PASSWORD);
    expect(url.host).toBe('cache.example:6379');
  });

  // Powertools caches values by name for a few seconds: each test uses its own names.
  it('fails with the variable and parameter name, not a value, when a parameter is missing', async () => {
    // Prepare
    ssm.on(GetParameterCommand).rejects(
      Object.assign(new Error('Parameter /pushwire/prod2/jwt-secret not found.'), {
        name: 'ParameterNotFound',
      }),
    );
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      JWT_SECRET_PARAMETER: '/pushwire/prod2/jwt-secret',
    });

    // Act
    const error = await resolveSecrets(config, powertoolsFetcher).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(
      /^JWT_SECRET_PARAMETER names "\/pushwire\/prod2\/jwt-secret", which cannot be read: GetParameterError: Parameter \/pushwire\/prod2\/jwt-secret not found/,
    );
  });

  it('refuses a fetched secret shorter than 32 bytes without showing it', async () => {
    // Prepare
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'short-secret' } });
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      JWT_SECRET_PARAMETER: '/pushwire/prod3/jwt-secret',
    });

    // Act
    const error = await resolveSecrets(config, powertoolsFetcher).catch((e: unknown) => e);

    // Assess
    expect((error as Error).message).toMatch(/JWT_SECRET is too short/);
    expect((error as Error).message).not.toContain('short-secret');
  });

  it('refuses a plain redis:// URL fetched for a deployed stage', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand, { Name: '/pushwire/prod4/redis-url' })
      .resolves({ Parameter: { Value: 'redis://cache.example:6379' } })
      .on(GetParameterCommand, { Name: '/pushwire/prod4/jwt-secret' })
      .resolves({ Parameter: { Value: JWT_SECRET } });
    const config = deployed({
      REDIS_URL_PARAMETER: '/pushwire/prod4/redis-url',
      JWT_SECRET_PARAMETER: '/pushwire/prod4/jwt-secret',
    });

    // Act
    const error = await resolveSecrets(config, powertoolsFetcher).catch((e: unknown) => e);

    // Assess
    expect((error as Error).message).toMatch(/must be rediss:\/\/ \(TLS\) on a deployed stage/);
  });

  it('asks nothing of AWS when no parameter is named (local: plain variables)', async () => {
    // Prepare
    const config = loadConfig({ REDIS_URL: 'redis://localhost:6379', JWT_SECRET });

    // Act
    const resolved = await resolveSecrets(config, powertoolsFetcher);

    // Assess
    expect(resolved).toStrictEqual(config);
    expect(ssm.calls()).toHaveLength(0);
    expect(secretsManager.calls()).toHaveLength(0);
  });
});

describe('loadConfig: where secrets may come from', () => {
  const refusal = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('expected a refusal');
  };

  it.each([
    [
      'a plain JWT_SECRET on a deployed stage',
      { STAGE: 'prod', REDIS_URL: 'rediss://h:6379', JWT_SECRET },
      /JWT_SECRET must not be given by value on the deployed stage "prod"/,
    ],
    [
      'a REDIS_URL with a password on a deployed stage',
      {
        STAGE: 'prod',
        REDIS_URL: 'rediss://:pw@h:6379',
        JWT_SECRET_PARAMETER: '/p',
      },
      /REDIS_URL must not carry a password on a deployed stage/,
    ],
    [
      'a plain redis:// URL on a deployed stage',
      { STAGE: 'prod', REDIS_URL: 'redis://h:6379', JWT_SECRET_PARAMETER: '/p' },
      /REDIS_URL must be rediss:\/\/ \(TLS\) on a deployed stage; set REDIS_ALLOW_PLAINTEXT=true/,
    ],
    [
      'both JWT_SECRET and JWT_JWKS_URL',
      {
        REDIS_URL: 'redis://h:6379',
        JWT_SECRET,
        JWT_JWKS_URL: 'https://idp/jwks',
        JWT_ISSUER: 'i',
        JWT_AUDIENCE: 'a',
      },
      /JWT_SECRET and JWT_JWKS_URL are both set/,
    ],
    [
      'both JWT_SECRET_PARAMETER and JWT_JWKS_URL',
      {
        REDIS_URL: 'redis://h:6379',
        JWT_SECRET_PARAMETER: '/p',
        JWT_JWKS_URL: 'https://idp/jwks',
        JWT_ISSUER: 'i',
        JWT_AUDIENCE: 'a',
      },
      /JWT_SECRET_PARAMETER and JWT_JWKS_URL are both set/,
    ],
    [
      'a JWKS URL without issuer and audience',
      { REDIS_URL: 'redis://h:6379', JWT_JWKS_URL: 'https://idp/jwks' },
      /JWT_ISSUER and JWT_AUDIENCE required with JWT_JWKS_URL/,
    ],
    [
      'a 1-character secret',
      { REDIS_URL: 'redis://h:6379', JWT_SECRET: 'x' },
      /JWT_SECRET is too short/,
    ],
    [
      'a clock tolerance over 5 minutes',
      { REDIS_URL: 'redis://h:6379', JWT_SECRET, JWT_CLOCK_TOLERANCE_SECONDS: '3600' },
      /JWT_CLOCK_TOLERANCE_SECONDS must be an integer from 0 to 300/,
    ],
    [
      'a topic limit of 0',
      { REDIS_URL: 'redis://h:6379', JWT_SECRET, MAX_TOPICS_PER_CONNECTION: '0' },
      /MAX_TOPICS_PER_CONNECTION must be an integer from 1/,
    ],
  ])('refuses %s', (_label, env, message) => {
    // Act
    const why = refusal(env);

    // Assess
    expect(why).toMatch(message);
  });

  it('accepts redis:// on a deployed stage when REDIS_ALLOW_PLAINTEXT=true', () => {
    // Act
    const config = loadConfig({
      STAGE: 'prod',
      REDIS_URL: 'redis://h:6379',
      REDIS_ALLOW_PLAINTEXT: 'true',
      JWT_SECRET_PARAMETER: '/p',
    });

    // Assess
    expect(config.deployed).toBe(true);
    expect(config.allowPlaintextRedis).toBe(true);
  });
});
