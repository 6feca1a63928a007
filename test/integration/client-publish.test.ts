import { describe, expect, it } from 'vitest';
import { RedisDedupStore } from '../../lib/delivery/dedup.js';
import { publish } from '../../lib/delivery/publish.js';
import { handleFrame } from '../../lib/session/session.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, publishDeps, RecordingGateway } from './support.js';

/**
 * Client publish (issue 16) against real Redis, standalone and cluster: the
 * registry keeps a token's publish grants (and an `auth` refresh replaces
 * them), the per-connection rate window, a client's ids scoped to its user,
 * `from` in frames and history, and ephemeral messages that store nothing.
 */

const envs = useTopologies();

describe.each(TOPOLOGIES)('client publish on %s Redis', (topology) => {
  const env = envs[topology];
  const dedupFor = (registry: ReturnType<typeof env.registry>) =>
    new RedisDedupStore(env.redis, (id) => registry.keys.dedup(id), {
      ttlSeconds: 60,
      leaseSeconds: 30,
    });

  it('stores the publish grants with the connection, and an auth refresh replaces them', async () => {
    const registry = env.registry();
    const record = connection('pub-grants', { publishTopics: ['chat:*'] });
    await registry.register(record);
    expect((await registry.touch(record.connectionId))?.publishTopics).toEqual(['chat:*']);
    await registry.refreshToken(record.connectionId, {
      expiresAt: Date.now() + 60_000,
      issuedAt: Date.now(),
      topics: [],
      publish: ['other:*'],
    });
    expect((await registry.touch(record.connectionId))?.publishTopics).toEqual(['other:*']);
    const none = connection('pub-none');
    await registry.register(none);
    expect((await registry.get(none.connectionId))?.publishTopics).toBeUndefined();
  });

  it('counts publishes per connection in a fixed window that ends by itself', async () => {
    const registry = env.registry();
    const a = connection('pub-rate').connectionId;
    const b = connection('pub-rate').connectionId;
    const first = await registry.countPublish(a, 60_000);
    expect(first.count).toBe(1);
    expect(first.resetMs).toBeGreaterThan(50_000);
    expect(first.resetMs).toBeLessThanOrEqual(60_000);
    expect((await registry.countPublish(a, 60_000)).count).toBe(2);
    expect((await registry.countPublish(b, 60_000)).count).toBe(1);
    const short = connection('pub-rate').connectionId;
    await registry.countPublish(short, 50);
    // The window's key expires with it: the next publish starts a new one.
    while ((await env.redis.exists(registry.keys.connectionPublishes(short))) === 1)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await registry.countPublish(short, 50)).count).toBe(1);
  });

  it("a client's id is its user's: another user's or a service's same id is a new message; its own is a duplicate", async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, dedupFor(registry));
    const reader = connection('pub-reader', { allowedTopics: ['room:ids'] });
    await registry.register(reader);
    await registry.subscribe(reader, 'room:ids');

    const topic = 'room:ids';
    const alice = await publish({ topic, id: 'same', data: 'a' }, deps, { from: 'alice' });
    const bob = await publish({ topic, id: 'same', data: 'b' }, deps, { from: 'bob' });
    const service = await publish({ topic, id: 'same', data: 's' }, deps);
    const again = await publish({ topic, id: 'same', data: 'a' }, deps, { from: 'alice' });
    expect(new Set([alice.cursor, bob.cursor, service.cursor]).size).toBe(3);
    expect(again).toMatchObject({ duplicate: true, cursor: alice.cursor });
    expect(gateway.framesTo(reader.connectionId)).toEqual([
      { type: 'message', id: 'same', topic, cursor: alice.cursor, from: 'alice', data: 'a' },
      { type: 'message', id: 'same', topic, cursor: bob.cursor, from: 'bob', data: 'b' },
      { type: 'message', id: 'same', topic, cursor: service.cursor, data: 's' },
    ]);
    // History holds each once, with its `from` (what a resume replays), under its scoped id.
    const history = await env.redis.xrange(registry.topicAudience(topic).keys.history, '-', '+');
    expect(history.map(([, fields]) => [JSON.parse(fields[1] as string), fields[3]])).toEqual([
      [{ id: 'same', from: 'alice', data: 'a' }, 'alice|same'],
      [{ id: 'same', from: 'bob', data: 'b' }, 'bob|same'],
      [{ id: 'same', data: 's' }, 'same'],
    ]);
  });

  it('an ephemeral publish reaches live members with ephemeral:true and no cursor, and stores nothing', async () => {
    const registry = env.registry();
    const gateway = new RecordingGateway();
    const deps = publishDeps(registry, gateway, dedupFor(registry));
    const topic = 'room:ephemeral';
    const member = connection('eph-member', { allowedTopics: [topic] });
    await registry.register(member);
    await registry.subscribe(member, topic);
    const user = connection('eph-user');
    await registry.register(user);

    const toTopic = await publish({ topic, id: 'typing', data: 1, ephemeral: true }, deps, {
      from: 'alice',
    });
    const toUser = await publish({ userId: 'eph-user', data: 2, ephemeral: true }, deps);
    for (const result of [toTopic, toUser]) {
      expect(result).toMatchObject({ stored: false, delivered: 1 });
      expect(result.cursor).toBeUndefined();
    }
    expect(gateway.framesTo(member.connectionId)).toEqual([
      { type: 'message', id: 'typing', topic, from: 'alice', ephemeral: true, data: 1 },
    ]);
    expect(gateway.framesTo(user.connectionId)).toEqual([
      { type: 'message', id: toUser.id, ephemeral: true, data: 2 },
    ]);
    for (const audience of [registry.topicAudience(topic), registry.userAudience('eph-user')])
      expect(await env.redis.xlen(audience.keys.history)).toBe(0);
    // Deduplicated by id all the same.
    expect(
      await publish({ topic, id: 'typing', data: 1, ephemeral: true }, deps, { from: 'alice' }),
    ).toMatchObject({ duplicate: true });
  });

  it('$default refuses a publish frame where no grant allows it, and without the relay configured', async () => {
    const registry = env.registry();
    const record = connection('frame-user', { publishTopics: ['room:*'] });
    await registry.register(record);
    const relayed: unknown[] = [];
    const deps = {
      registry,
      gateway: new RecordingGateway(),
      clientPublish: {
        registry,
        relay: async (e: { clientPublish: { request: { id: string } } }) => {
          relayed.push(e);
          return { id: e.clientPublish.request.id, cursor: '1-0' };
        },
        rate: 2,
        windowSeconds: 60,
        maxBytes: 1_000,
      },
    };
    const frame = (topic: string, ref: string) =>
      JSON.stringify({ action: 'publish', topic, data: 1, id: `i-${ref}`, ref });
    expect(await handleFrame(record.connectionId, frame('room:1', 'a'), deps)).toEqual({
      type: 'published',
      topic: 'room:1',
      id: 'i-a',
      cursor: '1-0',
      ref: 'a',
    });
    await expect(handleFrame(record.connectionId, frame('news', 'b'), deps)).rejects.toMatchObject({
      code: 'forbidden',
    });
    expect(await handleFrame(record.connectionId, frame('room:2', 'c'), deps)).toMatchObject({
      type: 'published',
    });
    await expect(
      handleFrame(record.connectionId, frame('room:3', 'd'), deps),
    ).rejects.toMatchObject({
      code: 'rate_limited',
    });
    expect(relayed).toHaveLength(2);
    const { clientPublish: _, ...without } = deps;
    await expect(
      handleFrame(record.connectionId, frame('room:1', 'e'), without),
    ).rejects.toMatchObject({
      code: 'forbidden',
    });
  });
});
