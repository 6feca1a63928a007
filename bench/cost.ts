/**
 * `npm run bench -- --only=cost`: measures what each operation costs in
 * Redis commands, round trips and wall time, by running the real code paths
 * in this process (lib/session connect, handleFrame for ping and subscribe,
 * lib/delivery publish to topics of 1 and 200 members, disconnect) against
 * the benchmark's private redis-server and the fake management API
 * (bench/mgmt-server.ts), counting commands with INFO commandstats deltas;
 * then runs the cost model (bench/cost-model.ts) on a workload
 * (bench/cost-workload.json, or --workload=<file>, or flags) with those
 * figures. Acknowledged messages (issue 18: the acked publish, an ack frame
 * through the ack route's wiring, the ackTimeout handler acked and not, SQS
 * SendMessage counted by a stand-in), large-message parts (the real
 * splitter) and delta frames (bench/delta-doc.ts) are measured here too.
 * Figures measured elsewhere come from --inputs=<file>; the rest are
 * reported as assumed.
 *
 * Flags: --workload=<json file>  --inputs=<json file>  --connections=N  --users=N  --topics=N
 *   --publishes-per-minute=N  --session-minutes=N  --acked-share=X
 *   --ack-timeout-share=X  --delta-share=X  --messages-per-frame=N  --arch=arm64|x86_64
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { answerAck, redisAcks } from '../lib/acks/client-ack.js';
import { type AckTimeoutMessage, signedSendTimeout } from '../lib/acks/queue.js';
import { RedisAckStore } from '../lib/acks/store.js';
import { handleTimeoutBatch } from '../lib/acks/timeout.js';
import { createTokenVerifier } from '../lib/auth/tokens.js';
import type { Config } from '../lib/config.js';
import { MAX_MESSAGE_BYTES } from '../lib/constants.js';
import { messageHead } from '../lib/delivery/frame.js';
import { PART_BYTES, partFrames } from '../lib/delivery/parts.js';
import { messageFrame, publish } from '../lib/delivery/publish.js';
import { encodeFrame } from '../lib/protocol/frames.js';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { connect, disconnect, handleFrame } from '../lib/session/session.js';
import { JWT_SECRET, median, now, root, round } from './common.js';
import {
  billedUnits,
  costModel,
  defaultInputs,
  type Figure,
  type ModelInputs,
  mergeInputs,
  type Operation,
  type OperationFigures,
  type Workload,
} from './cost-model.js';
import { deltaCostPerMessage, document } from './delta-doc.js';
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
  /** Acknowledged messages (issue 18): frame bytes, SQS requests counted, timeout batch. */
  acks?: {
    ack_frame_bytes: number;
    acked_reply_bytes: number;
    dismiss_frame_bytes: number;
    /** SendMessage requests the SQS stand-in received per acknowledged publish to one user. */
    sqs_sends_per_acked: number;
    /** Bytes of one SendMessage request body (SQS bills per 64 KB). */
    sqs_send_body_bytes: number;
    /** Records per measured ackTimeout invocation. */
    timeout_batch: number;
    /** Dismiss posts the management API received per ack frame (2 devices, dismissOthers). */
    dismiss_posts_per_ack: number;
  };
  /** Large messages (PW-F6): the real splitter (partFrames) on catalogue JSON of each size. */
  parts?: {
    data_bytes: number;
    parts: number;
    bytes_posted: number;
    units: number;
    /** Mean slice of the frame's text a full part carries, and a full part's bytes. */
    full_part_text_bytes: number;
    full_part_bytes: number;
  }[];
  /** Delta topics: bench/delta-doc.ts deltaCostPerMessage() (100 KB document, ~1 % changed). */
  delta?: ReturnType<typeof deltaCostPerMessage>;
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
    const ops = inputs.ops as Record<string, OperationFigures>;
    const renote = (name: Operation, note: string) => {
      const op = ops[name];
      if (op?.ms.source !== 'measured') return;
      for (const figure of Object.values(op)) figure.note = `${figure.note}; ${note}`;
    };
    renote(
      'ackedPublish',
      'publish() with ack to a user of 2 devices minus the plain one: RedisAckStore.open (ack-open.lua), the epoch read, and lib/acks/queue.ts SendMessage signed and posted to an SQS stand-in in this process (its CPU included)',
    );
    renote(
      'ack',
      'one ack frame (1 id) through handleFrame with the ack route wiring (answerAck, ack.lua), dismissOthers: its dismiss posted to the other device',
    );
    renote(
      'ackTimeoutCheck',
      'handleTimeoutBatch on batches of 10 acked timeouts, per record (round trips per batch: records run side by side)',
    );
    renote(
      'ackTimeoutFire',
      'handleTimeoutBatch on batches of 10 timeouts no device acked, notify given, per record; a PushSender that sends nothing (the push not measured), its outcome recorded (store.pushed)',
    );
    const a = measured.acks;
    if (a) {
      const m = (value: number, note: string): Figure => ({ value, source: 'measured', note });
      inputs.ackFrameBytes = m(a.ack_frame_bytes, '{"action":"ack","ids":[<uuid>]}: one id');
      inputs.ackedReplyBytes = m(
        a.acked_reply_bytes,
        "the ack route's reply (encodeFrame of handleFrame's answer)",
      );
      inputs.dismissFrameBytes = m(a.dismiss_frame_bytes, 'encodeFrame({type:"dismiss",id})');
      inputs.sqsSendsPerAcked = m(
        a.sqs_sends_per_acked,
        `SendMessage requests the SQS stand-in received per acknowledged publish to one user (body ${a.sqs_send_body_bytes} B: one 64 KB request)`,
      );
    }
    const big = measured.parts?.at(-1);
    if (big) {
      inputs.largePartBytes = {
        value: big.full_part_text_bytes,
        source: 'measured',
        note: `partFrames() (lib/delivery/parts.ts) on ${big.data_bytes.toLocaleString('en-US')} B of catalogue JSON: frame text per full part (its quotes escaped in the part's string)`,
      };
      inputs.largePartOverheadBytes = {
        value: big.full_part_bytes - big.full_part_text_bytes,
        source: 'measured',
        note: `a full part is ${big.full_part_bytes.toLocaleString('en-US')} B (PART_BYTES ${PART_BYTES.toLocaleString('en-US')}): the part envelope and the escaping`,
      };
    }
    const d = measured.delta;
    if (d) {
      inputs.deltaBytesRatio = {
        value: round(d.delta_frame_bytes / d.plain_frame_bytes, 4),
        source: 'measured',
        note: `bench/delta-doc.ts deltaCostPerMessage(): fossil-delta frames of a ${d.document_bytes.toLocaleString('en-US')} B document changing ${(d.changed_share * 100).toFixed(2)} % a version, ${d.delta_frame_bytes.toLocaleString('en-US')} B against ${d.plain_frame_bytes.toLocaleString('en-US')} B whole`,
      };
    }
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
    const ackFigures = await measureAcks({
      admin,
      counter,
      redis,
      registry,
      deps,
      config,
      mgmt,
      sessionDeps,
      ids,
      users,
      data,
      plainUser: pu,
      keep,
      mix,
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
      ...(ackFigures && { acks: ackFigures }),
      parts: measureParts(),
      delta: deltaCostPerMessage(20),
      command_mix: mix,
      loadavg: [load0, round(loadavg()[0] ?? 0, 2)],
    };
  } finally {
    redis.disconnect();
    admin.disconnect();
  }
}

