/**
 * The bundles carry a slimmed @ioredis/commands table (build/esbuild-plugins.cjs,
 * ioredis-commands-slim: ~9 KB less in every function, ~18.5 KB since it ships
 * as a module that builds the table from one string of names). ioredis reads the
 * table through exists, hasFlag('readonly' | 'loading') and getKeyIndexes:
 * bundled with and without the plugins, both answer alike for every command.
 */
import { createRequire } from 'node:module';
import { build, type Plugin } from 'esbuild';
import { expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const plugins = require('../../build/esbuild-plugins.cjs') as Plugin[];

type Commands = {
  list: string[];
  exists(name: string): boolean;
  hasFlag(name: string, flag: string): boolean;
  getKeyIndexes(name: string, args: unknown[], options?: unknown): number[];
};

async function bundled(withPlugins: boolean): Promise<{ commands: Commands; bytes: number }> {
  const result = await build({
    stdin: {
      contents: "module.exports = require('@ioredis/commands');",
      resolveDir: process.cwd(),
      loader: 'js',
    },
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
  return { commands: module.exports as Commands, bytes: code.length };
}

it('answers exists, hasFlag and getKeyIndexes as the full table does, for every command, in less', async () => {
  const [full, slim] = await Promise.all([bundled(false), bundled(true)]);
  expect(slim.commands.list).toEqual(full.commands.list);
  expect(full.commands.list.length).toBeGreaterThan(200);
  // Arguments that reach every branch: numbers (numkeys), keys, options.
  const argSets = [
    ['k1', 'k2', 'k3', 'k4', 'k5'],
    ['2', 'k1', 'k2', 'a', 'b'],
    ['0', 'k1'],
    ['k1', 'STORE', 'k2', 'BY', 'x'],
    ['GROUP', 'g', 'c', 'STREAMS', 'k1', 'k2', '0', '0'],
  ];
  for (const name of full.commands.list) {
    expect(slim.commands.exists(name), name).toBe(true);
    for (const flag of ['readonly', 'loading'])
      expect(slim.commands.hasFlag(name, flag), `${name} ${flag}`).toBe(
        full.commands.hasFlag(name, flag),
      );
    for (const args of argSets) {
      const answer = (c: Commands) => {
        try {
          return c.getKeyIndexes(name, args, { parseExternalKey: true });
        } catch (error) {
          return `throws ${(error as Error).message}`;
        }
      };
      expect(answer(slim.commands), `${name} ${args.join(' ')}`).toEqual(answer(full.commands));
    }
  }
  expect(slim.commands.exists('nosuchcommand')).toBe(false);
  expect(full.bytes - slim.bytes).toBeGreaterThan(17_000);
});

it('refuses a command table it cannot encode, rather than ship a wrong one', () => {
  const { commandsModule } = require('../../build/esbuild-plugins.cjs') as {
    commandsModule(table: Record<string, unknown>): string;
  };
  const entry = { flags: [], keyStart: 0, keyStop: 0, step: 0 };
  // A name ending in a character below `[` would read as a shape letter.
  expect(() => commandsModule({ 'get-': entry })).toThrow('command name "get-"');
  expect(() => commandsModule({ Get: entry })).toThrow('command name "Get"');
  // More shapes than letters.
  const many = Object.fromEntries(
    Array.from({ length: 28 }, (_, i) => [
      `c${'abcdefghijklmnopqrstuvwxyzab'[i]}`.repeat(i + 1),
      { flags: [], keyStart: i + 1, keyStop: i + 1, step: 1 },
    ]),
  );
  expect(() => commandsModule(many)).toThrow('28 entry shapes');
});
