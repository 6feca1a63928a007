/**
 * The first hour of a new user (issue 22), each once seen on main: `npm
 * start` with no Redis started "up" anyway, or crashed with a stack trace
 * around the right message; `npm run listen` said only "HTTP 401"; the HTTP
 * API answered serverless-offline's own 404 and never 405; the demo page
 * minted tokens for names the server refuses and threw on a bad topic.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from '../../scripts/demo-server.js';
import { freePort } from '../../scripts/redis-server.js';
import { launchChromium } from '../helpers/browser.js';
import { type NpmStart, spawnNpmStart } from '../helpers/npm-start.js';
import { eventually } from '../helpers/offline.js';
import { useStack } from '../helpers/stack.js';

let running: NpmStart | undefined;
afterEach(() => {
  if (running?.child.pid && running.child.exitCode === null) {
    try {
      process.kill(-running.child.pid, 'SIGKILL');
    } catch {}
  }
  running = undefined;
});

/** Runs npm start with `env` until it exits; its exit code and output. */
async function startUntilExit(
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  running = await spawnNpmStart({ ...env, PUSHWIRE_WATCH: '.pushwire-e2e-no-watch/never' });
  const started = running;
  const code = await new Promise<number | null>((resolve) => {
    if (started.child.exitCode !== null) resolve(started.child.exitCode);
    else started.child.once('exit', (c) => resolve(c));
  });
  // The last chunks of output may follow 'exit'.
  await new Promise((resolve) => setImmediate(resolve));
  return { code, output: started.output() };
}

