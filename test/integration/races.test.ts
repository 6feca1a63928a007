import fc from 'fast-check';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { kick } from '../../lib/admin/kick.js';
import { createTokenVerifier, topicAllowed } from '../../lib/auth/tokens.js';
import { TOPIC_GRANT_PATTERN, TOPIC_PATTERN } from '../../lib/constants.js';
import { PushwireError } from '../../lib/errors.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRegistry } from '../../lib/registry/types.js';
import { connect, handleFrame } from '../../lib/session/session.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, ENDPOINT_A, RecordingGateway } from './support.js';

/**
 * Races that could outlive a revocation or a refresh (issue 21, item 6), run
 * against a real Redis: the session's own connect/handleFrame/kick over the
 * Redis registry, side by side as Lambda runs them.
 */

const envs = useTopologies();
const SECRET = 'races-test-secret-long-enough-for-hs256!';
const verifyToken = createTokenVerifier({ secret: SECRET });
const nowSeconds = () => Math.floor(Date.now() / 1000);

const sign = (sub: string, claims: { iat?: number; topics?: string[] } = {}) => {
  const iat = claims.iat ?? nowSeconds();
  return new SignJWT(claims.topics ? { topics: claims.topics } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 600)
    .sign(new TextEncoder().encode(SECRET));
};

const codeOf = (result: PromiseSettledResult<unknown>) =>
  result.status === 'fulfilled'
    ? 'ok'
    : result.reason instanceof PushwireError
      ? result.reason.code
      : String(result.reason);

let ids = 0;
const connectInput = (token: string) => ({
  connectionId: `Race${++ids}x${Math.random().toString(36).slice(2, 8)}=`,
  domainName: 'aaaa.execute-api.eu-west-1.amazonaws.com',
  stage: 'prod',
  token,
});

