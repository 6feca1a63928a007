/**
 * `npm run bench [-- --quick]`: bundles the benchmark with esbuild (the lib
 * imports `.lua` files as text, which tsx cannot load) into
 * node_modules/.cache/pushwire-bench, then runs it with plain Node.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'node_modules', '.cache', 'pushwire-bench');

/** Every process the benchmark starts is one of these bundles. */
const entries = [
  'run',
  'mgmt-server',
  'sio-server',
  'sio-clients',
  'deliver-worker',
  'big-publisher',
] as const;

await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(entries.map((e) => [e, `bench/${e}.ts`])),
  outdir: out,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  loader: { '.lua': 'text' },
  // ws' optional native add-ons: absent, and ws works without them.
  external: ['bufferutil', 'utf-8-validate', 'esbuild'],
  sourcemap: 'inline',
  logLevel: 'warning',
});

const child = spawn(
  process.execPath,
  ['--enable-source-maps', join(out, 'run.cjs'), ...process.argv.slice(2)],
  {
    stdio: 'inherit',
    env: { ...process.env, PUSHWIRE_ROOT: root, PUSHWIRE_BENCH_OUT: out },
  },
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
