// esbuild plugins for the Lambda bundles: serverless.yml (custom.esbuild.plugins)
// and bench/bundles.ts build with these, so what is measured is what ships.
// CommonJS because serverless-esbuild require()s this file.
const { readFile } = require('node:fs/promises');
const { join } = require('node:path');

/**
 * Lua scripts ship as text without their comment headers and indentation:
 * the headers (what each KEYS/ARGV is) are for readers of lib/registry/scripts,
 * and they are two thirds of the scripts' bytes. Only whole comment lines go;
 * a `--` inside a line is left alone, so no string literal can be cut.
 */
const luaWithoutComments = {
  name: 'lua-without-comments',
  setup(build) {
    build.onLoad({ filter: /\.lua$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      const contents = source
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('--'))
        .join('\n');
      return { contents, loader: 'text' };
    });
  },
};

/**
 * ioredis logs through the `debug` package, which only prints when DEBUG
 * names it; in a function nobody sets DEBUG, so the bundles get a stand-in
 * that is always off (7 KB less in every function).
 */
const debugOff = {
  name: 'debug-off',
  setup(build) {
    build.onResolve({ filter: /^debug$/ }, () => ({ path: join(__dirname, 'debug-off.cjs') }));
  },
};

/**
 * ioredis carries Redis Cloud's CA certificates for its `tls: { profile }`
 * option (8.5 KB); we never name a profile (rediss:// on ElastiCache chains to
 * public CAs), so the bundles get an empty profile table.
 */
const noTlsProfiles = {
  name: 'no-tls-profiles',
  setup(build) {
    build.onResolve({ filter: /\/constants\/TLSProfiles$/ }, ({ importer }) =>
      importer.includes(`${join('node_modules', 'ioredis')}`)
        ? { path: join(__dirname, 'tls-profiles-none.cjs') }
        : undefined,
    );
  },
};

module.exports = [luaWithoutComments, debugOff, noTlsProfiles];
