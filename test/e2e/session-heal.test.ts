/**
 * The session heals itself, end to end through serverless-offline: a client
 * whose records are gone (Redis lost its data) is told `unknown_connection`
 * and its socket is closed, so it reconnects and the registry is whole again;
 * a connection whose replay never ran or died is reached by publishes once its
 * lease ends (REPLAY_BUDGET_MS + REPLAY_LEASE_GRACE_MS, set short here).
 */
import { describe, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import { TestClient } from '../helpers/client.js';
import { connectTracked, publishOk, untilPasses, useStack } from '../helpers/stack.js';

const stack = useStack({ env: { REPLAY_BUDGET_MS: '1000', REPLAY_LEASE_GRACE_MS: '500' } });

describe('session healing', () => {
  it('closes the socket after unknown_connection when Redis lost the records; reconnecting makes it whole', async () => {
    // Prepare
    const token = await devToken('heal-ann');
    const { client } = await connectTracked(stack, stack.offline, 'heal-ann', token);
    await client.request({ action: 'ping' }, (f) => f.type === 'pong');

    // Act: Redis restarts empty (or a failover lost the writes).
    await stack.probe.redis.flushall();
    const error = await client.request({ action: 'ping' }, (f) => f.type === 'error');

    // Assess
    expect(error).toEqual({
      type: 'error',
      code: 'unknown_connection',
      message: expect.stringContaining('is not registered'),
    });
    await untilPasses(async () => expect(client.closed).toBe(true));

    // A client that reconnects (as any WebSocket client does on a close) is registered again.
    const again = await connectTracked(stack, stack.offline, 'heal-ann', token);
    await again.client.request({ action: 'ping' }, (f) => f.type === 'pong');
    const result = await publishOk(stack.offline, { userId: 'heal-ann', data: 'back' });
    expect(result).toMatchObject({ recipients: 1, delivered: 1 });
    await again.client.next((f) => f.type === 'message' && f['data'] === 'back');
  });

  it('reaches a connection that asked for ?since but never sent the frame that starts the replay, once its lease ends', async () => {
    // Prepare
    const first = await publishOk(stack.offline, { userId: 'heal-bo', data: 0 });
    const token = await devToken('heal-bo');
    const client = await TestClient.connect(
      stack.offline.wsUrl({ token, since: first.cursor as string }),
    );
    stack.open.push(client);

    // Act + Assess: skipped while the lease holds (it waits to be replayed) ...
    const held = await publishOk(stack.offline, { userId: 'heal-bo', data: 1 });
    expect(held.recipients).toBe(0);
    // ... and reached once it ends (1.5 s here), with nothing sent by the client.
    await untilPasses(async () => {
      const result = await publishOk(stack.offline, { userId: 'heal-bo', data: 'late' });
      expect(result.recipients).toBe(1);
    }, 10_000);
    await client.next((f) => f.type === 'message' && f['data'] === 'late');
  });

  it('reaches a connection whose replay died mid-way (state left by a killed function), once the lease ends', async () => {
    // Prepare: a live connection, then the state a replay killed mid-way leaves:
    // the member in the resuming set under a lease, and nobody to finish it.
    const token = await devToken('heal-cy');
    const { client, member } = await connectTracked(stack, stack.offline, 'heal-cy', token);
    const k = stack.probe.keys.audience('user', 'heal-cy').keys;
    const score = (await stack.probe.redis.zscore(k.live, member)) as string;
    await stack.probe.redis
      .multi()
      .zrem(k.live, member)
      .zadd(k.resuming, score, member)
      .zadd(k.leases, Date.now() + 1_000, member)
      .exec();
    const held = await publishOk(stack.offline, { userId: 'heal-cy', data: 'held' });
    expect(held.recipients).toBe(0);

    // Act
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const result = await publishOk(stack.offline, { userId: 'heal-cy', data: 'reached' });

    // Assess
    expect(result).toMatchObject({ recipients: 1, delivered: 1 });
    await client.next((f) => f.type === 'message' && f['data'] === 'reached');
    expect(await stack.probe.redis.zscore(k.resuming, member)).toBeNull();
    // And the message it missed meanwhile is in history: a resume fetches it
    // (from the start of this Redis's data: its epoch, marked at $connect).
    const epoch = await stack.probe.redis.get(stack.probe.keys.epoch());
    const resumed = await client.request(
      { action: 'resume', since: `${epoch}-0` },
      (f) => f.type === 'resumed',
    );
    expect(resumed).toEqual({ type: 'resumed', recovered: true });
    expect(client.messages().map((m) => m['data'])).toContain('held');
  });
});
