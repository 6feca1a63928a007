/**
 * `npm run bench -- --only=cost`: measures what each operation costs in
 * Redis commands, round trips and wall time, by running the real code paths
 * in this process (lib/session connect, handleFrame for ping and subscribe,
 * lib/delivery publish to topics of 1 and 200 members, disconnect) against
 * the benchmark's private redis-server and the fake management API
 * (bench/mgmt-server.ts), counting commands with INFO commandstats deltas;
 * then runs the cost model (bench/cost-model.ts) on a workload
 * (bench/cost-workload.json, or --workload=<file>, or flags) with those
 * figures. Figures not measured here (acks, large-message parts, deltas)
 * come from --inputs=<file> when another branch has measured them, and are
 * reported as assumed otherwise.
 *
 * Flags: --workload=<json file>  --inputs=<json file>  --connections=N  --users=N  --topics=N
 *   --publishes-per-minute=N  --session-minutes=N  --acked-share=X
 *   --ack-timeout-share=X  --delta-share=X  --messages-per-frame=N  --arch=arm64|x86_64
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { createTokenVerifier } from '../lib/auth/tokens.js';
import type { Config } from '../lib/config.js';
import { messageFrame, publish } from '../lib/delivery/publish.js';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { connect, disconnect, handleFrame } from '../lib/session/session.js';
import { JWT_SECRET, median, now, root, round } from './common.js';
import {
  costModel,
  defaultInputs,
  type Figure,
  type ModelInputs,
  mergeInputs,
  type Operation,
  type OperationFigures,
  type Workload,
} from './cost-model.js';
import { connectionIds, fillTopic, publishDeps } from './fanout.js';
import type { MgmtServer } from './mgmt.js';
import { client, commandStats, roundTripCounter } from './redis.js';

export interface CostMeasure {
  /** Per operation: commands, round trips, median wall ms, and how many times it ran. */
  ops: Partial<
    Record<
      Operation,
      { commands: number; round_trips: number; cpu_ms: number; wall_ms: number; runs: number }
    >
  >;
  frame_overhead_bytes: number;
  /** Every command name and its count per operation (INFO commandstats deltas). */
  command_mix: Record<string, Record<string, number>>;
  /** 1-minute load average before and after (CPU figures rise with other work on the machine). */
  loadavg: [number, number];
}

export interface CostResult {
  workload: Workload;
  measured: CostMeasure | null;
  report: ReturnType<typeof costModel>;
}

const num = (flag: string): number | undefined => {
  const raw = process.argv.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`--${flag} must be a number, got "${raw}"`);
  return value;
};
const str = (flag: string) =>
  process.argv.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`${what} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const WORKLOAD_FLAGS = [
  'workload',
  'inputs',
  'arch',
  'connections',
  'users',
  'topics',
  'publishes-per-minute',
  'session-minutes',
  'acked-share',
  'ack-timeout-share',
  'delta-share',
  'messages-per-frame',
];

/** Whether this run models the default workload and inputs (only such a run refreshes BENCHMARKS.md). */
export const defaultWorkload = (): boolean =>
  !process.argv.some((a) => WORKLOAD_FLAGS.some((flag) => a.startsWith(`--${flag}=`)));

/** The workload: the JSON file (default bench/cost-workload.json) with flag overrides. */
export function workloadFromArgs(): Workload {
  const file = str('workload') ?? join(root(), 'bench', 'cost-workload.json');
  const w = readJson(file, 'workload') as Workload;
  const overrides: [string, keyof Workload][] = [
    ['connections', 'connections'],
    ['users', 'users'],
    ['topics', 'topics'],
    ['publishes-per-minute', 'publishesPerMinute'],
    ['session-minutes', 'sessionMinutes'],
    ['acked-share', 'ackedShare'],
    ['ack-timeout-share', 'ackTimeoutShare'],
    ['delta-share', 'deltaShare'],
    ['messages-per-frame', 'messagesPerFrame'],
  ];
  for (const [flag, key] of overrides) {
    const value = num(flag);
    if (value !== undefined) Object.assign(w, { [key]: value });
  }
  return w;
}

/** Measured figures in, assumed ones kept; then --inputs=<file> (other branches' measurements) on top. */
export function inputsFrom(measured: CostMeasure | null, config: Config | null): ModelInputs {
  let inputs = defaultInputs();
  if (config) {
    const c = (value: number, note: string): Figure => ({ value, source: 'configured', note });
    inputs.fanoutChunk = c(config.fanout.chunk, 'FANOUT_CHUNK (lib/config.ts)');
    inputs.fanoutConcurrency = c(config.fanout.concurrency, 'FANOUT_CONCURRENCY (lib/config.ts)');
    inputs.parallelChunks = c(
      config.fanout.parallelChunks,
      'FANOUT_PARALLEL_CHUNKS (lib/config.ts)',
    );
  }
  const memory = Number(
    /^\s+memorySize:\s*(\d+)/m.exec(readFileSync(join(root(), 'serverless.yml'), 'utf8'))?.[1],
  );
  if (memory > 0) {
    inputs.lambdaMemoryMb = {
      value: memory,
      source: 'configured',
      note: 'serverless.yml provider.memorySize',
    };
    inputs.cpuStretch = { ...inputs.cpuStretch, value: Math.max(1, 1_769 / memory) };
  }
  if (measured) {
    const how = 'measured: real code path in-process, private redis-server, fake management API';
    for (const [name, m] of Object.entries(measured.ops)) {
      if (!m) continue;
      const ops = inputs.ops as Record<string, OperationFigures>;
      ops[name] = {
        redisCommands: {
          value: m.commands,
          source: 'measured',
          note: `${how}; INFO commandstats delta over ${m.runs} runs`,
        },
        roundTrips: {
          value: m.round_trips,
          source: 'measured',
          note: `${how}; write bursts on the client's socket`,
        },
        ms: {
          value: m.cpu_ms,
          source: 'measured',
          note: `${how}; CPU ms of this process per operation (process.cpuUsage), this machine's x86 core`,
        },
      };
    }
    inputs.frameOverheadBytes = {
      value: measured.frame_overhead_bytes,
      source: 'measured',
      note: 'messageFrame() (lib/delivery/frame.ts) around the data: uuid id, cursor, a 12-character topic',
    };
  }
  const arch = str('arch');
  if (arch !== undefined) inputs = mergeInputs(inputs, { architecture: arch });
  const file = str('inputs');
  if (file !== undefined) inputs = mergeInputs(inputs, readJson(file, 'model inputs'));
  return inputs;
}

