/**
 * Redis faults: killed and restarted with its data (a crash) and without it
 * (a failover that lost writes), and blocked (CLIENT PAUSE, DEBUG SLEEP) in
 * the middle of publishing and in the middle of replays. See RELIABILITY.md.
 */
import { describe, expect, it } from 'vitest';
import { expectPromiseKept, runScenario, sleep, useFaultStack } from './harness.js';

const stack = useFaultStack();

describe('Redis faults', () => {
  it('Redis killed mid-publish, restarted with its data', async () => {
    const report = await runScenario(stack, {
      name: 'redis killed, restarted with data',
      fault: async (s) => {
        await s.redis.kill();
        await sleep(2_000);
        await s.redis.restart({ keepData: true });
      },
    });
    expect(report.retries).toBeGreaterThan(0);
    expectPromiseKept(report);
  });

  it('Redis killed mid-publish, restarted without its data', async () => {
    const report = await runScenario(stack, {
      name: 'redis killed, restarted empty',
      fault: async (s) => {
        await s.redis.kill();
        await sleep(1_000);
        await s.redis.restart({ keepData: false });
      },
    });
    // Every client had to find out and register again.
    expect(report.reconnections).toBeGreaterThanOrEqual(8);
    expectPromiseKept(report);
  });

  it('Redis paused (CLIENT PAUSE 3 s) mid-publish', async () => {
    const report = await runScenario(stack, {
      name: 'CLIENT PAUSE 3 s mid-publish',
      fault: async (s) => {
        await s.control.call('CLIENT', 'PAUSE', '3000', 'ALL');
        await sleep(3_000);
      },
    });
    expectPromiseKept(report);
  });

  it('Redis blocked (DEBUG SLEEP 6 s, past the command timeout) mid-publish', async () => {
    const report = await runScenario(stack, {
      name: 'DEBUG SLEEP 6 s mid-publish',
      fault: async (s) => {
        await s.control.call('DEBUG', 'SLEEP', '6');
      },
    });
    expectPromiseKept(report);
  });

  it('Redis blocked (DEBUG SLEEP 6 s) mid-replay', async () => {
    const report = await runScenario(stack, {
      name: 'DEBUG SLEEP 6 s mid-replay',
      messages: 150,
      fault: async (s, run) => {
        // Everyone drops and stays away while ~1.5 s of messages pile up,
        // then comes back with cursors: Redis blocks while they replay.
        for (const c of run.clients) c.drop(1_500);
        await sleep(1_650);
        await s.control.call('DEBUG', 'SLEEP', '6');
      },
    });
    expect(report.reconnections).toBeGreaterThanOrEqual(8);
    expectPromiseKept(report);
  });

  it('Redis paused (CLIENT PAUSE 3 s) mid-replay', async () => {
    const report = await runScenario(stack, {
      name: 'CLIENT PAUSE 3 s mid-replay',
      messages: 150,
      fault: async (s, run) => {
        for (const c of run.clients) c.drop(1_500);
        await sleep(1_650);
        await s.control.call('CLIENT', 'PAUSE', '3000', 'ALL');
        await sleep(3_000);
      },
    });
    expectPromiseKept(report);
  });
});
