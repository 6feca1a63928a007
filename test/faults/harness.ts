/**
 * The fault suite's harness: a pushwire stack whose parts can fail on cue,
 * and a scenario runner that publishes numbered messages through a fault and
 * counts what the clients got.
 *
 * The stack: a private redis-server that can be killed, restarted (with its
 * data or without) and blocked; serverless-offline on fixed ports (so it can
 * be crashed and restarted where its clients reconnect); a fault-injecting
 * proxy in front of its management API (`WS_CALLBACK_URL`, where every post
 * and close goes) and one in front of its Lambda Invoke API
 * (`LAMBDA_ENDPOINT`, where `publish` hands chunks to `deliver`).
 */
import { appendFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import type { PublishResult } from '../../lib/delivery/publish.js';
import { devToken } from '../../scripts/token.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { LibraryClient } from '../helpers/library-client.js';
import { freePorts } from '../helpers/npm-start.js';
import { type Offline, startOffline } from '../helpers/offline.js';
import { RedisProcess } from '../helpers/redis-process.js';
import { ResumingClient, USER_STREAM } from '../helpers/resuming-client.js';
import { missingPairs, tally } from '../helpers/tally.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Settings every fault scenario runs with (a few chosen so each path is exercised). */
export const FAULT_ENV: Record<string, string> = {
  // Every scenario's messages stay within the history window.
  HISTORY_SIZE: '5000',
  // Small chunks: a topic publish to the scenario's clients goes through
  // `deliver` workers (and so through the Lambda proxy), not only in-process.
  FANOUT_CHUNK: '4',
  FANOUT_PARALLEL_CHUNKS: '4',
  LOG_LEVEL: 'WARN',
  // A publish attempt that failed without releasing its id (Redis unreachable
  // at that moment) or died holds the id for the lease: 310 s by default
  // (publish's timeout); a scenario cannot wait that long for the retry.
  PUBLISH_LEASE_SECONDS: '8',
};

export interface FaultStack {
  redis: RedisProcess;
  /** In front of serverless-offline's `@connections` API. */
  mgmt: FaultProxy;
  /** In front of serverless-offline's Lambda Invoke API (publish -> deliver). */
  lambda: FaultProxy;
  /** The instance holding the clients' WebSockets. */
  edge: Offline;
  /** The instance `publish` is invoked on: `edge` itself, or a second instance. */
  publisher: Offline;
  /** A client of our own on the same Redis, for DEBUG SLEEP, CLIENT PAUSE and inspection. */
  control: Redis;
  wsUrl(query: Record<string, string>): string;
  /**
   * Crashes the publisher instance (SIGKILL to its process group: every
   * invocation in flight dies) and starts it again on the same ports.
   */
  crashPublisher(): Promise<void>;
  /** One publish attempt through the Lambda Invoke API, given up after `timeoutMs`. */
  publishOnce(payload: unknown, timeoutMs?: number): Promise<PublishResult>;
}

/**
 * Starts the stack for a test file. With `separatePublisher`, `publish` runs
 * on a second instance sharing the Redis, as on AWS where a publish Lambda
 * dying does not take the WebSocket API down with it: crashing it leaves the
 * clients connected.
 */
export function useFaultStack(
  env: Record<string, string> = {},
  options: { separatePublisher?: boolean } = {},
): FaultStack {
  const stack = {} as FaultStack;
  beforeAll(async () => {
    stack.redis = await RedisProcess.start({ persist: true });
    stack.mgmt = await FaultProxy.start();
    stack.lambda = await FaultProxy.start();
    const edgePorts = await freePorts();
    const publisherPorts = options.separatePublisher ? await freePorts() : edgePorts;
    const offlineEnv = {
      ...FAULT_ENV,
      ...env,
      WS_CALLBACK_URL: stack.mgmt.url,
      LAMBDA_ENDPOINT: stack.lambda.url,
    };
    stack.mgmt.target = `http://127.0.0.1:${edgePorts.wsPort}`;
    stack.lambda.target = `http://127.0.0.1:${publisherPorts.lambdaPort}`;
    stack.edge = await startOffline(stack.redis.url, offlineEnv, [], edgePorts);
    stack.publisher = options.separatePublisher
      ? await startOffline(stack.redis.url, offlineEnv, [], publisherPorts)
      : stack.edge;
    stack.control = new Redis(stack.redis.url, { maxRetriesPerRequest: null });
    stack.control.on('error', () => undefined);
    stack.wsUrl = (query) => stack.edge.wsUrl(query);
    stack.crashPublisher = async () => {
      await stack.publisher.crash();
      const restarted = await startOffline(stack.redis.url, offlineEnv, [], publisherPorts);
      if (stack.edge === stack.publisher) stack.edge = restarted;
      stack.publisher = restarted;
    };
    stack.publishOnce = async (payload, timeoutMs = 30_000) => {
      const response = await fetch(
        `http://127.0.0.1:${publisherPorts.lambdaPort}/2015-03-31/functions/pushwire-local-publish/invocations`,
        {
          method: 'POST',
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(timeoutMs),
        },
      );
      const text = await response.text();
      if (!response.ok || response.headers.get('x-amz-function-error')) {
        throw new Error(`publish failed (HTTP ${response.status}): ${text.slice(0, 300)}`);
      }
      const result = JSON.parse(text) as PublishResult | { error: { code: string } };
      if ('error' in result) throw new RefusedError(JSON.stringify(result.error));
      return result;
    };
  });
  afterAll(async () => {
    stack.control?.disconnect();
    if (stack.publisher !== stack.edge) await stack.publisher?.stop();
    await stack.edge?.stop();
    await stack.mgmt?.stop();
    await stack.lambda?.stop();
    await stack.redis?.stop();
  });
  return stack;
}

/** A publish the server refused as bad input: a bug in the test, never retried. */
export class RefusedError extends Error {}

export interface Scenario {
  name: string;
  /** Test-helper clients that behave as the client library does (each its own user, all on one topic). */
  clients?: number;
  /** Clients of the real client library (client/dist/pushwire.js). */
  libraryClients?: number;
  /** Plain WebSocket clients: resume with cursors, but reconnect only when the server closes. */
  plainClients?: number;
  messages?: number;
  /** Pause between two publishes. */
  intervalMs?: number;
  /** The fault starts when this message is about to be published. */
  faultAt?: number;
  /** Injects the fault and resolves once it has been healed. */
  fault: (stack: FaultStack, run: ScenarioRun) => Promise<void>;
  /** Deadline of one publish attempt. */
  publishTimeoutMs?: number;
}

/** What the runner needs of a client: the test helper's or the real library's. */
export type ScenarioClient = Pick<
  ResumingClient,
  | 'received'
  | 'wireDuplicates'
  | 'connections'
  | 'gaps'
  | 'errors'
  | 'ready'
  | 'start'
  | 'stop'
  | 'drop'
  | 'waitFor'
  | 'connectionId'
>;

export interface ScenarioRun {
  clients: ScenarioClient[];
  /** How many messages have been published (acknowledged or not) so far. */
  published(): number;
  /** Resolves once `n` messages have been published. */
  publishedAtLeast(n: number): Promise<void>;
}

export interface ScenarioReport {
  scenario: string;
  /** Messages whose publish was acknowledged (after retries with the same id). */
  published: number;
  /** Messages no attempt got acknowledged within the publisher's deadline. */
  unacknowledged: number;
  /** Publish attempts that failed and were retried with the same id. */
  retries: number;
  /** (message, client) pairs expected: every acknowledged message to each client of its audience. */
  expected: number;
  delivered: number;
  lost: number;
  /** Numbered messages a client got twice under different ids (what dedupe by id cannot remove). */
  duplicated: number;
  /** Frames whose id a client had already seen: at-least-once on the wire, removed by dedupe. */
  wireDuplicates: number;
  /** Open connections that a live publish did not reach. */
  stranded: number;
  reconnections: number;
  /** `recovered:false` answers. */
  gaps: number;
  /** Sum of `failed` over acknowledged publish results. */
  reportedFailed: number;
  faultsInjected: number;
  /** Error frames the clients received, by code. */
  errorFrames: Record<string, number>;
  seconds: number;
}

/**
 * Runs one scenario: connects the clients, publishes numbered messages (to
 * each client's user, and to the shared topic) while the fault runs, waits
 * for every client to settle, probes every client with a live publish, and
 * reports. The publisher behaves as the server SDK will: every message has an
 * id, and a failed attempt is retried with the same id.
 */
export async function runScenario(stack: FaultStack, spec: Scenario): Promise<ScenarioReport> {
  const started = Date.now();
  const total = spec.messages ?? 90;
  const faultAt = spec.faultAt ?? Math.floor(total / 4);
  const helperCount = spec.clients ?? 3;
  const libraryCount = spec.libraryClients ?? 3;
  const plainCount = spec.plainClients ?? 2;
  const faultsBefore = stack.mgmt.injected + stack.lambda.injected;
  const prefix = spec.name.replace(/[^A-Za-z0-9]/g, '');
  // Each scenario its own topic: a resume from before the first message seen
  // (the library resumes from its join time minus a clock-skew margin) must
  // not replay an earlier scenario's messages into this one's counts.
  const TOPIC = `${prefix}-topic`;

  const clients: ScenarioClient[] = [];
  const users: string[] = [];
  for (let i = 0; i < helperCount + libraryCount + plainCount; i++) {
    const userId = `${prefix}-u${i}`;
    users.push(userId);
    const token = () => devToken(userId, { topics: [TOPIC] });
    clients.push(
      i >= helperCount && i < helperCount + libraryCount
        ? new LibraryClient({
            url: stack.wsUrl({}).replace(/\?$/, ''),
            token,
            user: userId,
            topics: [TOPIC],
            pingIntervalMs: 1_000,
          })
        : new ResumingClient({
            url: (query) => stack.wsUrl(query),
            token,
            topics: [TOPIC],
            library: i < helperCount,
            pingIntervalMs: 1_000,
          }),
    );
  }
  // One at a time: serverless-offline cold-starts an instance per concurrent
  // invocation, and a burst of cold starts on a busy machine takes many seconds.
  for (const c of clients) await c.start(60_000);

  // The publisher: message n goes to the topic (every third) or to one user.
  const audience = (n: number) => (n % 3 === 0 ? TOPIC : users[n % users.length]);
  const acknowledged = new Map<number, PublishResult>();
  let published = 0;
  let retries = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  const run: ScenarioRun = {
    clients,
    published: () => published,
    publishedAtLeast: (n) =>
      new Promise<void>((resolve) => {
        if (published >= n) resolve();
        else waiting.push({ n, resolve });
      }),
  };

  let fault: Promise<void> | undefined;
  for (let n = 0; n < total; n++) {
    if (n === faultAt) fault = spec.fault(stack, run);
    const target = audience(n);
    const payload = {
      id: `${prefix}-${n}`,
      data: { n },
      ...(target === TOPIC ? { topic: TOPIC } : { userId: target }),
    };
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        acknowledged.set(n, await stack.publishOnce(payload, spec.publishTimeoutMs ?? 20_000));
        break;
      } catch (error) {
        if (error instanceof RefusedError) throw error;
        if (Date.now() > deadline) break;
        retries++;
        await sleep(200 + Math.random() * 300);
      }
    }
    published++;
    for (const w of waiting.filter((w) => w.n <= published)) w.resolve();
    if (spec.intervalMs) await sleep(spec.intervalMs);
  }
  await fault;

  // What each client must have: every acknowledged message of its user and the topic.
  const expectedOf = (i: number) =>
    [...acknowledged.keys()]
      .filter((n) => audience(n) === TOPIC || audience(n) === users[i])
      .map((n) => `${prefix}-${n}`);
  // Let resumes finish: poll until nothing is missing, or give up after a while.
  const settleDeadline = Date.now() + 20_000;
  while (missingPairs(clients, expectedOf) > 0 && Date.now() < settleDeadline) await sleep(200);

  const stranded = await probeStranded(stack, clients, users, prefix);

  const { expected, delivered, duplicated } = tally(clients, expectedOf, prefix);
  // What was lost, and by whom: client kind (helper, library, plain), its gaps and connections.
  // Printed only: it tells which defect a failure is (a told gap, or the PW-R7 hand-off).
  const kindOf = (i: number) =>
    i < helperCount ? 'helper' : i < helperCount + libraryCount ? 'library' : 'plain';
  const lostBy = clients.flatMap((c, i) => {
    const missing = expectedOf(i).filter((id) => !c.received.has(id));
    return missing.length === 0
      ? []
      : [
          `${kindOf(i)} ${users[i]}: ${missing.join(',')} (gaps ${c.gaps}, connections ${c.connections})`,
        ];
  });
  if (lostBy.length > 0) console.log(`faults: ${spec.name}: not received: ${lostBy.join('; ')}`);
  const report: ScenarioReport = {
    scenario: spec.name,
    published: acknowledged.size,
    unacknowledged: total - acknowledged.size,
    retries,
    expected,
    delivered,
    lost: expected - delivered,
    duplicated,
    wireDuplicates: clients.reduce((sum, c) => sum + c.wireDuplicates, 0),
    stranded,
    reconnections: clients.reduce((sum, c) => sum + c.connections - 1, 0),
    gaps: clients.reduce((sum, c) => sum + c.gaps, 0),
    reportedFailed: [...acknowledged.values()].reduce((sum, r) => sum + (r.failed ?? 0), 0),
    faultsInjected: stack.mgmt.injected + stack.lambda.injected - faultsBefore,
    errorFrames: Object.fromEntries(
      [...new Set(clients.flatMap((c) => [...c.errors.keys()]))].map((code) => [
        code,
        clients.reduce((sum, c) => sum + (c.errors.get(code) ?? 0), 0),
      ]),
    ),
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  await Promise.all(clients.map((c) => c.stop()));
  stack.mgmt.reset();
  stack.lambda.reset();
  record(report);
  return report;
}

