// esbuild plugins for the Lambda bundles: serverless.yml (custom.esbuild.plugins)
// and bench/bundles.ts build with these, so what is measured is what ships.
// CommonJS because serverless-esbuild require()s this file.
const { readFile } = require('node:fs/promises');
const { dirname, join } = require('node:path');

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
 * that is always off (7 KB less in every function). ioredis's own wrapper
 * around it (utils/debug: shortens long arguments before printing) gets the
 * same stand-in, as it would never print either (0.9 KB less).
 */
const debugOff = {
  name: 'debug-off',
  setup(build) {
    build.onResolve({ filter: /^debug$/ }, () => ({ path: join(__dirname, 'debug-off.cjs') }));
    build.onResolve({ filter: /^\.\/debug$/ }, ({ importer }) =>
      /node_modules[\\/]ioredis[\\/]built[\\/]utils[\\/]index\.js$/.test(importer)
        ? { path: join(__dirname, 'debug-off.cjs') }
        : undefined,
    );
  },
};

/**
 * Parts of ioredis that only options we never set reach, each replaced by a
 * stand-in (build/ioredis-*.cjs) in the bundles, ~22 KB in all:
 * - Redis Cloud's CA certificates, for `tls: { profile }` (rediss:// on
 *   ElastiCache chains to public CAs): an empty profile table;
 * - Sentinel (`sentinels`): ElastiCache and MemoryDB are standalone or
 *   cluster endpoints; the stand-in throws if ever constructed;
 * - sharded Pub/Sub subscriber groups (`shardedSubscribers`): we use no
 *   Pub/Sub; the stand-in throws if ever constructed;
 * - a cluster's Pub/Sub subscriber (ClusterSubscriber, 3.2 KB): every
 *   Cluster makes and starts one, which holds an unconnected client until a
 *   SUBSCRIBE; the stand-in holds none, and a SUBSCRIBE on a cluster fails
 *   with ioredis's "No subscriber for the cluster";
 * - scan streams (`scanStream`, `sscanStream`, ...): lib/registry walks sets
 *   with SSCAN and its own cursor; the stand-in throws if ever constructed.
 */
const ioredisStandIns = {
  '/constants/TLSProfiles': 'ioredis-tls-profiles.cjs',
  './connectors/SentinelConnector': 'ioredis-no-sentinel.cjs',
  './SentinelConnector': 'ioredis-no-sentinel.cjs',
  './ClusterSubscriberGroup': 'ioredis-no-sharded-subscribers.cjs',
  './ClusterSubscriber': 'ioredis-no-cluster-subscriber.cjs',
  './ScanStream': 'ioredis-no-scan-stream.cjs',
};
const ioredisOptionalParts = {
  name: 'ioredis-optional-parts',
  setup(build) {
    build.onResolve(
      {
        filter:
          /(\/constants\/TLSProfiles|SentinelConnector|\/ClusterSubscriber(Group)?|\/ScanStream)$/,
      },
      ({ path, importer }) => {
        if (!importer.includes(join('node_modules', 'ioredis'))) return undefined;
        const match = Object.keys(ioredisStandIns).find((suffix) => path.endsWith(suffix));
        return match ? { path: join(__dirname, ioredisStandIns[match]) } : undefined;
      },
    );
  },
};

/**
 * ioredis's table of every Redis command (@ioredis/commands' commands.json,
 * 21.8 KB in every bundle) slimmed to what the library reads of it: the
 * names (its command methods), `keyStart`/`keyStop`/`step` of the commands
 * with key positions (cluster slots, auto-pipelining), and of the flags only
 * `readonly` and `loading` (the two `hasFlag` is asked about); `arity` and
 * the other flags are read by nothing. ~12 KB less in every function
 * (issue 16: room in `$default` for presence). The slim table ships as a
 * small module that builds it at load (commandsModule): the names in one
 * string, each followed by the letter of its entry's shape when that is not
 * the commonest one (there are 16 shapes), ~9 KB less again (issues 17/18:
 * room in `$default`). test/unit/ioredis-commands.test.ts checks
 * exists/hasFlag/getKeyIndexes answer alike for every command.
 */
const READ_FLAGS = new Set(['readonly', 'loading']);
function slimCommands(table) {
  const slim = {};
  for (const [name, command] of Object.entries(table)) {
    const entry = { flags: command.flags.filter((f) => READ_FLAGS.has(f)) };
    if (command.step > 0)
      Object.assign(entry, {
        keyStart: command.keyStart,
        keyStop: command.keyStop,
        step: command.step,
      });
    slim[name] = entry;
  }
  return slim;
}
/**
 * The slim table as CommonJS that builds it, in the table's own key order:
 * `S` the distinct entries (commonest first), then every name followed by
 * `A`-`Z` for entry S[1]-S[26] (names are lower case and end in a letter; none means S[0]). Each
 * command gets its own copy of its entry, as the JSON table gave it.
 */
