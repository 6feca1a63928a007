// esbuild plugins for the Lambda bundles: serverless.yml (custom.esbuild.plugins)
// and bench/bundles.ts build with these, so what is measured is what ships.
// CommonJS because serverless-esbuild require()s this file.
const { readFile } = require('node:fs/promises');
const { join } = require('node:path');

/**
 * Lua scripts ship as text without their comment headers, indentation and
 * the spaces around punctuation: the headers (what each KEYS/ARGV is) are for
 * readers of lib/registry/scripts, and they are two thirds of the scripts'
 * bytes. Only whole comment lines go; a `--` inside a line is left alone, so
 * no string literal can be cut. Spaces go only outside string literals, and
 * only beside `, = < > ~ + * / ( ) { } [ ]` (never `-` or `.`, which spaces
 * may keep from forming a comment or a malformed number); line breaks stay.
 * Every script runs through this in the end-to-end and sandbox tests.
 */
function minifyLua(source) {
  return source
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('--'))
    .map((line) =>
      line
        .split(/('(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")/)
        .map((part, i) =>
          i % 2 === 1 ? part : part.replace(/[ \t]*([,=<>~+*/(){}[\]])[ \t]*/g, '$1'),
        )
        .join(''),
    )
    .join('\n');
}

const luaWithoutComments = {
  name: 'lua-without-comments',
  setup(build) {
    build.onLoad({ filter: /\.lua$/ }, async ({ path }) => {
      const contents = minifyLua(await readFile(path, 'utf8'));
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
 * Parts of ioredis that only options we never set reach, each replaced by a
 * stand-in (build/ioredis-*.cjs) in the bundles, ~19 KB in all:
 * - Redis Cloud's CA certificates, for `tls: { profile }` (rediss:// on
 *   ElastiCache chains to public CAs): an empty profile table;
 * - Sentinel (`sentinels`): ElastiCache and MemoryDB are standalone or
 *   cluster endpoints; the stand-in throws if ever constructed;
 * - sharded Pub/Sub subscriber groups (`shardedSubscribers`): we use no
 *   Pub/Sub; the stand-in throws if ever constructed;
 * - scan streams (`scanStream`, `sscanStream`, ...): lib/registry walks sets
 *   with SSCAN and its own cursor; the stand-in throws if ever constructed.
 */
const ioredisStandIns = {
  '/constants/TLSProfiles': 'ioredis-tls-profiles.cjs',
  './connectors/SentinelConnector': 'ioredis-no-sentinel.cjs',
  './SentinelConnector': 'ioredis-no-sentinel.cjs',
  './ClusterSubscriberGroup': 'ioredis-no-sharded-subscribers.cjs',
  './ScanStream': 'ioredis-no-scan-stream.cjs',
};
const ioredisOptionalParts = {
  name: 'ioredis-optional-parts',
  setup(build) {
    build.onResolve(
      {
        filter:
          /(\/constants\/TLSProfiles|SentinelConnector|\/ClusterSubscriberGroup|\/ScanStream)$/,
      },
      ({ path, importer }) => {
        if (!importer.includes(join('node_modules', 'ioredis'))) return undefined;
        const match = Object.keys(ioredisStandIns).find((suffix) => path.endsWith(suffix));
        return match ? { path: join(__dirname, ioredisStandIns[match]) } : undefined;
      },
    );
  },
};

module.exports = [luaWithoutComments, debugOff, ioredisOptionalParts];
module.exports.minifyLua = minifyLua;
