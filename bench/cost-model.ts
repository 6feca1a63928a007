/**
 * The cost model (issue 17, "a cost model you can run"; issue 18, the cost of
 * acknowledged messages). Pure arithmetic: a workload (bench/cost-workload.json
 * or flags), the per-operation figures (measured by bench/cost.ts where it
 * can, assumed where it cannot: every figure says which), and the price list
 * (bench/cost-prices.ts) give what 1 M deliveries cost, what a month costs,
 * and the same workload at Pusher, Ably and AppSync Events list prices.
 * Nothing here is timed; test/unit/cost-model.test.ts checks the arithmetic.
 */
import { MAX_MESSAGE_BYTES, PRICES, type Price, PUSHER_PLANS } from './cost-prices.js';

/** API Gateway bills a WebSocket message per 32 KB (32,768 bytes) unit, in either direction. */
export const UNIT_BYTES = 32_768;
/** API Gateway's largest WebSocket message (128 KB): a larger one is sent as parts. */
export const MAX_FRAME_BYTES = 131_072;
/** SQS bills a request per 64 KB chunk of its payload. */
export const SQS_CHUNK_BYTES = 65_536;
/** Lambda gives a function one vCPU at 1,769 MB, and CPU in proportion to memory below it. */
export const LAMBDA_MB_PER_VCPU = 1_769;
const MINUTES_PER_DAY = 1_440;

/** Billed API Gateway messages for one frame of `bytes` (0 bytes is still one message). */
export function billedUnits(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`frame size must be ≥ 0, got ${bytes}`);
  return Math.max(1, Math.ceil(bytes / UNIT_BYTES));
}

export interface Workload {
  name: string;
  /** Connections open at any moment, on average. */
  connections: number;
  /** How long a connection lasts, minutes: each is one $connect and one $disconnect. */
  sessionMinutes: number;
  /** The client's ping interval, seconds (client/pushwire.ts: 120 by default). */
  pingIntervalSeconds: number;
  /** Subscribe frames each connection sends after connecting. */
  subscribesPerConnection: number;
  publishesPerMinute: number;
  /** The message's `data` as JSON, bytes, and the share of publishes of that size. */
  sizes: { bytes: number; share: number }[];
  /** Who a publish goes to: a user (recipients = its devices) or a topic of `recipients` members. */
  audiences: { kind: 'user' | 'topic'; recipients: number; share: number }[];
  /** Share of publishes that ask for acknowledgement (issue 18; they go to users). */
  ackedShare: number;
  /** Of acknowledged messages, the share no device acks in time (the push fires). */
  ackTimeoutShare: number;
  /** Share of deliveries sent as a delta against the previous message (delta topics). */
  deltaShare: number;
  /** Messages combined into one frame per connection (batch publish; 1 = plain). */
  messagesPerFrame: number;
  /** Days in the month for the monthly figure. */
  monthDays: number;
  /** Distinct users (each has a history stream), and topics published to (each has one). */
  users: number;
  topics: number;
}

/** One input figure and where it comes from. */
export interface Figure {
  value: number;
  source: 'measured' | 'assumed' | 'configured';
  note: string;
}

/**
 * Per-operation figures: Redis commands, round trips to Redis, and `ms`: CPU
 * milliseconds of the function's own process (the waits on Redis and on
 * posts are added from round trips and post waves at AWS latencies).
 */
export interface OperationFigures {
  redisCommands: Figure;
  roundTrips: Figure;
  ms: Figure;
}

export const OPERATIONS = [
  'connect',
  'disconnect',
  'ping',
  'subscribe',
  'publishFixed',
  'publishUserFixed',
  'perRecipient',
  'ack',
  /** What an acknowledged publish to a user adds over a plain one (its state, its SendMessage). */
  'ackedPublish',
  /** The timeout handler, per message some device acked in time. */
  'ackTimeoutCheck',
  /** The timeout handler, per message no device acked (the push itself not included). */
  'ackTimeoutFire',
] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface ModelInputs {
  ops: Record<Operation, OperationFigures>;
  /** Bytes a `message` frame adds around the data (id, cursor, topic, type). */
  frameOverheadBytes: Figure;
  /** Data bytes per part for a message over 128 KB, and what each part frame adds. */
  largePartBytes: Figure;
  largePartOverheadBytes: Figure;
  /** A delta frame's size relative to the full frame. */
  deltaBytesRatio: Figure;
  lambdaMemoryMb: Figure;
  architecture: 'arm64' | 'x86_64';
  fanoutChunk: Figure;
  fanoutConcurrency: Figure;
  parallelChunks: Figure;
  /** Latency of one management API post on AWS, ms (a network round trip). */
  postLatencyMs: Figure;
  /** Latency of one Redis round trip in the VPC, ms. */
  redisRttMs: Figure;
  /** Lambda CPU per ms of CPU on this machine (1,769 / memory: Lambda's share of a vCPU). */
  cpuStretch: Figure;
  /** Whether API Gateway bills the $connect request as a message (1) or not (0). */
  connectBilledMessages: Figure;
  /** Acks one ack frame carries (the client batches them). */
  acksPerFrame: Figure;
  /** Reply frames $default sends per ack frame. */
  ackReplyFrames: Figure;
  /** Bytes of an `ack` frame in, and of the `acked` reply and a `dismiss` frame out. */
  ackFrameBytes: Figure;
  ackedReplyBytes: Figure;
  dismissFrameBytes: Figure;
  /** SQS SendMessage requests per acknowledged message (one per user, with DelaySeconds). */
  sqsSendsPerAcked: Figure;
  /** SQS requests the Lambda event source mapping makes per batch it hands over: ReceiveMessage and DeleteMessageBatch. */
  sqsPollRequestsPerBatch: Figure;
  /** Most timeouts one ack-timeout invocation handles (serverless.yml batchSize). */
  ackTimeoutBatch: Figure;
  /** How long the event source mapping gathers a batch, seconds (serverless.yml maximumBatchingWindow). */
  ackTimeoutBatchWindowSeconds: Figure;
  /** The ackTimeout function's memory (serverless.yml), MB. */
  ackTimeoutMemoryMb: Figure;
  /** Wall ms of the push call when a timeout fires (SNS Publish / Web Push POST). */
  ackTimeoutMs: Figure;
  /** Push endpoints per user a fired timeout notifies (SNS mobile). */
  pushDevicesPerUser: Figure;
  /** ECPUs per Redis command (ElastiCache Serverless: 1 per command up to 1 KB; scripts may take more). */
  ecpuPerCommand: Figure;
  /** Whether AWS bills data transfer out to the internet for WebSocket frames (1) or not (0). */
  dataTransferBilled: Figure;
  /** History kept per stream: entries, and how long (HISTORY_SIZE, HISTORY_TTL_SECONDS). */
  historySize: Figure;
  historyTtlSeconds: Figure;
  /** Bytes Redis holds per connection (record, memberships), and its memory per byte stored. */
  connectionRecordBytes: Figure;
  redisMemoryOverhead: Figure;
}

