import { describe, expect, it } from 'vitest';
import { answerAck, redisAcks } from '../../lib/acks/client-ack.js';
import type { AckTimeoutMessage } from '../../lib/acks/queue.js';
import { ackStatus } from '../../lib/acks/status.js';
import { RedisAckStore } from '../../lib/acks/store.js';
import { type AckTimeoutDeps, handleTimeout } from '../../lib/acks/timeout.js';
import { type PublishDeps, publish } from '../../lib/delivery/publish.js';
import type { Notify, PushedMessage, PushOutcome, PushSender } from '../../lib/push/types.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import { replay } from '../../lib/session/resume.js';
import { handleFrame } from '../../lib/session/session.js';
import { callsDelta, TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { connection, noDedup, publishDeps, RecordingGateway } from './support.js';

/**
 * Acknowledged messages (issue 18) against real Redis, standalone and
 * cluster: the state a publish opens, acks (idempotent, only the addressed
 * user's), dismiss to the other devices and `dismissed` in a replay, status,
 * the state's TTL, and the timeout deciding on a push (with a recording
 * PushSender: the real port, in-process).
 */

const envs = useTopologies();
const HISTORY_TTL = 3_600;

/** A PushSender that records each call and answers as one registered device accepting it. */
class RecordingSender implements PushSender {
  readonly calls: { userId: string; notify: Notify; message: PushedMessage }[] = [];
  fail = false;
  async send(userId: string, notify: Notify, message: PushedMessage): Promise<PushOutcome> {
    if (this.fail) throw new Error('push service down');
    this.calls.push({ userId, notify, message });
    return { devices: 1, sent: 1, failed: 0, removed: 0 };
  }
}

describe.each(TOPOLOGIES)('acknowledged messages on %s Redis', (topology) => {
  const env = envs[topology];

  function setup() {
    const registry = env.registry({ historyTtlSeconds: HISTORY_TTL });
    const gateway = new RecordingGateway();
    const store = new RedisAckStore(env.redis, registry.keys, { historyTtlSeconds: HISTORY_TTL });
    const scheduled: { message: AckTimeoutMessage; delay: number }[] = [];
    const deps: PublishDeps = {
      ...publishDeps(registry, gateway, noDedup),
      acks: {
        open: (u, id, o) => store.open(u, id, o),
        schedule: async (message, delay) => {
          scheduled.push({ message, delay });
        },
        maxTimeoutSeconds: HISTORY_TTL,
      },
    };
    const script = redisAcks(env.redis, registry.keys, HISTORY_TTL);
    const frameDeps = {
      registry,
      gateway,
      acks: (
        c: Parameters<typeof answerAck>[0],
        ids: string[],
        post: Parameters<typeof answerAck>[3],
      ) => answerAck(c, ids, script, post),
    };
    const ack = (connectionId: string, ids: string[]) =>
      handleFrame(connectionId, JSON.stringify({ action: 'ack', ids }), frameDeps);
    const sender = new RecordingSender();
    const counted: string[] = [];
    const timeoutDeps = (over: Partial<AckTimeoutDeps> = {}): AckTimeoutDeps => ({
      store,
      sender,
      schedule: async (message, delay) => {
        scheduled.push({ message, delay });
      },
      epoch: () => registry.epoch(),
      count: (metric) => {
        counted.push(metric);
      },
      logger: { info: () => undefined, warn: () => undefined },
      ...over,
    });
    return { registry, gateway, store, scheduled, deps, ack, sender, counted, timeoutDeps };
  }

  async function devices(registry: RedisRegistry, userId: string, n: number) {
    const list = Array.from({ length: n }, () => connection(userId));
    for (const c of list) await registry.register(c);
    return list;
  }

  it('an ack publish marks its frames, opens the state and schedules the timeout; a plain one does neither', async () => {
    const { registry, gateway, store, scheduled, deps } = setup();
    const [a, b] = await devices(registry, 'ack-u1', 2);
    const notify = { title: 'Call from Bob' };
    const result = await publish(
      {
        id: 'call-1',
        userId: 'ack-u1',
        data: { call: 'bob' },
        ack: { timeoutSeconds: 30, notify },
      },
      deps,
    );
    expect(result).toMatchObject({ delivered: 2, stored: true });
    expect(gateway.framesTo(a?.connectionId as string)).toEqual([
      { type: 'message', id: 'call-1', cursor: result.cursor, ack: true, data: { call: 'bob' } },
    ]);
    expect(scheduled).toEqual([
      {
        delay: 30,
        message: expect.objectContaining({
          v: 1,
          userId: 'ack-u1',
          id: 'call-1',
          cursor: result.cursor,
          timeoutSeconds: 30,
          notify,
        }),
      },
    ]);
    const status = await store.status('ack-u1', 'call-1');
    expect(status).toMatchObject({ state: 'pending', notify: true, dismissOthers: false });
    expect(status?.devices.map((d) => d.connectionId).sort()).toEqual(
      [a?.connectionId, b?.connectionId].sort(),
    );
    expect(status?.devices.every((d) => d.postedAt !== undefined && d.ackedAt === undefined)).toBe(
      true,
    );
    // Lives as long as history (the timeout is shorter).
    const ttl = await env.redis.ttl(registry.keys.ack('ack-u1', 'call-1'));
    expect(ttl).toBeGreaterThan(HISTORY_TTL - 10);
    expect(ttl).toBeLessThanOrEqual(HISTORY_TTL);

    await publish({ id: 'plain-1', userId: 'ack-u1', data: 1 }, deps);
    expect(scheduled).toHaveLength(1);
    expect(await env.redis.exists(registry.keys.ack('ack-u1', 'plain-1'))).toBe(0);
    expect(gateway.framesTo(b?.connectionId as string).at(-1)).not.toHaveProperty('ack');
  });

  it('a plain publish costs the same Redis commands with acks enabled as without', async () => {
    const { registry, deps, scheduled } = setup();
    const { acks: _acks, ...plain } = deps;
    await devices(registry, 'ack-cheap-1', 1);
    await devices(registry, 'ack-cheap-2', 1);
    const cost = async (userId: string, d: PublishDeps) => {
      const before = await env.commandCalls();
      await publish({ id: `${userId}-m`, userId, data: { n: 1 } }, d);
      return callsDelta(before, await env.commandCalls());
    };
    // Warm (script loading) so both runs are alike.
    await publish({ userId: 'ack-cheap-1', data: 0 }, deps);
    await publish({ userId: 'ack-cheap-2', data: 0 }, plain);
    const withAcks = await cost('ack-cheap-1', deps);
    const without = await cost('ack-cheap-2', plain);
    expect(withAcks).toEqual(without);
    expect(scheduled).toEqual([]);
  });

  it('refuses ack for topics, broadcasts, connection ids, ephemeral, too long a timeout, or without a queue', async () => {
    const { deps } = setup();
    const ack = { timeoutSeconds: 10 };
    await expect(publish({ topic: 'news', data: 1, ack }, deps)).rejects.toThrow(
      /ack needs a userId or userIds target/,
    );
    await expect(publish({ broadcast: true, data: 1, ack }, deps)).rejects.toThrow(/ack needs/);
    await expect(publish({ connectionIds: ['x'], data: 1, ack }, deps)).rejects.toThrow(
      /ack needs/,
    );
    await expect(publish({ userId: 'u', ephemeral: true, data: 1, ack }, deps)).rejects.toThrow(
      /ack cannot be ephemeral/,
    );
    await expect(
      publish({ userId: 'u', data: 1, ack: { timeoutSeconds: HISTORY_TTL + 1 } }, deps),
    ).rejects.toThrow(/at most 3600/);
    await expect(
      publish({ userId: 'u', data: 1, ack: { timeoutSeconds: 0 } }, deps),
    ).rejects.toThrow(/at least 1/);
    await expect(
      publish({ userId: 'u', data: 1, ack: { timeoutSeconds: 5, notify: { body: 'x' } } }, deps),
    ).rejects.toThrow(/title/);
    await expect(
      publish({ userId: 'u', data: 1, ack: { timeoutSeconds: 5, sound: true } }, deps),
    ).rejects.toThrow(/unknown field ack.sound/);
    const { acks: _none, ...without } = deps;
    await expect(publish({ userId: 'u', data: 1, ack }, without)).rejects.toThrow(/ACK_QUEUE_URL/);
  });

  it('acks are idempotent and recorded per device; another user acking is refused', async () => {
    const { registry, store, deps, ack } = setup();
    const [a, b] = await devices(registry, 'ack-u2', 2);
    const [other] = await devices(registry, 'ack-stranger', 1);
    await publish({ id: 'm-2', userId: 'ack-u2', data: 1, ack: { timeoutSeconds: 30 } }, deps);

    expect(await ack(a?.connectionId as string, ['m-2'])).toEqual({ type: 'acked', ids: ['m-2'] });
    const first = await store.status('ack-u2', 'm-2');
    expect(first?.state).toBe('acked');
    expect(first?.firstAck?.connectionId).toBe(a?.connectionId);
    const ackedAt = first?.devices.find((d) => d.connectionId === a?.connectionId)?.ackedAt;
    expect(ackedAt).toBeGreaterThan(0);
    // Again: same answer, nothing changes.
    expect(await ack(a?.connectionId as string, ['m-2'])).toEqual({ type: 'acked', ids: ['m-2'] });
    const again = await store.status('ack-u2', 'm-2');
    expect(again?.devices.find((d) => d.connectionId === a?.connectionId)?.ackedAt).toBe(ackedAt);
    expect(again?.firstAck).toEqual(first?.firstAck);
    // The second device's ack is recorded beside it; the first ack stays the first.
    await ack(b?.connectionId as string, ['m-2']);
    const both = await store.status('ack-u2', 'm-2');
    expect(both?.devices.filter((d) => d.ackedAt !== undefined)).toHaveLength(2);
    expect(both?.firstAck?.connectionId).toBe(a?.connectionId);

    // Another user's connection: refused with ack_refused, nothing recorded.
    await expect(ack(other?.connectionId as string, ['m-2'])).rejects.toMatchObject({
      code: 'ack_refused',
    });
    const after = await store.status('ack-u2', 'm-2');
    expect(after?.devices.some((d) => d.connectionId === other?.connectionId)).toBe(false);
    // A batch with known and unknown ids: the known acked, the rest named.
    expect(await ack(a?.connectionId as string, ['m-2', 'nope'])).toEqual({
      type: 'acked',
      ids: ['m-2'],
      refused: ['nope'],
    });
    // A frame over the bound is refused before any Redis work.
    const many = Array.from({ length: 101 }, (_, i) => `x${i}`);
    await expect(ack(a?.connectionId as string, many)).rejects.toMatchObject({
      code: 'invalid_frame',
    });
  });

  it('first device wins: the first ack dismisses the others, once; a device resuming later gets it marked dismissed', async () => {
    const { registry, gateway, deps, ack, store } = setup();
    const [a, b, c] = await devices(registry, 'ack-u3', 3);
    const sent = await publish(
      {
        id: 'ring-1',
        userId: 'ack-u3',
        data: 'ring',
        ack: { timeoutSeconds: 30, dismissOthers: true },
      },
      deps,
    );
    // A fourth device that was away since before the ring.
    const away = connection('ack-u3');
    await registry.register(away);
    await ack(b?.connectionId as string, ['ring-1']);
    const dismissesTo = (id?: string) =>
      gateway.posts.filter((p) => p.connectionId === id && JSON.parse(p.frame).type === 'dismiss');
    expect(dismissesTo(b?.connectionId)).toHaveLength(0);
    for (const other of [a, c, away])
      expect(dismissesTo(other?.connectionId).map((p) => JSON.parse(p.frame))).toEqual([
        { type: 'dismiss', id: 'ring-1' },
      ]);
    // A later ack by another device dismisses nothing more.
    await ack(c?.connectionId as string, ['ring-1']);
    expect(gateway.posts.filter((p) => JSON.parse(p.frame).type === 'dismiss')).toHaveLength(3);
    expect((await store.status('ack-u3', 'ring-1'))?.firstAck?.connectionId).toBe(b?.connectionId);

    // The away device resumes from before the ring: replayed as dismissed.
    const audience = registry.userAudience('ack-u3');
    await registry.beginResume(audience, away, Date.now() + 60_000);
    const since = `${Number(String(sent.cursor).split('-')[0]) - 1}-0`;
    await replay(audience, away, since, { registry, gateway }, Date.now() + 30_000);
    const replayed = gateway.framesTo(away.connectionId).filter((f) => f.type === 'message');
    expect(replayed).toEqual([
      {
        type: 'message',
        id: 'ring-1',
        cursor: sent.cursor,
        ack: true,
        dismissed: true,
        data: 'ring',
      },
    ]);
  });

  it('a message without dismissOthers is replayed acked but not dismissed, and sends no dismiss', async () => {
    const { registry, gateway, deps, ack } = setup();
    const [a, b] = await devices(registry, 'ack-u4', 2);
    const sent = await publish(
      { id: 'keep-1', userId: 'ack-u4', data: 1, ack: { timeoutSeconds: 9 } },
      deps,
    );
    await ack(a?.connectionId as string, ['keep-1']);
    expect(gateway.posts.filter((p) => JSON.parse(p.frame).type === 'dismiss')).toHaveLength(0);
    const audience = registry.userAudience('ack-u4');
    await registry.beginResume(audience, b as never, Date.now() + 60_000);
    const since = `${Number(String(sent.cursor).split('-')[0]) - 1}-0`;
    await replay(audience, b as never, since, { registry, gateway }, Date.now() + 30_000);
    expect(gateway.framesTo(b?.connectionId as string).at(-1)).toEqual({
      type: 'message',
      id: 'keep-1',
      cursor: sent.cursor,
      ack: true,
      data: 1,
    });
  });

  it('status answers while the state lives, and not_found otherwise', async () => {
    const { registry, store, deps } = setup();
    await devices(registry, 'ack-u5', 1);
    await publish({ id: 'st-1', userId: 'ack-u5', data: 1, ack: { timeoutSeconds: 5 } }, deps);
    expect(await ackStatus({ id: 'st-1', userId: 'ack-u5' }, { store })).toMatchObject({
      id: 'st-1',
      userId: 'ack-u5',
      state: 'pending',
    });
    await expect(
      ackStatus({ id: 'st-1', userId: 'someone-else' }, { store }),
    ).rejects.toMatchObject({ code: 'not_found', status: 404 });
    await expect(ackStatus({ id: 'st-1' }, { store })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    await env.redis.del(registry.keys.ack('ack-u5', 'st-1'));
    await expect(ackStatus({ id: 'st-1', userId: 'ack-u5' }, { store })).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('the timeout pushes when nobody acked, once, and records the outcome; not when acked', async () => {
    const { registry, store, deps, ack, sender, scheduled, counted, timeoutDeps } = setup();
    const [a] = await devices(registry, 'ack-u6', 1);
    const notify = { title: 'Order ready', tag: 'orders' };
    const r = await publish(
      { id: 'o-1', userId: 'ack-u6', data: 1, ack: { timeoutSeconds: 1, notify } },
      deps,
    );
    await publish(
      { id: 'o-2', userId: 'ack-u6', data: 2, ack: { timeoutSeconds: 1, notify } },
      deps,
    );
    await ack(a?.connectionId as string, ['o-2']);
    const due = (id: string) => JSON.stringify(scheduled.find((s) => s.message.id === id)?.message);
    const later = () => Date.now() + 5_000;

    expect(await handleTimeout(due('o-1'), timeoutDeps({ now: later }))).toBe('pushed');
    expect(sender.calls).toEqual([
      { userId: 'ack-u6', notify, message: { id: 'o-1', cursor: r.cursor } },
    ]);
    const status = await store.status('ack-u6', 'o-1');
    expect(status).toMatchObject({
      state: 'pushed',
      push: { devices: 1, sent: 1, failed: 0, removed: 0 },
    });
    expect(status?.push?.at).toBeGreaterThan(0);
    // Delivered again (SQS is at-least-once): no second push.
    expect(await handleTimeout(due('o-1'), timeoutDeps({ now: later }))).toBe('done');
    expect(await handleTimeout(due('o-2'), timeoutDeps({ now: later }))).toBe('acked');
    expect(sender.calls).toHaveLength(1);
    expect(counted).toEqual(['AckTimeouts', 'AckPushes']);
  });

  it('a push that fails is tried again at the next delivery; an early delivery waits again', async () => {
    const { registry, deps, sender, scheduled, timeoutDeps, store } = setup();
    await devices(registry, 'ack-u7', 1);
    await publish(
      {
        id: 'f-1',
        userId: 'ack-u7',
        data: 1,
        ack: { timeoutSeconds: 2_000, notify: { title: 't' } },
      },
      deps,
    );
    const body = JSON.stringify(scheduled[0]?.message);
    // Early (SQS waits at most 900 s): sent back for the rest.
    expect(await handleTimeout(body, timeoutDeps())).toBe('requeued');
    expect(scheduled[1]?.delay).toBeLessThanOrEqual(900);
    const later = () => Date.now() + 2_001_000;
    sender.fail = true;
    await expect(handleTimeout(body, timeoutDeps({ now: later }))).rejects.toThrow(
      /push service down/,
    );
    expect((await store.status('ack-u7', 'f-1'))?.state).toBe('pending');
    sender.fail = false;
    expect(await handleTimeout(body, timeoutDeps({ now: later }))).toBe('pushed');
    expect(sender.calls).toHaveLength(1);
  });

  it('lost state is detected and counted, and the push still goes (at most redundant, never missed)', async () => {
    const { registry, deps, sender, scheduled, counted, timeoutDeps, store } = setup();
    await devices(registry, 'ack-u8', 1);
    await publish(
      { id: 'l-1', userId: 'ack-u8', data: 1, ack: { timeoutSeconds: 1, notify: { title: 't' } } },
      deps,
    );
    await publish({ id: 'l-2', userId: 'ack-u8', data: 1, ack: { timeoutSeconds: 1 } }, deps);
    // Redis lost the state (a failover without persistence, an eviction).
    await env.redis.del(registry.keys.ack('ack-u8', 'l-1'), registry.keys.ack('ack-u8', 'l-2'));
    const later = () => Date.now() + 5_000;
    const lostEpoch = JSON.stringify({ ...scheduled[0]?.message, epoch: '1' });
    expect(await handleTimeout(lostEpoch, timeoutDeps({ now: later }))).toBe('lost_pushed');
    expect(sender.calls).toHaveLength(1);
    const status = await store.status('ack-u8', 'l-1');
    expect(status).toMatchObject({ state: 'pushed', push: { sent: 1 } });
    expect(status?.stateLost).toMatch(/redis data lost \(epoch 1 ->/);
    expect(counted).toContain('AckStateLost');
    // Without notify: recorded as timed out, nothing pushed.
    expect(
      await handleTimeout(JSON.stringify(scheduled[1]?.message), timeoutDeps({ now: later })),
    ).toBe('lost_timed_out');
    expect((await store.status('ack-u8', 'l-2'))?.state).toBe('timed_out');
    expect(sender.calls).toHaveLength(1);
  });
});
