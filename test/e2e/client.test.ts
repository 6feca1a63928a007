/**
 * The client library (client/dist/pushwire.js, as apps load it) end to end,
 * against `npm start` on free ports, in real Node (with `ws`) and in real
 * headless Chromium:
 *
 * - the delivery guarantee as a property: services publish numbered messages
 *   to the user and to two topics while the test breaks the connection at
 *   random (server-side kick, both ends reset, the client's end lost while the
 *   server keeps posting into a half-open socket, a silent stall, the server
 *   forgetting the connection, an app restart / page reload with the cursors
 *   in storage) and serverless-offline's hard timeout (API Gateway's 2-hour
 *   cap, here a few seconds) closes every connection: every message reaches
 *   the app exactly once, in order, per stream;
 * - the demo page (npm run demo): a message published from its form appears on it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import type { PublishResult } from '../../lib/delivery/publish.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { type DemoServer, startDemoServer } from '../../scripts/demo-server.js';
import { devToken } from '../../scripts/token.js';
import { launchChromium } from '../helpers/browser.js';
import { eventually } from '../helpers/offline.js';
import { prng } from '../helpers/prng.js';
import { ChaosProxy } from '../helpers/proxy.js';
import { publishOk, useStack } from '../helpers/stack.js';

/** serverless-offline closes every connection this long after it opened (API Gateway: 2 h). */
const HARD_TIMEOUT_S = 6;
const PER_STREAM = Number(process.env['CLIENT_PROPERTY_MESSAGES'] ?? 100);
/** Timers short enough for a run of seconds; the defaults are minutes. */
const FAST: Partial<Client.Options> = {
  pingInterval: 1_000,
  pongTimeout: 3_000,
  minDelay: 100,
  maxDelay: 1_000,
};

const stack = useStack({
  // Deep enough that no drop in a run outlives history: every resume must recover.
  env: { HISTORY_SIZE: '1000' },
  args: ['--webSocketHardTimeout', String(HARD_TIMEOUT_S)],
});
let proxy: ChaosProxy;
let browser: Browser;
let lib: typeof Client;
/** Serves the harness page and the bundle; on localhost, as Chromium lets only local pages reach localhost. */
let harnessServer: Server;
let harness: string;

beforeAll(async () => {
  // The file apps load, built from the current source.
  await writeClientBundle();
  lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  proxy = await ChaosProxy.start(stack.offline.wsPort);
  browser = await launchChromium();
  harnessServer = createServer((request, response) => {
    const script = request.url === '/pushwire.js';
    response.writeHead(200, { 'content-type': script ? 'text/javascript' : 'text/html' });
    response.end(script ? readFileSync(CLIENT_BUNDLE) : HARNESS);
  });
  await new Promise<void>((resolve) => harnessServer.listen(0, '127.0.0.1', resolve));
  harness = `http://localhost:${(harnessServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  harnessServer?.closeAllConnections();
  harnessServer?.close();
  await browser?.close();
  await proxy?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const random = prng;

/** An app using the client, seen from outside: what it was handed, across restarts. */
interface App {
  received(): Promise<Client.Message[]>;
  gaps(): Promise<Client.Gap[]>;
  /** How many times it reached `connected`, over all its runs. */
  connects(): Promise<number>;
  connectionId(): Promise<string | undefined>;
  /** An app restart (Node) or a page reload (browser): only storage survives. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const tokenFor = (user: string) => () => devToken(user, { topics: ['cprop-*'] });

function nodeApp(user: string, topics: string[]): App {
  const saved = new Map<string, string>();
  const storage: Client.StorageLike = {
    getItem: (key) => saved.get(key) ?? null,
    setItem: (key, value) => void saved.set(key, value),
  };
  const log: Client.Message[] = [];
  const gaps: Client.Gap[] = [];
  let connects = 0;
  let pw: Client.Pushwire;
  let detach: (() => void)[] = [];
  const start = () => {
    pw = new lib.Pushwire({
      url: `ws://localhost:${proxy.port}`,
      token: tokenFor(user),
      storage,
      WebSocket,
      ...FAST,
    });
    detach = [
      pw.on('message', (m) => log.push(m)),
      pw.on('gap', (g) => gaps.push(g)),
      pw.on('state', (s) => void (s === 'connected' && connects++)),
    ];
    for (const topic of topics) pw.subscribe(topic);
    pw.connect();
  };
  start();
  return {
    received: async () => [...log],
    gaps: async () => [...gaps],
    connects: async () => connects,
    connectionId: async () => pw.connectionId,
    restart: async () => {
      // The old process is gone: nothing of it reaches the app any more.
      for (const off of detach) off();
      pw.close();
      start();
    },
    stop: async () => pw.close(),
  };
}

