import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { devToken } from '../../scripts/token.js';
import type { Frame } from '../helpers/client.js';
import type { TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, publishOk, untilPasses, useStack } from '../helpers/stack.js';

/**
 * Client publish (issue 16; docs/protocol.md PW-C) end to end: real WebSocket
 * clients and the client library against `npm start`, `$default` handing each
 * publish to the `publish` function through serverless-offline's Lambda
 * Invoke, and the example publish hook (functions/publish-hook-example.ts)
 * on `hooked:*` topics.
 */

/** Per connection: 5 publishes per minute (a window no test outlasts, so counts are exact). */
const RATE = 5;
const MAX_BYTES = 1_024;

const stack = useStack({
  env: {
    CLIENT_PUBLISH_RATE: String(RATE),
    CLIENT_PUBLISH_WINDOW_SECONDS: '60',
    CLIENT_PUBLISH_MAX_BYTES: String(MAX_BYTES),
    PUBLISH_HOOK_FUNCTION: 'pushwire-local-publishHookExample',
    PUBLISH_HOOK_TOPICS: 'hooked:*',
    PUBLISH_HOOK_TIMEOUT_MS: '1500',
  },
});

async function connectAs(
  userId: string,
  claims: { topics?: string[]; publish?: string[] },
): Promise<TrackedClient> {
  return connectTracked(stack, stack.offline, userId, await devToken(userId, claims));
}

let refs = 0;
/** Sends a publish frame and waits for its answer (the reply or error carrying its ref). */
async function send(c: TrackedClient, frame: Record<string, unknown>): Promise<Frame> {
  const ref = `r${++refs}`;
  return c.client.request({ action: 'publish', ref, ...frame }, (f) => f['ref'] === ref);
}

async function subscribe(c: TrackedClient, topic: string, since?: string): Promise<void> {
  const ref = `s${++refs}`;
  const reply = await c.client.request(
    { action: 'subscribe', topic, ref, ...(since && { since }) },
    (f) => f['ref'] === ref || (f.type === 'resumed' && f['topic'] === topic),
  );
  expect(reply.type).not.toBe('error');
  if (since) await c.client.next((f) => f.type === 'resumed' && f['topic'] === topic);
}

/**
 * Publishes a service sentinel to the topic and waits for every client to
 * have it: whatever was posted to them before it has arrived by then (posts
 * to one socket arrive in order), so "nothing arrived" is checked without a
 * fixed sleep.
 */
async function sentinel(topic: string, clients: TrackedClient[]): Promise<void> {
  const result = await publishOk(stack.offline, { topic, data: 'sentinel' });
  await Promise.all(clients.map((c) => c.client.next(isMessage(result.id))));
}

const messagesOn = (c: TrackedClient, topic: string) =>
  c.client.messages().filter((m) => m['topic'] === topic && m['data'] !== 'sentinel');

describe('client publish: grants (PW-C1)', () => {
  it('publishes where the publish claim allows, with the same prefix rule as topics, and nowhere else', async () => {
    const alice = await connectAs('alice', {
      topics: ['chat:*', 'news'],
      publish: ['chat:room:*', 'exact'],
    });
    for (const topic of ['chat:room:1', 'chat:room:a:b', 'exact']) {
      const reply = await send(alice, { topic, data: { t: topic } });
      expect(reply, topic).toMatchObject({ type: 'published', topic });
    }
    // The prefix stops at its separator; subscribing grants nothing; deny by default.
    for (const topic of ['chat:room', 'chat:roomx', 'chat:other', 'news', 'exactly', 'exac']) {
      const reply = await send(alice, { topic, data: 1 });
      expect(reply, topic).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(String(reply['message'])).toContain(topic);
    }
    const noClaim = await connectAs('bob', { topics: ['*'] });
    expect(await send(noClaim, { topic: 'chat:room:1', data: 1 })).toMatchObject({
      type: 'error',
      code: 'forbidden',
    });
  });

  it('an auth refresh replaces the publish grants', async () => {
    const carol = await connectAs('carol', { publish: ['a:*'] });
    expect(await send(carol, { topic: 'a:1', data: 1 })).toMatchObject({ type: 'published' });
    const ref = `auth${++refs}`;
    const refreshed = await carol.client.request(
      { action: 'auth', token: await devToken('carol', { publish: ['b:*'] }), ref },
      (f) => f['ref'] === ref,
    );
    expect(refreshed.type).toBe('authenticated');
    expect(await send(carol, { topic: 'a:1', data: 2 })).toMatchObject({ code: 'forbidden' });
    expect(await send(carol, { topic: 'b:1', data: 3 })).toMatchObject({ type: 'published' });
  });
});

