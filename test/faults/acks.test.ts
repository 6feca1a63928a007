/**
 * Acknowledged messages under a Redis fault (issue 18, PW-K5): Redis loses
 * its data (killed, restarted empty: a failover without persistence) while
 * an ack timeout is pending in the queue. The timeout finds no state, cannot
 * know whether anyone acked, and pushes: at most a redundant push, never a
 * missed one; the loss is recorded in the status and counted (AckStateLost).
 */
import { describe, expect, it } from 'vitest';
import type { AckStatus } from '../../lib/acks/store.js';
import { eventually } from '../helpers/offline.js';
import { sleep, useFaultStack } from './harness.js';

const stack = useFaultStack();

describe('acknowledged messages under Redis faults', () => {
  it('Redis restarted without its data while a timeout is pending: the push still goes, the loss is detected and counted', async () => {
    const status = () =>
      stack.publisher.invoke<AckStatus | { error: { code: string } }>('status', {
        id: 'fault-ack-1',
        userId: 'fault-nobody',
      });
    await stack.publishOnce({
      id: 'fault-ack-1',
      userId: 'fault-nobody',
      data: 'must not be missed',
      ack: { timeoutSeconds: 4, notify: { title: 'Missed' } },
    });
    expect(await status()).toMatchObject({ state: 'pending' });
    await stack.redis.kill();
    await sleep(500);
    await stack.redis.restart({ keepData: false });
    // Gone with the data, until the timeout comes.
    expect(await status()).toMatchObject({ error: { code: 'not_found' } });
    const after = await eventually(
      async () => {
        const s = await status();
        return 'state' in s && s.state === 'pushed' && s;
      },
      30_000,
      'the timeout pushed',
      250,
    );
    expect(after.stateLost).toMatch(/^(redis data lost \(epoch \d+ -> (none|\d+)\)|state missing)/);
    expect(after.push).toMatchObject({ devices: 0, sent: 0, failed: 0 });
    expect(stack.publisher.output()).toMatch(/"AckStateLost"/);
    expect(stack.publisher.output()).toMatch(/ack state lost; pushing/);
  });
});
