import type { BatchCost } from './batch.js';
import type { BigAudienceResult } from './bigaudience.js';
import type { BundleRow } from './bundles.js';
import type { ChurnResult } from './churn.js';
import type { CostResult } from './cost.js';
import { PRICES as COST_PRICES, PUSHER_PLANS } from './cost-prices.js';
import type { DeltaBench } from './delta.js';
import type { CpuMeasure } from './fanout.js';
import type { LookupRow } from './lookup.js';
import type { OfflineResult } from './offline.js';

export interface FanoutRow {
  n: number;
  ours_per_s: number | null;
  floor_per_s: number | null;
  naive_per_s: number | null;
  socketio_per_s: number | null;
  /** Diagnostic: the floor's loop with each post through AwsGateway (the AWS SDK), no publish. */
  sdk_only_per_s: number | null;
  /** Posts the naive loop actually made (its rate is extrapolated to n from these). */
  naive_sampled: number | null;
  /** Socket.IO clients that were connected (the rate is over these). */
  socketio_clients: number | null;
  runs: { ours: number[]; floor: number[]; sdk_only: number[]; socketio_ms: number[] };
  /** 1-minute load average when this N's runs started and ended (absent in runs before issue 19). */
  loadavg?: [number, number];
  notes: string[];
}

/** Most a floor may vary between repeats (max / min − 1) for a ratio against it to be reported (issue 19). */
export const MAX_FLOOR_SPREAD = 0.2;

export interface FloorCheck {
  /** max / min − 1 over the repeats; null with fewer than two. */
  spread: number | null;
  valid: boolean;
  /** Why not, in words, or the spread when valid. */
  says: string;
}

/**
 * Whether a ratio against this floor means anything. A floor measured beside
 * other work moves with it (issue 19: under load the floor ran slower, so the
 * ratio rose from 57 % to 87 %); a floor that moved more than
 * MAX_FLOOR_SPREAD between repeats says the machine was not steady, and one
 * measured once says nothing about that.
 */
export function checkFloor(runs: readonly number[]): FloorCheck {
  if (runs.length < 2)
    return { spread: null, valid: false, says: 'not valid: floor measured once' };
  const spread = Math.max(...runs) / Math.min(...runs) - 1;
  const valid = spread <= MAX_FLOOR_SPREAD;
  return {
    spread,
    valid,
    says: valid
      ? `floor spread ${pct(spread)}`
      : `not valid: floor varied ${pct(spread)} between repeats (over ${pct(MAX_FLOOR_SPREAD)})`,
  };
}

const loadText = (l: [number, number] | undefined) =>
  l ? `load ${l[0]}–${l[1]}` : 'load not recorded';

export interface Machine {
  nproc: number;
  cpu: string;
  memory_gb: number;
  node: string;
  redis: string;
  os: string;
  /** 1-minute load average at the start and the end of the run (other work on the machine). */
  loadavg: [number, number];
}

export interface Target {
  name: string;
  goal: string;
  measured: string;
  pass: boolean | null;
  margin: string;
}

/**
 * Prices used by table 7: the cost model's price list (bench/cost-prices.ts:
 * each with its source, quoted line and date), in this table's units.
 */