const f = (value: number, source: Figure['source'], note: string): Figure => ({
  value,
  source,
  note,
});

/** Defaults: every figure assumed until bench/cost.ts measures it (or another helper exports it). */
export function defaultInputs(): ModelInputs {
  const op = (redis: number, trips: number, ms: number, note: string): OperationFigures => ({
    redisCommands: f(redis, 'assumed', note),
    roundTrips: f(trips, 'assumed', note),
    ms: f(ms, 'assumed', note),
  });
  return {
    ops: {
      connect: op(12, 2, 3, 'not measured in this run'),
      disconnect: op(12, 2, 2, 'not measured in this run'),
      ping: op(6, 1, 1, 'not measured in this run'),
      subscribe: op(8, 2, 1.5, 'not measured in this run'),
      publishFixed: op(8, 3, 2, 'not measured in this run'),
      publishUserFixed: op(8, 3, 2, 'not measured in this run'),
      perRecipient: op(0.01, 0, 0.1, 'not measured in this run'),
      // Per ack frame (one $default invocation; it may carry several acks).
      ack: op(
        3,
        1,
        1,
        'issue 18 (acks) not built on this branch: an ack assumed one script call (EVALSHA) plus a read and a write',
      ),
      ackedPublish: op(
        2,
        1,
        0.5,
        'not measured in this run: an acknowledged publish assumed to add its state script and the epoch read',
      ),
      ackTimeoutCheck: op(
        1,
        1,
        0.3,
        'not measured in this run: the timeout handler assumed one script call per message',
      ),
      ackTimeoutFire: op(
        2,
        2,
        0.5,
        'not measured in this run: the timeout script and the recorded outcome, per message',
      ),
    },
    frameOverheadBytes: f(130, 'assumed', 'not measured in this run'),
    largePartBytes: f(
      120_000,
      'assumed',
      'issue 17 large messages (helper `large`) not merged: parts assumed to carry 120,000 bytes of data each',
    ),
    largePartOverheadBytes: f(
      200,
      'assumed',
      'part header (id, part index, count) assumed 200 bytes',
    ),
    deltaBytesRatio: f(
      0.05,
      'assumed',
      'delta topics (helper `delta`) not merged: a delta assumed 5 % of the full frame (issue 17: 100 KB JSON, ~1 % changed)',
    ),
    lambdaMemoryMb: f(1024, 'configured', 'serverless.yml provider.memorySize'),
    architecture: 'arm64',
    fanoutChunk: f(2000, 'configured', 'FANOUT_CHUNK default (lib/config.ts)'),
    fanoutConcurrency: f(100, 'configured', 'FANOUT_CONCURRENCY default (lib/config.ts)'),
    parallelChunks: f(8, 'configured', 'FANOUT_PARALLEL_CHUNKS default (lib/config.ts)'),
    postLatencyMs: f(
      20,
      'assumed',
      'a PostToConnection on AWS: 20 ms median (the paced bench stand-in uses the same); not measured on AWS',
    ),
    redisRttMs: f(0.5, 'assumed', 'ElastiCache in the same AZ/VPC; not measured on AWS'),
    cpuStretch: f(
      LAMBDA_MB_PER_VCPU / 1024,
      'assumed',
      "Lambda at 1,024 MB has 1,024/1,769 of a vCPU; this machine's core assumed as fast as a Graviton core",
    ),
    connectBilledMessages: f(
      1,
      'assumed',
      'whether the $connect handshake is billed as a message was not found in AWS docs; counted (the higher)',
    ),
    acksPerFrame: f(
      1,
      'assumed',
      'acks are batched per frame; with sparse messages one ack per frame',
    ),
    ackReplyFrames: f(
      1,
      'configured',
      'the ack route is two-way (serverless.yml routeResponseSelectionExpression) and functions/ack.ts answers every frame: one `acked` (or error) reply per ack frame',
    ),
    ackFrameBytes: f(60, 'assumed', 'not measured in this run'),
    ackedReplyBytes: f(60, 'assumed', 'not measured in this run'),
    dismissFrameBytes: f(60, 'assumed', 'not measured in this run'),
    sqsSendsPerAcked: f(1, 'assumed', 'not measured in this run: one SendMessage per user'),
    sqsPollRequestsPerBatch: f(
      2,
      'assumed',
      "the Lambda event source mapping's ReceiveMessage that returns the batch and its DeleteMessageBatch (AWS polls and deletes for the function; not countable locally). Its empty long polls while the queue is idle are not counted",
    ),
    ackTimeoutBatch: f(10, 'configured', 'serverless.yml ackTimeout sqs batchSize'),
    ackTimeoutBatchWindowSeconds: f(
      1,
      'configured',
      'serverless.yml ackTimeout sqs maximumBatchingWindow',
    ),
    ackTimeoutMemoryMb: f(512, 'configured', 'serverless.yml ackTimeout memorySize'),
    ackTimeoutMs: f(
      20,
      'assumed',
      'the push call (SNS Publish or a Web Push POST) when a batch has a timeout that fires: 20 ms, like a post; not measured',
    ),
    pushDevicesPerUser: f(1, 'assumed', 'registered push endpoints per user'),
    ecpuPerCommand: f(
      1,
      'assumed',
      'ElastiCache Serverless: a simple command up to 1 KB is 1 ECPU; Lua scripts are billed by vCPU time (not measured): a lower bound',
    ),
    dataTransferBilled: f(
      1,
      'assumed',
      "API Gateway's pricing page says data transferred out of AWS may be charged extra; counted at $0.09/GB (the higher)",
    ),
    historySize: f(100, 'configured', 'HISTORY_SIZE default (lib/config.ts)'),
    historyTtlSeconds: f(86_400, 'configured', 'HISTORY_TTL_SECONDS default (lib/config.ts)'),
    connectionRecordBytes: f(
      1_000,
      'assumed',
      'a connection hash, its topic set and sorted-set members: not measured',
    ),
    redisMemoryOverhead: f(
      1.5,
      'assumed',
      'Redis memory per byte of data (stream and hash encoding, keys): not measured',
    ),
  };
}

