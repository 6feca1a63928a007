/**
 * Runs bench/presence-churn-run.ts (posts per minute of presence events,
 * plain and coalesced) as a bundle, as bench/launch.ts runs the others: the
 * registry imports its Lua scripts as text, which only the bundler loads.
 *   npx tsx bench/presence-churn.ts
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'node_modules', '.cache', 'pushwire-bench', 'presence-churn.mjs');
await build({
  absWorkingDir: root,
  entryPoints: ['bench/presence-churn-run.ts'],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  loader: { '.lua': 'text' },
  // ioredis and its kin are CommonJS: left to Node's require.
  packages: 'external',
  logLevel: 'warning',
});
const run = spawnSync(process.execPath, [out], { stdio: 'inherit', cwd: root });
process.exit(run.status ?? 1);
