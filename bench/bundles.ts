import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { median, now, root, round } from './common.js';

/**
 * The plugins serverless.yml builds with (custom.esbuild.plugins), resolved
 * from the project root: the bench runs as a cjs bundle (bench/launch.ts),
 * where `import.meta.url` is empty.
 */
const esbuildPlugins = (): Plugin[] =>
  createRequire(join(root(), 'package.json'))('./build/esbuild-plugins.cjs') as Plugin[];

export interface BundleRow {
  bytes: number;
  /** Median time to start Node and require the bundle, ms. */
  init_ms: number;
  /** The same for an empty handler (the floor of any cold start). */
  empty_init_ms: number;
  /** Target size (1 KB = 1,000 bytes), when the issue sets one. */
  limit_bytes: number | null;
  /**
   * Instructions executed by the same `node -e "require(bundle)"`, counted by
   * `valgrind --tool=callgrind` (millions), and the empty handler's: the same
   * on a loaded or an idle machine, where wall-clock ratios measure the load.
   */
  instructions_m?: number;
  empty_instructions_m?: number;
}

/**
 * Targets of issues 4 and 12 (1 KB = 1,000 bytes). Every function now reads
 * its secrets at cold start with a signed SSM call and `default` verifies
 * tokens for the `auth` refresh, which had taken connect to 253 KB and
 * default to 260 KB; the build plugins (build/esbuild-plugins.cjs: Lua
 * without comments, ioredis's `debug` off and its TLS profile certificates
 * dropped) bring them back to 237 KB and 247 KB.
 *
 * Issue 10 adds Powertools Metrics to every function (10.5 KB minified of
 * library, 12.3-12.7 KB in all: connects, refused handshakes, replays,
 * internal errors, cold starts), which took default to 259.8 KB; leaving
 * out ioredis's Sentinel connector and sharded Pub/Sub subscriber groups
 * (options we never set) brings it to 248.3 KB, connect to 235.1 KB.
 *
 * Room for issues 17 and 18 (default had reached 248.6 KB): ioredis's command
 * table built at load from one string of names (-9.4 KB), a cluster's Pub/Sub
 * subscriber left out (-3.0 KB), ioredis's debug wrapper off like `debug`
 * (-1.0 KB), jose's error classes imported one by one (-0.7 KB, default and
 * connect): default 234.5 KB, connect 219.6 KB, disconnect 197.3 KB, events
 * 198.5 KB.
 */
export const BUNDLE_LIMITS: Record<string, number> = {
  connect: 250_000,
  disconnect: 250_000,
  default: 250_000,
  // The lifecycle events relay (issue 22): Redis, the signer, PutEvents and
  // metrics, like the WebSocket routes; 211.2 KB when set.
  events: 250_000,
  publish: 700_000,
  deliver: 700_000,
  // Acknowledged messages (issue 18): the `ack` route is `$default`'s code
  // plus the ack script (238.9 KB after the bundle diet); `ackTimeout` leaves room for the
  // push senders (lib/push/: Web Push, SNS), 214.3 KB without them; `status`
  // reads Redis only (211.2 KB).
  ack: 250_000,
  ackTimeout: 700_000,
  status: 250_000,
  // Push devices (issue 18): Redis, the signer, the SNS calls, and web-push
  // with its JWT and ASN.1 code for the `push` action (loaded on first use);
  // 337.6 KB when set.
  devices: 400_000,
};

const EMPTY = 'exports.handler = async () => ({ statusCode: 200 });\n';

/** Time for `node -e "require(file)"` to run to completion, ms. */
function loadTime(file: string): number {
  const t0 = now();
  const run = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], {
    // Nothing the functions need: config is read lazily, on the first invocation.
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 30_000,
  });
  const ms = now() - t0;
  if (run.status !== 0) throw new Error(`loading ${file} failed: ${run.stderr?.toString()}`);
  return ms;
}

/** Instructions (millions) `node -e "require(file)"` executes, or undefined without valgrind. */
function instructions(file: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const child = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--callgrind-out-file=/dev/null',
        process.execPath,
        '-e',
        `require(${JSON.stringify(file)})`,
      ],
      { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on('error', () => resolve(undefined));
    child.on('close', () => {
      const collected = /Collected : (\d+)/.exec(err)?.[1];
      resolve(collected ? round(Number(collected) / 1e6, 1) : undefined);
    });
  });
}

/**
 * Builds every function in functions/ as serverless.yml's custom.esbuild
 * does (bundle, minify, no source map, node20, cjs, .lua as text without
 * comments, `debug` off, ESM builds of dependencies first, nothing external) and times loading each
 * against an empty handler. Built outside the project, so a bundle that
 * needed anything from node_modules would fail to load here.
 */
export async function benchBundles(
  runs: number,
  countInstructions = false,
): Promise<Record<string, BundleRow>> {
  const dir = mkdtempSync(join(tmpdir(), 'pushwire-bench-bundles-'));
  try {
    const names = readdirSync(join(root(), 'functions'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => f.slice(0, -3))
      .sort();
    await build({
      absWorkingDir: root(),
      entryPoints: Object.fromEntries(names.map((n) => [n, `functions/${n}.ts`])),
      outdir: dir,
      outExtension: { '.js': '.cjs' },
      bundle: true,
      minify: true,
      sourcemap: false,
      target: 'node20',
      platform: 'node',
      format: 'cjs',
      loader: { '.lua': 'text' },
      mainFields: ['module', 'main'],
      plugins: esbuildPlugins(),
      logLevel: 'warning',
    });
    const empty = join(dir, 'empty.cjs');
    writeFileSync(empty, EMPTY);
    const files = [empty, ...names.map((n) => join(dir, `${n}.cjs`))];
    if (runs > 2) for (const file of files) loadTime(file); // page cache warm, not counted
    const times = new Map<string, number[]>(files.map((f) => [f, []]));
    // Interleaved, so drift hits every bundle alike.
    for (let r = 0; r < runs; r++) for (const file of files) times.get(file)?.push(loadTime(file));
    const emptyMs = round(median(times.get(empty) ?? []), 1);
    // Two at a time: callgrind runs a Node start in ~10-20 s.
    const counted = new Map<string, number | undefined>();
    if (countInstructions) {
      const queue = [...files];
      await Promise.all(
        [0, 1].map(async () => {
          for (let file = queue.shift(); file; file = queue.shift())
            counted.set(file, await instructions(file));
        }),
      );
    }
    const emptyInstructions = counted.get(empty);
    const rows: Record<string, BundleRow> = {};
    for (const name of names) {
      const file = join(dir, `${name}.cjs`);
      rows[name] = {
        bytes: statSync(file).size,
        init_ms: round(median(times.get(file) ?? []), 1),
        empty_init_ms: emptyMs,
        limit_bytes: BUNDLE_LIMITS[name] ?? null,
      };
      const count = counted.get(file);
      if (count !== undefined && emptyInstructions !== undefined) {
        rows[name].instructions_m = count;
        rows[name].empty_instructions_m = emptyInstructions;
      }
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
