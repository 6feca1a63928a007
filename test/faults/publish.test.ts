/**
 * Faults of the publishing side: a `publish` invocation killed in the middle
 * of its fan-out and retried with the same id, and `deliver` workers that
 * fail (a function error) or whose answer is lost after they delivered.
 * `publish` runs on its own serverless-offline instance, as on AWS: killing it
 * does not disconnect the clients. See RELIABILITY.md.
 */
import { describe, expect, it } from 'vitest';
import { failFirst, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { expectPromiseKept, runScenario, sleep, useFaultStack } from './harness.js';

// A killed attempt holds its id for PUBLISH_LEASE_SECONDS: 8 s here (see FAULT_ENV).
const stack = useFaultStack({}, { separatePublisher: true });

const isDeliver = (req: ProxiedRequest) => req.path.includes('/functions/pushwire-local-deliver/');

describe('publish and deliver faults', () => {
  it('publish killed mid-fan-out, retried with its id', async () => {
    let crashes = 0;
    const report = await runScenario(stack, {
      name: 'publish killed mid-fan-out, retried',
      // Message 30 goes to the topic (every client): its fan-out is cut.
      faultAt: 30,
      fault: async (s) => {
        // A slow management API, slower for each next connection, so the
        // crash lands with some posts made and others not.
        const order = new Map<string, number>();
        s.mgmt.decide = (req) => {
          if (!order.has(req.path)) order.set(req.path, order.size);
          return { kind: 'delay', ms: 250 * ((order.get(req.path) as number) + 1) };
        };
        await sleep(1_000);
        await s.crashPublisher();
        crashes++;
        s.mgmt.reset();
      },
    });
    expect(crashes).toBe(1);
    expect(report.retries).toBeGreaterThan(0);
    expectPromiseKept(report);
  });

  it('deliver workers fail: each chunk fails once with a function error', async () => {
    const report = await runScenario(stack, {
      name: 'deliver worker fails once per chunk',
      fault: async (s, run) => {
        s.lambda.decide = failFirst(1, { kind: 'function-error' }, isDeliver);
        await run.publishedAtLeast(run.published() + 30);
        s.lambda.reset();
      },
    });
    expect(report.faultsInjected).toBeGreaterThan(10);
    expectPromiseKept(report);
  });

  it('deliver answers lost after the worker delivered', async () => {
    const report = await runScenario(stack, {
      name: 'deliver answer lost after delivery',
      fault: async (s, run) => {
        s.lambda.decide = failFirst(1, { kind: 'lost-answer', ms: 1_000 }, isDeliver);
        await run.publishedAtLeast(run.published() + 30);
        s.lambda.reset();
      },
    });
    expect(report.faultsInjected).toBeGreaterThan(10);
    expectPromiseKept(report);
  });
});