describe('client publish: the ack, from, dedup and echo (PW-C3, PW-C4, PW-C5)', () => {
  it('acks with id and cursor, delivers with `from`, stores it for resume, and a retry with the same id is delivered once', async () => {
    const topic = 'room:ack';
    const sender = await connectAs('dave', { topics: [topic], publish: [topic] });
    const reader = await connectAs('erin', { topics: [topic] });
    await subscribe(sender, topic);
    await subscribe(reader, topic);

    const ack = await send(sender, { topic, id: 'msg-1', data: { text: 'hi' } });
    expect(ack).toEqual({
      type: 'published',
      topic,
      id: 'msg-1',
      cursor: expect.stringMatching(/^\d+-\d+$/),
      ref: expect.any(String),
    });
    const expected = {
      type: 'message',
      id: 'msg-1',
      topic,
      cursor: ack['cursor'],
      from: 'dave',
      data: { text: 'hi' },
    };
    expect(await reader.client.next(isMessage('msg-1'))).toEqual(expected);
    // Echo is the default: the sender's own connection gets it too.
    expect(await sender.client.next(isMessage('msg-1'))).toEqual(expected);

    // The ack was "lost": the same id again is answered with the same cursor, and sent to nobody.
    const again = await send(sender, { topic, id: 'msg-1', data: { text: 'hi' } });
    expect(again).toMatchObject({ type: 'published', id: 'msg-1', cursor: ack['cursor'] });
    expect(again['duplicate']).toBe(true);
    await sentinel(topic, [sender, reader]);
    expect(messagesOn(reader, topic)).toEqual([expected]);
    expect(messagesOn(sender, topic)).toEqual([expected]);

    // `from` is the token's user, whatever the frame says: the frame may not carry one.
    expect(await send(sender, { topic, data: 1, from: 'mallory' })).toMatchObject({
      type: 'error',
      code: 'invalid_frame',
    });

    // Stored like a service's topic publish: a late subscriber resumes it, `from` and all.
    const late = await connectAs('frank', { topics: [topic] });
    await subscribe(late, topic, `${Number(String(ack['cursor']).split('-')[0]) - 1}`);
    expect(messagesOn(late, topic)).toEqual([expected]);
  });

  it('another user cannot claim (or pre-empt) the same id: ids are per user', async () => {
    const topic = 'room:ids';
    const a = await connectAs('gina', { topics: [topic], publish: [topic] });
    const b = await connectAs('hank', { topics: [topic], publish: [topic] });
    await subscribe(a, topic);
    const first = await send(a, { topic, id: 'same', data: 'from gina' });
    const second = await send(b, { topic, id: 'same', data: 'from hank' });
    expect(second['duplicate']).toBeUndefined();
    expect(second['cursor']).not.toBe(first['cursor']);
    await sentinel(topic, [a]);
    expect(messagesOn(a, topic).map((m) => [m['from'], m['data']])).toEqual([
      ['gina', 'from gina'],
      ['hank', 'from hank'],
    ]);
  });

  it('echo:false leaves out the sending connection only, not the same user on another device', async () => {
    const topic = 'room:echo';
    const phone = await connectAs('ivan', { topics: [topic], publish: [topic] });
    const laptop = await connectAs('ivan', { topics: [topic] });
    await subscribe(phone, topic);
    await subscribe(laptop, topic);
    expect(await send(phone, { topic, id: 'quiet', data: 1, echo: false })).toMatchObject({
      type: 'published',
    });
    await sentinel(topic, [phone, laptop]);
    expect(messagesOn(phone, topic)).toEqual([]);
    expect(messagesOn(laptop, topic).map((m) => m['id'])).toEqual(['quiet']);
  });
});