/** Runs `task` `runs` times; commands (per run) from INFO, round trips and median ms per run. */
async function measureOp(
  admin: Redis,
  counter: Awaited<ReturnType<typeof roundTripCounter>>,
  runs: number,
  task: (i: number) => Promise<unknown>,
): Promise<{
  commands: number;
  round_trips: number;
  cpu_ms: number;
  wall_ms: number;
  runs: number;
  mix: Record<string, number>;
}> {
  const before = await commandStats(admin);
  const times: number[] = [];
  const trips: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    counter.reset();
    const t0 = now();
    await task(i);
    times.push(now() - t0);
    trips.push(counter.roundTrips());
  }
  const cpu = process.cpuUsage(cpu0);
  const after = await commandStats(admin);
  const mix: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0 && name !== 'ping') {
      mix[name] = round(delta / runs, 2);
      total += delta;
    }
  }
  return {
    commands: round(total / runs, 2),
    round_trips: round(median(trips), 1),
    // This process only: redis-server and the management API run in others.
    cpu_ms: round((cpu.user + cpu.system) / 1000 / runs, 3),
    wall_ms: round(median(times), 3),
    runs,
    mix,
  };
}

/**
 * Measures the operations the model prices. `runs` of each (connect,
 * subscribe, ping, disconnect), and publishes to topics of 1 and 200
 * members; the per-recipient figures are the difference over 199.
 */
