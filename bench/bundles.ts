import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { median, now, root, round } from './common.js';

/** The plugins serverless.yml builds with (custom.esbuild.plugins). */
const esbuildPlugins = createRequire(import.meta.url)('../build/esbuild-plugins.cjs') as Plugin[];

export interface BundleRow {
  bytes: number;
  /** Median time to start Node and require the bundle, ms. */
  init_ms: number;
  /** The same for an empty handler (the floor of any cold start). */
  empty_init_ms: number;
  /** Target size (1 KB = 1,000 bytes), when the issue sets one. */
  limit_bytes: number | null;
}

/**
 * Targets of issues 4 and 12 (1 KB = 1,000 bytes). Every function now reads
 * its secrets at cold start with a signed SSM call and `default` verifies
 * tokens for the `auth` refresh, which had taken connect to 253 KB and
 * default to 260 KB; the build plugins (build/esbuild-plugins.cjs: Lua
 * without comments, ioredis's `debug` off and its TLS profile certificates
 * dropped) bring them back to 237 KB and 247 KB.
 */
export const BUNDLE_LIMITS: Record<string, number> = {
  connect: 250_000,
  disconnect: 250_000,
  default: 250_000,
  publish: 700_000,
  deliver: 700_000,
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

/**
 * Builds every function in functions/ as serverless.yml's custom.esbuild
 * does (bundle, minify, no source map, node20, cjs, .lua as text without
 * comments, `debug` off, ESM builds of dependencies first, nothing external) and times loading each
 * against an empty handler. Built outside the project, so a bundle that
 * needed anything from node_modules would fail to load here.
 */
export async function benchBundles(runs: number): Promise<Record<string, BundleRow>> {
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
      plugins: esbuildPlugins,
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
    const rows: Record<string, BundleRow> = {};
    for (const name of names) {
      const file = join(dir, `${name}.cjs`);
      rows[name] = {
        bytes: statSync(file).size,
        init_ms: round(median(times.get(file) ?? []), 1),
        empty_init_ms: emptyMs,
        limit_bytes: BUNDLE_LIMITS[name] ?? null,
      };
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