/** Overrides: `{ "ops": { "ack": { "redisCommands": { "value": 4, "source": "measured", "note": "..." } } }, "deltaBytesRatio": {...} }`. */
export function mergeInputs(base: ModelInputs, override: unknown): ModelInputs {
  if (override === undefined || override === null) return base;
  if (typeof override !== 'object' || Array.isArray(override))
    throw new Error('model inputs must be a JSON object');
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(override as Record<string, unknown>)) {
    if (!(key in out)) throw new Error(`unknown model input "${key}"`);
    if (key === 'architecture') {
      if (value !== 'arm64' && value !== 'x86_64')
        throw new Error('architecture must be "arm64" or "x86_64"');
      out[key] = value;
    } else if (key === 'ops') {
      const ops = out['ops'] as Record<string, Record<string, Figure>>;
      for (const [name, figures] of Object.entries(value as Record<string, unknown>)) {
        if (!(name in ops)) throw new Error(`unknown operation "${name}"`);
        for (const [field, figure] of Object.entries(figures as Record<string, unknown>)) {
          if (!(field in (ops[name] as object)))
            throw new Error(`unknown figure "${name}.${field}"`);
          (ops[name] as Record<string, Figure>)[field] = checkFigure(`${name}.${field}`, figure);
        }
      }
    } else out[key] = checkFigure(key, value);
  }
  return out as unknown as ModelInputs;
}

function checkFigure(name: string, value: unknown): Figure {
  const v = value as Partial<Figure> | null;
  if (!v || typeof v.value !== 'number' || !Number.isFinite(v.value) || v.value < 0)
    throw new Error(`${name}: value must be a number ≥ 0`);
  if (v.source !== 'measured' && v.source !== 'assumed' && v.source !== 'configured')
    throw new Error(`${name}: source must be "measured", "assumed" or "configured"`);
  return { value: v.value, source: v.source, note: String(v.note ?? '') };
}

/** Checks a workload: shares sum to 1, sizes and counts in range. Throws with what is wrong. */
export function checkWorkload(w: Workload): Workload {
  const problems: string[] = [];
  const positive = [
    'connections',
    'sessionMinutes',
    'pingIntervalSeconds',
    'publishesPerMinute',
    'messagesPerFrame',
    'monthDays',
    'users',
    'topics',
  ] as const;
  for (const k of positive)
    if (!(typeof w[k] === 'number' && w[k] > 0)) problems.push(`${k} must be a number > 0`);
  if (!(w.subscribesPerConnection >= 0)) problems.push('subscribesPerConnection must be ≥ 0');
  for (const k of ['ackedShare', 'ackTimeoutShare', 'deltaShare'] as const)
    if (!(w[k] >= 0 && w[k] <= 1)) problems.push(`${k} must be between 0 and 1`);
  const sum = (xs: { share: number }[]) => xs.reduce((a, x) => a + x.share, 0);
  if (!Array.isArray(w.sizes) || w.sizes.length === 0)
    problems.push('sizes must be a non-empty list');
  else {
    if (Math.abs(sum(w.sizes) - 1) > 1e-9) problems.push('sizes: shares must sum to 1');
    for (const s of w.sizes)
      if (!(s.bytes >= 0 && s.share >= 0)) problems.push('sizes: bytes and share must be ≥ 0');
  }
  if (!Array.isArray(w.audiences) || w.audiences.length === 0)
    problems.push('audiences must be a non-empty list');
  else {
    if (Math.abs(sum(w.audiences) - 1) > 1e-9) problems.push('audiences: shares must sum to 1');
    for (const a of w.audiences) {
      if (a.kind !== 'user' && a.kind !== 'topic')
        problems.push('audiences: kind must be "user" or "topic"');
      if (!(Number.isInteger(a.recipients) && a.recipients >= 1))
        problems.push('audiences: recipients must be an integer ≥ 1');
    }
    if (w.ackedShare > 0 && !w.audiences.some((a) => a.kind === 'user' && a.share > 0))
      problems.push('ackedShare > 0 needs a user audience (acknowledged messages go to users)');
  }
  if (problems.length > 0) throw new Error(`invalid workload: ${problems.join('; ')}`);
  return w;
}

/** How one message of `dataBytes` goes out to one connection: posts and billed units. */
export function framesFor(
  dataBytes: number,
  inputs: Pick<ModelInputs, 'frameOverheadBytes' | 'largePartBytes' | 'largePartOverheadBytes'>,
): { posts: number; units: number; bytes: number } {
  const whole = dataBytes + inputs.frameOverheadBytes.value;
  if (whole <= MAX_FRAME_BYTES) return { posts: 1, units: billedUnits(whole), bytes: whole };
  const part = inputs.largePartBytes.value;
  const overhead = inputs.largePartOverheadBytes.value;
  if (part + overhead > MAX_FRAME_BYTES || part <= 0)
    throw new Error('largePartBytes + largePartOverheadBytes must fit in 128 KB');
  const parts = Math.ceil(dataBytes / part);
  const last = dataBytes - (parts - 1) * part;
  return {
    posts: parts,
    units: (parts - 1) * billedUnits(part + overhead) + billedUnits(last + overhead),
    bytes: dataBytes + parts * overhead,
  };
}

