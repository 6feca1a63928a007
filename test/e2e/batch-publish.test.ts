/**
 * Batch publish end to end (issue 17), through `npm start`: one call with
 * messages to users, topics and connection ids, each connection receiving
 * its messages combined in `batch` frames (checked against asyncapi.yaml),
 * through `deliver` workers (FANOUT_CHUNK=3 here, so every batch below is
 * chunked); a retried batch sends nothing again; a bad batch is refused
 * whole; the client library hands every message to the app once, in order.
 */
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import type { BatchResult } from '../../lib/delivery/batch.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { devToken } from '../../scripts/token.js';
import { createPushwire } from '../../server/index.js';
import { contractFetch } from '../helpers/contract.js';
import type { TrackedClient } from '../helpers/offline.js';
import { connectTracked, untilPasses, useStack } from '../helpers/stack.js';

const stack = useStack({ env: { FANOUT_CHUNK: '3' } });

const publishBatch = async (payload: unknown) => {
  const reply = await stack.offline.invoke<BatchResult | { error: unknown }>('publish', payload);
  if ('error' in reply) throw new Error(`refused: ${JSON.stringify(reply)}`);
  return reply;
};

async function connect(userId: string, topics: string[]): Promise<TrackedClient> {
  const token = await devToken(userId, { topics });
  const tracked = await connectTracked(stack, stack.offline, userId, token);
  await tracked.client.request({ action: 'ping' }, (f) => f.type === 'pong');
  for (const topic of topics) {
    await tracked.client.request(
      { action: 'subscribe', topic },
      (f) => f.type === 'subscribed' && f['topic'] === topic,
    );
  }
  return tracked;
}

/** A ping round trip: every post of an earlier publish is in before its pong. */
const settle = (...clients: TrackedClient[]) =>
  Promise.all(clients.map((c) => c.client.request({ action: 'ping' }, (f) => f.type === 'pong')));

/**
 * What a client received: its message frames (TestClient unpacks a `batch`
 * into the messages it carries, in order, and counts the batches), and how
 * many WebSocket messages carried them.
 */
function got(c: TrackedClient) {
  const messages = c.client.messages();
  const plain = messages.filter((m) => !c.client.batched.has(m)).length;
  return {
    posts: c.client.batches + plain,
    batches: c.client.batches,
    ids: messages.map((m) => m['id']),
    messages,
  };
}