export async function measureCost(options: {
  redisUrl: string;
  mgmt: MgmtServer;
  config: Config;
  runs: number;
}): Promise<CostMeasure> {
  const { mgmt, config, runs } = options;
  const redis = client(options.redisUrl);
  const admin = client(options.redisUrl);
  const counter = await roundTripCounter(redis);
  const load0 = round(loadavg()[0] ?? 0, 2);
  try {
    const deps = publishDeps(redis, config);
    const registry = deps.registry as RedisRegistry;
    const verifyToken = createTokenVerifier({ secret: JWT_SECRET });
    const key = new TextEncoder().encode(JWT_SECRET);
    const users = Math.max(1, Math.ceil(runs / 2));
    const tokens = await Promise.all(
      Array.from({ length: users }, (_, i) =>
        new SignJWT({ topics: ['cost-topic'] })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(`cost-user-${i}`)
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(key),
      ),
    );
    const ids = Array.from({ length: runs }, (_, i) => `cost-conn-${i}`);
    await mgmt.register(ids);
    const limits = config.limits;
    const sessionDeps = { registry, gateway: deps.gateway, verifyToken, limits };
    const mix: Record<string, Record<string, number>> = {};
    const ops: CostMeasure['ops'] = {};
    const keep = (name: Operation, m: Awaited<ReturnType<typeof measureOp>>) => {
      const { mix: commands, ...rest } = m;
      ops[name] = rest;
      mix[name] = commands;
    };
    // Two connections per user, as two devices.
    keep(
      'connect',
      await measureOp(admin, counter, runs, (i) =>
        connect(
          {
            connectionId: ids[i] as string,
            domainName: 'bench.invalid',
            stage: 'cost',
            token: tokens[i % users] as string,
          },
          { ...sessionDeps, callbackUrl: mgmt.endpoint },
        ),
      ),
    );
    keep(
      'subscribe',
      await measureOp(admin, counter, runs, (i) =>
        handleFrame(ids[i] as string, '{"action":"subscribe","topic":"cost-topic"}', sessionDeps),
      ),
    );
    keep(
      'ping',
      await measureOp(admin, counter, runs, (i) =>
        handleFrame(ids[i] as string, '{"action":"ping"}', sessionDeps),
      ),
    );
    // Publishes: a topic of 1 member, then one of 200 (members as fanout.ts fills them).
    const data = { text: 'x'.repeat(150), at: 1732752000000 };
    const one = connectionIds(1, 'cost-p1-');
    const many = connectionIds(200, 'cost-p200-');
    await mgmt.register([...one, ...many]);
    await fillTopic(redis, registry, 'cost-p1', one, mgmt.endpoint);
    await fillTopic(redis, registry, 'cost-p200', many, mgmt.endpoint);
    const publishTo = (topic: string, n: number, tag: string) => async (i: number) => {
      const result = await publish({ id: `${tag}-${Date.now()}-${i}`, topic, data }, deps);
      if (result.delivered !== n)
        throw new Error(`cost: publish to ${topic} delivered ${result.delivered} of ${n}`);
    };
    for (let i = 0; i < 5; i++) await publishTo('cost-p1', 1, 'warm')(i);
    const p1 = await measureOp(admin, counter, runs, publishTo('cost-p1', 1, 'p1'));
    const pRuns = Math.max(3, Math.ceil(runs / 10));
    const p200 = await measureOp(admin, counter, pRuns, publishTo('cost-p200', 200, 'p200'));
    const per = (a: number, b: number) => round(Math.max(0, (b - a) / 199), 4);
    keep('publishFixed', {
      ...p1,
      commands: round(p1.commands - per(p1.commands, p200.commands), 2),
      cpu_ms: round(Math.max(0, p1.cpu_ms - per(p1.cpu_ms, p200.cpu_ms)), 3),
      // Wall time is shown, not modelled: a publish to one member, its one post included.
      wall_ms: p1.wall_ms,
    });
    ops.perRecipient = {
      commands: per(p1.commands, p200.commands),
      round_trips: 0,
      cpu_ms: per(p1.cpu_ms, p200.cpu_ms),
      wall_ms: per(p1.wall_ms, p200.wall_ms),
      runs: pRuns,
    };
    mix['publish to 200'] = p200.mix;
    // A publish to a user with two devices (connections i and i + users share a user).
    const pu = await measureOp(admin, counter, users, async (i) => {
      const result = await publish(
        { id: `pu-${Date.now()}-${i}`, userId: `cost-user-${i}`, data },
        deps,
      );
      if (result.delivered !== 2)
        throw new Error(`cost: publish to a user delivered ${result.delivered} of 2`);
    });
    const perRecipient = ops.perRecipient;
    keep('publishUserFixed', {
      ...pu,
      commands: round(Math.max(0, pu.commands - 2 * perRecipient.commands), 2),
      cpu_ms: round(Math.max(0, pu.cpu_ms - 2 * perRecipient.cpu_ms), 3),
    });
    keep(
      'disconnect',
      await measureOp(admin, counter, runs, (i) => disconnect(ids[i] as string, { registry })),
    );
    const payload = JSON.stringify(data);
    const frame = messageFrame(
      '0b7e0a38-8d7f-4a53-9a3f-5b2e3f4c5d6e',
      payload,
      '1732752000000-0',
      'cost-topic-1',
    );
    return {
      ops,
      frame_overhead_bytes: Buffer.byteLength(frame) - Buffer.byteLength(payload),
      command_mix: mix,
      loadavg: [load0, round(loadavg()[0] ?? 0, 2)],
    };
  } finally {
    redis.disconnect();
    admin.disconnect();
  }
}

/** The cost section: measure (when a Redis and management API are given), then model. */
export async function benchCost(options: {
  redisUrl: string;
  privateRedis: boolean;
  mgmt: MgmtServer;
  config: Config;
  runs: number;
}): Promise<CostResult> {
  const workload = workloadFromArgs();
  // Bad flags, workload or inputs fail here, before a measurement is spent on them.
  costModel(workload, inputsFrom(null, options.config));
  const measured = options.privateRedis ? await measureCost(options) : null;
  const report = costModel(workload, inputsFrom(measured, options.config));
  return { workload, measured, report };
}