const startup = PUSHER_PLANS.find((p) => p.name === 'Startup');
const perMillion = (p: { usd: number | null }) => (p.usd ?? Number.NaN) * 1e6;
export const PRICES = {
  /** API Gateway WebSocket: per million messages (first billion), counted in 32 KB units. */
  apigw_message_per_m: perMillion(COST_PRICES.apigwMessage),
  apigw_message_unit_bytes: 32 * 1024,
  /** API Gateway WebSocket: per million connection minutes. */
  apigw_connection_minute_per_m: perMillion(COST_PRICES.apigwConnectionMinute),
  /** Lambda arm64: per GB-second and per million requests. */
  lambda_gb_s: COST_PRICES.lambdaGbSecondArm.usd,
  lambda_request_per_m: perMillion(COST_PRICES.lambdaRequest),
  /** Lambda gives one vCPU at 1,769 MB and CPU in proportion to memory. */
  lambda_mb_per_vcpu: 1_769,
  /** Ably: per million messages (published and received each count), Standard package base. */
  ably_message_per_m: perMillion(COST_PRICES.ablyMessage),
  ably_standard_month: COST_PRICES.ablyStandardMonth.usd,
  /** Pusher Channels Startup: $49 a month for up to 1M messages a day and 500 connections. */
  pusher_startup_month: startup?.usdMonth ?? Number.NaN,
  pusher_startup_messages_per_day: startup?.messagesPerDay ?? Number.NaN,
  pusher_startup_connections: startup?.connections ?? Number.NaN,
} as const;

/** Wall time an invocation waits at least (Redis + a post round trip on AWS: 20-50 ms); an assumption. */
export const ASSUMED_WAIT_MS = 30;

export interface CostRow {
  audience: number;
  publishes: number;
  invocations: number;
  apigw_messages: number;
  lambda_requests: number;
  lambda_compute_cpu: number;
  lambda_compute_waiting: number;
  total_low: number;
  total_high: number;
  ably: number;
  pusher: string;
}

/** What 1 M deliveries cost at each audience size, from measured CPU and quoted prices. */
export function costTable(r: Results): CostRow[] {
  const cpu = r.cpu;
  if (!cpu) return [];
  const memoryMb = Number(r.settings['lambda_memory_mb'] ?? 1024);
  const chunk = Number(r.settings['fanout_chunk'] ?? 2000);
  const concurrency = Number(r.settings['fanout_concurrency'] ?? 100);
  const frameBytes = Number(r.settings['payload_frame_bytes'] ?? 200);
  const deliveries = 1_000_000;
  const gbs = (seconds: number) => seconds * (memoryMb / 1024) * PRICES.lambda_gb_s;
  return [1, 100, 10_000].map((audience) => {
    const publishes = deliveries / audience;
    const chunks = audience > chunk ? Math.ceil(audience / chunk) : 0;
    const invocations = publishes * (1 + chunks);
    const units = Math.ceil(frameBytes / PRICES.apigw_message_unit_bytes);
    const apigw = ((deliveries * units) / 1e6) * PRICES.apigw_message_per_m;
    const requests = (invocations / 1e6) * PRICES.lambda_request_per_m;
    // CPU-bound: the CPU seconds measured here, stretched by Lambda's share of a vCPU at this memory.
    const cpuSeconds = (publishes * cpu.us_per_publish + deliveries * cpu.us_per_post) / 1e6;
    const computeCpu = gbs(cpuSeconds / Math.min(1, memoryMb / PRICES.lambda_mb_per_vcpu));
    // Waiting: each invocation waits ASSUMED_WAIT_MS at least, and each post that long with
    // `concurrency` in flight.
    const waitSeconds =
      (invocations * ASSUMED_WAIT_MS + (deliveries * ASSUMED_WAIT_MS) / concurrency) / 1000;
    const computeWaiting = gbs(waitSeconds);
    const messages = deliveries + publishes;
    const days = messages / PRICES.pusher_startup_messages_per_day;
    return {
      audience,
      publishes,
      invocations,
      apigw_messages: apigw,
      lambda_requests: requests,
      lambda_compute_cpu: computeCpu,
      lambda_compute_waiting: computeWaiting,
      total_low: apigw + requests + computeCpu,
      total_high: apigw + requests + Math.max(computeCpu, computeWaiting),
      ably: (messages / 1e6) * PRICES.ably_message_per_m,
      pusher:
        audience > PRICES.pusher_startup_connections
          ? `above Startup (> ${PRICES.pusher_startup_connections} connections): not quoted`
          : `$${PRICES.pusher_startup_month}/month plan; ${fmt(messages)} messages = ${fmt(days, 1)} days of its 1M/day`,
    };
  });
}

