import { beforeAll, describe, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import type { Offline, TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, messageIds, publishOk, useStack } from '../helpers/stack.js';

/**
 * Two pushwire instances (two API Gateway APIs/stages, in effect) sharing one
 * Redis: every connection is recorded with the management endpoint of the
 * instance holding it, so a publish invoked on either reaches devices on both.
 */

const stack = useStack({ instances: 2 });
let a: Offline;
let b: Offline;
// Runs after the stack's own beforeAll (hooks run in the order they were registered).
beforeAll(() => {
  [a, b] = stack.instances as [Offline, Offline];
});

const publishOn = publishOk;

async function connectOn(instance: Offline, userId: string): Promise<TrackedClient> {
  return connectTracked(stack, instance, userId, await devToken(userId));
}

const ids = messageIds;

describe('two instances sharing one Redis', () => {
  it('records each connection with the endpoint of the instance holding it', async () => {
    expect(a.wsPort).not.toBe(b.wsPort);
    const onA = await connectOn(a, 'alice');
    const onB = await connectOn(b, 'alice');
    expect(onA.endpoint).toBe(`http://localhost:${a.wsPort}`);
    expect(onB.endpoint).toBe(`http://localhost:${b.wsPort}`);
    for (const device of [onA, onB]) {
      const record = await stack.probe.redis.hgetall(
        stack.probe.keys.connection(device.connectionId),
      );
      expect(record).toMatchObject({ userId: 'alice', endpoint: device.endpoint });
      expect(await stack.probe.redis.zscore(stack.probe.keys.all(), device.member)).not.toBeNull();
    }
  });

  it('delivers a publish invoked on either instance to the devices on both, once each', async () => {
    const onA = await connectOn(a, 'dana');
    const onB = await connectOn(b, 'dana');

    const fromA = await publishOn(a, { userId: 'dana', data: { via: 'a' } });
    expect(fromA).toMatchObject({ recipients: 2, delivered: 2, gone: 0, failed: 0, chunks: 0 });
    const fromB = await publishOn(b, { userId: 'dana', data: { via: 'b' } });
    expect(fromB).toMatchObject({ recipients: 2, delivered: 2, gone: 0, failed: 0, chunks: 0 });

    // The sentinel, published after both, arrives last on each socket.
    const last = await publishOn(a, { userId: 'dana', data: 'sentinel' });
    await Promise.all([onA, onB].map((d) => d.client.next(isMessage(last.id))));
    for (const device of [onA, onB]) {
      expect(ids(device)).toEqual([fromA.id, fromB.id, last.id]);
      expect(device.client.messages().map((m) => m['data'])).toEqual([
        { via: 'a' },
        { via: 'b' },
        'sentinel',
      ]);
    }
  });

  it('delivers by connection id through the endpoint recorded for it, not the invoking one', async () => {
    const onA = await connectOn(a, 'bob');
    const onB = await connectOn(b, 'bob');

    const toB = await publishOn(a, { connectionIds: [onB.connectionId], data: 'for b' });
    expect(toB).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });
    const toA = await publishOn(b, { connectionIds: [onA.connectionId], data: 'for a' });
    expect(toA).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });

    const last = await publishOn(b, { userId: 'bob', data: 'sentinel' });
    await Promise.all([onA, onB].map((d) => d.client.next(isMessage(last.id))));
    expect(ids(onA)).toEqual([toA.id, last.id]);
    expect(ids(onB)).toEqual([toB.id, last.id]);
  });

  it('leaves no connection record once the clients of both instances closed', async () => {
    const devices = [await connectOn(a, 'carol'), await connectOn(b, 'carol')];
    expect(await stack.probe.userLive('carol')).toHaveProperty('size', 2);
    await Promise.all(devices.map((d) => d.client.close()));
    await stack.probe.waitUntilNoConnections();
    expect(await stack.probe.scanKeys(`${stack.probe.prefix}c:*`)).toEqual([]);
  });
});