const HARNESS = `<!doctype html><meta charset="utf-8"><title>pushwire harness</title>
<script type="module">
import { Pushwire } from '/pushwire.js';
const q = new URLSearchParams(location.search);
// The app's own record of what it showed, kept across reloads like the cursors are.
const load = (key, empty) => JSON.parse(sessionStorage.getItem(key) ?? empty);
const log = load('log', '[]');
const gaps = load('gaps', '[]');
let connects = load('connects', '0');
// storage: localStorage by default.
const pw = new Pushwire({ url: q.get('ws'), token: () => window.mintToken(), ...JSON.parse(q.get('options')) });
window.pw = pw;
pw.on('message', (m) => { log.push(m); sessionStorage.setItem('log', JSON.stringify(log)); });
pw.on('gap', (g) => { gaps.push(g); sessionStorage.setItem('gaps', JSON.stringify(gaps)); });
pw.on('state', (s) => { if (s === 'connected') sessionStorage.setItem('connects', String(++connects)); });
for (const topic of q.getAll('topic')) pw.subscribe(topic);
pw.connect();
</script>`;

/** page.evaluate of an expression, retried while a reload replaces the page's context. */
async function evaluate<T>(page: Page, expression: string): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await page.evaluate(expression)) as T;
    } catch (error) {
      if (attempt > 50) throw error;
      await sleep(100);
    }
  }
}

async function browserApp(user: string, topics: string[]): Promise<App> {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
  await page.exposeFunction('mintToken', tokenFor(user));
  const query = new URLSearchParams({
    ws: `ws://localhost:${proxy.port}`,
    options: JSON.stringify(FAST),
  });
  for (const topic of topics) query.append('topic', topic);
  await page.goto(`${harness}/?${query}`);
  const read = <T>(key: string, empty: string) =>
    evaluate<T>(page, `JSON.parse(sessionStorage.getItem('${key}') ?? '${empty}')`);
  return {
    received: () => read<Client.Message[]>('log', '[]'),
    gaps: () => read<Client.Gap[]>('gaps', '[]'),
    connects: () => read<number>('connects', '0'),
    connectionId: () => evaluate<string | undefined>(page, 'window.pw?.connectionId'),
    restart: async () => {
      await page.reload();
    },
    stop: () => page.close(),
  };
}

type Chaos = 'kick' | 'reset' | 'ghost' | 'stall' | 'forget' | 'restart';
const CHAOS: Chaos[] = ['kick', 'reset', 'ghost', 'stall', 'forget', 'restart'];

/** Breaks the app's connection one way; false when there was nothing to break. */
async function breakOnce(app: App, chaos: Chaos): Promise<boolean> {
  switch (chaos) {
    case 'kick': {
      const id = await app.connectionId();
      if (!id) return false;
      await stack.offline.invoke('kick', { connectionIds: [id] });
      return true;
    }
    case 'forget': {
      // As after a Redis failover that lost writes: the next frame gets unknown_connection.
      const id = await app.connectionId();
      if (!id) return false;
      return (await stack.probe.redis.del(stack.probe.keys.connection(id))) === 1;
    }
    case 'reset':
      return proxy.reset() > 0;
    case 'ghost':
      return proxy.ghost() > 0;
    case 'stall':
      return proxy.stall() > 0;
    case 'restart':
      await app.restart();
      return true;
  }
}

