/**
 * Errors logged by the packaged functions carry their real class names
 * (issue 22): minified, ioredis's errors were named "ms" or "No" in the logs,
 * since they name themselves by `this.constructor.name`. Built here as the
 * bundles are built (minified, with build/esbuild-plugins.cjs).
 */
import { createRequire } from 'node:module';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const plugins = require('../../build/esbuild-plugins.cjs') as Plugin[];

/** Bundles `source` as serverless.yml does and returns what its module exports. */
async function bundleAndRun(source: string, withPlugins: boolean): Promise<unknown> {
  const result = await build({
    stdin: { contents: source, resolveDir: process.cwd(), loader: 'js' },
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    mainFields: ['module', 'main'],
    write: false,
    plugins: withPlugins ? plugins : [],
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text ?? '';
  const module = { exports: {} as unknown };
  new Function('module', 'exports', 'require', code)(module, module.exports, require);
  return module.exports;
}

const SOURCE = `
  const { ReplyError, AbortError, InterruptError, ParserError, RedisError } = require('redis-errors');
  const MaxRetries = require('ioredis/built/errors/MaxRetriesPerRequestError').default;
  const ClusterAllFailed = require('ioredis/built/errors/ClusterAllFailedError').default;
  module.exports = [
    new ReplyError('x'), new AbortError('x'), new InterruptError('x'),
    new ParserError('x', Buffer.from('x'), 0), new RedisError('x'), new MaxRetries(2),
    new ClusterAllFailed('x', new Error('y')),
  ].map((e) => [e.name, String(e).split(':')[0]]);
`;
const NAMES = [
  'ReplyError',
  'AbortError',
  'InterruptError',
  'ParserError',
  'RedisError',
  'MaxRetriesPerRequestError',
  'ClusterAllFailedError',
];

describe('error names in the minified bundles', () => {
  it('keeps the class names of the errors Redis calls throw', async () => {
    const names = await bundleAndRun(SOURCE, true);
    expect(names).toEqual(NAMES.map((n) => [n, n]));
  });

  it('(the control: without the plugin, minification loses them)', async () => {
    const names = (await bundleAndRun(SOURCE, false)) as [string, string][];
    expect(names.map(([name]) => name)).not.toEqual(NAMES);
  });
});
