/**
 * `npm run build:client` (also run by `prepare`, so `npm install` / `npm ci`
 * leave a built client): bundles client/pushwire.ts into one minified ESM file,
 * client/dist/pushwire.js, and writes its type declarations beside it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLIENT_SOURCE = join(root, 'client/pushwire.ts');
export const CLIENT_BUNDLE = join(root, 'client/dist/pushwire.js');
/** `pushwire/delta` (delta topics), a separate import: not part of the core's budget. */
export const DELTA_SOURCE = join(root, 'client/delta.ts');
export const DELTA_BUNDLE = join(root, 'client/dist/delta.js');
/** The optional push registration helper (`pushwire/push`, docs/push.md): its own file. */
export const PUSH_SOURCE = join(root, 'client/push.ts');
export const PUSH_BUNDLE = join(root, 'client/dist/push.js');
/** The budget: 5 KB (5,000 bytes) minified and gzipped. */
export const CLIENT_SIZE_LIMIT = 5_000;

/** The minified bundle, in memory (the core, or `pushwire/delta` with fossil-delta inside). */
export async function bundleClient(source = CLIENT_SOURCE): Promise<string> {
  const result = await build({
    entryPoints: [source],
    bundle: true,
    minify: true,
    format: 'esm',
    // Safari 14, Hermes (React Native), Node 20: no class fields or `#private` left.
    target: 'es2020',
    // Private members end in `_` (see client/pushwire.ts).
    mangleProps: /_$/,
    legalComments: 'none',
    write: false,
  });
  return result.outputFiles[0]?.text ?? '';
}

/** Bytes of the bundle as a browser downloads it: gzip at its highest level, as CDNs serve it. */
export const gzipSize = (code: string): number => gzipSync(code, { level: 9 }).length;

/** Writes the bundle (only when it changed, so concurrent builds never show a torn file). */
export async function writeClientBundle(
  source = CLIENT_SOURCE,
  target = CLIENT_BUNDLE,
): Promise<{ bytes: number; gzip: number }> {
  const code = await bundleClient(source);
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== code) {
    mkdirSync(dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.tmp`;
    writeFileSync(temp, code);
    // rename is atomic: a reader sees the old file or the new one.
    renameSync(temp, target);
  }
  return { bytes: Buffer.byteLength(code), gzip: gzipSize(code) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { bytes, gzip } = await writeClientBundle();
  const delta = await writeClientBundle(DELTA_SOURCE, DELTA_BUNDLE);
  const push = await writeClientBundle(PUSH_SOURCE, PUSH_BUNDLE);
  // Declarations from the same source, checked without DOM or Node types.
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(root, 'client')], {
    stdio: 'inherit',
  });
  console.log(
    `client/dist/pushwire.js: ${bytes} bytes, ${gzip} bytes min+gzip (limit ${CLIENT_SIZE_LIMIT}); pushwire.d.ts beside it`,
  );
  console.log(
    `client/dist/delta.js (pushwire/delta, delta topics): ${delta.bytes} bytes, ${delta.gzip} bytes min+gzip`,
  );
  console.log(
    `client/dist/push.js (pushwire/push): ${push.bytes} bytes, ${push.gzip} bytes min+gzip`,
  );
  if (gzip > CLIENT_SIZE_LIMIT) process.exit(1);
}
