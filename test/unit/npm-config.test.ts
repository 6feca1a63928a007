/**
 * `npm install` shows a newcomer no warning to judge (issue 22): npm 11 warns
 * about every dependency whose install script is not reviewed in package.json's
 * `allowScripts`. Each is decided there, explicitly.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('npm configuration', () => {
  it('leaves no installed package with an install script unreviewed', async () => {
    // The check `npm install` runs before it warns (npm 11.19+; node_modules only, no network).
    const { stdout } = await run('npm', ['approve-scripts', '--allow-scripts-pending'], {
      encoding: 'utf8',
    });
    expect(stdout.trim()).toBe('No packages with unreviewed install scripts.');
  });

  it('approves only the script the project needs: esbuild checks its platform binary', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      allowScripts: Record<string, boolean>;
    };
    expect(pkg.allowScripts).toEqual({
      esbuild: true,
      // A message printed only in some time zones.
      'es5-ext': false,
      // Builds from source only with npm_config_build_from_source; prebuilt otherwise.
      '@parcel/watcher': false,
      // Telemetry sent at install (brought in by @asyncapi/parser, a dev dependency).
      '@scarf/scarf': false,
    });
  });
});