describe.each(TOPOLOGIES)('races on %s Redis', (topology) => {
  const env = envs[topology];
  const frameDeps = (registry: RedisRegistry) => ({
    registry,
    gateway: new RecordingGateway(),
    verifyToken,
  });

  /** Whether anything of the connection is left in a topic's audience or its topic list. */
  async function holds(registry: RedisRegistry, connectionId: string, topic: string) {
    const member = `${connectionId}|${ENDPOINT_A}`;
    const { live, resuming } = registry.topicAudience(topic).keys;
    const [inLive, inResuming, listed] = await Promise.all([
      env.redis.zscore(live, member),
      env.redis.zscore(resuming, member),
      env.redis.sismember(registry.keys.connectionTopics(connectionId), topic),
    ]);
    return inLive !== null || inResuming !== null || listed === 1;
  }

  describe('grants are checked where the topic is written', () => {
    it('never keeps a topic subscribed side by side with a refresh whose grants refuse it', async () => {
      // Prepare: 20 connections granted x and y; each refreshes to y only
      const rounds = 20;
      const registry = env.registry();
      const refreshed = await sign('granted', { topics: ['y'] });
      const records = Array.from({ length: rounds }, () =>
        connection('granted', { allowedTopics: ['x', 'y'] }),
      );
      await Promise.all(records.map((r) => registry.register(r)));

      // Act: subscribe x and auth, sent back to back as a client would
      const outcomes = await Promise.all(
        records.map((r) =>
          Promise.allSettled([
            handleFrame(r.connectionId, '{"action":"subscribe","topic":"x"}', frameDeps(registry)),
            handleFrame(
              r.connectionId,
              JSON.stringify({ action: 'auth', token: refreshed }),
              frameDeps(registry),
            ),
          ]),
        ),
      );
      const kept = await Promise.all(records.map((r) => holds(registry, r.connectionId, 'x')));
      const published = await registry.publish(registry.topicAudience('x'), null, 100);

      // Assess
      expect(outcomes.every(([, auth]) => auth.status === 'fulfilled')).toBe(true);
      expect(kept.filter(Boolean)).toHaveLength(0);
      expect(published.count).toBe(0);
      // Every subscribe was answered: subscribed (then left by the refresh) or forbidden.
      for (const [subscribe] of outcomes) expect(['ok', 'forbidden']).toContain(codeOf(subscribe));
    });

    it('refuses a subscribe checked against grants read before a refresh replaced them', async () => {
      // Prepare: the frame read the record (grants x, y) before the refresh
      const registry = env.registry();
      const stale = connection('stale', { allowedTopics: ['x', 'y'] });
      await registry.register(stale);
      await registry.refreshToken(stale.connectionId, {
        expiresAt: Date.now() + 60_000,
        issuedAt: Date.now(),
        topics: ['y'],
      });

      // Act
      const outcome = await registry.subscribe(stale, 'x');
      const allowed = await registry.subscribe(stale, 'y');

      // Assess
      expect(outcome).toBe('forbidden');
      expect(await holds(registry, stale.connectionId, 'x')).toBe(false);
      expect(allowed).toBe('subscribed');
    });

    it('leaves, on refresh, a topic subscribed before it that the new grants refuse', async () => {
      // Prepare
      const registry = env.registry();
      const record = connection('before', { allowedTopics: ['room:*'] });
      await registry.register(record);
      await registry.subscribe(record, 'room:1');
      await registry.subscribe(record, 'room:2');

      // Act
      const done = await registry.refreshToken(record.connectionId, {
        expiresAt: Date.now() + 60_000,
        issuedAt: Date.now(),
        topics: ['room:2'],
      });

      // Assess
      expect(done).toBe(true);
      expect(await holds(registry, record.connectionId, 'room:1')).toBe(false);
      expect(await holds(registry, record.connectionId, 'room:2')).toBe(true);
    });

    it("bounds a topic's member by the token exp stored last, even when a refresh raised it mid-subscribe", async () => {
      // Prepare: the subscribing frame read exp E1; a refresh stored E2 and
      // re-scored the memberships before this subscribe wrote its member
      const registry = env.registry({ connectionTtlSeconds: 600 });
      const e1 = Date.now() + 10_000;
      const e2 = Date.now() + 300_000;
      const stale = connection('rescored', { tokenExpiresAt: e1 });
      await registry.register(stale);
      await registry.refreshToken(stale.connectionId, {
        expiresAt: e2,
        issuedAt: Date.now(),
        topics: ['news'],
      });

      // Act
      const outcome = await registry.subscribe(stale, 'news');
      const score = await env.redis.zscore(
        registry.topicAudience('news').keys.live,
        `${stale.connectionId}|${ENDPOINT_A}`,
      );

      // Assess: not E1, past which publishes would skip and prune it
      expect(outcome).toBe('subscribed');
      expect(Number(score)).toBe(e2);
    });

    it('applies the same grant rule in Redis as topicAllowed() does', async () => {
      // Prepare
      const registry = env.registry();
      const grant = fc.stringMatching(TOPIC_GRANT_PATTERN);
      const topic = fc.stringMatching(TOPIC_PATTERN);
      // Topics near the grants too (a grant's prefix, extended or cut), not only random ones.
      const case_ = fc
        .tuple(fc.array(grant, { maxLength: 4 }), topic, fc.nat(), fc.boolean())
        .map(([grants, t, pick, near]) => {
          const g = grants[pick % Math.max(1, grants.length)];
          const base = near && g !== undefined ? g.replace(/\*$/, '') : '';
          const candidate = `${base}${t}`.slice(0, 128);
          const named = TOPIC_PATTERN.test(base) && near ? base : candidate;
          return { grants, topic: pick % 3 === 0 ? named : candidate };
        })
        .filter(({ topic: t }) => TOPIC_PATTERN.test(t));

      // Act + Assess
      await fc.assert(
        fc.asyncProperty(case_, async ({ grants, topic: t }) => {
          const record = connection('rule', { allowedTopics: grants });
          await registry.register(record);
          const outcome = await registry.subscribe(record, t);
          expect(outcome).toBe(topicAllowed(t, grants) ? 'subscribed' : 'forbidden');
        }),
        { numRuns: 150 },
      );
    });
  });

  describe('the per-user connection cap', () => {
    it('admits exactly the limit when 40 connects race for one user, and leaves nothing of the others', async () => {
      // Prepare
      const registry = env.registry();
      const inputs = await Promise.all(
        Array.from({ length: 40 }, async () => connectInput(await sign('crowd'))),
      );

      // Act
      const results = await Promise.allSettled(
        inputs.map((input) =>
          connect(input, { registry, verifyToken, limits: { connectionsPerUser: 5 } }),
        ),
      );
      const refused = inputs.filter((_, i) => results[i]?.status === 'rejected');
      const leftovers = await Promise.all(
        refused.map(async ({ connectionId }) => ({
          record: await env.redis.exists(registry.keys.connection(connectionId)),
          all: await env.redis.zscore(registry.keys.all(), `${connectionId}|${ENDPOINT_A}`),
        })),
      );

      // Assess
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
      expect(new Set(results.filter((r) => r.status === 'rejected').map(codeOf))).toEqual(
        new Set(['too_many_connections']),
      );
      expect(await registry.countConnected(registry.userAudience('crowd'))).toBe(5);
      expect(await registry.lookupUser('crowd')).toHaveLength(5);
      expect(leftovers.filter((l) => l.record !== 0 || l.all !== null)).toEqual([]);
    });
  });

  describe('revocation', () => {
    it('refuses a $connect whose registration comes after a kick with revoke looked up the user', async () => {
      // Prepare: the kick runs between this $connect's checks and its registration
      const registry = env.registry();
      const gateway = new RecordingGateway();
      const token = await sign('revoked', { iat: nowSeconds() - 2 });
      let kicked: unknown;
      const racing = new Proxy(registry, {
        get(target, property) {
          if (property === 'register') {
            return async (...args: Parameters<ConnectionRegistry['register']>) => {
              kicked = await kick(
                { userId: 'revoked', revoke: true },
                { registry: target, gateway, logger: console, revocationTtlSeconds: 60 },
              );
              return target.register(...args);
            };
          }
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const input = connectInput(token);

      // Act
      const result = await Promise.allSettled([connect(input, { registry: racing, verifyToken })]);

      // Assess
      expect(kicked).toMatchObject({ revoked: true, connections: 0 });
      expect(result.map(codeOf)).toEqual(['unauthorized']);
      expect(await registry.lookupUser('revoked')).toEqual([]);
      expect(await env.redis.exists(registry.keys.connection(input.connectionId))).toBe(0);
    });

    it('closes at its next frame a connection revoked since, and forgets it', async () => {
      // Prepare: revoked without the kick's removal (say it failed)
      const registry = env.registry();
      const issued = Date.now() - 5_000;
      const record = connection('late-revoke', { tokenIssuedAt: issued });
      const newer = connection('late-revoke', { tokenIssuedAt: issued + 2_000 });
      await Promise.all([registry.register(record), registry.register(newer)]);
      await registry.revokeUser('late-revoke', issued + 1_000, 60);

      // Act
      const [old, fresh] = await Promise.allSettled([
        handleFrame(record.connectionId, '{"action":"ping"}', frameDeps(registry)),
        handleFrame(newer.connectionId, '{"action":"ping"}', frameDeps(registry)),
      ]);

      // Assess
      expect(codeOf(old as PromiseSettledResult<unknown>)).toBe('token_revoked');
      expect(await registry.get(record.connectionId)).toBeNull();
      expect(codeOf(fresh as PromiseSettledResult<unknown>)).toBe('ok');
      expect((await registry.lookupUser('late-revoke')).map((r) => r.connectionId)).toEqual([
        newer.connectionId,
      ]);
    });
  });

  describe('a failed $connect', () => {
    it('leaves no record and no membership behind', async () => {
      // Prepare: the endpoints key holds the wrong type, so one step of registration fails
      const registry = env.registry();
      await env.redis.set(registry.keys.endpoints(), 'not a set');
      const input = connectInput(await sign('half'));

      // Act
      const result = await Promise.allSettled([connect(input, { registry, verifyToken })]);

      // Assess
      expect(result[0]?.status).toBe('rejected');
      expect(String((result[0] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
      expect(await env.redis.exists(registry.keys.connection(input.connectionId))).toBe(0);
      expect(await registry.lookupUser('half')).toEqual([]);
      expect(
        await env.redis.zscore(registry.keys.all(), `${input.connectionId}|${ENDPOINT_A}`),
      ).toBeNull();
    });
  });
});