describe('npm start without a working Redis', () => {
  it('refuses to start when REDIS_URL answers nothing, naming the URL with its password masked', async () => {
    // Prepare: a port nothing listens on.
    const port = await freePort();
    const env = { ...process.env, REDIS_URL: `redis://default:s3cret-pw@127.0.0.1:${port}` };

    // Act
    const { code, output } = await startUntilExit(env);

    // Assess
    expect(code).toBe(1);
    expect(output).toContain(
      `pushwire: not starting: cannot reach Redis at REDIS_URL=redis://***@127.0.0.1:${port}`,
    );
    expect(output).toContain('ECONNREFUSED');
    expect(output).not.toContain('s3cret-pw');
    expect(output).not.toContain('pushwire is up');
    // On a Node it does not support (20), it says so once; on 22+ nothing.
    const supported = Number(process.versions.node.split('.')[0]) >= 22;
    expect(output.split('is not supported').length - 1).toBe(supported ? 0 : 1);
  });

  it('says redis-server is not on PATH in one line, without a stack trace', async () => {
    // Prepare: a PATH with nothing on it (npm start runs node by its own path).
    const empty = mkdtempSync(join(tmpdir(), 'pushwire-empty-path-'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty };
    delete env['REDIS_URL'];

    try {
      // Act
      const { code, output } = await startUntilExit(env);

      // Assess
      expect(code).toBe(1);
      expect(output).toContain('pushwire: not starting: redis-server is not on PATH.');
      expect(output).toContain('apt-get install redis-server');
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toContain('pushwire is up');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('against a running npm start', () => {
  const stack = useStack();

  /** Runs `npm run listen` (tsx scripts/listen.ts) with `args` and `env` until it exits. */
  const listen = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'scripts/listen.ts', '--port', String(stack.offline.wsPort), ...args],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, output }));
    });

  it('npm run listen says why the handshake was refused: a token signed with another secret', async () => {
    // Act: listen signs with a JWT_SECRET npm start does not have.
    const { code, output } = await listen(['--user', 'alice'], {
      ...process.env,
      JWT_SECRET: 'not-the-secret-npm-start-runs-with-0123456789',
    });

    // Assess
    expect(code).toBe(1);
    expect(output).toContain('connection refused: HTTP 401 Unauthorized');
    expect(output).toContain('the server refused the token');
    expect(output).toContain('JWT_SECRET from this shell');
    expect(output).toContain('npm start must run with the same JWT_SECRET');
    expect(output).toContain('"handshake refused"');
    // ... which is there, with the reason, in npm start's output.
    await eventually(
      () => /"message":"handshake refused".*"code":"unauthorized"/.test(stack.offline.output()),
      5_000,
      'the handshake refused line',
    );
  });

  it('npm run listen says why the handshake was refused: a since that is not a cursor', async () => {
    const env = { ...process.env };
    delete env['JWT_SECRET'];
    const { code, output } = await listen(['--user', 'alice', '--since', 'yesterday'], env);
    expect(code).toBe(1);
    expect(output).toContain('connection refused: HTTP 400 Bad Request');
    expect(output).toContain('the server refused `since`: it is not a cursor');
  });

  it('answers a wrong path with 404 and a wrong method with 405, both with {"error":…}', async () => {
    // Act
    const base = `http://localhost:${stack.offline.httpPort}`;
    const wrongPath = await fetch(`${base}/publsh`, { method: 'POST', body: '{}' });
    const nested = await fetch(`${base}/publish/now`, { method: 'POST', body: '{}' });
    const root = await fetch(`${base}/`, { method: 'POST', body: '{}' });
    const wrongMethod = await fetch(`${base}/publish`);
    const put = await fetch(`${base}/kick`, { method: 'PUT', body: '{}' });

    // Assess
    expect(wrongPath.status).toBe(404);
    expect(await wrongPath.json()).toEqual({
      error: {
        code: 'not_found',
        message: 'no route /publsh: POST /publish, /presence, /kick, /status or /devices',
      },
    });
    expect([nested.status, root.status]).toEqual([404, 404]);
    expect(((await nested.json()) as { error: { code: string } }).error.code).toBe('not_found');
    expect(((await root.json()) as { error: { code: string } }).error.code).toBe('not_found');
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toEqual({
      error: {
        code: 'method_not_allowed',
        message: 'GET is not allowed: use POST with a JSON body',
      },
    });
    expect(put.status).toBe(405);
  });

  describe('the demo page', () => {
    let demo: DemoServer;
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
      demo = await startDemoServer({
        port: 0,
        wsUrl: `ws://localhost:${stack.offline.wsPort}`,
        lambdaPort: stack.offline.lambdaPort,
      });
    });
    afterAll(async () => {
      await demo?.close();
      await browser?.close();
    });

    it('refuses a user name the server would refuse, says why, and does not connect', async () => {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      try {
        await page.goto(demo.url);
        // `{` is refused in a token's `sub` by the server; the demo once minted it.
        await page.fill('#user', 'ann{1}');
        await page.click('#connect');
        await page.waitForSelector('#error:has-text("cannot connect as")');
        expect(await page.textContent('#error')).toContain(
          'a user name is 1-256 printable characters without whitespace, "{", "}" or "|"',
        );
        expect(await page.textContent('#state')).toBe('closed');
        expect(sockets).toEqual([]);
        expect(pageErrors).toEqual([]);
      } finally {
        await page.close();
      }
    });

    it('shows an invalid topic name as an error instead of throwing in the page', async () => {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      try {
        await page.goto(demo.url);
        await page.fill('#user', 'demo-bea');
        await page.click('#connect');
        await page.waitForSelector('#state[data-state="connected"]');

        await page.fill('#topic', 'bad topic!');
        await page.click('#subscribe');
        await page.waitForSelector('#error:has-text("bad topic name")');
        expect(await page.textContent('#error')).toContain('1-128 characters of A-Z a-z 0-9');
        // Only the chat room the page joins by itself: the bad topic was not added.
        expect(await page.textContent('#topics')).not.toContain('bad topic');
        expect(await page.locator('#topics span').allTextContents()).toEqual(['chat:lobby×']);
        expect(pageErrors).toEqual([]);

        // A good one afterwards clears the error and subscribes.
        await page.fill('#topic', 'news');
        await page.click('#subscribe');
        await page.waitForSelector('#topics span:has-text("news")');
        expect(await page.textContent('#error')).toBe('');
      } finally {
        await page.close();
      }
    });

    it('rings two tabs of a user, stops the other when one answers, and shows the push its phone received when none does', async () => {
      const tabs = [await browser.newPage(), await browser.newPage()];
      const pageErrors: string[] = [];
      for (const tab of tabs) tab.on('pageerror', (error) => pageErrors.push(error.message));
      const [a, b] = tabs as [(typeof tabs)[0], (typeof tabs)[0]];
      try {
        for (const tab of tabs) {
          await tab.goto(demo.url);
          await tab.fill('#user', 'demo-ring');
          await tab.click('#connect');
          await tab.waitForSelector('#state[data-state="connected"]');
        }
        await a.fill('#ring-timeout', '60');
        await a.click('#ring-send');
        for (const tab of tabs) await tab.waitForSelector('#ringing:has-text("RINGING")');
        await b.click('#ringing button');
        await b.waitForSelector('#ringing:has-text("answered here")');
        await a.waitForSelector('#ringing:has-text("answered on another device")');
        await a.click('#ring-status');
        await expect
          .poll(() => a.textContent('#ring-result'), { timeout: 10_000 })
          .toContain('"state":"acked"');

        // Nobody answers: after the timeout the push fallback ran, to the phone
        // the demo server gave the user (its Web Push service decrypted it).
        await a.fill('#ring-user', 'demo-ring-nobody');
        await a.click('#ring-phone');
        await a.waitForSelector('#phone-result:has-text("demo-ring-nobody has a phone")');
        await a.fill('#ring-timeout', '1');
        await a.click('#ring-send');
        await a.waitForSelector('#ring-result:has-text("rang demo-ring-nobody")');
        for (let i = 0; i < 60; i++) {
          await a.click('#ring-status');
          if ((await a.textContent('#ring-result'))?.includes('"state":"pushed"')) break;
          await a.waitForTimeout(250);
        }
        expect(await a.textContent('#ring-result')).toMatch(/"push":\{[^}]*"sent":1[,}]/);
        await a.waitForSelector('#pushes li:has-text("PUSH to demo-ring-nobody")', {
          timeout: 10_000,
        });
        expect(await a.locator('#pushes li').allTextContents()).toEqual([
          expect.stringMatching(
            /PUSH to demo-ring-nobody's phone: Missed call \(from demo-ring\) for ring-\d+$/,
          ),
        ]);
        expect(pageErrors).toEqual([]);
      } finally {
        for (const tab of tabs) await tab.close();
      }
    });
  });
});