/** Per-delivery posts and units for a message size under the workload's delta and batch settings. */
export function perDelivery(
  dataBytes: number,
  w: Pick<Workload, 'deltaShare' | 'messagesPerFrame'>,
  inputs: ModelInputs,
): { posts: number; units: number; bytes: number } {
  const full = framesFor(dataBytes, inputs);
  const deltaBytes = Math.ceil(full.bytes * inputs.deltaBytesRatio.value);
  const delta = framesFor(Math.max(0, deltaBytes - inputs.frameOverheadBytes.value), inputs);
  const mix = (a: number, b: number) => (1 - w.deltaShare) * a + w.deltaShare * b;
  let posts = mix(full.posts, delta.posts);
  let units = mix(full.units, delta.units);
  // Batch publish: m messages to a connection share frames, while m of them fit in 128 KB.
  const m = w.messagesPerFrame;
  const avgBytes = mix(full.bytes, delta.bytes);
  if (m > 1 && posts === 1 && avgBytes * m <= MAX_FRAME_BYTES) {
    posts = 1 / m;
    units = billedUnits(avgBytes * m) / m;
  }
  return { posts, units, bytes: avgBytes };
}

export interface LambdaLine {
  fn: string;
  requests: number;
  gbSeconds: number;
  msPerInvocation: number;
  basis: string;
}

export interface CostLine {
  item: string;
  quantity: number;
  unit: string;
  usd: number | null;
  price: string;
  basis: string;
}

export interface CompetitorLine {
  name: string;
  per1M: number | null;
  monthly: number | null;
  how: string;
  caveats: string[];
}

export interface CostReport {
  workload: Workload;
  deliveriesPerMinute: number;
  /** Minutes of this workload that make 1 M deliveries. */
  minutesPer1M: number;
  /** Per 1 M deliveries. */
  lines: CostLine[];
  lambda: LambdaLine[];
  redisCommands: number;
  /** Management API posts (PostToConnection calls) per 1 M deliveries, replies not included. */
  posts: number;
  totalPer1M: number;
  monthly: { deliveries: number; usage: number; fixed: number; total: number; fixedHow: string };
  competitors: CompetitorLine[];
  acked: { lines: CostLine[]; totalPer1M: number; note: string };
  inputs: ModelInputs;
  assumed: string[];
}

const basisOf = (...figures: Figure[]) => {
  const kinds = new Set(figures.map((x) => x.source));
  return kinds.has('assumed')
    ? kinds.size === 1
      ? 'assumed'
      : 'partly assumed'
    : kinds.has('measured')
      ? 'measured'
      : 'configured';
};

const round2 = (x: number) => Math.round(x * 100) / 100;

const usd = (price: Price, quantity: number) => (price.usd === null ? null : price.usd * quantity);

/** Lambda billed duration of one invocation: CPU stretched to Lambda's share, plus waits on AWS. */
export function billedMs(cpuMs: number, waitsMs: number, inputs: ModelInputs): number {
  return Math.max(1, Math.ceil(cpuMs * inputs.cpuStretch.value + waitsMs));
}

/**
 * Timeouts per ack-timeout invocation: what the event source mapping gathers
 * in its batching window at the workload's rate, at most its batch size, at
 * least one (a quiet queue hands over timeouts one by one).
 */
export function ackTimeoutBatchSize(inputs: ModelInputs, ackedPerMinute: number): number {
  const gathered = (ackedPerMinute / 60) * inputs.ackTimeoutBatchWindowSeconds.value;
  return Math.min(inputs.ackTimeoutBatch.value, Math.max(1, gathered));
}

/** SQS requests per acknowledged message: its SendMessage(s), and its share of the batch's receive and delete. */
export function sqsRequestsPerAcked(inputs: ModelInputs, batch: number): number {
  return inputs.sqsSendsPerAcked.value + inputs.sqsPollRequestsPerBatch.value / batch;
}

/**
 * Billed ms of one ack-timeout invocation of `batch` records, `firedShare`
 * of them unacked. Records are handled in parallel (Promise.all): CPU adds
 * up, the waits are one record's: the fired path's (its round trips and the
 * push call) when any record of the batch fires. At the function's own memory.
 */
export function ackTimeoutInvocationMs(
  inputs: ModelInputs,
  batch: number,
  firedShare: number,
): number {
  const o = inputs.ops;
  const cpu =
    batch *
    ((1 - firedShare) * o.ackTimeoutCheck.ms.value + firedShare * o.ackTimeoutFire.ms.value);
  const anyFired = 1 - (1 - firedShare) ** batch;
  const trips =
    (1 - anyFired) * o.ackTimeoutCheck.roundTrips.value +
    anyFired * o.ackTimeoutFire.roundTrips.value;
  const stretch = Math.max(
    1,
    (inputs.cpuStretch.value * inputs.lambdaMemoryMb.value) / inputs.ackTimeoutMemoryMb.value,
  );
  return Math.max(
    1,
    Math.ceil(
      cpu * stretch + trips * inputs.redisRttMs.value + anyFired * inputs.ackTimeoutMs.value,
    ),
  );
}

/** Ms an acknowledged publish adds to its publish invocation: CPU, round trips, and its SendMessage(s) at AWS latency. */
export function ackedPublishMs(inputs: ModelInputs): number {
  const a = inputs.ops.ackedPublish;
  return (
    a.ms.value * inputs.cpuStretch.value +
    a.roundTrips.value * inputs.redisRttMs.value +
    inputs.sqsSendsPerAcked.value * inputs.postLatencyMs.value
  );
}

