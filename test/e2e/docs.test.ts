/**
 * Docs that run (issue 22): every shell and code block of README.md and
 * docs/*.md is run, in order, against one `npm start` on the ports the docs
 * name (3000-3003), on Node 22, the lowest Node pushwire supports; or it is
 * marked as what it is instead (deploy-only, setup, ci, format, covered-by;
 * see test/helpers/doc-blocks.ts). A doc that drifts from the code fails here.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBlocks, type DocBlock, documents } from '../helpers/doc-blocks.js';
import { type NpmStart, spawnNpmStart } from '../helpers/npm-start.js';
import { eventually } from '../helpers/offline.js';
import { nodeBinary } from '../sandbox/node-runtimes.js';

const ROOT = process.cwd();
/** The ports the docs name: HTTP API, WebSocket, Lambda Invoke API, demo page. */
const PORTS = { httpPort: 3000, wsPort: 3001, lambdaPort: 3002 };
const DEMO_PORT = 3003;
const RUN_TIMEOUT_MS = 60_000;

const blocks = allBlocks(ROOT);
let node = '';
let env: NodeJS.ProcessEnv = {};
let server: NpmStart | undefined;

interface Background {
  block: DocBlock;
  child: ChildProcess;
  output: () => string;
}
const background: Background[] = [];

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Where the block runs: a shell script, or a TypeScript file at the repository root (imports resolve). */
function command(block: DocBlock, index: number): { file: string; args: string[]; temp?: string } {
  if (['sh', 'bash', 'shell'].includes(block.lang)) {
    let code = block.code;
    if (block.awsCliV2 && awsCliMajor() === 1) {
      // AWS CLI v1 reads --payload as text already and has no --cli-binary-format.
      code = code.replaceAll('--cli-binary-format raw-in-base64-out', '');
    }
    // Through `| cat`, so the commands write to a pipe, as in a terminal's
    // pipeline: Node's own stdio pipes are sockets, which `/dev/stdout`
    // (the AWS CLI's outfile in the docs) cannot be opened on.
    return {
      file: 'bash',
      args: ['-o', 'pipefail', '-c', 'bash -e -o pipefail -c "$0" 2>&1 | cat', code],
    };
  }
  const temp = join(
    ROOT,
    `.doc-test-${process.pid}-${index}.${block.lang.startsWith('t') ? 'ts' : 'mjs'}`,
  );
  writeFileSync(temp, block.code);
  return { file: node, args: ['--import', 'tsx', temp], temp };
}

let awsMajor: number | undefined;
function awsCliMajor(): number {
  awsMajor ??= Number(
    /aws-cli\/(\d+)/.exec(execFileSync('aws', ['--version'], { encoding: 'utf8' }))?.[1] ?? 0,
  );
  return awsMajor;
}

function start(
  block: DocBlock,
  index: number,
): { child: ChildProcess; output: () => string; temp?: string } {
  const { file, args, temp } = command(block, index);
  const child = spawn(file, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return { child, output: () => output, ...(temp && { temp }) };
}

const stop = (child: ChildProcess) => {
  if (child.pid && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }
};

async function run(block: DocBlock, index: number): Promise<string> {
  const { child, output, temp } = start(block, index);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        stop(child);
        reject(new Error(`did not finish within ${RUN_TIMEOUT_MS} ms:\n${output()}`));
      }, RUN_TIMEOUT_MS);
      child.once('error', reject);
      child.once('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, `exit code; output:\n${output()}`).toBe(0);
    return output();
  } finally {
    if (temp) rmSync(temp, { force: true });
  }
}

async function runInBackground(block: DocBlock, index: number): Promise<void> {
  const { child, output, temp } = start(block, index);
  background.push({ block, child, output });
  try {
    await eventually(
      () => output().includes(block.until as string) || child.exitCode !== null,
      RUN_TIMEOUT_MS,
      `"${block.until}" from ${block.file}:${block.line}`,
    );
    expect(child.exitCode, `it exited; output:\n${output()}`).toBeNull();
  } finally {
    // A TypeScript file is compiled by tsx when it starts: gone once it prints.
    if (temp) rmSync(temp, { force: true });
  }
}