type MeasureOp = Awaited<ReturnType<typeof measureOp>>;

/** Sizes of the large messages measured: 200 KB, 512 KiB, 1 MiB (MAX_PUBLISH_BYTES's default). */
export const PART_SIZES = [200_000, 512 * 1024, 1024 * 1024];

/**
 * Parts per large message, from the real splitter (lib/delivery/parts.ts
 * partFrames, as lib/delivery/chunks.ts calls it) on catalogue JSON
 * (bench/delta-doc.ts document(): quotes escaped in the parts' strings),
 * cut to each size, in a topic message frame with a cursor.
 */
export function measureParts(sizes = PART_SIZES): NonNullable<CostMeasure['parts']> {
  const id = '0b7e0a38-8d7f-4a53-9a3f-5b2e3f4c5d6e';
  const head = messageHead(id, '1732752000000-0', 'cost-topic-1');
  return sizes.map((size) => {
    // Rows of ~136 bytes, then rows dropped until the JSON is at most `size`.
    const doc = document(Math.ceil(size / 120));
    let json = JSON.stringify(doc);
    // Cut to the estimated row count at once (a pop per row re-serialised
    // megabytes each time: 20 s for 1 MiB), then drop the last few over.
    const over = Buffer.byteLength(json) / size;
    if (over > 1) doc.rows.length = Math.floor(doc.rows.length / over);
    json = JSON.stringify(doc);
    while (Buffer.byteLength(json) > size) {
      doc.rows.pop();
      json = JSON.stringify(doc);
    }
    const tail = `,"data":${json}}`;
    const frames = partFrames(id, head, tail, MAX_MESSAGE_BYTES, PART_BYTES);
    if (!frames) throw new Error(`cost: ${size} bytes did not split`);
    const full = frames.slice(0, -1);
    const text = (f: Buffer) =>
      Buffer.byteLength((JSON.parse(f.toString('utf8')) as { data: string }).data);
    return {
      data_bytes: Buffer.byteLength(json),
      parts: frames.length,
      bytes_posted: frames.reduce((x, f) => x + f.length, 0),
      units: frames.reduce((x, f) => x + billedUnits(f.length), 0),
      full_part_text_bytes: Math.round(full.reduce((x, f) => x + text(f), 0) / full.length),
      full_part_bytes: Math.round(full.reduce((x, f) => x + f.length, 0) / full.length),
    };
  });
}