/** Runs the model: per 1 M deliveries, per month, competitors, and 1 M acknowledged messages. */
export function costModel(workload: Workload, inputs: ModelInputs): CostReport {
  const w = checkWorkload(workload);
  const o = inputs.ops;
  const gb = inputs.lambdaMemoryMb.value / 1024;
  const gbSecondPrice =
    inputs.architecture === 'arm64' ? PRICES.lambdaGbSecondArm : PRICES.lambdaGbSecondX86;
  const rtt = inputs.redisRttMs.value;
  const lat = inputs.postLatencyMs.value;
  const conc = inputs.fanoutConcurrency.value;
  const chunk = inputs.fanoutChunk.value;

  // Everything per minute of the workload first.
  const pub = w.publishesPerMinute;
  let deliveries = 0;
  let unitsOut = 0;
  let bytesOut = 0;
  let bytesOutFull = 0;
  let posts = 0;
  let historyKb = 0;
  let publishGbs = 0;
  let deliverGbs = 0;
  let deliverInvocations = 0;
  let publishCommands = 0;
  let publishMsSum = 0;
  let publishInvocations = 0;
  for (const a of w.audiences) {
    for (const s of w.sizes) {
      const n = pub * a.share * s.share;
      if (n === 0) continue;
      const r = a.recipients;
      const d = perDelivery(s.bytes, w, inputs);
      // A publish to a user (its stream, its devices) and to a topic differ in fixed work.
      const fixed = a.kind === 'user' ? o.publishUserFixed : o.publishFixed;
      deliveries += n * r;
      unitsOut += n * r * d.units;
      bytesOut += n * r * d.bytes;
      // What a service without deltas, batching or parts sends: the whole message in one frame.
      bytesOutFull += n * r * (s.bytes + inputs.frameOverheadBytes.value);
      posts += n * r * d.posts;
      historyKb += n * Math.ceil(s.bytes / 1024);
      publishCommands += n * (fixed.redisCommands.value + r * o.perRecipient.redisCommands.value);
      const fixedWait = fixed.roundTrips.value * rtt;
      // One publish invocation per publish (per m publishes when batched).
      const m = w.messagesPerFrame;
      if (r <= chunk) {
        const ms = billedMs(
          fixed.ms.value + m * r * o.perRecipient.ms.value,
          fixedWait + Math.ceil((m * r * d.posts) / conc) * lat,
          inputs,
        );
        publishGbs += (n / m) * (ms / 1000) * gb;
        publishMsSum += (n / m) * ms;
        publishInvocations += n / m;
      } else {
        const chunks = Math.ceil(r / chunk);
        const perChunk = r / chunks;
        const deliverMs = billedMs(
          perChunk * o.perRecipient.ms.value,
          2 * rtt + Math.ceil((perChunk * d.posts) / conc) * lat,
          inputs,
        );
        // publish waits for its chunks (RequestResponse), parallelChunks at a time.
        const ms = billedMs(
          fixed.ms.value,
          fixedWait + Math.ceil(chunks / inputs.parallelChunks.value) * deliverMs,
          inputs,
        );
        // A publish to a chunked audience is its own invocation (batched or not).
        publishGbs += n * (ms / 1000) * gb;
        publishMsSum += n * ms;
        publishInvocations += n;
        deliverInvocations += n * chunks;
        deliverGbs += n * chunks * (deliverMs / 1000) * gb;
      }
    }
  }

  // Connections: connects, subscribes, pings, disconnects.
  const connects = w.connections / w.sessionMinutes;
  const subscribes = connects * w.subscribesPerConnection;
  const pings = (w.connections * 60) / w.pingIntervalSeconds;
  const opMs = (op: OperationFigures) => billedMs(op.ms.value, op.roundTrips.value * rtt, inputs);

  // Acknowledged messages (issue 18), per minute: they go to users.
  const users = w.audiences.filter((a) => a.kind === 'user');
  const userShare = users.reduce((x, a) => x + a.share, 0);
  const devices =
    userShare > 0 ? users.reduce((x, a) => x + a.recipients * a.share, 0) / userShare : 0;
  const acked = pub * w.ackedShare;
  const fired = acked * w.ackTimeoutShare;
  // A timeout fires when no device acked: only the others send ack frames.
  const ackFrames = ((acked - fired) * devices) / inputs.acksPerFrame.value;
  const dismiss = (acked - fired) * Math.max(0, devices - 1);
  const batch = ackTimeoutBatchSize(inputs, acked);
  const timeoutInvocations = acked / batch;
  const timeoutMs = ackTimeoutInvocationMs(inputs, batch, w.ackTimeoutShare);
  const timeoutGb = inputs.ackTimeoutMemoryMb.value / 1024;
  const pushes = fired * inputs.pushDevicesPerUser.value;
  // An acknowledged publish takes longer (its state, its SendMessage): same invocation.
  publishGbs += (acked * ackedPublishMs(inputs) * gb) / 1000;
  publishMsSum += acked * ackedPublishMs(inputs);

  const defaultInvocations = subscribes + pings;
  const defaultGbs = ((subscribes * opMs(o.subscribe) + pings * opMs(o.ping)) / 1000) * gb;
  const lambda: LambdaLine[] = [
    {
      fn: 'connect',
      requests: connects,
      gbSeconds: (connects * opMs(o.connect) * gb) / 1000,
      msPerInvocation: opMs(o.connect),
      basis: basisOf(o.connect.ms, o.connect.roundTrips, inputs.redisRttMs, inputs.cpuStretch),
    },
    {
      fn: 'disconnect',
      requests: connects,
      gbSeconds: (connects * opMs(o.disconnect) * gb) / 1000,
      msPerInvocation: opMs(o.disconnect),
      basis: basisOf(o.disconnect.ms, o.disconnect.roundTrips, inputs.redisRttMs),
    },
    {
      fn: 'default (subscribe, ping)',
      requests: defaultInvocations,
      gbSeconds: defaultGbs,
      msPerInvocation: defaultInvocations > 0 ? (defaultGbs * 1000) / gb / defaultInvocations : 0,
      basis: basisOf(o.ping.ms, o.subscribe.ms, inputs.redisRttMs),
    },
    {
      fn: 'ack (ack frames, issue 18)',
      requests: ackFrames,
      gbSeconds: (ackFrames * opMs(o.ack) * gb) / 1000,
      msPerInvocation: opMs(o.ack),
      basis: basisOf(o.ack.ms, o.ack.roundTrips, inputs.redisRttMs),
    },
    {
      fn: 'publish',
      requests: publishInvocations,
      gbSeconds: publishGbs,
      msPerInvocation: publishInvocations > 0 ? publishMsSum / publishInvocations : 0,
      basis: basisOf(o.publishFixed.ms, o.perRecipient.ms, inputs.postLatencyMs),
    },
    {
      fn: 'deliver',
      requests: deliverInvocations,
      gbSeconds: deliverGbs,
      msPerInvocation: deliverInvocations > 0 ? (deliverGbs * 1000) / gb / deliverInvocations : 0,
      basis: basisOf(o.perRecipient.ms, inputs.postLatencyMs),
    },
    {
      fn: `ack timeout (issue 18; ${inputs.ackTimeoutMemoryMb.value} MB, ${round2(batch)} per batch)`,
      requests: timeoutInvocations,
      gbSeconds: (timeoutInvocations * timeoutMs * timeoutGb) / 1000,
      msPerInvocation: timeoutMs,
      basis: basisOf(inputs.ackTimeoutMs, o.ackTimeoutCheck.ms, o.ackTimeoutFire.ms),
    },
  ];

  const ackUnits = billedUnits(inputs.ackFrameBytes.value);
  const inMessages =
    connects * inputs.connectBilledMessages.value + subscribes + pings + ackFrames * ackUnits;
  const replies =
    subscribes +
    pings +
    ackFrames * inputs.ackReplyFrames.value * billedUnits(inputs.ackedReplyBytes.value);
  const dismissUnits = dismiss * billedUnits(inputs.dismissFrameBytes.value);
  const redisCommands =
    publishCommands +
    connects * (o.connect.redisCommands.value + o.disconnect.redisCommands.value) +
    subscribes * o.subscribe.redisCommands.value +
    pings * o.ping.redisCommands.value +
    ackFrames * o.ack.redisCommands.value +
    acked * o.ackedPublish.redisCommands.value +
    (acked - fired) * o.ackTimeoutCheck.redisCommands.value +
    fired * o.ackTimeoutFire.redisCommands.value;
  const ecpus = redisCommands * inputs.ecpuPerCommand.value + historyKb;

  const minutesPer1M = 1e6 / deliveries;
  const k = minutesPer1M;
  const requests = lambda.reduce((x, l) => x + l.requests, 0);
  const gbs = lambda.reduce((x, l) => x + l.gbSeconds, 0);
  const sizesBasis = basisOf(
    inputs.frameOverheadBytes,
    inputs.largePartBytes,
    inputs.deltaBytesRatio,
  );
  const lines: CostLine[] = [
    {
      item: 'API Gateway messages out (posts, 32 KB units)',
      quantity: k * unitsOut,
      unit: 'messages',
      usd: usd(PRICES.apigwMessage, k * unitsOut),
      price: 'apigwMessage',
      basis: `workload sizes; frame bytes ${sizesBasis}`,
    },
    {
      item: 'API Gateway replies (pong, subscribed, ack replies, dismiss frames)',
      quantity: k * (replies + dismissUnits),
      unit: 'messages',
      usd: usd(PRICES.apigwMessage, k * (replies + dismissUnits)),
      price: 'apigwMessage',
      basis: basisOf(inputs.ackReplyFrames, inputs.ackedReplyBytes, inputs.dismissFrameBytes),
    },
    {
      item: 'API Gateway messages in (client frames: $connect, subscribe, ping, ack)',
      quantity: k * inMessages,
      unit: 'messages',
      usd: usd(PRICES.apigwMessage, k * inMessages),
      price: 'apigwMessage',
      basis: basisOf(inputs.connectBilledMessages, inputs.acksPerFrame, inputs.ackFrameBytes),
    },
    {
      item: 'Data transfer out to the internet (frames posted)',
      quantity: (k * bytesOut * inputs.dataTransferBilled.value) / 1024 ** 3,
      unit: 'GB',
      usd: usd(
        PRICES.dataTransferOutGb,
        (k * bytesOut * inputs.dataTransferBilled.value) / 1024 ** 3,
      ),
      price: 'dataTransferOutGb',
      basis: basisOf(inputs.dataTransferBilled, inputs.frameOverheadBytes),
    },
    {
      item: 'API Gateway connection minutes',
      quantity: k * w.connections,
      unit: 'connection minutes',
      usd: usd(PRICES.apigwConnectionMinute, k * w.connections),
      price: 'apigwConnectionMinute',
      basis: 'workload',
    },
    {
      item: 'Lambda requests',
      quantity: k * requests,
      unit: 'requests',
      usd: usd(PRICES.lambdaRequest, k * requests),
      price: 'lambdaRequest',
      basis: 'workload',
    },
    {
      item: `Lambda compute (${inputs.architecture}, ${inputs.lambdaMemoryMb.value} MB)`,
      quantity: k * gbs,
      unit: 'GB-s',
      usd: usd(gbSecondPrice, k * gbs),
      price: inputs.architecture === 'arm64' ? 'lambdaGbSecondArm' : 'lambdaGbSecondX86',
      basis: basisOf(o.publishFixed.ms, o.perRecipient.ms, inputs.postLatencyMs, inputs.cpuStretch),
    },
    {
      item: 'Redis (ElastiCache Serverless ECPUs: commands + stored KB)',
      quantity: k * ecpus,
      unit: 'ECPUs',
      usd: usd(PRICES.redisEcpu, k * ecpus),
      price: 'redisEcpu',
      basis: basisOf(
        o.publishFixed.redisCommands,
        o.ping.redisCommands,
        o.ack.redisCommands,
        inputs.ecpuPerCommand,
      ),
    },
    {
      item: 'SQS requests (ack timeouts, DelaySeconds)',
      quantity: k * acked * sqsRequestsPerAcked(inputs, batch),
      unit: 'requests',
      usd: usd(PRICES.sqsRequest, k * acked * sqsRequestsPerAcked(inputs, batch)),
      price: 'sqsRequest',
      basis: basisOf(inputs.sqsSendsPerAcked, inputs.sqsPollRequestsPerBatch),
    },
    {
      item: 'SNS mobile push (timeouts that fire)',
      quantity: k * pushes,
      unit: 'pushes',
      usd: sumNullable(usd(PRICES.snsMobilePush, k * pushes), usd(PRICES.snsPublish, k * pushes)),
      price: 'snsMobilePush + snsPublish',
      basis: basisOf(inputs.pushDevicesPerUser),
    },
  ];
  const totalPer1M = lines.reduce((x, l) => x + (l.usd ?? 0), 0);

  const monthMinutes = w.monthDays * MINUTES_PER_DAY;
  const stored = storedGb(w, inputs);
  const hours = 24 * w.monthDays;
  const monthly = {
    deliveries: deliveries * monthMinutes,
    usage: (totalPer1M * deliveries * monthMinutes) / 1e6,
    fixed: stored.gb * hours * (PRICES.redisStorageGbHour.usd ?? 0),
    total: 0,
    fixedHow: `ElastiCache Serverless storage: ${stored.how}, ${stored.gb.toFixed(2)} GB × ${hours} h × $${PRICES.redisStorageGbHour.usd}/GB-hour (1 GB minimum); the 1-minute schedules of presenceEvents and events not counted (< $0.01)`,
  };
  monthly.total = monthly.usage + monthly.fixed;

  return {
    workload: w,
    deliveriesPerMinute: deliveries,
    minutesPer1M,
    lines,
    lambda: lambda.map((l) => ({ ...l, requests: l.requests * k, gbSeconds: l.gbSeconds * k })),
    redisCommands: redisCommands * k,
    posts: (posts + dismiss) * k,
    totalPer1M,
    monthly,
    competitors: competitors(w, {
      deliveries,
      publishes: pub,
      connects,
      subscribes,
      minutesPer1M,
      monthMinutes,
      transferGb: bytesOutFull / 1024 ** 3,
    }),
    acked: ackedCost(w, inputs, devices),
    inputs,
    assumed: assumedFigures(inputs),
  };
}

