/**
 * Delta topics end to end (issue 17, docs/protocol.md PW-D): `npm start`'s
 * stack under serverless-offline with DELTA_TOPICS=doc:*, the real client
 * library (client/dist/pushwire.js) with `pushwire/delta`
 * (client/dist/delta.js) as apps load them, over real WebSockets:
 *
 * - a delta topic receiving ~100 KB JSON documents changed by ~1 % each:
 *   the app gets every document whole and equal, the wire carries deltas;
 *   a subscriber without `pushwire/delta` on the same topic gets whole frames;
 * - a drop: the resume replays whole messages, deltas go on after it;
 * - a delta frame lost on the way (the next one's base is not what the
 *   library holds) and a corrupted delta: the library fetches the message
 *   whole and hands over correct data, never the corrupt one.
 */
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { series } from '../../bench/delta-doc.js';
import type * as Delta from '../../client/delta.js';
import type * as Client from '../../client/pushwire.js';
import {
  CLIENT_BUNDLE,
  DELTA_BUNDLE,
  DELTA_SOURCE,
  writeClientBundle,
} from '../../scripts/build-client.js';
import { devToken } from '../../scripts/token.js';
import { checkServerMessage } from '../helpers/contract.js';
import { eventually } from '../helpers/offline.js';
import { publishOk, useStack } from '../helpers/stack.js';

const stack = useStack({ env: { DELTA_TOPICS: 'doc:*', HISTORY_SIZE: '100' } });
let lib: typeof Client;
let delta: typeof Delta;

beforeAll(async () => {
  // The files apps load, built from the current source.
  await writeClientBundle();
  await writeClientBundle(DELTA_SOURCE, DELTA_BUNDLE);
  lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  delta = (await import(pathToFileURL(DELTA_BUNDLE).href)) as typeof Delta;
});

interface WireFrame {
  type?: string;
  id?: string;
  topic?: string;
  cursor?: string;
  delta?: { base: string };
  data?: unknown;
  messages?: WireFrame[];
}

/**
 * An app on the library, with its WebSocket watched: every frame received
 * (checked against the contract), their bytes, and hooks to drop the
 * connection or tamper with a frame before the library sees it.
 */
function app(user: string, topic: string, withDelta: boolean) {
  const frames: WireFrame[] = [];
  const sent: Record<string, unknown>[] = [];
  const received: Client.Message[] = [];
  let bytes = 0;
  let awayUntil = 0;
  let latest: WebSocket | undefined;
  /** Returns the frame's text to hand to the library, or undefined to drop it. */
  let tamper: (text: string, frame: WireFrame) => string | undefined = (text) => text;
  const port = stack.offline.wsPort;
  class Watched extends WebSocket {
    constructor(url: string) {
      super(Date.now() < awayUntil ? 'ws://127.0.0.1:9' : url);
      latest = this;
      const send = this.send.bind(this);
      this.send = ((data: string) => {
        sent.push(JSON.parse(data) as Record<string, unknown>);
        send(data);
      }) as typeof this.send;
      // The library sets `onmessage`; each frame passes the watcher first.
      const own = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
      Object.defineProperty(this, 'onmessage', {
        configurable: true,
        get: () => own?.get?.call(this),
        set: (listener: unknown) =>
          own?.set?.call(
            this,
            typeof listener !== 'function'
              ? listener
              : (event: { data: unknown }) => {
                  const text = String(event.data);
                  checkServerMessage(text);
                  bytes += Buffer.byteLength(text);
                  const frame = JSON.parse(text) as WireFrame;
                  frames.push(frame);
                  const handed = tamper(text, frame);
                  if (handed !== undefined) listener({ data: handed });
                },
          ),
      });
    }
  }
  const options: Client.Options = {
    url: `ws://localhost:${port}`,
    token: () => devToken(user, { topics: ['doc:*'] }),
    storage: null,
    WebSocket: Watched as unknown as Client.SocketClass,
    minDelay: 100,
    maxDelay: 500,
    pingInterval: 2_000,
  };
  const pw = new lib.Pushwire(withDelta ? { ...options, delta: delta.fossilDelta } : options);
  pw.on('message', (m) => received.push(m));
  pw.subscribe(topic);
  pw.connect();
  /** The message frames received, replay batches unpacked. */
  const messageFrames = () =>
    frames
      .flatMap((f) => (f.type === 'batch' ? (f.messages ?? []) : [f]))
      .filter((f) => f.type === 'message');
  return {
    pw,
    frames,
    sent,
    received,
    bytes: () => bytes,
    messageFrames,
    /** The topic's `subscribed` has come (n of them). */
    subscribed: (n = 1) =>
      eventually(
        async () => frames.filter((f) => f.type === 'subscribed' && f.topic === topic).length >= n,
        WAIT,
      ),
    /** Loses the network until back(): every attempt fails at once, as with no network. */
    away() {
      awayUntil = Number.POSITIVE_INFINITY;
      latest?.terminate();
    },
    back() {
      awayUntil = 0;
    },
    tamper(fn: typeof tamper) {
      tamper = fn;
    },
    close: () => pw.close(),
  };
}

/** Generous: the machine is shared. */
const WAIT = 30_000;
const docs = series(12).map((d) => JSON.parse(d) as unknown);
const version = (m: Client.Message) => (m.data as { version: number }).version;

async function publishVersions(topic: string, from: number, to: number) {
  const cursors: string[] = [];
  for (let v = from; v <= to; v++)
    cursors.push((await publishOk(stack.offline, { topic, data: docs[v] })).cursor as string);
  return cursors;
}