/**
 * Acknowledged messages (issue 18), on the real code: publish() with `ack`
 * (RedisAckStore.open, and lib/acks/queue.ts's signed SendMessage posted to
 * an SQS stand-in in this process that counts requests and answers 200), one
 * `ack` frame per device-1 connection through handleFrame with the ack
 * route's wiring (answerAck, redisAcks: ack.lua, the dismiss posted to the
 * other device), and the ackTimeout handler (handleTimeoutBatch) on batches
 * of the timeouts SendMessage carried: once for messages acked, once for
 * messages no device acked (their notify given, a PushSender that sends
 * nothing: the push itself is not measured; its outcome is recorded).
 */
async function measureAcks(m: {
  admin: Redis;
  counter: Awaited<ReturnType<typeof roundTripCounter>>;
  redis: Redis;
  registry: RedisRegistry;
  deps: ReturnType<typeof publishDeps>;
  config: Config;
  mgmt: MgmtServer;
  sessionDeps: Parameters<typeof handleFrame>[2];
  ids: string[];
  users: number;
  data: unknown;
  plainUser: MeasureOp;
  keep: (name: Operation, op: MeasureOp) => void;
  mix: Record<string, Record<string, number>>;
}): Promise<NonNullable<CostMeasure['acks']>> {
  const { admin, counter, registry, config, users } = m;
  // The SQS stand-in: counts SendMessage requests and their bodies.
  const sent: AckTimeoutMessage[] = [];
  let sendBodyBytes = 0;
  let sends = 0;
  const sqs = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.headers['x-amz-target'] === 'AmazonSQS.SendMessage') {
        sends++;
        sendBodyBytes += body.length;
        const parsed = JSON.parse(body.toString('utf8')) as { MessageBody: string };
        sent.push(JSON.parse(parsed.MessageBody) as AckTimeoutMessage);
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{"MessageId":"cost"}');
    });
  });
  await new Promise<void>((done) => sqs.listen(0, '127.0.0.1', done));
  try {
    const endpoint = `http://127.0.0.1:${(sqs.address() as AddressInfo).port}/`;
    const schedule = signedSendTimeout({
      region: 'us-east-1',
      queueUrl: `${endpoint}000000000000/acks`,
      endpoint,
      credentials: async () => ({ accessKeyId: 'AKIDCOST', secretAccessKey: 'cost-secret' }),
    });
    const store = new RedisAckStore(m.redis, registry.keys, {
      historyTtlSeconds: config.history.ttlSeconds,
    });
    const ackDeps = {
      ...m.deps,
      acks: {
        open: (userId: string, id: string, o: Parameters<RedisAckStore['open']>[2]) =>
          store.open(userId, id, o),
        schedule,
        maxTimeoutSeconds: config.history.ttlSeconds,
      },
    };
    const publishAcked = (tag: string, notify: boolean) => async (i: number) => {
      const result = await publish(
        {
          id: `${tag}-${Date.now()}-${i}`,
          userId: `cost-user-${i}`,
          data: m.data,
          ack: {
            timeoutSeconds: 60,
            dismissOthers: true,
            ...(notify && { notify: { title: 'New message' } }),
          },
        },
        ackDeps,
      );
      if (result.delivered !== 2)
        throw new Error(`cost: acked publish to a user delivered ${result.delivered} of 2`);
      return result.id;
    };
    // Warm the scripts and the signer (not measured).
    await publishAcked('ack-warm', false)(0);
    sent.length = 0;
    sends = 0;
    sendBodyBytes = 0;
    const ackedIds: string[] = [];
    const pa = await measureOp(admin, counter, users, async (i) => {
      ackedIds[i] = await publishAcked('ackp', false)(i);
    });
    const sendsPerAcked = sends / users;
    const bodyBytes = sendBodyBytes / Math.max(1, sends);
    const plain = m.plainUser;
    m.keep('ackedPublish', {
      ...pa,
      commands: round(Math.max(0, pa.commands - plain.commands), 2),
      round_trips: round(Math.max(0, pa.round_trips - plain.round_trips), 1),
      cpu_ms: round(Math.max(0, pa.cpu_ms - plain.cpu_ms), 3),
      wall_ms: round(pa.wall_ms - plain.wall_ms, 3),
    });
    // The mix kept is what the ack adds (the whole acked publish's mix beside it).
    const plainMix = m.mix['publishUserFixed'] ?? {};
    m.mix['ackedPublish'] = Object.fromEntries(
      Object.entries(pa.mix)
        .map(([c, k]) => [c, round(k - (plainMix[c] ?? 0), 2)] as const)
        .filter(([, k]) => k !== 0),
    );
    m.mix['acked publish to a user (whole)'] = pa.mix;
    const ackedTimeouts = sent.splice(0);
    // One ack frame from device 1 of each user (ids[i]: user i); dismiss goes to device 2.
    const postsBefore = (await m.mgmt.stats()).delivered;
    let reply = '';
    const post = m.sessionDeps;
    const script = redisAcks(m.redis, registry.keys, config.history.ttlSeconds);
    const ackFrame = (i: number) => JSON.stringify({ action: 'ack', ids: [ackedIds[i]] });
    m.keep(
      'ack',
      await measureOp(admin, counter, users, async (i) => {
        const r = await handleFrame(m.ids[i] as string, ackFrame(i), {
          ...post,
          acks: (connection, ids, send) => answerAck(connection, ids, script, send),
        });
        if (r.type !== 'acked') throw new Error(`cost: ack answered ${JSON.stringify(r)}`);
        reply = encodeFrame(r);
      }),
    );
    const dismissPosts = ((await m.mgmt.stats()).delivered - postsBefore) / users;
    // The timeout handler: batches of up to 10, as the event source mapping hands them over.
    const timeoutBatch = 10;
    const now = Date.now();
    const asEvent = (ms: AckTimeoutMessage[]) => ({
      Records: ms.map((x, n) => ({
        messageId: `cost-${n}`,
        body: JSON.stringify({ ...x, dueAt: now }),
      })),
    });
    const pushed: string[] = [];
    const timeoutDeps = {
      store,
      sender: {
        send: async (_userId: string, _notify: unknown, message: { id: string }) => {
          pushed.push(message.id);
          return { devices: 0, sent: 0, failed: 0, removed: 0 };
        },
      } as unknown as Parameters<typeof handleTimeoutBatch>[1]['sender'],
      schedule: async () => {
        throw new Error('cost: no timeout should be longer than 900 s here');
      },
      epoch: () => registry.epoch(),
      count: () => undefined,
      logger: { info: () => undefined, warn: () => undefined },
    };
    const batches = (ms: AckTimeoutMessage[]) =>
      Array.from({ length: Math.ceil(ms.length / timeoutBatch) }, (_, b) =>
        ms.slice(b * timeoutBatch, (b + 1) * timeoutBatch),
      );
    const perRecord = (op: MeasureOp, records: number, invocations: number): MeasureOp => ({
      ...op,
      commands: round((op.commands * invocations) / records, 2),
      cpu_ms: round((op.cpu_ms * invocations) / records, 3),
      wall_ms: round((op.wall_ms * invocations) / records, 3),
    });
    const acked = batches(ackedTimeouts);
    const ta = await measureOp(admin, counter, acked.length, async (b) => {
      const r = await handleTimeoutBatch(asEvent(acked[b] ?? []), timeoutDeps);
      if (r.batchItemFailures.length > 0) throw new Error('cost: a timeout failed');
    });
    // Round trips stay per invocation (records run side by side): one record's trips.
    m.keep('ackTimeoutCheck', perRecord(ta, ackedTimeouts.length, acked.length));
    delete m.mix['ackTimeoutCheck'];
    m.mix['ackTimeout, acked (per batch of 10)'] = ta.mix;
    // Timeouts no device acks: publish again with notify, and let them fire.
    const firedPublish = publishAcked('ackf', true);
    for (let i = 0; i < users; i++) await firedPublish(i);
    const firedTimeouts = sent.splice(0);
    const fired = batches(firedTimeouts);
    const tf = await measureOp(admin, counter, fired.length, async (b) => {
      const r = await handleTimeoutBatch(asEvent(fired[b] ?? []), timeoutDeps);
      if (r.batchItemFailures.length > 0) throw new Error('cost: a timeout failed');
    });
    if (pushed.length !== firedTimeouts.length)
      throw new Error(`cost: ${pushed.length} pushes for ${firedTimeouts.length} timeouts`);
    m.keep('ackTimeoutFire', perRecord(tf, firedTimeouts.length, fired.length));
    delete m.mix['ackTimeoutFire'];
    m.mix['ackTimeout, not acked (per batch of 10)'] = tf.mix;
    return {
      ack_frame_bytes: Buffer.byteLength(ackFrame(0)),
      acked_reply_bytes: Buffer.byteLength(reply),
      dismiss_frame_bytes: Buffer.byteLength(
        encodeFrame({ type: 'dismiss', id: ackedIds[0] as string }),
      ),
      sqs_sends_per_acked: round(sendsPerAcked, 2),
      sqs_send_body_bytes: Math.round(bodyBytes),
      timeout_batch: timeoutBatch,
      dismiss_posts_per_ack: round(dismissPosts, 2),
    };
  } finally {
    await new Promise((done) => sqs.close(done));
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
