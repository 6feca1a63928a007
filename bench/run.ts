/**
 * pushwire benchmark (issue 4). Run with `npm run bench` or
 * `npm run bench -- --quick` (bench/launch.ts bundles and starts this).
 * Everything runs on 127.0.0.1: a private redis-server (or REDIS_URL), a
 * fake management API, Socket.IO servers and clients, deliver workers.
 * Writes bench/results.json, prints the table; a full run also refreshes
 * the generated part of BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config.js';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { type RedisServer, startRedisServer } from '../scripts/redis-server.js';
import { measureBatchCost, writeBatchFigures } from './batch.js';
import { benchBigAudience } from './bigaudience.js';
import { benchBundles } from './bundles.js';
import { benchChurn } from './churn.js';
import {
  AWS_ENV,
  JWT_SECRET,
  killAllChildrenNow,
  now,
  PREFIX,
  root,
  round,
  stopAllChildren,
} from './common.js';
import { benchCost, defaultWorkload } from './cost.js';
import { costMarkdown, costText } from './cost-report.js';
import { benchDelta } from './delta.js';
import {
  connectionIds,
  fillTopic,
  measureCpu,
  oursAndFloor,
  publishDeps,
  rate,
  runNaive,
  sampleFrame,
} from './fanout.js';
import { benchLookup } from './lookup.js';
import { type MgmtServer, startMgmtServer } from './mgmt.js';
import { cleanup, client } from './redis.js';
import {
  evaluateTargets,
  type FanoutRow,
  type Machine,
  markdownReport,
  printReport,
  type Results,
} from './report.js';
import { benchSocketIo, createEmitter } from './socketio.js';

const quick = process.argv.includes('--quick');
const fmtN = (n: number) => n.toLocaleString('en-US');
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const enabled = (section: string) => !only || only.includes(section);

const settings = quick
  ? {
      lookup_iterations: 300,
      lookup_sizes: [1, 10, 100],
      fanout_sizes: [1_000, 10_000],
      fanout_runs: 1,
      fanout_sdk_only: false,
      naive_max_posts: 300,
      naive_budget_ms: 1_000,
      socketio_sizes: [200, 500],
      socketio_rounds: 3,
      socketio_connect_budget_ms: 8_000,
      big_members: 6_000,
      deliver_workers: 4,
      large_members: 2_000,
      bundle_runs: 2,
      churn_pairs: 2_000,
      churn_concurrency: 50,
      redis_benchmark_requests: 5_000,
      offline_clients: 100,
      offline_rounds: 2,
      offline_burst: 50,
      cost_publishes: 100,
      /** Sections not yet started when this much time has passed are skipped. */
      budget_s: 45,
      /** Hard stop (everything killed, nothing written). */
      time_limit_s: 300,
    }
  : {
      lookup_iterations: 2_000,
      lookup_sizes: [1, 10, 100],
      fanout_sizes: [1_000, 10_000],
      fanout_runs: 3,
      fanout_sdk_only: true,
      naive_max_posts: 2_000,
      naive_budget_ms: 10_000,
      socketio_sizes: [1_000, 10_000],
      socketio_rounds: 5,
      socketio_connect_budget_ms: 90_000,
      big_members: 100_000,
      deliver_workers: 4,
      large_members: 10_000,
      bundle_runs: 10,
      churn_pairs: 10_000,
      churn_concurrency: 50,
      redis_benchmark_requests: 50_000,
      offline_clients: 1_000,
      offline_rounds: 3,
      // Each frame of a burst is a cold serverless-offline instance (~35 MB
      // each: 200 took the emulator to 7 GB RSS). `--offline-burst=1000` on a
      // machine with ~40 GB free; 200 by default so a run cannot exhaust a
      // shared one.
      offline_burst: 200,
      cost_publishes: 500,
      budget_s: 900,
      time_limit_s: 1_500,
    };

// Overrides of the outside-in sizes, e.g. `--offline-burst=200` on a machine
// without the memory for a thousand serverless-offline instances at once.
for (const key of ['offline_clients', 'offline_burst', 'offline_rounds'] as const) {
  const flag = `--${key.replace('_', '-')}=`;
  const value = process.argv.find((a) => a.startsWith(flag))?.slice(flag.length);
  if (value !== undefined) settings[key] = Number(value);
}

function machine(redisVersion: string): Machine {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc').toString().trim()) || nproc;
  } catch {}
  return {
    nproc,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    redis: redisVersion,
    os: `${process.platform} ${release()}`,
    loadavg: [round(loadavg()[0] ?? 0, 2), 0],
  };
}

