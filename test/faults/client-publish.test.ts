/**
 * Client publish under faults (issue 16): a publish whose acknowledgement is
 * lost is sent again by the client library with the same id, and reaches
 * every subscriber once. Two ways to lose it: `$default`'s Invoke of
 * `publish` has its answer lost after `publish` delivered (the client is
 * told `unavailable` and retries), and the client's connection is reset
 * right after it sent the publish (the frame may or may not have reached the
 * server: either way the library sends it again on its next connection).
 */
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { devToken } from '../../scripts/token.js';
import { failFirst } from '../helpers/fault-proxy.js';
import { ChaosProxy } from '../helpers/proxy.js';
import { useFaultStack } from './harness.js';

const stack = useFaultStack();
let lib: typeof Client;
let proxy: ChaosProxy;
const running: Client.Pushwire[] = [];

beforeAll(async () => {
  await writeClientBundle();
  lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  proxy = await ChaosProxy.start(stack.edge.wsPort);
});

afterAll(async () => {
  for (const pw of running) pw.close();
  await proxy?.close();
});

/** A library client of `user` on `topic` (through the chaos proxy when `proxied`). */
async function client(user: string, topic: string, proxied: boolean) {
  const token = await devToken(user, { topics: [topic], publish: [topic] });
  const url = proxied ? `ws://localhost:${proxy.port}` : stack.wsUrl({});
  const pw = new lib.Pushwire({
    url,
    token,
    storage: null,
    WebSocket: WebSocket as unknown as Client.SocketClass,
    minDelay: 100,
    maxDelay: 500,
    pongTimeout: 3_000,
    ackTimeout: 3_000,
  });
  running.push(pw);
  const received: Client.Message[] = [];
  pw.on('message', (m) => received.push(m));
  pw.subscribe(topic);
  pw.connect();
  return { pw, received };
}

/** Until both are subscribed: a service's message on the topic has reached both (sent again until it has). */
async function ready(topic: string, clients: { received: Client.Message[] }[]): Promise<void> {
  for (let i = 0; ; i++) {
    const warm = await stack.publishOnce({ topic, id: `warm-${topic}-${i}`, data: 'warm' });
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      if (clients.every((c) => c.received.some((m) => m.id === warm.id))) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (i > 20) throw new Error('the clients never subscribed');
  }
}

/** Waits for a service sentinel on every client: what was posted before it has arrived. */
async function settle(topic: string, clients: { received: Client.Message[] }[]): Promise<void> {
  const last = await stack.publishOnce({ topic, id: `sentinel-${topic}`, data: 'sentinel' });
  const deadline = Date.now() + 30_000;
  while (!clients.every((c) => c.received.some((m) => m.id === last.id))) {
    if (Date.now() > deadline) throw new Error('the sentinel never arrived');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const isClientPublish = (req: { path: string; body: Buffer }) =>
  req.path.includes('/functions/pushwire-local-publish/') && req.body.includes('"clientPublish"');

describe('client publish: a lost acknowledgement', () => {
  it('publish delivered but its answer to $default lost: retried with the same id, delivered once', async () => {
    const topic = 'faults-ack-lost';
    const sender = await client('fault-sender', topic, false);
    const reader = await client('fault-reader', topic, false);
    await ready(topic, [sender, reader]);
    const injectedBefore = stack.lambda.counts['lost-answer'];
    // The first Invoke of each client publish: `publish` runs, its answer never comes back.
    stack.lambda.decide = failFirst(1, { kind: 'lost-answer', ms: 200 }, isClientPublish);
    try {
      const ack = await sender.pw.publish(topic, { n: 1 }, { id: 'lost-1' });
      expect(stack.lambda.counts['lost-answer'] - injectedBefore).toBe(1);
      // The retry found it published: the first attempt's cursor, marked duplicate.
      expect(ack).toMatchObject({ id: 'lost-1', duplicate: true, cursor: expect.any(String) });
    } finally {
      stack.lambda.reset();
    }
    await settle(topic, [sender, reader]);
    for (const c of [sender, reader])
      expect(c.received.filter((m) => m.id === 'lost-1')).toEqual([
        expect.objectContaining({ id: 'lost-1', from: 'fault-sender', data: { n: 1 } }),
      ]);
  });

  it("the sender's connection reset right after it sent: sent again on the next connection, delivered once", async () => {
    const topic = 'faults-ack-reset';
    const sender = await client('reset-sender', topic, true);
    const reader = await client('reset-reader', topic, false);
    await ready(topic, [sender, reader]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `reset-${i}`;
      ids.push(id);
      const acked = sender.pw.publish(topic, { i }, { id });
      // Both ends reset: whether the frame got through before is a race, and either way is fine.
      expect(proxy.reset()).toBeGreaterThan(0);
      expect(await acked).toMatchObject({ id, cursor: expect.any(String) });
      // Connected again before the next round (a reset needs a connection to reset).
      while (sender.pw.state !== 'connected' || proxy.connections === 0)
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await settle(topic, [sender, reader]);
    for (const c of [sender, reader])
      expect(c.received.filter((m) => ids.includes(m.id)).map((m) => m.id)).toEqual(ids);
  });
});
