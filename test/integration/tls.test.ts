import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../lib/clients.js';
import { RedisRegistry } from '../../lib/registry/redis.js';
import { freePort, type RedisServer, startRedisServer } from '../../scripts/redis-server.js';

// ElastiCache with in-transit encryption speaks TLS only: a rediss:// URL must
// turn TLS on. Here a private redis-server listens with TLS alone (port 0
// disables plain TCP), behind a throwaway self-signed certificate.
let dir: string;
let server: RedisServer;
let tlsPort: number;
let ca: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pushwire-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  ca = readFileSync(join(dir, 'cert.pem'));
  tlsPort = await freePort();
  server = await startRedisServer([
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    join(dir, 'cert.pem'),
    '--tls-key-file',
    join(dir, 'key.pem'),
    '--tls-ca-cert-file',
    join(dir, 'cert.pem'),
    '--tls-auth-clients',
    'no',
  ]);
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('rediss:// (TLS, as ElastiCache in-transit encryption)', () => {
  it('registers and looks up a connection over TLS', async () => {
    // Prepare
    const redis = createRedis([`rediss://localhost:${tlsPort}`], false, { ca }) as Redis;
    const registry = new RedisRegistry(redis, {
      prefix: 'tls:',
      connectionTtlSeconds: 60,
      historySize: 10,
      historyTtlSeconds: 60,
    });
    try {
      // Act
      await registry.register({
        connectionId: 'c1',
        userId: 'alice',
        endpoint: 'https://a/prod',
        connectedAt: 1,
        allowedTopics: [],
      });
      // Assess
      expect(await registry.lookupUser('alice')).toEqual([
        { connectionId: 'c1', endpoint: 'https://a/prod' },
      ]);
      expect(redis.options.tls).toBeTruthy();
    } finally {
      redis.disconnect();
    }
  });

  it('does not speak plain TCP to the TLS port with a redis:// URL', async () => {
    // Prepare: the same port, without TLS
    const redis = createRedis([`redis://localhost:${tlsPort}`], false) as Redis;
    redis.on('error', () => undefined); // the resets are the point of this test
    try {
      // Act / Assess
      await expect(redis.ping()).rejects.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});
