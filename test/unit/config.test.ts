import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import { EVENT_TYPES } from '../../lib/events/types.js';

const SECRET = 'a-local-secret-of-at-least-32-bytes';
const MINIMAL = { REDIS_URL: 'redis://localhost:6379', JWT_SECRET: SECRET };
const SECURITY_DEFAULTS = {
  stage: 'local',
  deployed: false,
  allowPlaintextRedis: false,
  limits: { topicsPerConnection: 100, connectionsPerUser: 50, replaysPerMinute: 10 },
  allowedEndpoints: [],
  acceptRecordedEndpoints: true,
  peerRegions: {},
  secretEndpoints: {},
};

/** Runs loadConfig and returns the ConfigError it threw. */
function refusal(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('loadConfig', () => {
  it('fills every default from a minimal environment', () => {
    // Act
    const config = loadConfig(MINIMAL);

    // Assess
    expect(config).toStrictEqual({
      redis: { urls: ['redis://localhost:6379'], cluster: false, prefix: 'pw:' },
      jwt: { secret: SECRET, maxTokenAgeSeconds: 3_600, clockToleranceSeconds: 30 },
      ...SECURITY_DEFAULTS,
      connectionTtlSeconds: 660,
      history: { size: 100, ttlSeconds: 86_400 },
      dedupTtlSeconds: 86_400,
      fanout: {
        concurrency: 100,
        chunk: 2_000,
        parallelChunks: 8,
        throttleMaxAttempts: 5,
        throttleBudgetMs: 5_000,
      },
      delivery: {
        chunkMaxBytes: 5 * 1024 * 1024,
        maxPublishBytes: 1024 * 1024,
        deliverAttempts: 2,
        managementApiTimeoutMs: 5_000,
        publishLeaseSeconds: 310,
      },
      pace: { rate: 5_000, burst: 1_000, reserve: 200 },
      deliverFunctionName: 'pushwire-local-deliver',
      region: 'us-east-1',
      callbackRegion: 'us-east-1',
      replay: { budgetMs: 5_000, graceMs: 2_000 },
      presence: { eventTopics: [], coalesceAbove: 100, intervalMs: 2_000 },
      deltaTopics: [],
      events: { types: [], bus: 'default', outboxMax: 100_000 },
      acks: {},
      clientPublish: {
        rate: 10,
        windowSeconds: 1,
        maxBytes: 32 * 1024,
        functionName: 'pushwire-local-publish',
      },
      devicesFunctionName: 'pushwire-local-devices',
    });
  });

  it('reads every variable when given', () => {
    // Prepare
    const env = {
      REDIS_URL: 'rediss://a:7000, rediss://b:7001',
      REDIS_CLUSTER: 'true',
      REDIS_PREFIX: 'app:',
      JWT_JWKS_URL: 'https://auth.example.com/.well-known/jwks.json',
      JWT_ISSUER: 'https://auth.example.com/',
      JWT_AUDIENCE: 'push',
      WS_CALLBACK_URL: 'http://localhost:3001//',
      WS_CALLBACK_REGION: 'eu-west-3',
      CONNECTION_TTL_SECONDS: '900',
      HISTORY_SIZE: '0',
      HISTORY_TTL_SECONDS: '60',
      DEDUP_TTL_SECONDS: '120',
      FANOUT_CONCURRENCY: '250',
      FANOUT_CHUNK: '500',
      FANOUT_PARALLEL_CHUNKS: '4',
      THROTTLE_MAX_ATTEMPTS: '3',
      THROTTLE_BUDGET_MS: '1000',
      FANOUT_CHUNK_MAX_BYTES: '1000000',
      MAX_PUBLISH_BYTES: '900000',
      DELIVER_ATTEMPTS: '3',
      MANAGEMENT_API_TIMEOUT_MS: '1500',
      PUBLISH_LEASE_SECONDS: '60',
      PACE_RATE: '9000',
      PACE_BURST: '3000',
      PACE_RESERVE: '0',
      DELIVER_FUNCTION_NAME: 'pushwire-prod-deliver',
      LAMBDA_ENDPOINT: 'http://localhost:3002',
      AWS_REGION: 'eu-central-1',
      REPLAY_BUDGET_MS: '3000',
      REPLAY_LEASE_GRACE_MS: '1500',
      PRESENCE_EVENTS_TOPICS: 'room:*, lobby',
      DELTA_TOPICS: 'doc:*, state',
      PRESENCE_COALESCE_ABOVE: '500',
      PRESENCE_INTERVAL_MS: '5000',
      PRESENCE_EVENTS_FUNCTION_NAME: 'pushwire-prod-presenceEvents',
      EVENTS: 'connected, refused,connected',
      EVENTS_BUS: 'pushwire-prod',
      EVENTS_OUTBOX_MAX: '5000',
      AWS_ENDPOINT_URL_EVENTBRIDGE: 'http://localhost:4010',
      ACK_QUEUE_URL: 'https://sqs.eu-west-3.amazonaws.com/123456789012/pushwire-prod-acks',
      AWS_ENDPOINT_URL_SQS: 'http://localhost:4020',
      AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_SESSION_TOKEN: 'token',
      CLIENT_PUBLISH_RATE: '50',
      CLIENT_PUBLISH_WINDOW_SECONDS: '10',
      CLIENT_PUBLISH_MAX_BYTES: '4096',
      PUBLISH_FUNCTION_NAME: 'pushwire-prod-publish',
      DEVICES_FUNCTION_NAME: 'pushwire-prod-devices',
      PUBLISH_HOOK_FUNCTION: 'arn:aws:lambda:eu-central-1:123456789012:function:moderate',
      PUBLISH_HOOK_TOPICS: 'chat:*, support:* ,',
      PUBLISH_HOOK_TIMEOUT_MS: '500',
    };

    // Act
    const config = loadConfig(env);

    // Assess
    expect(config).toStrictEqual({
      redis: { urls: ['rediss://a:7000', 'rediss://b:7001'], cluster: true, prefix: 'app:' },
      jwt: {
        jwksUrl: 'https://auth.example.com/.well-known/jwks.json',
        issuer: 'https://auth.example.com/',
        audience: 'push',
        maxTokenAgeSeconds: 3_600,
        clockToleranceSeconds: 30,
      },
      ...SECURITY_DEFAULTS,
      allowedEndpoints: ['http://localhost:3001'],
      callbackUrl: 'http://localhost:3001',
      lambdaEndpoint: 'http://localhost:3002',
      connectionTtlSeconds: 900,
      history: { size: 0, ttlSeconds: 60 },
      dedupTtlSeconds: 120,
      fanout: {
        concurrency: 250,
        chunk: 500,
        parallelChunks: 4,
        throttleMaxAttempts: 3,
        throttleBudgetMs: 1000,
      },
      delivery: {
        chunkMaxBytes: 1_000_000,
        maxPublishBytes: 900_000,
        deliverAttempts: 3,
        managementApiTimeoutMs: 1_500,
        publishLeaseSeconds: 60,
      },
      pace: { rate: 9_000, burst: 3_000, reserve: 0 },
      deliverFunctionName: 'pushwire-prod-deliver',
      region: 'eu-central-1',
      callbackRegion: 'eu-west-3',
      replay: { budgetMs: 3_000, graceMs: 1_500 },
      presence: {
        eventTopics: ['room:*', 'lobby'],
        coalesceAbove: 500,
        intervalMs: 5_000,
        eventsFunctionName: 'pushwire-prod-presenceEvents',
      },
      deltaTopics: ['doc:*', 'state'],
      events: {
        types: ['connected', 'refused'],
        bus: 'pushwire-prod',
        outboxMax: 5_000,
        endpoint: 'http://localhost:4010',
      },
      acks: {
        queueUrl: 'https://sqs.eu-west-3.amazonaws.com/123456789012/pushwire-prod-acks',
        sqsEndpoint: 'http://localhost:4020',
      },
      credentials: { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'secret', sessionToken: 'token' },
      clientPublish: {
        rate: 50,
        windowSeconds: 10,
        maxBytes: 4096,
        functionName: 'pushwire-prod-publish',
        hook: {
          functionName: 'arn:aws:lambda:eu-central-1:123456789012:function:moderate',
          topics: ['chat:*', 'support:*'],
          timeoutMs: 500,
        },
      },
      devicesFunctionName: 'pushwire-prod-devices',
    });
  });

  it('refuses a client publish size over 32 KB and hook topics that are not grant patterns', () => {
    expect(refusal({ ...MINIMAL, CLIENT_PUBLISH_MAX_BYTES: '40000' }).message).toContain(
      'CLIENT_PUBLISH_MAX_BYTES must be an integer from 16 to 32768',
    );
    expect(
      refusal({ ...MINIMAL, PUBLISH_HOOK_FUNCTION: 'h', PUBLISH_HOOK_TOPICS: 'chat*' }).message,
    ).toContain('PUBLISH_HOOK_TOPICS: topic grants (chat:1, chat:*, *), comma-separated');
    expect(loadConfig({ ...MINIMAL, PUBLISH_HOOK_FUNCTION: 'h' }).clientPublish.hook).toEqual({
      functionName: 'h',
      topics: ['*'],
      timeoutMs: 2_000,
    });
  });

  it('refuses a pacing reserve that leaves deliver workers no token, and a negative rate', () => {
    // Act
    const reserveAll = () => loadConfig({ ...MINIMAL, PACE_BURST: '100', PACE_RESERVE: '100' });
    const negative = () => loadConfig({ ...MINIMAL, PACE_RATE: '-1' });

    // Assess
    expect(reserveAll).toThrow('PACE_RESERVE must be less than PACE_BURST');
    expect(negative).toThrow('PACE_RATE must be an integer from 0 to 1000000');
    expect(loadConfig({ ...MINIMAL, PACE_RATE: '0' }).pace.rate).toBe(0);
  });

  it('takes MAX_PUBLISH_BYTES (default 1 MiB) within what a deliver chunk leaves room for', () => {
    // Act + Assess
    expect(loadConfig(MINIMAL).delivery.maxPublishBytes).toBe(1_048_576);
    expect(loadConfig({ ...MINIMAL, MAX_PUBLISH_BYTES: '4000000' }).delivery.maxPublishBytes).toBe(
      4_000_000,
    );
    // Unset with a small chunk: what the chunk leaves room for.
    expect(
      loadConfig({ ...MINIMAL, FANOUT_CHUNK_MAX_BYTES: '300000' }).delivery.maxPublishBytes,
    ).toBe(300_000 - 65_536);
    expect(() =>
      loadConfig({ ...MINIMAL, FANOUT_CHUNK_MAX_BYTES: '1000000', MAX_PUBLISH_BYTES: '1000000' }),
    ).toThrow(
      'MAX_PUBLISH_BYTES (1000000) must leave 65536 bytes of FANOUT_CHUNK_MAX_BYTES (1000000) for recipients',
    );
    expect(() => loadConfig({ ...MINIMAL, MAX_PUBLISH_BYTES: '6000000' })).toThrow(
      'MAX_PUBLISH_BYTES must be an integer from 1024 to 5242880',
    );
  });

  it('refuses a FANOUT_CHUNK_MAX_BYTES above what Lambda accepts in one invocation', () => {
    // Act
    const load = () => loadConfig({ ...MINIMAL, FANOUT_CHUNK_MAX_BYTES: '7000000' });

    // Assess
    expect(load).toThrow('FANOUT_CHUNK_MAX_BYTES must be an integer from 262144 to 6000000');
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('reads REDIS_CLUSTER=%s as %s', (value, cluster) => {
    // Act
    const config = loadConfig({ ...MINIMAL, REDIS_CLUSTER: value });

    // Assess
    expect(config.redis.cluster).toBe(cluster);
  });

  it('treats empty strings as unset, so defaults apply', () => {
    // Prepare: serverless.yml passes '' for "not configured"
    const env = {
      ...MINIMAL,
      JWT_JWKS_URL: '',
      JWT_ISSUER: '',
      WS_CALLBACK_URL: '',
      LAMBDA_ENDPOINT: '',
      FANOUT_CONCURRENCY: '',
      REDIS_PREFIX: '',
      REDIS_CLUSTER: '',
      AWS_REGION: '',
    };

    // Act
    const config = loadConfig(env);

    // Assess
    expect(config).toStrictEqual(loadConfig(MINIMAL));
  });

  it('treats an empty REDIS_URL as missing', () => {
    // Act
    const error = refusal({ ...MINIMAL, REDIS_URL: '' });

    // Assess
    expect(error.message).toBe(
      'Environment variable REDIS_URL (or REDIS_URL_PARAMETER) is required',
    );
  });

  it('refuses a missing REDIS_URL and names it', () => {
    // Act
    const error = refusal({ JWT_SECRET: SECRET });

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('REDIS_URL');
  });

  it('refuses a REDIS_URL that is not redis:// or rediss://', () => {
    // Act
    const error = refusal({ ...MINIMAL, REDIS_URL: 'http://localhost:6379' });

    // Assess
    expect(error.message).toContain('REDIS_URL must start with redis:// or rediss://');
  });

  it('refuses an environment with neither JWT_SECRET nor JWT_JWKS_URL and names both', () => {
    // Act
    const error = refusal({ REDIS_URL: 'redis://localhost:6379' });

    // Assess
    expect(error.message).toContain('JWT_SECRET');
    expect(error.message).toContain('JWT_JWKS_URL');
  });

  it('counts a JWT_SECRET of only spaces as no secret', () => {
    // Act
    const error = refusal({ REDIS_URL: 'redis://localhost:6379', JWT_SECRET: '   ' });

    // Assess
    expect(error.message).toContain('JWT_SECRET');
  });

  it.each([
    ['not a number', 'FANOUT_CONCURRENCY', 'lots'],
    ['a fraction', 'FANOUT_CHUNK', '1.5'],
    ['zero where 1 is the minimum', 'FANOUT_PARALLEL_CHUNKS', '0'],
    ['a negative number', 'HISTORY_SIZE', '-1'],
    ['over the maximum', 'THROTTLE_MAX_ATTEMPTS', '21'],
    ['under the minimum', 'CONNECTION_TTL_SECONDS', '9'],
  ])('refuses %s and names the variable', (_label, name, value) => {
    // Act
    const error = refusal({ ...MINIMAL, [name]: value });

    // Assess
    expect(error.message).toContain(name);
  });

  it('says the allowed range of an out-of-range integer', () => {
    // Act
    const error = refusal({ ...MINIMAL, FANOUT_CONCURRENCY: '20000' });

    // Assess
    expect(error.message).toContain('FANOUT_CONCURRENCY must be an integer from 1 to 10000');
  });

  it('names every bad variable at once', () => {
    // Act
    const error = refusal({ ...MINIMAL, FANOUT_CHUNK: 'x', HISTORY_TTL_SECONDS: '0' });

    // Assess
    expect(error.message).toContain('FANOUT_CHUNK');
    expect(error.message).toContain('HISTORY_TTL_SECONDS');
  });

  it.each(['pw{', 'p}w', '{pw}:'])(
    'refuses REDIS_PREFIX %s, which holds a hash-tag brace',
    (prefix) => {
      // Act
      const error = refusal({ ...MINIMAL, REDIS_PREFIX: prefix });

      // Assess
      expect(error.message).toContain('REDIS_PREFIX must not contain { or }');
    },
  );

  it.each([
    ['JWT_JWKS_URL', 'not a url'],
    ['WS_CALLBACK_URL', 'callback-host'],
    ['LAMBDA_ENDPOINT', 'nope'],
  ])('refuses %s that is not a URL and names it', (name, value) => {
    // Act
    const error = refusal({ ...MINIMAL, [name]: value });

    // Assess
    expect(error.message).toContain(`${name} must be a URL`);
  });

  it('refuses a REDIS_CLUSTER that is not a boolean', () => {
    // Act
    const error = refusal({ ...MINIMAL, REDIS_CLUSTER: 'yes' });

    // Assess
    expect(error.message).toContain('REDIS_CLUSTER must be true or false');
  });

  it('ignores variables it does not know', () => {
    // Act
    const config = loadConfig({ ...MINIMAL, PATH: '/usr/bin', HOME: '/root' });

    // Assess
    expect(config).toStrictEqual(loadConfig(MINIMAL));
  });
});

describe('EVENTS', () => {
  const base = { REDIS_URL: 'redis://localhost:6379', JWT_SECRET: 'x'.repeat(32) };

  it('takes `all` as every event type', () => {
    // Act
    const config = loadConfig({ ...base, EVENTS: 'all' });
    // Assess
    expect(config.events.types).toEqual([...EVENT_TYPES]);
  });

  it('names an unknown event type and the known ones', () => {
    // Act
    const load = () => loadConfig({ ...base, EVENTS: 'connected,conected' });
    // Assess
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(
      /EVENTS names unknown event types \(conected\): give some of connected, disconnected/,
    );
  });

  it('refuses a bus ARN: the role may put events on a bus of this account and region, by name', () => {
    // Act
    const load = () =>
      loadConfig({ ...base, EVENTS_BUS: 'arn:aws:events:eu-west-1:123456789012:event-bus/x' });
    // Assess
    expect(load).toThrow(/EVENTS_BUS must be the name of an event bus/);
  });
});

describe('delta topics', () => {
  it('refuses a delta topic that is not a topic name or a prefix grant', () => {
    expect(() => loadConfig({ ...MINIMAL, DELTA_TOPICS: 'doc*' })).toThrow(
      /DELTA_TOPICS must be comma-separated topic names or prefixes like "doc:\*"/,
    );
    expect(() => loadConfig({ ...MINIMAL, DELTA_TOPICS: 'doc:*,a b' })).toThrow(/DELTA_TOPICS/);
  });
});

describe('presence settings', () => {
  it('refuses an event topic that is not a topic name or a prefix grant', () => {
    expect(() => loadConfig({ ...MINIMAL, PRESENCE_EVENTS_TOPICS: 'room*' })).toThrow(
      /PRESENCE_EVENTS_TOPICS must be comma-separated topic names or prefixes like "room:\*"/,
    );
  });
});