function sumNullable(...xs: (number | null)[]): number | null {
  return xs.some((x) => x === null) ? null : xs.reduce<number>((a, x) => a + (x ?? 0), 0);
}

function assumedFigures(inputs: ModelInputs): string[] {
  const out: string[] = [];
  for (const [name, op] of Object.entries(inputs.ops))
    for (const [field, figure] of Object.entries(op))
      if (figure.source === 'assumed')
        out.push(`${name}.${field} = ${figure.value} (${figure.note})`);
  for (const [name, value] of Object.entries(inputs))
    if (name !== 'ops' && typeof value === 'object' && value.source === 'assumed')
      out.push(`${name} = ${value.value} (${value.note})`);
  return out;
}

/** The messages each competitor would count for the same workload, per minute. */
function competitors(
  w: Workload,
  m: {
    deliveries: number;
    publishes: number;
    connects: number;
    subscribes: number;
    minutesPer1M: number;
    monthMinutes: number;
    /** GB out a minute, whole messages (AppSync bills transfer at EC2 rates and has no deltas). */
    transferGb: number;
  },
): CompetitorLine[] {
  const k = m.minutesPer1M;
  const monthFactor = m.monthMinutes / k; // (1 M deliveries) units per month
  const over = (limit: number) =>
    w.sizes.filter((s) => s.bytes > limit).reduce((x, s) => x + s.share, 0);
  const overNote = (name: string, limit: number) => {
    const share = over(limit);
    return share > 0
      ? [
          `${(share * 100).toFixed(1)} % of publishes are over ${name}'s ${Math.round(limit / 1024)} KiB limit and cannot be sent there as one message; counted as if they could`,
        ]
      : [];
  };
  // Pusher and Ably count the publish and each delivery as a message.
  const messages = m.publishes + m.deliveries;
  const perDay = messages * MINUTES_PER_DAY;
  const plan = PUSHER_PLANS.find(
    (p) => p.messagesPerDay >= perDay && p.connections >= w.connections,
  );
  const ablyPer1M = (PRICES.ablyMessage.usd ?? 0) * messages * k;
  const appsyncOps = m.publishes + m.deliveries + m.connects + m.subscribes;
  const appsyncPer1M =
    (PRICES.appsyncEventOperation.usd ?? 0) * appsyncOps * k +
    (PRICES.appsyncConnectionMinute.usd ?? 0) * w.connections * k +
    (PRICES.dataTransferOutGb.usd ?? 0) * m.transferGb * k;
  return [
    {
      name: 'Pusher Channels',
      per1M: plan ? plan.usdMonth / monthFactor : null,
      monthly: plan ? plan.usdMonth : null,
      how: plan
        ? `plan ${plan.name} ($${plan.usdMonth}/month: ${plan.messagesPerDay.toLocaleString('en-US')} messages/day, ${plan.connections.toLocaleString('en-US')} connections) for ${Math.round(perDay).toLocaleString('en-US')} messages/day (publish + each delivery) and ${w.connections.toLocaleString('en-US')} connections; per 1 M deliveries = the plan ÷ the month's deliveries`
        : `no listed plan covers ${Math.round(perDay).toLocaleString('en-US')} messages/day and ${w.connections.toLocaleString('en-US')} connections (Enterprise: not quoted)`,
      caveats: [
        ...overNote('Pusher', MAX_MESSAGE_BYTES.pusher),
        'plan prices from a secondary source (PRICES.pusherPlans); over a plan Pusher refuses messages rather than bills more',
      ],
    },
    {
      name: 'Ably (Standard)',
      per1M: ablyPer1M,
      monthly: ablyPer1M * monthFactor + (PRICES.ablyStandardMonth.usd ?? 0),
      how: `${(messages * k).toLocaleString('en-US', { maximumFractionDigits: 0 })} messages per 1 M deliveries (publish + each delivery) × $2.50/M; monthly adds the $29 Standard package`,
      caveats: [
        ...overNote('Ably', MAX_MESSAGE_BYTES.ably),
        'connection minutes and channel minutes left out (prices not found): a lower bound',
        ...(w.connections > 10_000 ? ['over the Standard package’s 10,000 connections'] : []),
      ],
    },
    {
      name: 'AppSync Events',
      per1M: appsyncPer1M,
      monthly: appsyncPer1M * monthFactor,
      how: `${(appsyncOps * k).toLocaleString('en-US', { maximumFractionDigits: 0 })} operations per 1 M deliveries (publish, each delivery, each connect and subscribe) × $1.00/M + ${(w.connections * k).toLocaleString('en-US', { maximumFractionDigits: 0 })} connection minutes × $0.08/M + ${(m.transferGb * k).toLocaleString('en-US', { maximumFractionDigits: 1 })} GB out × $0.09 (EC2 data transfer rates; whole messages, no deltas)`,
      caveats: [
        ...overNote('AppSync Events', MAX_MESSAGE_BYTES.appsync),
        'one operation per message whatever its size (size metering not found); connection minutes priced as AppSync GraphQL’s (Events line not found)',
      ],
    },
  ];
}