export interface Results {
  mode: 'full' | 'quick';
  date: string;
  duration_s: number;
  machine: Machine;
  settings: Record<string, unknown>;
  lookup: LookupRow[];
  fanout: FanoutRow[];
  big_audience: BigAudienceResult | null;
  /** One 1 MiB message to a big topic, as parts (issue 17; `--only=large`). */
  large?: BigAudienceResult | null;
  offline: OfflineResult | null;
  cpu: CpuMeasure | null;
  bundles: Record<string, BundleRow>;
  churn: ChurnResult | null;
  /** The cost model's section (bench/cost.ts); absent in runs before issue 17. */
  cost?: CostResult | null;
  /** Batch publish: posts and billed units, one by one vs batched (bench/batch.ts). */
  batch?: BatchCost[] | null;
  /** Delta topics (bench/delta.ts); absent in runs before issue 17. */
  delta?: DeltaBench | null;
  targets: Target[];
  errors: Record<string, string>;
  notes: string[];
}

const fmt = (n: number | null | undefined, digits = 0): string =>
  n === null || n === undefined || !Number.isFinite(n)
    ? '—'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (x: number) => `${Math.round(x * 100)} %`;

export function evaluateTargets(r: Results): Target[] {
  const targets: Target[] = [];
  if (r.lookup.length > 0) {
    const worst = Math.max(...r.lookup.map((l) => l.round_trips));
    const upTo = Math.max(...r.lookup.map((l) => l.connections));
    targets.push({
      name: 'lookup',
      goal: 'one round trip for a user with up to 100 connections',
      measured: r.lookup.map((l) => `${l.connections}: ${l.round_trips}`).join(', '),
      pass: upTo >= 100 ? worst <= 1 : null,
      margin: worst <= 1 ? 'at most 1 round trip' : `${worst} round trips`,
    });
  }
  const big = r.fanout.find((f) => f.n === 10_000);
  if (big?.ours_per_s && big.floor_per_s) {
    const ratio = big.ours_per_s / big.floor_per_s;
    const floor = checkFloor(big.runs.floor);
    targets.push({
      name: 'fan-out vs floor',
      goal: '≥ 70 % of the floor at N = 10,000',
      measured: floor.valid
        ? `${fmt(big.ours_per_s)}/s vs ${fmt(big.floor_per_s)}/s = ${pct(ratio)} (${floor.says}, ${loadText(big.loadavg)})`
        : `${floor.says} (${loadText(big.loadavg)}): no ratio`,
      pass: floor.valid ? ratio >= 0.7 : null,
      margin: floor.valid
        ? `${ratio >= 0.7 ? '+' : ''}${Math.round((ratio - 0.7) * 100)} points`
        : 'rerun on an idle machine (BENCHMARKS.md, "Rerun")',
    });
  }
  if (big?.ours_per_s && big.naive_per_s) {
    const ratio = big.ours_per_s / big.naive_per_s;
    targets.push({
      name: 'fan-out vs naive',
      goal: '≥ 10× the naive approach at N = 10,000',
      measured: `${fmt(ratio, 1)}×`,
      pass: ratio >= 10,
      margin: `${fmt(ratio / 10, 2)}× the goal`,
    });
  }
  if (r.big_audience) {
    const b = r.big_audience;
    const full = b.members >= 100_000;
    targets.push({
      name: 'big audience',
      goal: '100,000 members delivered, publisher under 256 MB RSS',
      measured: `${fmt(b.delivered)} delivered, peak ${fmt(b.peak_rss_mb, 1)} MB${full ? '' : ` (only ${fmt(b.members)} members: --quick)`}`,
      pass: full ? b.delivered === b.members && b.peak_rss_mb < 256 : null,
      margin: `${fmt(256 - b.peak_rss_mb, 1)} MB ${b.peak_rss_mb < 256 ? 'to spare' : 'over'}`,
    });
  }
  if (r.offline) {
    const o = r.offline;
    targets.push({
      name: 'outside-in publish vs raw',
      goal: `≥ 0.6 of a raw POST loop, ${fmt(1000)} clients on one topic`,
      measured: `${fmt(o.publish_per_s)}/s vs ${fmt(o.raw_per_s)}/s = ${fmt(o.ratio, 2)} (${fmt(o.clients)} clients)`,
      pass: o.clients >= 1000 ? o.ratio >= 0.6 : null,
      margin: `${o.ratio >= 0.6 ? '+' : ''}${fmt(o.ratio - 0.6, 2)}`,
    });
  }
  for (const [name, b] of Object.entries(r.bundles)) {
    if (b.limit_bytes === null) continue;
    targets.push({
      name: `bundle ${name} size`,
      goal: `< ${fmt(b.limit_bytes / 1000)} KB`,
      measured: `${fmt(b.bytes / 1000, 1)} KB`,
      pass: b.bytes < b.limit_bytes,
      margin: `${fmt(Math.abs(b.limit_bytes - b.bytes) / 1000, 1)} KB ${b.bytes < b.limit_bytes ? 'under' : 'over'}`,
    });
  }
  for (const [name, b] of Object.entries(r.bundles)) {
    if (!b.instructions_m || !b.empty_instructions_m) continue;
    const ratio = b.instructions_m / b.empty_instructions_m;
    targets.push({
      name: `bundle ${name} load (instructions)`,
      goal: '< 2× the empty handler, counted by callgrind',
      measured: `${fmt(b.instructions_m, 1)} M vs ${fmt(b.empty_instructions_m, 1)} M = ${fmt(ratio, 2)}×`,
      pass: ratio < 2,
      margin: ratio < 2 ? `${fmt(2 - ratio, 2)}× headroom` : `${fmt(ratio - 2, 2)}× over`,
    });
  }
  for (const [name, b] of Object.entries(r.bundles)) {
    const ratio = b.init_ms / b.empty_init_ms;
    targets.push({
      name: `bundle ${name} load`,
      goal: '< 2× the empty handler',
      measured: `${fmt(b.init_ms, 1)} ms vs ${fmt(b.empty_init_ms, 1)} ms = ${fmt(ratio, 2)}×`,
      pass: ratio < 2,
      margin: ratio < 2 ? `${fmt(2 - ratio, 2)}× headroom` : `${fmt(ratio - 2, 2)}× over`,
    });
  }
  return targets;
}