describe('client publish: limits (PW-C2)', () => {
  it(`refuses the publish after the ${RATE}th in the window with rate_limited, retryAfter and topic`, async () => {
    const topic = 'room:rate';
    const c = await connectAs('judy', { publish: [topic] });
    for (let i = 0; i < RATE; i++)
      expect(await send(c, { topic, data: i })).toMatchObject({ type: 'published' });
    const refused = await send(c, { topic, data: 'one too many' });
    expect(refused).toMatchObject({ type: 'error', code: 'rate_limited', topic });
    expect(refused['retryAfter']).toBeGreaterThanOrEqual(1);
    expect(refused['retryAfter']).toBeLessThanOrEqual(60);
    // Per connection: the same user on another connection may publish.
    const other = await connectAs('judy', { publish: [topic] });
    expect(await send(other, { topic, data: 'fine' })).toMatchObject({ type: 'published' });
  });

  it('refuses data over CLIENT_PUBLISH_MAX_BYTES, and a frame over 32 KB, with too_large', async () => {
    const topic = 'room:size';
    const c = await connectAs('kate', { topics: [topic], publish: [topic] });
    await subscribe(c, topic);
    // Exactly the limit passes: a JSON string of MAX_BYTES - 2 characters and its quotes.
    expect(await send(c, { topic, data: 'x'.repeat(MAX_BYTES - 2) })).toMatchObject({
      type: 'published',
    });
    expect(await send(c, { topic, data: 'x'.repeat(MAX_BYTES - 1) })).toMatchObject({
      type: 'error',
      code: 'too_large',
    });
    const from = c.client.frames.length;
    c.client.send({ action: 'publish', topic, data: 'y'.repeat(33 * 1024) });
    expect(await c.client.next((f) => f.type === 'error', 10_000, from)).toMatchObject({
      code: 'too_large',
    });
    await sentinel(topic, [c]);
    expect(messagesOn(c, topic).map((m) => String(m['data']).length)).toEqual([MAX_BYTES - 2]);
  });
});

describe('the publish hook (PW-C7)', () => {
  it('allows, denies with its reason, replaces data, and fails distinctly on a timeout, an error or nonsense', async () => {
    const topic = 'hooked:room';
    // Two connections: each stays within its RATE publishes.
    const c = await connectAs('liam', { topics: [topic], publish: [topic, 'plain'] });
    const c2 = await connectAs('liam', { topics: [topic], publish: [topic, 'plain'] });
    const reader = await connectAs('mona', { topics: [topic] });
    await subscribe(reader, topic);

    expect(await send(c, { topic, id: 'ok', data: { text: 'hello' } })).toMatchObject({
      type: 'published',
    });
    const denied = await send(c, { topic, id: 'no', data: { hook: 'deny' } });
    expect(denied).toMatchObject({ type: 'error', code: 'hook_denied' });
    expect(denied['message']).toContain('the example hook refuses');
    const moderated = await send(c, { topic, data: { text: 'a badword here' } });
    expect(moderated).toMatchObject({ code: 'hook_denied' });
    expect(moderated['message']).toContain('that word is not allowed here');
    expect(await send(c, { topic, id: 'swap', data: { hook: 'replace' } })).toMatchObject({
      type: 'published',
    });
    for (const hook of ['slow', 'fail', 'nonsense']) {
      const failed = await send(c2, { topic, id: hook, data: { hook } });
      expect(failed, hook).toMatchObject({ type: 'error', code: 'hook_failed' });
    }
    await sentinel(topic, [reader]);
    expect(messagesOn(reader, topic).map((m) => [m['id'], m['data']])).toEqual([
      ['ok', { text: 'hello' }],
      ['swap', { replaced: true, by: 'example hook', userId: 'liam' }],
    ]);
    // Topics outside PUBLISH_HOOK_TOPICS do not pass through it.
    expect(await send(c2, { topic: 'plain', data: { hook: 'deny' } })).toMatchObject({
      type: 'published',
    });
  });
});