/**
 * Counts clients that are connected but that a live publish does not reach:
 * each gets a probe published to its user; one that arrives on the same
 * connection it was sent to proves the connection reachable. A client that
 * reconnected meanwhile (the server closed it) is probed again.
 */
async function probeStranded(
  stack: FaultStack,
  clients: ScenarioClient[],
  users: string[],
  prefix: string,
): Promise<number> {
  const results = await Promise.all(
    clients.map(async (client, i) => {
      for (let attempt = 1; attempt <= 3; attempt++) {
        // Wait for the client to be connected with every stream confirmed.
        const readyBy = Date.now() + 10_000;
        while (!client.ready && Date.now() < readyBy) await sleep(50);
        const connection = client.connections;
        const id = `${prefix}-probe-${i}-${attempt}`;
        await stack.publishOnce({ id, userId: users[i], data: { probe: true } }).catch(() => null);
        const got = await client.waitFor(id, 5_000);
        if (got && got.connection === connection) return false;
        if (client.connections === connection) return true;
      }
      return true;
    }),
  );
  return results.filter(Boolean).length;
}

function record(report: ScenarioReport): void {
  const row = [
    report.scenario.padEnd(44),
    `published ${report.published}`,
    `delivered ${report.delivered}/${report.expected}`,
    `lost ${report.lost}`,
    `duplicated ${report.duplicated}`,
    `stranded ${report.stranded}`,
    `(wire dups ${report.wireDuplicates}, reconnections ${report.reconnections}, gaps ${report.gaps}, retries ${report.retries}, faults ${report.faultsInjected}, errors ${JSON.stringify(report.errorFrames)}, ${report.seconds} s)`,
  ].join(' | ');
  console.log(`faults: ${row}`);
  const file = process.env['FAULTS_REPORT'];
  if (file) appendFileSync(file, `${JSON.stringify(report)}\n`);
}

/** The promise: nothing lost, nothing doubled after dedupe by id, nobody stranded. */
export function expectPromiseKept(report: ScenarioReport): void {
  expect({
    unacknowledged: report.unacknowledged,
    lost: report.lost,
    duplicated: report.duplicated,
    stranded: report.stranded,
  }).toEqual({ unacknowledged: 0, lost: 0, duplicated: 0, stranded: 0 });
  // The scenario did exercise the fault it names.
  expect(report.published).toBeGreaterThan(0);
}

export { USER_STREAM };