function table(headers: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const cell = (s: string, i: number) =>
    (align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l'
      ? s.padEnd(widths[i] ?? 0)
      : s.padStart(widths[i] ?? 0);
  return [headers, ...rows].map((row) => `  ${row.map(cell).join('  ')}`).join('\n');
}

function mdTable(headers: string[], rows: string[][]): string {
  return [
    `| ${headers.join(' | ')} |`,
    `|${headers.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

interface Section {
  title: string;
  headers: string[];
  rows: string[][];
  after?: string[];
}

function sections(r: Results): Section[] {
  const out: Section[] = [];
  out.push({
    title: '1. Lookup: resolving one user (median of sequential calls)',
    headers: [
      'connections',
      'round trips',
      'commands',
      'lookupUser ms',
      'p99 ms',
      'publish step ms (round trips)',
      'PING ms',
    ],
    rows: r.lookup.map((l) => [
      fmt(l.connections),
      fmt(l.round_trips),
      fmt(l.commands),
      fmt(l.ours_ms, 3),
      fmt(l.ours_p99_ms, 3),
      `${fmt(l.publish_step_ms, 3)} (${l.publish_step_round_trips})`,
      fmt(l.ping_ms, 3),
    ]),
  });
  const concurrency = r.settings['fanout_concurrency'];
  out.push({
    title: `2. Fan-out: messages/s to N recipients (concurrency ${concurrency} for ours and the floor)`,
    headers: [
      'N',
      'ours',
      'floor',
      'naive',
      'socket.io',
      'ours/floor',
      'ours/naive',
      'ours/socket.io',
      'SDK only',
    ],
    rows: r.fanout.map((f) => [
      fmt(f.n),
      fmt(f.ours_per_s),
      fmt(f.floor_per_s),
      f.naive_per_s === null
        ? '—'
        : `${fmt(f.naive_per_s)}${f.naive_sampled !== null && f.naive_sampled < f.n ? '*' : ''}`,
      f.socketio_per_s === null
        ? '—'
        : `${fmt(f.socketio_per_s)}${f.socketio_clients !== null && f.socketio_clients < f.n ? ` (${fmt(f.socketio_clients)} clients)` : ''}`,
      !(f.ours_per_s && f.floor_per_s)
        ? '—'
        : checkFloor(f.runs.floor).valid
          ? pct(f.ours_per_s / f.floor_per_s)
          : 'not valid',
      f.ours_per_s && f.naive_per_s ? `${fmt(f.ours_per_s / f.naive_per_s, 1)}×` : '—',
      f.ours_per_s && f.socketio_per_s ? `${fmt(f.ours_per_s / f.socketio_per_s, 2)}×` : '—',
      fmt(f.sdk_only_per_s),
    ]),
    after: [
      ...r.fanout
        .filter((f) => f.runs.floor.length > 0)
        .map(
          (f) =>
            `N = ${fmt(f.n)}: floor runs ${f.runs.floor.map((x) => fmt(x)).join(', ')}/s, ${checkFloor(f.runs.floor).says}; ${loadText(f.loadavg)}`,
        ),
      "SDK only: the floor's loop with each post made through AwsGateway (the AWS SDK) and nothing else: what the SDK alone allows",
      ...r.fanout
        .filter((f) => f.naive_sampled !== null && f.naive_sampled < f.n)
        .map(
          (f) =>
            `* naive at N = ${fmt(f.n)}: rate of the first ${fmt(f.naive_sampled)} posts, extrapolated`,
        ),
      ...r.fanout.flatMap((f) => f.notes.map((n) => `N = ${fmt(f.n)}: ${n}`)),
    ],
  });
  if (r.big_audience) {
    const b = r.big_audience;
    out.push({
      title: '3. Big audience: one publish to a topic, chunked to deliver workers',
      headers: [
        'members',
        'to last delivery s',
        'publish returned s',
        'messages/s',
        'chunks',
        'workers',
        'peak RSS MB',
        'RSS before MB',
      ],
      rows: [
        [
          fmt(b.members),
          fmt(b.seconds, 2),
          fmt(b.publish_seconds, 2),
          fmt(b.per_s),
          fmt(b.chunks),
          fmt(b.deliver_workers),
          fmt(b.peak_rss_mb, 1),
          fmt(b.rss_before_mb, 1),
        ],
      ],
    });
  }
  if (r.large) {
    const l = r.large;
    out.push({
      title: '3b. Large message: 1 MiB to one topic, as parts, chunked to deliver workers',
      headers: [
        'members',
        'data bytes',
        'posts',
        'bytes posted',
        'to last delivery s',
        'publish returned s',
        'publish peak RSS MB',
        'deliver peak RSS MB',
      ],
      rows: [
        [
          fmt(l.members),
          fmt(l.data_bytes ?? 0),
          fmt(l.posts ?? 0),
          fmt(l.post_bytes ?? 0),
          fmt(l.seconds, 2),
          fmt(l.publish_seconds, 2),
          fmt(l.peak_rss_mb, 1),
          fmt(l.deliver_peak_rss_mb ?? 0, 1),
        ],
      ],
    });
  }
  out.push({
    title: '4. Cold start: minified bundles; node start + require, median',
    headers: [
      'function',
      'bytes',
      'target',
      'init ms',
      'empty handler ms',
      'ratio',
      'instructions M',
      'empty M',
      'ratio (instructions)',
    ],
    rows: Object.entries(r.bundles).map(([name, b]) => [
      name,
      fmt(b.bytes),
      b.limit_bytes === null ? '—' : `< ${fmt(b.limit_bytes / 1000)} KB`,
      fmt(b.init_ms, 1),
      fmt(b.empty_init_ms, 1),
      `${fmt(b.init_ms / b.empty_init_ms, 2)}×`,
      fmt(b.instructions_m, 1),
      fmt(b.empty_instructions_m, 1),
      b.instructions_m && b.empty_instructions_m
        ? `${fmt(b.instructions_m / b.empty_instructions_m, 2)}×`
        : '—',
    ]),
    after: [
      'instructions: `valgrind --tool=callgrind` counts of the same `node -e "require(bundle)"`, one run each (full runs, when valgrind is installed): independent of other load on the machine, unlike the wall-clock ms',
    ],
  });
  if (r.churn) {
    const c = r.churn;
    out.push({
      title: `5. Churn: connect + disconnect pairs/s (${fmt(c.pairs)} pairs, ${c.concurrency} in flight)`,
      headers: [
        'ours (JWT verified)',
        'ours (no verification)',
        'redis-benchmark mix',
        'round trips/pair',
        'commands/pair',
      ],
      rows: [
        [
          fmt(c.ours_per_s),
          fmt(c.ours_no_verify_per_s),
          fmt(c.redis_benchmark_per_s),
          fmt(c.round_trips_per_pair),
          fmt(c.commands_per_pair, 1),
        ],
      ],
      after: [
        `redis-benchmark (-c ${c.concurrency} -P 1), per command: ${c.redis_benchmark
          .map((b) => `${b.stands_for ?? b.command.split(' ')[0]} ×${b.per_pair} @ ${fmt(b.rps)}/s`)
          .join(', ')}`,
      ],
    });
  }
  if (r.offline) {
    const o = r.offline;
    out.push({
      title: `6. Outside-in through serverless-offline: ${fmt(o.clients)} WebSocket clients on one topic`,
      headers: [
        'clients',
        'publish msg/s',
        'raw POST loop msg/s',
        'publish/raw',
        'publish ms',
        'raw ms',
      ],
      rows: [
        [
          fmt(o.clients),
          fmt(o.publish_per_s),
          fmt(o.raw_per_s),
          fmt(o.ratio, 2),
          o.runs.publish_ms.join(', '),
          o.runs.raw_ms.join(', '),
        ],
      ],
      after: o.burst
        ? [
            `burst of ${fmt(o.burst.frames)} pings: at once ${fmt(o.burst.at_once_per_s)}/s (${fmt(o.burst.at_once_answered)} answered, the last after ${fmt(o.burst.at_once_ms)} ms), in batches of 50 ${fmt(o.burst.batches_of_50_per_s)}/s (${fmt(o.burst.batches_answered)} answered in ${fmt(o.burst.batches_ms)} ms)`,
            `clients connected and subscribed in ${fmt(o.connect_s, 1)} s; publish invocations returned after ${o.runs.returned_ms.join(', ')} ms; a publish to a topic nobody is subscribed to takes ${fmt(o.empty_publish_ms)} ms (invoke through the emulator + fixed work)`,
          ]
        : [],
    });
  }
  const costs = costTable(r);
  if (r.cpu && costs.length > 0) {
    const usd = (x: number) => `$${x < 0.01 ? x.toFixed(4) : x.toFixed(2)}`;
    out.push({
      title: `7. Cost of 1 M deliveries (measured CPU: ${fmt(r.cpu.us_per_post, 1)} µs per post, ${fmt(r.cpu.us_per_publish, 1)} µs per publish; quoted prices)`,
      headers: [
        'audience',
        'publishes',
        'invocations',
        'API GW messages',
        'Lambda requests',
        'Lambda GB-s (CPU)',
        `Lambda GB-s (${ASSUMED_WAIT_MS} ms waits)`,
        'pushwire total',
        'Ably',
        'Pusher',
      ],
      rows: costs.map((c) => [
        fmt(c.audience),
        fmt(c.publishes),
        fmt(c.invocations),
        usd(c.apigw_messages),
        usd(c.lambda_requests),
        usd(c.lambda_compute_cpu),
        usd(c.lambda_compute_waiting),
        `${usd(c.total_low)}–${usd(c.total_high)}`,
        usd(c.ably),
        c.pusher,
      ]),
      after: [
        `measured here: CPU µs per post and per publish (this machine's x86 cores, not Graviton); quoted: every price (BENCHMARKS.md lists the sources)`,
        `not per delivery: API Gateway connection minutes, $${PRICES.apigw_connection_minute_per_m}/M: a client connected all month (43,800 min) costs $${((43_800 * PRICES.apigw_connection_minute_per_m) / 1e6).toFixed(4)}; Ably's $${PRICES.ably_standard_month}/month Standard base and connection minutes are not in its column either`,
      ],
    });
  }
  return out;
}

