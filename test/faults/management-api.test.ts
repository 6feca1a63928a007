/**
 * Management API faults, injected by a proxy in front of serverless-offline's
 * `@connections` API (every post and close goes through it, via
 * WS_CALLBACK_URL): throttling storms, 5xx, answers lost after the post
 * landed (timeouts), reset sockets, and 410 for connections that are in fact
 * alive. Some windows also drop every client, so replays run into the faults.
 * See RELIABILITY.md.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type Fault, failFirst, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { expectPromiseKept, runScenario, type ScenarioRun, useFaultStack } from './harness.js';

const stack = useFaultStack();

const isPost = (req: ProxiedRequest) =>
  req.method === 'POST' && req.path.startsWith('/@connections/');
/** A stable pick of about `percent` % of requests (the same for every retry of one). */
const some = (percent: number) => (req: ProxiedRequest) =>
  isPost(req) &&
  (createHash('sha1').update(req.path).update(req.body).digest()[0] as number) % 100 < percent;

/**
 * The first post, then every `nth` one after it: a pick that injects at least
 * one fault into any window with a post (a pick by hash of ~5 % of some 60
 * posts picked none about one run in thirty).
 */
const everyNthPost = (nth: number) => {
  let posts = 0;
  return (req: ProxiedRequest) => isPost(req) && posts++ % nth === 0;
};

/** Applies `decide` while the next `messages` messages are published. */
async function window(
  run: ScenarioRun,
  messages: number,
  decide: (req: ProxiedRequest) => Fault,
  options: { dropClients?: boolean } = {},
): Promise<void> {
  stack.mgmt.decide = decide;
  const before = run.clients.map((c) => c.connections);
  if (options.dropClients) for (const c of run.clients) c.drop(300);
  await run.publishedAtLeast(run.published() + messages);
  if (options.dropClients) {
    // The faults are meant to meet the replays too: on a fast machine the
    // messages are out before the clients are back, so the window lasts
    // until every client has reconnected (bounded), and a little longer.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && run.clients.some((c, i) => c.connections <= (before[i] ?? 0)))
      await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  stack.mgmt.reset();
}

describe('management API faults', () => {
  it('429 storm: every post throttled twice before it goes through', async () => {
    const report = await runScenario(stack, {
      name: 'mgmt API 429 storm',
      fault: (_s, run) => window(run, 40, failFirst(2, { kind: 'status', status: 429 }, isPost)),
    });
    expect(report.faultsInjected).toBeGreaterThan(50);
    expectPromiseKept(report);
  });

  it('5xx: every post fails once (500, 502, 503), while every client replays', async () => {
    const statuses = [500, 502, 503];
    const report = await runScenario(stack, {
      name: 'mgmt API 5xx (live and mid-replay)',
      fault: (_s, run) =>
        window(
          run,
          40,
          failFirst(
            1,
            (req) => ({ kind: 'status', status: statuses[req.n % 3] as number }),
            isPost,
          ),
          { dropClients: true },
        ),
    });
    expect(report.faultsInjected).toBeGreaterThan(5);
    expectPromiseKept(report);
  });

  it('timeouts: the answer to one post in twenty is lost after the post landed', async () => {
    const report = await runScenario(stack, {
      name: 'mgmt API timeouts (answer lost)',
      // Held past the gateway's 5 s request timeout.
      fault: (_s, run) =>
        window(run, 20, failFirst(1, { kind: 'lost-answer', ms: 6_000 }, everyNthPost(20))),
    });
    expect(report.faultsInjected).toBeGreaterThan(0);
    expectPromiseKept(report);
  });

  it('reset sockets: a third of the posts, while every client replays', async () => {
    const report = await runScenario(stack, {
      name: 'mgmt API connection resets (live and mid-replay)',
      fault: (_s, run) =>
        window(run, 40, failFirst(1, { kind: 'reset' }, some(33)), { dropClients: true }),
    });
    expect(report.faultsInjected).toBeGreaterThan(5);
    expectPromiseKept(report);
  });

  it('410 for live connections: the server forgets them; they must come back', async () => {
    // One client of each kind (test helper, real library, plain WebSocket)
    // is reported gone at its next post, once.
    const victims = new Set<string>();
    const report = await runScenario(stack, {
      name: 'mgmt API 410 for live connections',
      fault: (_s, run) => {
        for (const i of [0, 3, 6]) {
          const id = run.clients[i]?.connectionId;
          if (id) victims.add(`/@connections/${encodeURIComponent(id)}`);
        }
        return window(
          run,
          30,
          failFirst(
            1,
            { kind: 'status', status: 410 },
            (req) => isPost(req) && victims.has(req.path),
          ),
        );
      },
    });
    expect(victims.size).toBe(3);
    expect(report.reconnections).toBeGreaterThanOrEqual(3);
    expectPromiseKept(report);
  });

  it('outage: every post answers 503 for 12 s while every client reconnects and replays (issue 21, items 1 and 4)', async () => {
    // Longer than a post's retries (THROTTLE_BUDGET_MS, 5 s) twice over: the
    // replays fail, and so does the post of their `resumed`; live posts fail
    // too. Every client must be told: the server closes those connections.
    let until = 0;
    const report = await runScenario(stack, {
      name: 'mgmt API outage 12 s (live and mid-replay)',
      fault: (_s, run) => {
        until = Date.now() + 12_000;
        return window(
          run,
          30,
          (req) =>
            isPost(req) && Date.now() < until ? { kind: 'status', status: 503 } : { kind: 'pass' },
          { dropClients: true },
        );
      },
    });
    expect(report.faultsInjected).toBeGreaterThan(5);
    expectPromiseKept(report);
  });
});