async function main(): Promise<void> {
  const started = now();
  // The SDK clients (ours, naive, the Lambda invoker) sign with these; nothing checks them.
  Object.assign(process.env, AWS_ENV);
  let redisServer: RedisServer | null = null;
  let redisUrl = process.env['REDIS_URL'] ?? '';
  if (!redisUrl) {
    redisServer = await startRedisServer();
    redisUrl = redisServer.url;
    const spawned = redisServer.process;
    process.on('exit', () => spawned.kill('SIGKILL'));
  }
  const privateRedis = redisServer !== null;
  const redis = client(redisUrl);
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  await cleanup(redis);
  let mgmt: MgmtServer | null = null;

  const config = loadConfig({ REDIS_URL: redisUrl, JWT_SECRET, REDIS_PREFIX: PREFIX, ...AWS_ENV });
  const results: Results = {
    mode: quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    duration_s: 0,
    machine: machine(redisVersion),
    settings: {
      ...settings,
      redis: privateRedis ? 'private redis-server on a free loopback port' : 'REDIS_URL',
      fanout_concurrency: config.fanout.concurrency,
      fanout_chunk: config.fanout.chunk,
      fanout_parallel_chunks: config.fanout.parallelChunks,
      payload_frame_bytes: sampleFrame('fan-10000').length,
      // provider.memorySize, what the cost table bills Lambda at.
      lambda_memory_mb: Number(
        /^\s+memorySize:\s*(\d+)/m.exec(
          readFileSync(join(root(), 'serverless.yml'), 'utf8'),
        )?.[1] ?? 1024,
      ),
    },
    lookup: [],
    fanout: [],
    big_audience: null,
    large: null,
    offline: null,
    cpu: null,
    bundles: {},
    churn: null,
    cost: null,
    batch: null,
    delta: null,
    targets: [],
    errors: {},
    notes: [],
  };
  const section = async (name: string, task: () => Promise<void>) => {
    if (!enabled(name)) return;
    const t0 = now();
    if ((t0 - started) / 1000 > settings.budget_s) {
      results.errors[name] = `skipped: the run had used its ${settings.budget_s} s budget`;
      console.error(`  ${name} skipped (time budget)`);
      return;
    }
    console.log(`[${round((t0 - started) / 1000, 1)} s] ${name}…`);
    try {
      await task();
    } catch (error) {
      results.errors[name] = error instanceof Error ? error.message : String(error);
      console.error(`  ${name} failed: ${results.errors[name]}`);
    }
    await cleanup(redis).catch(() => undefined);
  };

  try {
    await section('bundles', async () => {
      results.bundles = await benchBundles(settings.bundle_runs, !quick);
    });

    mgmt = await startMgmtServer();
    const endpoint = mgmt.endpoint;

    await section('lookup', async () => {
      results.lookup = await benchLookup({
        redisUrl,
        privateRedis,
        endpoint,
        iterations: settings.lookup_iterations,
        sizes: settings.lookup_sizes,
      });
    });

    await section('churn', async () => {
      results.churn = await benchChurn({
        redisUrl,
        privateRedis,
        pairs: settings.churn_pairs,
        concurrency: settings.churn_concurrency,
        redisBenchmarkRequests: settings.redis_benchmark_requests,
      });
    });

    // Batch publish (issue 17): posts and billed 32 KB units per 1 M deliveries, one by one vs batched.
    await section('batch', async () => {
      const server = mgmt as MgmtServer;
      const deps = publishDeps(redis, config);
      await server.reset();
      results.batch = await measureBatchCost({
        deps: { ...deps, registry: deps.registry as RedisRegistry },
        endpoint: server.endpoint,
        onConnections: (ids) => server.register(ids),
        calls: quick ? 10 : 50,
      });
      // The management API stand-in saw every post the counting gateway made.
      const seen = await server.stats();
      const made = results.batch.reduce((s, r) => s + r.plain.posts + r.batched.posts, 0);
      if (seen.delivered !== made || seen.gone > 0)
        throw new Error(
          `the gateway counted ${made} posts, the management API saw ${seen.delivered} (${seen.gone} gone)`,
        );
      writeBatchFigures(results.batch, results.date);
      for (const r of results.batch) {
        console.log(
          `  ${r.workload}: ${fmtN(r.deliveries)} deliveries; per 1 M: ${fmtN(r.plain.posts_per_million)} posts / ${fmtN(r.plain.units_per_million)} units one by one, ${fmtN(r.batched.posts_per_million)} / ${fmtN(r.batched.units_per_million)} batched (×${r.posts_ratio} posts, ×${r.units_ratio} units)`,
        );
      }
    });

    await section('fanout', async () => {
      const server = mgmt as MgmtServer;
      const deps = publishDeps(redis, config);
      const registry = deps.registry as RedisRegistry;
      const warm = connectionIds(quick ? 200 : 1_000, 'w');
      await fillTopic(redis, registry, 'warm', warm, endpoint);
      await server.register(warm);
      await oursAndFloor({
        deps,
        mgmt: server,
        topic: 'warm',
        ids: warm,
        runs: 2,
        concurrency: config.fanout.concurrency,
        sdkOnly: false,
        tag: 'warm',
      });
      for (const n of settings.fanout_sizes) {
        const topic = `fan-${n}`;
        const ids = connectionIds(n, 'f');
        const loadStart = round(loadavg()[0] ?? 0, 2);
        await fillTopic(redis, registry, topic, ids, endpoint);
        await server.register(ids);
        const measured = await oursAndFloor({
          deps,
          mgmt: server,
          topic,
          ids,
          runs: settings.fanout_runs,
          concurrency: config.fanout.concurrency,
          sdkOnly: settings.fanout_sdk_only && config,
          tag: `fan-${n}-${Date.now()}`,
        });
        const naive = await runNaive(
          redis,
          registry,
          topic,
          sampleFrame(topic),
          Math.min(n, settings.naive_max_posts),
          settings.naive_budget_ms,
        );
        results.fanout.push({
          n,
          ours_per_s: rate(measured.ours),
          floor_per_s: rate(measured.floor),
          naive_per_s: round(naive.per_s),
          socketio_per_s: null,
          sdk_only_per_s: measured.sdk.length > 0 ? rate(measured.sdk) : null,
          naive_sampled: naive.sampled,
          socketio_clients: null,
          runs: {
            ours: measured.ours.map((x) => round(x)),
            floor: measured.floor.map((x) => round(x)),
            sdk_only: measured.sdk.map((x) => round(x)),
            socketio_ms: [],
          },
          loadavg: [loadStart, round(loadavg()[0] ?? 0, 2)],
          notes: [],
        });
        console.log(
          `  N=${n}: ours ${rate(measured.ours)}/s, floor ${rate(measured.floor)}/s, SDK only ${measured.sdk.length > 0 ? rate(measured.sdk) : '—'}/s, naive ${round(naive.per_s)}/s (${naive.sampled} posts)`,
        );
        await redis.unlink(registry.topicAudience(topic).keys.live);
      }
      // CPU time of this process per post (N = 10,000) and per publish (audience 1), for the cost table.
      results.cpu = await measureCpu(redis, registry, server, deps, settings.cost_publishes);
      console.log(
        `  CPU: ${results.cpu.us_per_post} µs per post (N = ${fmtN(results.cpu.n)}), ${results.cpu.us_per_publish} µs per publish to 1`,
      );
      const warnings = (deps.logger as unknown as { warnings: number }).warnings;
      if (warnings > 0) results.notes.push(`fan-out: ${warnings} delivery warnings logged`);
    });

    await section('socketio', async () => {
      const emitter = createEmitter(redis);
      try {
        for (const n of settings.socketio_sizes) {
          const r = await benchSocketIo({
            redisUrl,
            emitter,
            n,
            rounds: settings.socketio_rounds,
            connectBudgetMs: settings.socketio_connect_budget_ms,
            roundTimeoutMs: 30_000,
          });
          console.log(
            `  N=${n}: ${r.n_connected} clients in ${r.connect_s} s, ${r.per_s ?? '—'}/s, runs ${r.runs_ms.join(', ')} ms${r.note ? ` (${r.note})` : ''}`,
          );
          let row: FanoutRow | undefined = results.fanout.find((f) => f.n === n);
          if (!row) {
            row = {
              n,
              ours_per_s: null,
              floor_per_s: null,
              naive_per_s: null,
              socketio_per_s: null,
              sdk_only_per_s: null,
              naive_sampled: null,
              socketio_clients: null,
              runs: { ours: [], floor: [], sdk_only: [], socketio_ms: [] },
              notes: [],
            };
            results.fanout.push(row);
          }
          row.socketio_per_s = r.per_s;
          row.socketio_clients = r.n_connected;
          row.runs.socketio_ms = r.runs_ms;
          if (r.note) row.notes.push(`socket.io: ${r.note}`);
        }
      } finally {
        emitter.close();
      }
      results.fanout.sort((a, b) => a.n - b.n);
    });

    // The cost model (issue 17): measured per-operation figures, then the model
    // on the workload (bench/cost-workload.json or --workload=, flags).
    await section('cost', async () => {
      results.cost = await benchCost({
        redisUrl,
        privateRedis,
        mgmt: mgmt as MgmtServer,
        config,
        runs: quick ? 40 : 200,
      });
      console.log(costText(results.cost));
    });

    await section('offline', async () => {
      // Loaded here: it pulls in the test helpers, whose contract.ts reads
      // import.meta.url at load, empty in this CommonJS bundle (a crash at
      // start for every section otherwise).
      const { benchOffline } = await import('./offline.js');
      results.offline = await benchOffline({
        clients: settings.offline_clients,
        rounds: settings.offline_rounds,
        burst: settings.offline_burst,
        connectConcurrency: 8,
      });
      const o = results.offline;
      console.log(
        `  ${o.clients} clients: publish ${o.publish_per_s}/s, raw POST loop ${o.raw_per_s}/s = ${o.ratio}${o.burst ? `; burst of ${o.burst.frames}: at once ${o.burst.at_once_per_s}/s, batches of 50 ${o.burst.batches_of_50_per_s}/s` : ''}`,
      );
    });

    await section('delta', async () => {
      results.delta = await benchDelta({
        redis,
        config,
        mgmt: mgmt as MgmtServer,
        messages: quick ? 10 : 30,
      });
      const d = results.delta;
      for (const l of d.libraries)
        console.log(
          `  ${l.library}: ${fmtN(l.delta_bytes)} bytes, create ${l.create_ms} ms, apply ${l.apply_ms} ms, client ${fmtN(l.client_gzip_bytes)} B min+gzip`,
        );
      const m = d.measured;
      console.log(
        `  publish() of a ${fmtN(m.document_bytes)}-byte document, ${m.messages} versions: ${fmtN(m.plain_bytes_per_message)} bytes / ${m.plain_units_per_message} units per message whole, ${fmtN(m.delta_bytes_per_message)} bytes / ${m.delta_units_per_message} units as delta; publish ${m.publish_ms_delta_topic} ms (delta topic) vs ${m.publish_ms_plain_topic} ms; pushwire/delta ${fmtN(d.client_delta_module_gzip)} B min+gzip`,
      );
    });

    await section('big_audience', async () => {
      const server = mgmt as MgmtServer;
      await server.clear();
      const registry = publishDeps(redis, config).registry as RedisRegistry;
      results.big_audience = await benchBigAudience({
        redis,
        redisUrl,
        registry,
        mgmt: server,
        members: settings.big_members,
        workers: settings.deliver_workers,
      });
      const b = results.big_audience;
      console.log(
        `  ${b.members} members: ${b.seconds} s to last delivery, peak RSS ${b.peak_rss_mb} MB`,
      );
    });

    // Issue 17: one message of 1 MiB (MAX_PUBLISH_BYTES) to a topic, posted
    // as parts; the chunks carry the data once. `npm run bench -- --only=large`.
    await section('large', async () => {
      const server = mgmt as MgmtServer;
      await server.clear();
      const registry = publishDeps(redis, config).registry as RedisRegistry;
      // JSON with quotes, as messages are: 1 MiB exactly as JSON.
      const row = JSON.stringify({ id: 12345, name: 'a name', tags: ['x', 'y'], ok: true });
      const rows = Array.from({ length: Math.floor((1024 * 1024 - 32) / (row.length + 1)) }, () =>
        JSON.parse(row),
      );
      const pad = 1024 * 1024 - Buffer.byteLength(JSON.stringify({ rows, pad: '' }));
      const data = { rows, pad: 'x'.repeat(pad) };
      results.large = await benchBigAudience({
        redis,
        redisUrl,
        registry,
        mgmt: server,
        members: settings.large_members,
        workers: settings.deliver_workers,
        data,
        // One local process stands in for API Gateway here and takes 13 GB of
        // posts on a shared machine: a post may wait longer than the 5 s
        // default for it, which is then (rightly) a failed, closed connection.
        env: { MANAGEMENT_API_TIMEOUT_MS: '60000' },
      });
      const l = results.large;
      console.log(
        `  ${l.members} members × ${l.data_bytes} bytes: ${l.posts} posts (${l.post_bytes} bytes), ${l.seconds} s to last delivery (publish returned in ${l.publish_seconds} s), peak RSS publish ${l.peak_rss_mb} MB, deliver ${l.deliver_peak_rss_mb} MB`,
      );
    });
  } finally {
    await mgmt?.stop();
    await stopAllChildren();
    await cleanup(redis).catch(() => undefined);
    redis.disconnect();
    await redisServer?.stop();
  }

  results.duration_s = round((now() - started) / 1000, 1);
  results.machine.loadavg[1] = round(loadavg()[0] ?? 0, 2);
  // Only the default workload's figures go into BENCHMARKS.md (variants print only).
  if (results.cost && !quick && defaultWorkload()) updateCostMarkdown(results);
  if (only?.length === 1 && only[0] === 'cost' && !process.argv.includes('--merge')) {
    // The cost section alone: its own file, so results.json keeps the last full run.
    const costOut = join(root(), 'bench', 'cost-results.json');
    writeFileSync(
      costOut,
      `${JSON.stringify({ date: results.date, machine: results.machine, errors: results.errors, cost: results.cost }, null, 2)}\n`,
    );
    console.log(`\nwrote ${costOut}`);
    for (const [section, error] of Object.entries(results.errors))
      console.log(`ERROR in ${section}: ${error}`);
    if (Object.keys(results.errors).length > 0) process.exitCode = 1;
    return;
  }
  const out = join(root(), 'bench', 'results.json');
  // `--only=<sections> --merge` (full mode): rerun some sections of the last
  // full run and keep the rest of it, e.g. one that failed.
  const merge = !quick && only && process.argv.includes('--merge');
  const final = merge
    ? mergeInto(JSON.parse(readFileSync(out, 'utf8')) as Results, results)
    : results;
  final.targets = evaluateTargets(final);
  if (quick)
    final.notes.push('--quick: smaller sizes and fewer runs; see BENCHMARKS.md for a full run');
  writeFileSync(out, `${JSON.stringify(final, null, 2)}\n`);
  printReport(final);
  console.log(`\nwrote ${out}`);
  if (!quick && (!only || merge)) updateMarkdown(final);
  if (Object.keys(results.errors).length > 0) process.exitCode = 1;
}