function commandsModule(table) {
  const slim = slimCommands(table);
  const count = new Map();
  for (const entry of Object.values(slim)) {
    const shape = JSON.stringify(entry);
    count.set(shape, (count.get(shape) ?? 0) + 1);
  }
  const shapes = [...count.keys()].sort((a, b) => count.get(b) - count.get(a));
  if (shapes.length > 27)
    throw new Error(`commandsModule: ${shapes.length} entry shapes, at most 27`);
  const words = Object.entries(slim).map(([name, entry]) => {
    if (!/^[a-z]([a-z_-]*[a-z])?$/.test(name))
      throw new Error(`commandsModule: command name "${name}"`);
    const index = shapes.indexOf(JSON.stringify(entry));
    return index === 0 ? name : name + String.fromCharCode(64 + index);
  });
  return [
    `const S=[${shapes.join(',')}],t={};`,
    `for(const w of ${JSON.stringify(words.join(' '))}.split(' ')){`,
    'const c=w.charCodeAt(w.length-1),s=c<91?S[c-64]:S[0];',
    't[c<91?w.slice(0,-1):w]={...s,flags:[...s.flags]}}',
    'module.exports=t;',
  ].join('\n');
}
const ioredisCommandsSlim = {
  name: 'ioredis-commands-slim',
  setup(build) {
    build.onLoad(
      { filter: /@ioredis[\\/]commands[\\/]built[\\/]commands\.json$/ },
      async ({ path }) => ({
        contents: commandsModule(JSON.parse(await readFile(path, 'utf8'))),
        loader: 'js',
      }),
    );
  },
};

/**
 * The libraries' error classes name themselves by `this.constructor.name`,
 * which minification turns into "ms" or "No" in every logged error. In
 * redis-errors and ioredis every error class has its own `get name()`, so
 * `this.constructor.name` becomes the class's own name as a literal (9 bytes
 * shorter per bundle than before). Not esbuild's keepNames: that keeps every
 * function's name and costs default 11.6 KB (249.8 to 261.4 KB, over its
 * 250 KB target). Not jose's errors: it names them once, in its base class,
 * so each class would need a `static name` (+453 bytes in connect and
 * default, again over the target); they carry a `code` (ERR_JWT_EXPIRED)
 * that names them, and lib/auth/tokens.ts turns each into our own errors.
 */
const ERROR_FILES =
  /node_modules[\\/](redis-errors[\\/]lib[\\/]modern\.js|ioredis[\\/]built[\\/]errors[\\/]\w+Error\.js)$/;
function nameErrorClasses(source) {
  // Each class's own text (up to the next class) gets its name as a literal.
  return source
    .split(/(?=\bclass \w+ extends )/)
    .map((part) => {
      const name = /^class (\w+) extends /.exec(part)?.[1];
      return name ? part.replaceAll('this.constructor.name', JSON.stringify(name)) : part;
    })
    .join('');
}
const errorClassNames = {
  name: 'error-class-names',
  setup(build) {
    build.onLoad({ filter: ERROR_FILES }, async ({ path }) => ({
      contents: nameErrorClasses(await readFile(path, 'utf8')),
      loader: 'js',
    }));
  },
};

/**
 * redis-errors (ioredis's error classes) chooses between two copies of its
 * classes by the Node version at load time: `lib/old.js` for Node before 7,
 * `lib/modern.js` otherwise. Lambda runs Node 22 and 24 (the sandbox test
 * runs the zips on both), so only the modern copy ships: 1.6 KB less in every
 * function, which made room in `default` for client publish (issue 16).
 */
const redisErrorsModern = {
  name: 'redis-errors-modern',
  setup(build) {
    build.onLoad({ filter: /node_modules[\\/]redis-errors[\\/]index\.js$/ }, ({ path }) => ({
      contents: "'use strict'\nmodule.exports = require('./lib/modern')\n",
      resolveDir: dirname(path),
      loader: 'js',
    }));
  },
};

module.exports = [
  luaWithoutComments,
  debugOff,
  ioredisOptionalParts,
  ioredisCommandsSlim,
  errorClassNames,
  redisErrorsModern,
];
module.exports.slimCommands = slimCommands;
module.exports.commandsModule = commandsModule;
module.exports.nameErrorClasses = nameErrorClasses;
module.exports.minifyLua = minifyLua;