/** What the marker claims, for the blocks that are not run. */
function checkMarked(block: DocBlock): void {
  const text = block.code;
  switch (block.mode) {
    case 'deploy-only':
      expect(text, 'a deploy-only block needs AWS').toMatch(
        /\baws |amazonaws\.com|osls (deploy|package)|npm run package|stage: 'prod'|LambdaClient\(\{\}\)|--aws-sigv4/,
      );
      return;
    case 'setup':
      for (const line of lines(text))
        expect(line, 'setup is what CI and this test do').toMatch(/^npm (install|ci|start)$/);
      return;
    case 'format':
      expect(block.lang, 'a runnable language is run, not shown').not.toMatch(/^(sh|bash|shell)$/);
      return;
    case 'covered-by':
      expect(existsSync(join(ROOT, block.note)), `${block.note} exists`).toBe(true);
      return;
    case 'ci': {
      const scripts = (
        JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }
      ).scripts;
      const ci = readFileSync('.ci/run', 'utf8');
      const projects = readFileSync('vitest.config.ts', 'utf8');
      for (const line of lines(text)) {
        if (line.startsWith('npx vitest run')) {
          for (const [, project] of line.matchAll(/--project[ =](\S+)/g))
            expect(projects, `${line}: a vitest project`).toContain(`name: '${project}'`);
          for (const [file] of line.matchAll(/\S+\.test\.ts/g))
            expect(existsSync(file), `${line}: ${file} exists`).toBe(true);
          continue;
        }
        const npm = /^npm (?:run )?([\w:-]+)/.exec(line);
        expect(npm, `${line}: an npm script`).not.toBeNull();
        const name = npm?.[1] as string;
        expect(Object.keys(scripts), `${line}: package.json has it`).toContain(name);
        // CI runs the documented test commands themselves, not something else.
        if (name === 'test' || name === 'test:faults')
          expect(ci, `.ci/run runs ${line}`).toContain(
            name === 'test' ? 'npm test' : 'npm run test:faults',
          );
      }
      return;
    }
    default:
      throw new Error(`not a marked block: ${block.mode}`);
  }
}

/** A block's commands, without comments and blank lines. */
const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'));

beforeAll(async () => {
  for (const port of [...Object.values(PORTS), DEMO_PORT])
    if (await listening(port))
      throw new Error(
        `port ${port} is in use: the docs test runs npm start on the ports the docs name ` +
          '(3000-3003); stop whatever holds it (your own npm start?)',
      );
  node = await nodeBinary(22);
  env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env['PATH'] ?? ''}` };
  for (const name of Object.keys(env))
    if (/^(REDIS_|JWT_|PUSHWIRE_|AWS_)/.test(name)) delete env[name];
  server = await spawnNpmStart(
    { ...env, PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never' },
    { ports: PORTS, node },
  );
  await server.whenUp(120_000);
}, 240_000);

afterAll(async () => {
  for (const { child } of background) stop(child);
  if (server?.child.pid && server.child.exitCode === null) {
    const exited = new Promise((resolve) => server?.child.once('exit', resolve));
    process.kill(-server.child.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    stop(server.child);
  }
});

describe('docs that run', () => {
  it('README names the test command CI runs, and every document is covered', () => {
    expect(documents(ROOT)[0]).toBe('README.md');
    expect(blocks.filter((b) => b.file === 'README.md' && b.mode === 'ci')).toHaveLength(1);
    // npm start under the test runs on the Node the docs promise (22+).
    expect(server?.output()).not.toContain('is not supported');
  });

  for (const file of documents(ROOT)) {
    const mine = blocks.filter((b) => b.file === file);
    if (mine.length === 0) continue;
    describe(file, () => {
      for (const block of mine) {
        const index = blocks.indexOf(block);
        const title = `${block.file}:${block.line} ${block.lang || 'text'} ${block.mode}${block.note ? ` (${block.note})` : ''}`;
        if (block.mode === 'run')
          it(title, async () => {
            const output = await run(block, index);
            for (const text of block.expect) expect(output).toContain(text);
          });
        else if (block.mode === 'background') it(title, () => runInBackground(block, index));
        else it(title, () => checkMarked(block));
      }
      const promised = () =>
        background.filter((b) => b.block.file === file && b.block.later.length);
      if (mine.some((b) => b.mode === 'background' && b.later.length))
        it(`${file}: what its running examples promised to print`, async () => {
          for (const { block, output } of promised())
            for (const text of block.later)
              await eventually(
                () => output().includes(text),
                15_000,
                `"${text}" from ${block.file}:${block.line}; it printed:\n${output()}`,
              );
        });
    });
  }
});
