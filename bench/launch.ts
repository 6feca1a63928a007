/**
 * `npm run bench [-- --quick]`: bundles the benchmark with esbuild (the lib
 * imports `.lua` files as text, which tsx cannot load) into
 * node_modules/.cache/pushwire-bench, then runs it with plain Node.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

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
  'profile',
  'paced-run',
] as const;

/**
 * `import.meta.url` is empty in a CommonJS bundle, and test/helpers/contract.ts
 * (reached through bench/offline.ts) resolves the docs from it: every bench
 * run stopped at load with ERR_INVALID_ARG_TYPE. Each source file that reads
 * it gets its own file URL instead, as it would unbundled.
 */
const importMetaUrl: Plugin = {
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      return {
        contents: source.replaceAll(
          'import.meta.url',
          JSON.stringify(pathToFileURL(args.path).href),
        ),
        loader: 'ts',
      };
    });
  },
};

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
  plugins: [importMetaUrl],
  // ws' optional native add-ons: absent, and ws works without them.
  external: ['bufferutil', 'utf-8-validate', 'esbuild'],
  sourcemap: 'inline',
  logLevel: 'warning',
});

// `--profile [--cpu-prof] [--n=… --runs=…]`: fan-out alone (bench/profile.ts),
// optionally under Node's CPU profiler (profiles land in bench/profiles/).
const args = process.argv.slice(2);
// `--paced [--members=… --rate=… …]`: fan-out at the account's limit (bench/paced-run.ts).
const profile = args.includes('--profile');
// `--only=paced` is the same as `--paced` (the section is not part of a full run: it takes minutes).
const paced = args.includes('--paced') || args.includes('--only=paced');
const cpuProf = args.includes('--cpu-prof');
const rest = args.filter(
  (a) => a !== '--profile' && a !== '--cpu-prof' && a !== '--paced' && a !== '--only=paced',
);
const child = spawn(
  process.execPath,
  [
    '--enable-source-maps',
    ...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench', 'profiles')}`] : []),
    join(out, profile ? 'profile.cjs' : paced ? 'paced-run.cjs' : 'run.cjs'),
    ...rest,
  ],
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