describe('batch publish through npm start', () => {
  it('delivers mixed audiences combined per connection, in order, once; a retry sends nothing; a bad batch is refused whole', async () => {
    const a1 = await connect('b-alice', ['b-news']);
    const a2 = await connect('b-alice', ['b-crowd']);
    const bob = await connect('b-bob', ['b-news', 'b-crowd']);
    const carol = await connect('b-carol', ['b-news', 'b-crowd']);
    const dave = await connect('b-dave', ['b-crowd']);
    const all = [a1, a2, bob, carol, dave];
    const batch = {
      messages: [
        { id: 'e-0', userId: 'b-alice', data: { n: 0 } },
        { id: 'e-1', topic: 'b-news', data: { n: 1 } },
        { id: 'e-2', userIds: ['b-alice', 'b-bob'], data: { n: 2 } },
        // b-crowd has 4 members, over FANOUT_CHUNK: streamed, its messages combined together.
        { id: 'e-3', topic: 'b-crowd', data: { n: 3 } },
        { id: 'e-4', connectionIds: [carol.connectionId], data: { n: 4 } },
        { id: 'e-5', topic: 'b-crowd', data: { n: 5 } },
      ],
    };
    const result = await publishBatch(batch);
    expect(result.chunks).toBeGreaterThan(1);
    expect(result.failed).toBe(0);
    expect(result.messages.map((m) => ('error' in m ? m.error : [m.id, m.delivered]))).toEqual([
      ['e-0', 2],
      ['e-1', 3],
      ['e-2', 3],
      ['e-3', 4],
      ['e-4', 1],
      ['e-5', 4],
    ]);
    await settle(...all);

    expect(got(a1)).toMatchObject({ posts: 1, batches: 1, ids: ['e-0', 'e-1', 'e-2'] });
    expect(got(dave)).toMatchObject({ posts: 1, batches: 1, ids: ['e-3', 'e-5'] });
    // The joined part and the streamed topic come as two frames, each in order.
    for (const [c, joined] of [
      [a2, ['e-0', 'e-2']],
      [bob, ['e-1', 'e-2']],
      [carol, ['e-1', 'e-4']],
    ] as const) {
      const { posts, batches, ids } = got(c);
      expect([posts, batches]).toEqual([2, 2]);
      expect(ids.filter((id) => !['e-3', 'e-5'].includes(id as string))).toEqual(joined);
      expect(ids.filter((id) => ['e-3', 'e-5'].includes(id as string))).toEqual(['e-3', 'e-5']);
    }
    // Each message carries its own stream's cursor; the user's increase in request order.
    const [m0, , m2] = got(a1).messages;
    expect(m0?.['cursor']).toBe((result.messages[0] as { cursor: string }).cursor);
    expect(m2?.['cursor']).toBe(
      (result.messages[2] as { cursors: Record<string, string> }).cursors['b-alice'],
    );
    expect(got(bob).messages.find((m) => m['id'] === 'e-2')?.['cursor']).toBe(
      (result.messages[2] as { cursors: Record<string, string> }).cursors['b-bob'],
    );

    // The same batch again: every message a duplicate with its first result, nothing sent.
    const before = all.map((c) => c.client.frames.length);
    const retry = await publishBatch(batch);
    expect(retry.messages).toEqual(result.messages.map((m) => ({ ...m, duplicate: true })));
    await settle(...all);
    // Only the settle's pong came.
    expect(all.map((c) => c.client.frames.length)).toEqual(before.map((n) => n + 1));

    // Refused whole over HTTP: 400 naming the message, 413 for a message over 128 KB; nothing sent.
    const post = (body: unknown) =>
      contractFetch(`http://localhost:${stack.offline.httpPort}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = await post({
      messages: [
        { id: 'x-0', userId: 'b-dave', data: 1 },
        { id: 'x-1', topic: 'no spaces allowed', data: 2 },
      ],
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /^messages\[1\]: /,
    );
    const big = await post({
      messages: [
        { id: 'y-0', userId: 'b-dave', data: 1 },
        { id: 'y-1', userId: 'b-dave', data: 'x'.repeat(140_000) },
      ],
    });
    expect(big.status).toBe(413);
    // The HTTP API publishes a valid batch like Invoke.
    const viaHttp = await post({ messages: [{ id: 'z-0', userId: 'b-dave', data: 'z' }] });
    expect(viaHttp.status).toBe(200);
    await settle(dave);
    expect(got(dave).ids).toEqual(['e-3', 'e-5', 'z-0']);
    expect(got(dave)).toMatchObject({ posts: 2, batches: 1 });
  });
});

describe('the client library and the server SDK with batches', () => {
  let lib: typeof Client;
  beforeAll(async () => {
    await writeClientBundle();
    lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  });
  const opened: Client.Pushwire[] = [];
  afterAll(() => {
    for (const pw of opened) pw.close();
  });

  it('hands the app every message of a batch once, in order per stream, also after a retried batch', async () => {
    const topics = ['lib-t1', 'lib-t2'];
    const pw = new lib.Pushwire({
      url: stack.offline.wsUrl({}),
      token: await devToken('lib-erin', { topics }),
      storage: null,
      WebSocket: WebSocket as unknown as Client.SocketClass,
    });
    opened.push(pw);
    const received: Client.Message[] = [];
    pw.on('message', (m) => received.push(m));
    for (const t of topics) pw.subscribe(t);
    pw.connect();
    const sdk = createPushwire({
      http: { url: `http://localhost:${stack.offline.httpPort}`, fetch: contractFetch },
    });
    // Subscribed once a message to each topic arrives.
    await untilPasses(async () => {
      const warm = await sdk.publishBatch({
        messages: topics.map((topic) => ({ topic, data: 'warm' })),
      });
      const ids = warm.messages.map((m) => m.id);
      await untilPasses(async () => {
        expect(ids.every((id) => received.some((m) => m.id === id))).toBe(true);
      }, 2_000);
    }, 30_000);
    received.length = 0;

    const messages = Array.from({ length: 30 }, (_, i) => {
      const target =
        i % 3 === 0 ? { userId: 'lib-erin' } : { topic: topics[i % 3 === 1 ? 0 : 1] as string };
      return { ...target, id: `lib-${i}`, data: { i, pad: 'p'.repeat(6_000) } };
    });
    const first = await sdk.publishBatch({ messages });
    expect(first.messages.every((m) => 'delivered' in m && m.delivered === 1)).toBe(true);
    const retried = await sdk.publishBatch({ messages });
    expect(retried.messages.every((m) => 'duplicate' in m)).toBe(true);
    const last = await sdk.publish({ userId: 'lib-erin', data: 'end' });
    await untilPasses(async () => expect(received.some((m) => m.id === last.id)).toBe(true));

    const ids = received.filter((m) => m.data !== 'end').map((m) => m.id);
    expect([...ids].sort()).toEqual(messages.map((m) => m.id).sort());
    for (const stream of [undefined, ...topics]) {
      const inStream = received.filter((m) => m.topic === stream && m.data !== 'end');
      expect(inStream.map((m) => m.id)).toEqual(
        messages.filter((m) => ('topic' in m ? m.topic : undefined) === stream).map((m) => m.id),
      );
    }
  });
});