export function printReport(r: Results): void {
  const m = r.machine;
  console.log(
    `\npushwire benchmark (${r.mode}), ${r.date}: ${m.nproc} × ${m.cpu}, ${m.memory_gb} GB, node ${m.node}, redis ${m.redis}, ${fmt(r.duration_s, 0)} s\n`,
  );
  for (const s of sections(r)) {
    if (s.rows.length === 0) continue;
    console.log(s.title);
    console.log(table(s.headers, s.rows));
    for (const line of s.after ?? []) console.log(`  ${line}`);
    console.log('');
  }
  console.log('Targets');
  console.log(
    table(
      ['', 'target', 'goal', 'measured', 'margin'],
      r.targets.map((t) => [
        t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS',
        t.name,
        t.goal,
        t.measured,
        t.margin,
      ]),
      ['l', 'l', 'l', 'l', 'l'],
    ),
  );
  for (const [section, error] of Object.entries(r.errors))
    console.log(`\nERROR in ${section}: ${error}`);
  for (const note of r.notes) console.log(`note: ${note}`);
}

export function markdownReport(r: Results): string {
  const m = r.machine;
  const lines = [
    `Run of ${r.date} (\`npm run bench\`${r.mode === 'quick' ? ' -- --quick' : ''}, ${fmt(r.duration_s)} s).`,
    `Machine: ${m.nproc} × ${m.cpu} (\`nproc\` = ${m.nproc}), ${m.memory_gb} GB RAM, ${m.os}, Node ${m.node}, Redis ${m.redis}; 1-minute load average ${m.loadavg[0]} at the start, ${m.loadavg[1]} at the end.`,
    '',
  ];
  for (const s of sections(r)) {
    if (s.rows.length === 0) continue;
    lines.push(`### ${s.title}`, '', mdTable(s.headers, s.rows), '');
    for (const a of s.after ?? []) lines.push(`- ${a}`);
    if (s.after?.length) lines.push('');
  }
  lines.push(
    '### Targets',
    '',
    mdTable(
      ['', 'target', 'goal', 'measured', 'margin'],
      r.targets.map((t) => [
        t.pass === null ? 'n/a' : t.pass ? '**PASS**' : '**MISS**',
        t.name,
        t.goal,
        t.measured,
        t.margin,
      ]),
    ),
    '',
  );
  for (const [section, error] of Object.entries(r.errors))
    lines.push(`- error in ${section}: ${error}`);
  for (const note of r.notes) lines.push(`- ${note}`);
  return lines.join('\n');
}
