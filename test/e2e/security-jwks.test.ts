import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/redis-server.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { eventually } from '../helpers/offline.js';
import { useStack } from '../helpers/stack.js';

/**
 * A JWKS that cannot be fetched is the identity provider's outage, not a bad
 * token: `$connect` answers 503 (clients retry) instead of 401 (they give up).
 * End to end: pushwire configured with a JWKS URL nobody listens on.
 */

const deadPort = await freePort();
const stack = useStack({
  env: {
    JWT_SECRET: '',
    JWT_JWKS_URL: `http://127.0.0.1:${deadPort}/.well-known/jwks.json`,
    JWT_ISSUER: 'https://idp.example',
    JWT_AUDIENCE: 'pushwire',
  },
});

describe('JWKS outage', () => {
  it('refuses the handshake with 503, not 401, and stores nothing', async () => {
    // Prepare
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('u1')
      .setIssuer('https://idp.example')
      .setAudience('pushwire')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

    // Act
    const status = await TestClient.connect(stack.offline.wsUrl({ token })).then(
      (c) => {
        stack.open.push(c);
        return 'accepted';
      },
      (e: unknown) => (e instanceof HandshakeRefused ? e.status : String(e)),
    );

    // Assess
    expect(status).toBe(503);
    await eventually(
      () => stack.offline.output().includes('cannot be fetched'),
      10_000,
      'the 503 logged as a refusal',
    );
    // Nothing but the deployment's epoch, which npm start marks when Redis answers.
    expect((await stack.probe.redis.keys('*')).sort()).toEqual([
      'pw:{pw:endpoints}:epoch',
      'pw:{pw:endpoints}:epoch:iat',
    ]);
  });
});