describe('ephemeral messages (PW-C6)', () => {
  it('are delivered live with ephemeral:true and no cursor, and are absent from a resume, from clients and services alike', async () => {
    const topic = 'room:typing';
    const typist = await connectAs('nick', { topics: [topic], publish: [topic] });
    const watcher = await connectAs('olga', { topics: [topic] });
    await subscribe(typist, topic);
    await subscribe(watcher, topic);

    const stored = await send(typist, { topic, id: 'kept', data: 'kept' });
    const typing = await send(typist, {
      topic,
      id: 'typing-1',
      data: { typing: true },
      ephemeral: true,
      echo: false,
    });
    expect(typing).toEqual({
      type: 'published',
      topic,
      id: 'typing-1',
      ref: expect.any(String),
    });
    const service = await publishOk(stack.offline, {
      topic,
      id: 'svc-typing',
      data: 'service says',
      ephemeral: true,
    });
    expect(service).toMatchObject({ stored: false, delivered: 2 });
    expect(service.cursor).toBeUndefined();

    expect(await watcher.client.next(isMessage('typing-1'))).toEqual({
      type: 'message',
      id: 'typing-1',
      topic,
      from: 'nick',
      ephemeral: true,
      data: { typing: true },
    });
    expect(await watcher.client.next(isMessage('svc-typing'))).toEqual({
      type: 'message',
      id: 'svc-typing',
      topic,
      ephemeral: true,
      data: 'service says',
    });
    await sentinel(topic, [typist, watcher]);
    expect(messagesOn(typist, topic).map((m) => m['id'])).toEqual(['kept', 'svc-typing']);

    // A resume from before all of them replays only the stored one.
    const late = await connectAs('pete', { topics: [topic] });
    await subscribe(late, topic, `${Number(String(stored['cursor']).split('-')[0]) - 1}`);
    expect(messagesOn(late, topic).map((m) => m['id'])).toEqual(['kept']);
  });
});

describe('the client library: publish()', () => {
  let lib: typeof Client;
  beforeAll(async () => {
    await writeClientBundle();
    lib = (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
  });

  const library = async (user: string, claims: { topics?: string[]; publish?: string[] }) => {
    const token = await devToken(user, claims);
    const pw = new lib.Pushwire({
      url: stack.offline.wsUrl({}),
      token,
      storage: null,
      WebSocket: WebSocket as unknown as Client.SocketClass,
    });
    const messages: Client.Message[] = [];
    pw.on('message', (m) => messages.push(m));
    return { pw, messages };
  };

  it('resolves with the ack, hands over messages with from and ephemeral, and rejects a refusal with its code', async () => {
    const topic = 'lib:chat';
    const a = await library('quinn', { topics: [topic], publish: [topic] });
    const b = await library('rita', { topics: [topic] });
    try {
      for (const c of [a, b]) {
        c.pw.subscribe(topic);
        c.pw.connect();
      }
      // Both are subscribed once a service's message reaches both (sent until one does).
      await untilPasses(async () => {
        const warm = await publishOk(stack.offline, { topic, data: 'sentinel' });
        await waitFor(() => [a, b].every((c) => c.messages.some((m) => m.id === warm.id)), 2_000);
      }, 30_000);
      const ack = await a.pw.publish(topic, { text: 'hello' }, { id: 'lib-1' });
      expect(ack).toEqual({
        topic,
        id: 'lib-1',
        cursor: expect.stringMatching(/^\d+-\d+$/),
      });
      const typing = await a.pw.publish(topic, 'typing', { ephemeral: true, echo: false });
      expect(typing.cursor).toBeUndefined();
      // The same id again (as after a lost ack): delivered once, the ack says so.
      expect(await a.pw.publish(topic, { text: 'hello' }, { id: 'lib-1' })).toMatchObject({
        id: 'lib-1',
        cursor: ack.cursor,
        duplicate: true,
      });
      await expect(a.pw.publish('elsewhere', 1)).rejects.toMatchObject({ code: 'forbidden' });
      await expect(b.pw.publish(topic, 1)).rejects.toMatchObject({ code: 'forbidden' });

      const last = await publishOk(stack.offline, { topic, data: 'sentinel' });
      await waitFor(() => b.messages.some((m) => m.id === last.id));
      await waitFor(() => a.messages.some((m) => m.id === last.id));
      expect(b.messages.filter((m) => m.data !== 'sentinel')).toEqual([
        { id: 'lib-1', topic, cursor: ack.cursor, from: 'quinn', data: { text: 'hello' } },
        { id: typing.id, topic, from: 'quinn', ephemeral: true, data: 'typing' },
      ]);
      // Echoed to the sender (the default), but not the echo:false one.
      expect(a.messages.filter((m) => m.data !== 'sentinel').map((m) => m.id)).toEqual(['lib-1']);
    } finally {
      a.pw.close();
      b.pw.close();
    }
  });

  it('sends a publish made before connecting once connected, and rejects what is pending at close() with `closed`', async () => {
    const c = await library('sam', { publish: ['x'] });
    const early = c.pw.publish('x', 1);
    c.pw.connect();
    expect(await early).toMatchObject({ topic: 'x', cursor: expect.any(String) });
    c.pw.close();
    // Closed: the publish waits for a connection that close() ends.
    const pending = c.pw.publish('x', 2);
    c.pw.close();
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