describe('delta topics through npm start', () => {
  it('hands whole ~100 KB documents to the app while the wire carries deltas; a subscriber without deltas gets whole frames', async () => {
    await publishOk(stack.offline, { topic: 'doc:catalogue', data: docs[0] });
    const withDelta = app('ada', 'doc:catalogue', true);
    const plain = app('bob', 'doc:catalogue', false);
    try {
      await withDelta.subscribed();
      await plain.subscribed();
      expect(withDelta.frames.find((f) => f.type === 'subscribed')).toMatchObject({
        delta: 'fossil',
      });
      expect(plain.frames.find((f) => f.type === 'subscribed')?.delta).toBeUndefined();

      await publishVersions('doc:catalogue', 1, 10);
      await eventually(
        async () => withDelta.received.length >= 10 && plain.received.length >= 10,
        WAIT,
      );

      // The app got every document, whole, in order, exactly once.
      expect(withDelta.received.map((m) => m.data)).toEqual(docs.slice(1, 11));
      expect(plain.received.map((m) => m.data)).toEqual(docs.slice(1, 11));
      // The first message after the join came whole (no base yet), the rest as deltas.
      const messages = withDelta.messageFrames();
      expect(messages.map((f) => f.delta !== undefined)).toEqual([false, ...Array(9).fill(true)]);
      expect(plain.messageFrames().every((f) => f.delta === undefined)).toBe(true);
      // And far fewer bytes.
      expect(withDelta.bytes()).toBeLessThan(plain.bytes() / 4);
      console.log(
        `delta e2e: 10 documents of ~${Math.round(JSON.stringify(docs[1]).length / 1024)} KB: ${plain.bytes()} bytes whole, ${withDelta.bytes()} bytes with deltas`,
      );
    } finally {
      withDelta.close();
      plain.close();
    }
  });

  it('after a drop the resume replays whole messages, then deltas go on', async () => {
    await publishOk(stack.offline, { topic: 'doc:drop', data: docs[0] });
    const a = app('cy', 'doc:drop', true);
    try {
      await a.subscribed();
      await publishVersions('doc:drop', 1, 3);
      await eventually(async () => a.received.length >= 3, WAIT);
      const before = a.messageFrames().length;

      // Away while three versions are published: they come back by replay.
      a.away();
      await publishVersions('doc:drop', 4, 6);
      a.back();
      await a.subscribed(2);
      await eventually(async () => a.received.length >= 6, WAIT);
      const replayed = a.messageFrames().slice(before);
      expect(replayed.length).toBeGreaterThanOrEqual(3);
      expect(replayed.every((f) => f.delta === undefined)).toBe(true);
      // The resubscribe asked for deltas again, from a cursor.
      expect(a.sent.filter((f) => f['action'] === 'subscribe').at(-1)).toMatchObject({
        delta: 'fossil',
        since: expect.any(String),
      });

      await publishVersions('doc:drop', 7, 8);
      await eventually(async () => a.received.length >= 8, WAIT);
      expect(a.received.map(version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(a.received.map((m) => m.data)).toEqual(docs.slice(1, 9));
      expect(
        a
          .messageFrames()
          .slice(-2)
          .every((f) => f.delta !== undefined),
      ).toBe(true);
    } finally {
      a.close();
    }
  });

  it('a lost delta (base mismatch) and a corrupt one: the library refetches and hands correct data', async () => {
    await publishOk(stack.offline, { topic: 'doc:bad', data: docs[0] });
    const a = app('dee', 'doc:bad', true);
    try {
      await a.subscribed();
      await publishVersions('doc:bad', 1, 2);
      await eventually(async () => a.received.length >= 2, WAIT);

      // v3's delta is lost on the way: v4's base is a cursor the library does not hold.
      let dropped = 0;
      a.tamper((text, f) => {
        if (f.delta && dropped === 0) {
          dropped++;
          return undefined;
        }
        return text;
      });
      const [v3] = await publishVersions('doc:bad', 3, 3);
      await eventually(async () => dropped === 1, WAIT);
      await publishVersions('doc:bad', 4, 4);
      await eventually(async () => a.received.length >= 4, WAIT);
      expect(a.received.map(version)).toEqual([1, 2, 3, 4]);
      expect(a.received.map((m) => m.data)).toEqual(docs.slice(1, 5));
      // It asked for the topic again from before v3.
      const refetch = a.sent.filter((f) => f['action'] === 'subscribe').at(-1);
      expect(refetch).toMatchObject({ topic: 'doc:bad', delta: 'fossil' });
      expect(String(refetch?.['since']) < String(v3)).toBe(true);

      // v5's delta arrives corrupted (one byte changed): never handed over.
      let corrupted = 0;
      a.tamper((text, f) => {
        if (!f.delta || corrupted > 0) return text;
        corrupted++;
        const d = f.data as string;
        const at = Math.floor(d.length / 2);
        return JSON.stringify({
          ...f,
          data: `${d.slice(0, at)}${d[at] === '7' ? '8' : '7'}${d.slice(at + 1)}`,
        });
      });
      await publishVersions('doc:bad', 5, 6);
      await eventually(async () => a.received.length >= 6, WAIT);
      expect(corrupted).toBe(1);
      expect(a.received.map(version)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(a.received.map((m) => m.data)).toEqual(docs.slice(1, 7));
    } finally {
      a.close();
    }
  });
});
