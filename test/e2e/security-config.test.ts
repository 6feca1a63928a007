import { describe, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import { HandshakeRefused, TestClient } from '../helpers/client.js';
import { eventually } from '../helpers/offline.js';
import { useStack } from '../helpers/stack.js';

/**
 * A configuration that would be unsafe fails every cold start with the
 * variable's name and the reason, and nothing is stored: here a 16-byte
 * HS256 secret (issue 9 found a 1-character one accepted).
 */

const SHORT = 'sixteen-bytes-xx';
const stack = useStack({ env: { JWT_SECRET: SHORT } });

describe('an unsafe configuration', () => {
  it('refuses every connection (500) and logs why, naming JWT_SECRET but not its value', async () => {
    // Act
    const status = await TestClient.connect(
      stack.offline.wsUrl({ token: await devToken('u1', { secret: SHORT }) }),
    ).then(
      (c) => {
        stack.open.push(c);
        return 'accepted';
      },
      (e: unknown) => (e instanceof HandshakeRefused ? e.status : String(e)),
    );

    // Assess
    expect(status).toBe(500);
    await eventually(
      () => stack.offline.output().includes('JWT_SECRET is too short'),
      10_000,
      'the cold start failure in the log',
    );
    expect(stack.offline.output()).not.toContain(SHORT);
    expect(await stack.probe.redis.dbsize()).toBe(0);
  });
});