/** Fields of the results each section writes (socketio shares fan-out rows: not mergeable). */
const SECTION_FIELDS = {
  bundles: ['bundles'],
  lookup: ['lookup'],
  churn: ['churn'],
  fanout: ['fanout', 'cpu'],
  offline: ['offline'],
  big_audience: ['big_audience'],
  large: ['large'],
  cost: ['cost'],
  batch: ['batch'],
  delta: ['delta'],
} as const satisfies Record<string, readonly (keyof Results)[]>;

function mergeInto(previous: Results, rerun: Results): Results {
  const merged: Results = {
    ...previous,
    errors: { ...previous.errors },
    notes: [...previous.notes],
  };
  for (const section of only ?? []) {
    const fields = SECTION_FIELDS[section as keyof typeof SECTION_FIELDS];
    if (!fields) throw new Error(`--merge: section ${section} cannot be merged`);
    for (const field of fields) Object.assign(merged, { [field]: rerun[field] });
    delete merged.errors[section];
    if (rerun.errors[section]) merged.errors[section] = rerun.errors[section];
    merged.notes.push(
      `section ${section} rerun at ${rerun.date} (load average ${rerun.machine.loadavg[0]} at its start) and merged into the run above`,
    );
  }
  return merged;
}

const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';

/** Replaces the generated part of BENCHMARKS.md (between the markers) with this run. */
function updateMarkdown(results: Results): void {
  const file = join(root(), 'BENCHMARKS.md');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return;
  writeFileSync(
    file,
    `${text.slice(0, a + START.length)}\n${markdownReport(results)}\n${text.slice(b)}`,
  );
  console.log(`updated ${file}`);
}

const COST_START = '<!-- bench:cost:start -->';
const COST_END = '<!-- bench:cost:end -->';

/** Replaces the generated part of BENCHMARKS.md's "Cost" section with this run's model. */
function updateCostMarkdown(results: Results): void {
  const file = join(root(), 'BENCHMARKS.md');
  if (!results.cost || !existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(COST_START);
  const b = text.indexOf(COST_END);
  if (a < 0 || b < a) return;
  writeFileSync(
    file,
    `${text.slice(0, a + COST_START.length)}\n${costMarkdown(results.cost, results.date)}\n${text.slice(b)}`,
  );
  console.log(`updated the Cost section of ${file}`);
}

const watchdog = setTimeout(() => {
  console.error(`bench: over its time limit (${settings.time_limit_s} s), stopping`);
  killAllChildrenNow();
  process.exit(2);
}, settings.time_limit_s * 1000);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildrenNow();
    process.exit(130); // 'exit' also stops the private redis-server
  });
}
process.on('exit', killAllChildrenNow);

main().catch((error: unknown) => {
  console.error(error);
  killAllChildrenNow();
  process.exit(1);
});
