import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialsProvider } from '../../lib/aws/signing.js';
import { loadConfig } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import { type SignedFetcherOptions, signedFetcher } from '../../lib/secret-fetcher.js';
import { resolveSecrets } from '../../lib/secrets.js';

/**
 * Secrets named by parameter, fetched with signed JSON POSTs (the SSM and
 * Secrets Manager APIs). A local HTTP stand-in answers as those services do;
 * test/sandbox checks the signatures on the packaged zips.
 */

const JWT_SECRET = 'k'.repeat(48);
const PASSWORD = 'p@ss/word with spaces';
const SM_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:pushwire/prod/redis-AbCdEf';

interface Received {
  target: string | undefined;
  body: Record<string, unknown>;
  headers: IncomingHttpHeaders;
}
const received: Received[] = [];
let values: Record<string, string> = {};
let server: Server;
let options: SignedFetcherOptions;

beforeAll(async () => {
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
      const target = req.headers['x-amz-target'] as string | undefined;
      received.push({ target, body, headers: req.headers });
      const name = String(body['Name'] ?? body['SecretId']);
      const value = values[name];
      if (value === undefined) {
        const type =
          target === 'AmazonSSM.GetParameter' ? 'ParameterNotFound' : 'ResourceNotFoundException';
        res.writeHead(400).end(JSON.stringify({ __type: type, message: `${name} not found.` }));
        return;
      }
      res
        .writeHead(200)
        .end(
          JSON.stringify(
            target === 'AmazonSSM.GetParameter'
              ? { Parameter: { Name: name, Value: value } }
              : { Name: name, SecretString: value },
          ),
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  options = {
    region: 'us-east-1',
    credentials: credentialsProvider({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }),
    ssmEndpoint: url,
    secretsManagerEndpoint: url,
  };
});
afterAll(() => {
  server?.close();
});

/** Config as a deployed stage's template gives it: names of parameters, no values. */
const deployed = (env: Record<string, string>) =>
  loadConfig({ STAGE: 'prod', AWS_REGION: 'us-east-1', ...env });

async function resolving(config: ReturnType<typeof loadConfig>, given: Record<string, string>) {
  values = given;
  received.length = 0;
  return resolveSecrets(config, signedFetcher(options));
}

describe('resolveSecrets with signed SSM / Secrets Manager calls', () => {
  it('reads the JWT secret and the whole Redis URL from SecureString parameters, decrypted and signed', async () => {
    // Prepare
    const config = deployed({
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
      REDIS_URL_PARAMETER: '/pushwire/prod/redis-url',
    });

    // Act
    const resolved = await resolving(config, {
      '/pushwire/prod/jwt-secret': JWT_SECRET,
      '/pushwire/prod/redis-url': 'rediss://:pw@cache.example:6379',
    });

    // Assess
    expect(config.jwt.secret).toBeUndefined();
    expect(config.redis.urls).toEqual([]);
    expect(resolved.jwt.secret).toBe(JWT_SECRET);
    expect(resolved.redis.urls).toEqual(['rediss://:pw@cache.example:6379']);
    expect(received.map((r) => [r.target, r.body])).toEqual(
      expect.arrayContaining([
        ['AmazonSSM.GetParameter', { Name: '/pushwire/prod/jwt-secret', WithDecryption: true }],
        ['AmazonSSM.GetParameter', { Name: '/pushwire/prod/redis-url', WithDecryption: true }],
      ]),
    );
    expect(
      received.every((r) =>
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/ssm\//.test(
          String(r.headers.authorization),
        ),
      ),
    ).toBe(true);
  });

  it('puts a password from Secrets Manager into a REDIS_URL given without one', async () => {
    // Prepare
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      REDIS_PASSWORD_PARAMETER: SM_ARN,
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    });

    // Act
    const resolved = await resolving(config, {
      [SM_ARN]: PASSWORD,
      '/pushwire/prod/jwt-secret': JWT_SECRET,
    });

    // Assess
    const url = new URL(resolved.redis.urls[0] as string);
    expect(decodeURIComponent(url.password)).toBe(PASSWORD);
    expect(url.host).toBe('cache.example:6379');
    const sm = received.find((r) => r.target === 'secretsmanager.GetSecretValue');
    expect(sm?.body).toEqual({ SecretId: SM_ARN });
    expect(String(sm?.headers.authorization)).toMatch(/\/us-east-1\/secretsmanager\//);
  });

  it('fails with the variable and parameter name, not a value, when a parameter is missing', async () => {
    // Prepare
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    });

    // Act
    const error = await resolving(config, {}).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      'JWT_SECRET_PARAMETER names "/pushwire/prod/jwt-secret", which cannot be read: ParameterNotFound: /pushwire/prod/jwt-secret not found.',
    );
  });

  it('refuses a fetched secret shorter than 32 bytes without showing it', async () => {
    // Prepare
    const config = deployed({
      REDIS_URL: 'rediss://cache.example:6379',
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    });

    // Act
    const error = await resolving(config, { '/pushwire/prod/jwt-secret': 'short-secret' }).catch(
      (e: unknown) => e,
    );

    // Assess
    expect((error as Error).message).toMatch(/JWT_SECRET is too short/);
    expect((error as Error).message).not.toContain('short-secret');
  });

  it('refuses a plain redis:// URL fetched for a deployed stage', async () => {
    // Prepare
    const config = deployed({
      REDIS_URL_PARAMETER: '/pushwire/prod/redis-url',
      JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
    });

    // Act
    const error = await resolving(config, {
      '/pushwire/prod/redis-url': 'redis://cache.example:6379',
      '/pushwire/prod/jwt-secret': JWT_SECRET,
    }).catch((e: unknown) => e);

    // Assess
    expect((error as Error).message).toMatch(/must be rediss:\/\/ \(TLS\) on a deployed stage/);
  });

  it('asks nothing when no parameter is named (local: plain variables)', async () => {
    // Prepare
    const config = loadConfig({ REDIS_URL: 'redis://localhost:6379', JWT_SECRET });

    // Act
    const resolved = await resolving(config, {});

    // Assess
    expect(resolved).toStrictEqual(config);
    expect(received).toEqual([]);
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
