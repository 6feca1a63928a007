import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as Client from '../../client/pushwire.js';
import { devToken } from '../../scripts/token.js';
import { contractFetch } from '../helpers/contract.js';
import { eventually, type TrackedClient } from '../helpers/offline.js';
import { connectTracked, isMessage, messageIds, publishOk, useStack } from '../helpers/stack.js';

/**
 * Messages past 128 KB end to end (issue 17; docs/protocol.md PW-F6):
 * services publish up to MAX_PUBLISH_BYTES (1 MiB by default) through Invoke
 * and the HTTP API; every connection gets `part` frames of at most 128 KB,
 * which a plain WebSocket client (test/helpers/client.ts, following
 * docs/clients.md) and the client library reassemble into one message, once.
 * A drop in the middle of one loses nothing: the resume brings it whole.
 */

const stack = useStack();
const MiB = 1024 * 1024;

async function connectAs(userId: string, topics?: string[]): Promise<TrackedClient> {
  return connectTracked(
    stack,
    stack.offline,
    userId,
    await devToken(userId, topics ? { topics } : {}),
  );
}

async function http(body: unknown) {
  const response = await contractFetch(`http://localhost:${stack.offline.httpPort}/publish`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: a test's view of a JSON answer
  return { status: response.status, body: (await response.json()) as any };
}

/** `data` of exactly `bytes` as JSON: characters of 1 to 4 bytes and escapes throughout. */
function dataOf(bytes: number) {
  const text = 'aé€😀"\\\n'.repeat(Math.floor((bytes - 40) / 16));
  return { text, pad: 'x'.repeat(bytes - 18 - Buffer.byteLength(JSON.stringify(text))) };
}

/** The part frames a plain client got for one message: each within API Gateway's 128 KB. */
function partsOf(c: TrackedClient, id: string) {
  const parts = c.client.parts.filter((p) => p.id === id);
  for (const p of parts) expect(p.bytes).toBeLessThanOrEqual(128 * 1024);
  expect(c.client.partErrors).toEqual([]);
  return parts;
}

describe('messages past 128 KB, end to end through serverless-offline', () => {
  it('delivers 1 MiB to a user (Invoke) and to a topic (HTTP API), once each, whole, in parts of at most 128 KB', async () => {
    // Prepare
    const data = dataOf(MiB);
    expect(Buffer.byteLength(JSON.stringify(data))).toBe(MiB);
    const phone = await connectAs('big-ann');
    const laptop = await connectAs('big-ann');
    const member = await connectAs('big-ben', ['big:room']);
    await member.client.request({ action: 'subscribe', topic: 'big:room' }, (f) =>
      ['subscribed', 'error'].includes(f.type),
    );

    // Act
    const toUser = await publishOk(stack.offline, { userId: 'big-ann', data });
    const toTopic = await http({ topic: 'big:room', data });

    // Assess: the user's devices
    expect(toUser).toMatchObject({ recipients: 2, delivered: 2, failed: 0, stored: true });
    for (const device of [phone, laptop]) {
      const frame = await device.client.next(isMessage(toUser.id), 30_000);
      expect(frame).toEqual({ type: 'message', id: toUser.id, cursor: toUser.cursor, data });
      expect(device.client.reassembled.has(frame)).toBe(true);
      // 1 MiB, its escapes escaped again in the parts: 11 parts of at most 127 KiB.
      expect(partsOf(device, toUser.id).map((p) => p.n)).toEqual([...Array(11).keys()]);
    }
    // The topic's member
    expect(toTopic.status).toBe(200);
    expect(toTopic.body).toMatchObject({ recipients: 1, delivered: 1, failed: 0, stored: true });
    const frame = await member.client.next(isMessage(toTopic.body.id), 30_000);
    expect(frame).toEqual({
      type: 'message',
      id: toTopic.body.id,
      topic: 'big:room',
      cursor: toTopic.body.cursor,
      data,
    });
    // Once: a sentinel after each has arrived after everything before it.
    const end = await publishOk(stack.offline, { userId: 'big-ann', data: 'end' });
    for (const device of [phone, laptop]) {
      await device.client.next(isMessage(end.id));
      expect(messageIds(device)).toEqual([toUser.id, end.id]);
    }
    // History holds each message once.
    const history = stack.probe.keys.audience('user', 'big-ann').keys.history;
    expect(await stack.probe.redis.xlen(history)).toBe(2);
  }, 120_000);

  it('the queue publishes a message as large as an SQS message can hold (1 MiB with its request)', async () => {
    // Prepare: an SQS record as Lambda's event source mapping delivers it, its body just under 1 MiB
    const device = await connectAs('big-queue');
    const data = dataOf(MiB - 100);
    const body = JSON.stringify({ userId: 'big-queue', data });
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MiB);
    const record = {
      messageId: 'q-big-1',
      receiptHandle: 'AQEBq-big-1',
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: String(Date.now()),
        SenderId: 'AIDAEXAMPLE',
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: '0',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:pushwire-local-publish',
      awsRegion: 'us-east-1',
    };

    // Act
    const answer = await stack.offline.invoke('queue', { Records: [record] });

    // Assess: published with the SQS message id as its id, delivered whole
    expect(answer).toEqual({ batchItemFailures: [] });
    const frame = await device.client.next(isMessage('q-big-1'), 30_000);
    expect(frame['data']).toEqual(data);
    expect(partsOf(device, 'q-big-1').length).toBeGreaterThan(1);
  }, 60_000);

  it('refuses data over MAX_PUBLISH_BYTES with too_large naming the limit, through Invoke and HTTP, storing nothing', async () => {
    // Prepare
    const over = { userId: 'big-cy', data: 'x'.repeat(MiB - 1) }; // 1 MiB + 1 as JSON
    const history = stack.probe.keys.audience('user', 'big-cy').keys.history;

    // Act
    const invoked = await stack.offline.invoke('publish', over);
    const posted = await http(over);

    // Assess
    const error = {
      code: 'too_large',
      message: `data is ${MiB + 1} bytes as JSON; this deployment publishes at most ${MiB} (MAX_PUBLISH_BYTES)`,
    };
    expect(invoked).toEqual({ error });
    expect(posted).toEqual({ status: 413, body: { error } });
    expect(await stack.probe.redis.exists(history)).toBe(0);
  }, 60_000);

  it('a drop in the middle of a large message: the client library resumes and hands it over once, whole, in order', async () => {
    // Prepare: the library's socket, cut by the test after the third part of the big message
    const data = dataOf(700 * 1024);
    let cut = false;
    let opened = 0;
    class CuttingSocket implements Client.SocketLike {
      onopen: unknown = null;
      onmessage: unknown = null;
      onclose: unknown = null;
      onerror: unknown = null;
      readonly #ws: WebSocket;
      constructor(url: string) {
        opened++;
        this.#ws = new WebSocket(url);
        this.#ws.on('open', () => (this.onopen as () => void)?.());
        this.#ws.on('message', (raw) => {
          const text = raw.toString();
          if (!cut && text.startsWith('{"type":"part","id":"big-1","n":2,')) {
            cut = true;
            this.#ws.terminate();
            return;
          }
          (this.onmessage as (e: { data: string }) => void)?.({ data: text });
        });
        this.#ws.on('close', () => (this.onclose as () => void)?.());
        this.#ws.on('error', () => undefined);
      }
      send(text: string) {
        this.#ws.send(text);
      }
      close() {
        this.#ws.close();
      }
    }
    const got: Client.Message[] = [];
    const pw = new Client.Pushwire({
      url: `ws://localhost:${stack.offline.wsPort}`,
      token: () => devToken('big-dee'),
      storage: null,
      WebSocket: CuttingSocket,
      minDelay: 100,
      maxDelay: 500,
    });
    pw.on('message', (m) => void got.push(m));
    pw.connect();
    await eventually(() => pw.state === 'connected', 15_000, 'connected');
    const before = await publishOk(stack.offline, { id: 'before', userId: 'big-dee', data: 0 });
    await eventually(() => got.length === 1, 15_000, 'the first message');

    // Act: the big message (cut after its second part), then one more
    const big = await publishOk(stack.offline, { id: 'big-1', userId: 'big-dee', data });
    await eventually(() => cut, 15_000, 'the cut');
    const after = await publishOk(stack.offline, { id: 'after', userId: 'big-dee', data: 2 });

    // Assess: the cut connection was told nothing more; the resume brought the rest, each once
    await eventually(() => got.length >= 3, 30_000, 'all three messages');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(big).toMatchObject({ recipients: 1 });
    expect(cut).toBe(true);
    expect(opened).toBeGreaterThanOrEqual(2);
    expect(got.map((m) => m.id)).toEqual(['before', 'big-1', 'after']);
    expect(got[1]).toMatchObject({ id: 'big-1', cursor: big.cursor, data });
    expect(got.map((m) => m.cursor)).toEqual([before.cursor, big.cursor, after.cursor]);
    pw.close();
  }, 120_000);
});