async function checkDelivery(
  kind: 'node' | 'chromium',
  makeApp: typeof nodeApp | typeof browserApp,
) {
  const seed = Number(process.env['CLIENT_SEED'] ?? Date.now() % 2 ** 31);
  const rand = random(seed);
  const user = `cprop-${kind}-${seed}`;
  const topics = [`cprop-${kind}-a-${seed}`, `cprop-${kind}-b-${seed}`];
  const app = await makeApp(user, topics);
  const started = Date.now();
  try {
    // Wait until the app is live and a member of both topics before
    // publishing: a message published before a subscribe has taken effect
    // is not owed to the app (issue 21, item 7: the library used to replay
    // such a message after later ones, when a drop came within its reorder
    // window; it now starts a topic from the cursor `subscribed` gives).
    await eventually(async () => (await app.connects()) > 0, 45_000, 'first connection');
    for (const topic of topics) {
      const members = stack.probe.keys.audience('topic', topic).keys;
      await eventually(
        async () =>
          (await stack.probe.redis.zcard(members.live)) +
            (await stack.probe.redis.zcard(members.resuming)) >
          0,
        45_000,
        `member of ${topic}`,
      );
    }

    const streams: { name: string; target: object; results: PublishResult[] }[] = [
      { name: 'user', target: { userId: user }, results: [] },
      ...topics.map((topic) => ({ name: topic, target: { topic }, results: [] })),
    ];
    const broken: Record<Chaos, number> = {
      kick: 0,
      reset: 0,
      ghost: 0,
      stall: 0,
      forget: 0,
      restart: 0,
    };
    // One schedule, fixed by the seed: which stream each publish goes to
    // (one after another, each awaited), the pause after it, and which break
    // (if any) follows it. Only how fast the machine reacts is left to
    // chance, so a seed that failed replays the same run of events.
    const schedule: string[] = [];
    const left = streams.map(() => PER_STREAM);
    for (let sent = 0; sent < PER_STREAM * streams.length; sent++) {
      const open = streams.map((_, i) => i).filter((i) => (left[i] as number) > 0);
      const i = open[Math.floor(rand() * open.length)] as number;
      const stream = streams[i] as (typeof streams)[number];
      const n = PER_STREAM - (left[i] as number);
      left[i] = (left[i] as number) - 1;
      stream.results.push(
        await publishOk(stack.offline, { ...stream.target, data: { stream: stream.name, n } }),
      );
      const pause = rand() * 70;
      const chaos = rand() < 1 / 15 ? (CHAOS[Math.floor(rand() * CHAOS.length)] as Chaos) : null;
      await sleep(pause);
      if (chaos) {
        schedule.push(`${sent}:${chaos}`);
        if (await breakOnce(app, chaos)) broken[chaos]++;
      }
    }

    const total = PER_STREAM * streams.length;
    await eventually(
      async () => (await app.received()).length >= total,
      60_000,
      `all ${total} messages received`,
      200,
    ).catch(async (error: unknown) => {
      console.error(`seed ${seed}: received ${(await app.received()).length} of ${total}`);
      throw error;
    });
    // A late duplicate would show up here.
    await sleep(1_500);

    const received = await app.received();
    const reconnects = (await app.connects()) - 1;
    console.log(
      `client property (${kind}, seed ${seed}): ${received.length} messages of ${total}, ` +
        `${reconnects} reconnections; broken: ${JSON.stringify(broken)} plus a hard timeout ` +
        `every ${HARD_TIMEOUT_S} s; ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `breaks after publish #: ${schedule.join(' ')}`,
    );
    for (const stream of streams) {
      const isTopic = stream.name !== 'user';
      const got = received.filter((m) => (isTopic ? m.topic === stream.name : !m.topic));
      expect(
        got.map((m) => (m.data as { n: number }).n),
        `${stream.name}: each message once, in order (seed ${seed})`,
      ).toEqual(Array.from({ length: PER_STREAM }, (_, n) => n));
      // What the app got is what was published: same ids, same cursors.
      expect(got.map((m) => [m.id, m.cursor])).toEqual(stream.results.map((r) => [r.id, r.cursor]));
    }
    expect(received).toHaveLength(total);
    expect(await app.gaps(), 'history covered every drop: no gap').toEqual([]);
    // The run did break things, in several ways.
    const breaks = Object.values(broken);
    expect(breaks.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(6);
    expect(breaks.filter((n) => n > 0).length).toBeGreaterThanOrEqual(3);
    expect(reconnects).toBeGreaterThanOrEqual(3);
  } catch (error) {
    console.error(`client property (${kind}) failed; rerun with CLIENT_SEED=${seed}`);
    throw error;
  } finally {
    await app.stop();
  }
}

describe('client delivery under faults', () => {
  it('in Node (ws): every message once, in order, per stream', async () => {
    await checkDelivery('node', nodeApp);
  }, 150_000);

  it('in Chromium: every message once, in order, per stream, across page reloads', async () => {
    await checkDelivery('chromium', browserApp);
  }, 150_000);
});

describe('client in the browser', () => {
  it('drops the socket when the browser goes offline and reconnects at once when it is back online', async () => {
    // Prepare: a reconnection delay of ~60 s (Math.random pinned near 1), so
    // only the online event can bring the connection back within seconds.
    const page = await browser.newPage();
    await page.addInitScript('Math.random = () => 0.999');
    await page.exposeFunction('mintToken', tokenFor('cprop-online'));
    const query = new URLSearchParams({
      ws: `ws://localhost:${stack.offline.wsPort}`,
      options: JSON.stringify({ minDelay: 60_000, maxDelay: 60_000 }),
    });
    await page.goto(`${harness}/?${query}`);
    const state = () => evaluate<string>(page, 'window.pw.state');
    const connectionId = () => evaluate<string | undefined>(page, 'window.pw.connectionId');
    try {
      await eventually(async () => (await state()) === 'connected', 45_000, 'connected');
      const first = await connectionId();

      // Act + Assess
      await page.context().setOffline(true);
      await eventually(async () => (await state()) === 'disconnected', 5_000, 'disconnected');
      await sleep(500);
      expect(await state()).toBe('disconnected');
      await page.context().setOffline(false);
      await eventually(async () => (await state()) === 'connected', 20_000, 'connected again');
      expect(await connectionId()).not.toBe(first);
    } finally {
      await page.close();
    }
  });
});

describe('demo page', () => {
  let demo: DemoServer;
  beforeAll(async () => {
    demo = await startDemoServer({
      port: 0,
      wsUrl: `ws://localhost:${stack.offline.wsPort}`,
      lambdaPort: stack.offline.lambdaPort,
    });
  });
  afterAll(async () => demo?.close());

  it('connects as a user; messages published from its form, to the user and to a topic, appear on it', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(demo.url);
      await page.fill('#user', 'demo-ann');
      await page.click('#connect');
      await page.waitForSelector('#state[data-state="connected"]');
      expect(await page.textContent('#connection-id')).not.toBe('–');

      // To herself (the target defaults to the user).
      expect(await page.inputValue('#target')).toBe('demo-ann');
      await page.fill('#data', 'hello from the form');
      await page.click('#publish');
      await page.waitForSelector('#messages li:has-text("hello from the form")');
      expect(await page.textContent('#messages li')).toBe('@demo-annhello from the form');
      // The message can come over the socket before the page has the /publish
      // answer (publish delivers, then answers): wait for the answer too.
      await page.waitForSelector('#result:not(:empty)');
      expect(JSON.parse((await page.textContent('#result')) ?? '')).toMatchObject({
        stored: true,
      });

      // To a topic she subscribed to from the page.
      await page.fill('#topic', 'demo-news');
      await page.click('#subscribe');
      await page.waitForSelector('#topics span:has-text("demo-news")');
      await page.selectOption('#target-kind', 'topic');
      await page.fill('#target', 'demo-news');
      await page.fill('#data', '{"headline":"pushwire ships a client"}');
      // The subscribe frame is on its way: publish once the topic has her as a member.
      const members = stack.probe.keys.audience('topic', 'demo-news').keys;
      await eventually(
        async () =>
          (await stack.probe.redis.zcard(members.live)) +
            (await stack.probe.redis.zcard(members.resuming)) >
          0,
        10_000,
        'demo-ann subscribed to demo-news',
      );
      // Who is online (issue 16): the topic's member list, with the name from her token's info.
      await page.click('#online-refresh');
      await page.waitForSelector('#online li[data-topic="demo-news"]:has-text("demo-ann")');
      expect(await page.textContent('#online li[data-topic="demo-news"]')).toBe(
        '#demo-news: demo-ann (1)',
      );
      await page.click('#publish');
      const topicMessage = page.locator('#messages li', { hasText: '#demo-news' });
      await topicMessage.waitFor();
      expect(await topicMessage.textContent()).toBe(
        '#demo-news{"headline":"pushwire ships a client"}',
      );

      // A bad request is shown, not thrown.
      await page.fill('#target', 'bad topic name');
      await page.click('#publish');
      await page.waitForSelector('#result:has-text("refused")');
    } finally {
      await page.close();
    }
  });

  it('chat room: a message sent from one page appears on both, and typing shows on the other only (issue 16)', async () => {
    const [ann, bob] = [await browser.newPage(), await browser.newPage()];
    try {
      for (const [page, user] of [
        [ann, 'chat-ann'],
        [bob, 'chat-bob'],
      ] as const) {
        await page.goto(demo.url);
        await page.fill('#user', user);
        await page.click('#connect');
        await page.waitForSelector('#state[data-state="connected"]');
      }
      // Both joined chat:lobby on connecting: type once both are members.
      const room = stack.probe.keys.audience('topic', 'chat:lobby').keys;
      await eventually(
        async () => (await stack.probe.redis.zcard(room.live)) >= 2,
        10_000,
        'both pages in chat:lobby',
      );
      await bob.type('#chat-text', 'hi ann');
      await ann.waitForSelector('#typing:has-text("chat-bob is typing")');
      expect(await bob.textContent('#typing')).toBe('');
      await bob.click('#chat-send');
      for (const page of [ann, bob]) {
        const line = page.locator('#chat-lines li', { hasText: 'hi ann' });
        await line.waitFor();
        expect(await line.textContent()).toBe('chat-bobhi ann');
      }
      // Bob's message ends his typing on Ann's page; the log does not show typing messages.
      await ann.waitForSelector('#typing:text-is("")');
      expect(await ann.locator('#messages li', { hasText: 'typing' }).count()).toBe(0);
    } finally {
      await ann.close();
      await bob.close();
    }
  });
});