/**
 * What Redis holds: each user's and each topic's history (up to HISTORY_SIZE
 * entries within HISTORY_TTL_SECONDS, at the workload's average message size
 * and rate) and each connection's record, times Redis' memory overhead.
 */
export function storedGb(w: Workload, inputs: ModelInputs): { gb: number; how: string } {
  const ttlMinutes = inputs.historyTtlSeconds.value / 60;
  const avg = w.sizes.reduce((x, s) => x + s.bytes * s.share, 0) + inputs.frameOverheadBytes.value;
  const share = (kind: 'user' | 'topic') =>
    w.audiences.filter((a) => a.kind === kind).reduce((x, a) => x + a.share, 0);
  const kept = (streams: number, perMinute: number) =>
    streams * Math.min(inputs.historySize.value, (perMinute * ttlMinutes) / streams);
  const entries =
    kept(w.users, w.publishesPerMinute * share('user')) +
    kept(w.topics, w.publishesPerMinute * share('topic'));
  const bytes =
    (entries * avg + w.connections * inputs.connectionRecordBytes.value) *
    inputs.redisMemoryOverhead.value;
  const gb = Math.max(1, bytes / 1024 ** 3);
  return {
    gb,
    how: `${Math.round(entries).toLocaleString('en-US')} history entries of ${Math.round(avg).toLocaleString('en-US')} B on average and ${w.connections.toLocaleString('en-US')} connections, × ${inputs.redisMemoryOverhead.value}`,
  };
}

/**
 * What 1 M acknowledged messages add over plain publishes to the same users
 * (issue 18): the ack frames back (and $default for them), the ack's Redis
 * work, the timeout's scheduling (SQS DelaySeconds) and handler, the dismiss
 * frames to the other devices, and the push when the timeout fires.
 */
export function ackedCost(w: Workload, inputs: ModelInputs, devices: number): CostReport['acked'] {
  const n = 1e6;
  const o = inputs.ops;
  const gb = inputs.lambdaMemoryMb.value / 1024;
  const gbPrice =
    inputs.architecture === 'arm64' ? PRICES.lambdaGbSecondArm : PRICES.lambdaGbSecondX86;
  const d = Math.max(1, devices);
  const fired = n * w.ackTimeoutShare;
  const ackFrames = ((n - fired) * d) / inputs.acksPerFrame.value;
  const dismiss = (n - fired) * (d - 1);
  const msgs =
    ackFrames *
      (billedUnits(inputs.ackFrameBytes.value) +
        inputs.ackReplyFrames.value * billedUnits(inputs.ackedReplyBytes.value)) +
    dismiss * billedUnits(inputs.dismissFrameBytes.value);
  const ackMs = billedMs(o.ack.ms.value, o.ack.roundTrips.value * inputs.redisRttMs.value, inputs);
  // The timeouts come at the workload's rate of acknowledged publishes.
  const batch = ackTimeoutBatchSize(inputs, w.publishesPerMinute * w.ackedShare);
  const timeoutInvocations = n / batch;
  const timeoutMs = ackTimeoutInvocationMs(inputs, batch, w.ackTimeoutShare);
  const gbs =
    ((ackFrames * ackMs + n * ackedPublishMs(inputs)) / 1000) * gb +
    ((timeoutInvocations * timeoutMs) / 1000) * (inputs.ackTimeoutMemoryMb.value / 1024);
  const redis =
    (ackFrames * o.ack.redisCommands.value +
      n * o.ackedPublish.redisCommands.value +
      (n - fired) * o.ackTimeoutCheck.redisCommands.value +
      fired * o.ackTimeoutFire.redisCommands.value) *
    inputs.ecpuPerCommand.value;
  const sqs = n * sqsRequestsPerAcked(inputs, batch);
  const pushes = fired * inputs.pushDevicesPerUser.value;
  const lines: CostLine[] = [
    {
      item: `API Gateway: ack frames in from ${d} devices (for the acked ${(100 - w.ackTimeoutShare * 100).toFixed(0)} %), their replies, dismiss frames to the other devices`,
      quantity: msgs,
      unit: 'messages',
      usd: usd(PRICES.apigwMessage, msgs),
      price: 'apigwMessage',
      basis: basisOf(
        inputs.acksPerFrame,
        inputs.ackReplyFrames,
        inputs.ackFrameBytes,
        inputs.ackedReplyBytes,
        inputs.dismissFrameBytes,
      ),
    },
    {
      item: `Lambda requests (ack per ack frame, ack timeout per batch of ${round2(batch)})`,
      quantity: ackFrames + timeoutInvocations,
      unit: 'requests',
      usd: usd(PRICES.lambdaRequest, ackFrames + timeoutInvocations),
      price: 'lambdaRequest',
      basis: basisOf(inputs.ackTimeoutBatch, inputs.ackTimeoutBatchWindowSeconds),
    },
    {
      item: 'Lambda compute (ack, the publish’s extra, ack timeout)',
      quantity: gbs,
      unit: 'GB-s',
      usd: usd(gbPrice, gbs),
      price: inputs.architecture === 'arm64' ? 'lambdaGbSecondArm' : 'lambdaGbSecondX86',
      basis: basisOf(
        o.ack.ms,
        o.ackedPublish.ms,
        o.ackTimeoutCheck.ms,
        o.ackTimeoutFire.ms,
        inputs.ackTimeoutMs,
        inputs.postLatencyMs,
      ),
    },
    {
      item: 'Redis ECPUs (the publish’s state, ack, timeout)',
      quantity: redis,
      unit: 'ECPUs',
      usd: usd(PRICES.redisEcpu, redis),
      price: 'redisEcpu',
      basis: basisOf(
        o.ack.redisCommands,
        o.ackedPublish.redisCommands,
        o.ackTimeoutCheck.redisCommands,
        o.ackTimeoutFire.redisCommands,
        inputs.ecpuPerCommand,
      ),
    },
    {
      item: 'SQS requests (SendMessage with DelaySeconds; the event source mapping’s receive and delete per batch)',
      quantity: sqs,
      unit: 'requests',
      usd: usd(PRICES.sqsRequest, sqs),
      price: 'sqsRequest',
      basis: basisOf(inputs.sqsSendsPerAcked, inputs.sqsPollRequestsPerBatch),
    },
    {
      item: `SNS mobile push when the timeout fires (${(w.ackTimeoutShare * 100).toFixed(0)} %)`,
      quantity: pushes,
      unit: 'pushes',
      usd: sumNullable(usd(PRICES.snsMobilePush, pushes), usd(PRICES.snsPublish, pushes)),
      price: 'snsMobilePush + snsPublish',
      basis: basisOf(inputs.pushDevicesPerUser),
    },
  ];
  return {
    lines,
    totalPer1M: lines.reduce((x, l) => x + (l.usd ?? 0), 0),
    note: `over plain publishes to users with ${d.toFixed(1)} devices each (the delivery posts themselves are in the plain cost)`,
  };
}
