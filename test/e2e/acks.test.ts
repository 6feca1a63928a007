import { beforeAll, describe, expect, it } from 'vitest';
import type * as Client from '../../client/pushwire.js';
import type { AckStatus } from '../../lib/acks/store.js';
import { devToken } from '../../scripts/token.js';
import { builtClient, libraryDevice, waitFor } from '../helpers/built-client.js';
import { contractFetch } from '../helpers/contract.js';
import { eventually } from '../helpers/offline.js';
import { connectTracked, publishOk, useStack } from '../helpers/stack.js';

/**
 * Acknowledged messages (issue 18; docs/protocol.md PW-K) end to end through
 * `npm start`: the real client library auto-acking over the `ack` route,
 * status over Invoke and HTTP, first device wins across three devices, a
 * device resuming after the dismiss, acks from the wrong user refused, and
 * the timeout going the AWS way: a signed SQS SendMessage to the local queue
 * stand-in (scripts/local-queue.ts), held for its delay, then `ackTimeout`
 * invoked with an SQS event, which calls the PushSender and records it.
 */

const stack = useStack();

let lib: typeof Client;
beforeAll(async () => {
  lib = await builtClient();
});

/** A storage shared by the "same device" across restarts. */
const memory = () => {
  const data = new Map<string, string>();
  return {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => data.set(k, v),
  };
};

const device = (user: string, options: Partial<Client.Options> = {}) =>
  libraryDevice(lib, stack.offline.wsUrl({}), user, options);

const status = (id: string, userId: string) =>
  stack.offline.invoke<AckStatus | { error: { code: string } }>('status', { id, userId });

/** Every device has the user's stream live: a plain message reaches all of them. */
async function warm(user: string, devices: { messages: Client.Message[] }[]) {
  const sent = await publishOk(stack.offline, { userId: user, data: 'warm' });
  await waitFor(() => devices.every((d) => d.messages.some((m) => m.id === sent.id)));
}

describe('acknowledged messages', () => {
  it('the library acks an acknowledged message once handed over; status tells by Invoke and HTTP', async () => {
    const a = await device('ack-ann');
    try {
      await warm('ack-ann', [a]);
      const sent = await publishOk(stack.offline, {
        id: 'e2e-ack-1',
        userId: 'ack-ann',
        data: { hello: 1 },
        ack: { timeoutSeconds: 60 },
      });
      await waitFor(() => a.messages.some((m) => m.id === 'e2e-ack-1'));
      expect(a.messages.find((m) => m.id === 'e2e-ack-1')).toEqual({
        id: 'e2e-ack-1',
        cursor: sent.cursor,
        ack: true,
        data: { hello: 1 },
      });
      const acked = await eventually(
        async () => {
          const s = (await status('e2e-ack-1', 'ack-ann')) as AckStatus;
          return s.state === 'acked' && s;
        },
        10_000,
        'acked',
      );
      expect(acked.firstAck?.connectionId).toBe(a.pw.connectionId);
      expect(acked.devices).toEqual([
        {
          connectionId: a.pw.connectionId,
          postedAt: expect.any(Number),
          ackedAt: acked.firstAck?.at,
        },
      ]);
      const http = await contractFetch(`http://localhost:${stack.offline.httpPort}/status`, {
        method: 'POST',
        body: JSON.stringify({ id: 'e2e-ack-1', userId: 'ack-ann' }),
      });
      expect(http.status).toBe(200);
      expect(await http.json()).toMatchObject({ id: 'e2e-ack-1', state: 'acked' });
      const missing = await contractFetch(`http://localhost:${stack.offline.httpPort}/status`, {
        method: 'POST',
        body: JSON.stringify({ id: 'never-published', userId: 'ack-ann' }),
      });
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('not_found');
    } finally {
      a.pw.close();
    }
  });

  it('with no ack in time (no device online), the timeout goes through the SQS stand-in to ackTimeout and the PushSender', async () => {
    const sent = await publishOk(stack.offline, {
      id: 'e2e-timeout-1',
      userId: 'ack-nobody',
      data: 1,
      ack: { timeoutSeconds: 1, notify: { title: 'You missed a call' } },
    });
    expect(sent.recipients).toBe(0);
    const pushed = await eventually(
      async () => {
        const s = (await status('e2e-timeout-1', 'ack-nobody')) as AckStatus;
        return s.state === 'pushed' && s;
      },
      20_000,
      'pushed',
    );
    // The PushSender's answer, recorded once it returned: this user registered no push device.
    expect(pushed.push).toEqual({
      devices: 0,
      sent: 0,
      failed: 0,
      removed: 0,
      at: expect.any(Number),
    });
    expect(pushed.timedOutAt).toBeGreaterThanOrEqual((pushed.publishedAt ?? 0) + 1_000);
    // Without notify: recorded as timed out.
    await publishOk(stack.offline, {
      id: 'e2e-timeout-2',
      userId: 'ack-nobody',
      data: 1,
      ack: { timeoutSeconds: 1 },
    });
    await eventually(
      async () => {
        const s = (await status('e2e-timeout-2', 'ack-nobody')) as AckStatus;
        return s.state === 'timed_out';
      },
      20_000,
      'timed out',
    );
  });

  it('first device wins across three devices; a device resuming later gets it marked dismissed, not a fresh ring', async () => {
    const storage = memory();
    const away = await device('ack-bo', { storage, autoAck: false });
    const [a, b, c] = await Promise.all([
      device('ack-bo', { autoAck: false }),
      device('ack-bo', { autoAck: false }),
      device('ack-bo', { autoAck: false }),
    ]);
    try {
      await warm('ack-bo', [a, b, c, away]);
      away.pw.close();
      const ring = await publishOk(stack.offline, {
        id: 'e2e-ring-1',
        userId: 'ack-bo',
        data: 'ring',
        ack: { timeoutSeconds: 60, dismissOthers: true },
      });
      await waitFor(() => [a, b, c].every((d) => d.messages.some((m) => m.id === 'e2e-ring-1')));
      // Nobody acked yet (autoAck off): nobody dismissed.
      expect((await status('e2e-ring-1', 'ack-bo')) as AckStatus).toMatchObject({
        state: 'pending',
      });
      b.pw.ack('e2e-ring-1');
      await waitFor(() => a.dismissed.length > 0 && c.dismissed.length > 0);
      expect(a.dismissed).toEqual(['e2e-ring-1']);
      expect(c.dismissed).toEqual(['e2e-ring-1']);
      // A second answer changes nothing.
      c.pw.ack('e2e-ring-1');
      await eventually(async () => {
        const s = (await status('e2e-ring-1', 'ack-bo')) as AckStatus;
        return s.devices.filter((d) => d.ackedAt).length === 2 && s;
      });
      const s = (await status('e2e-ring-1', 'ack-bo')) as AckStatus;
      expect(s.firstAck?.connectionId).toBe(b.pw.connectionId);
      expect(b.dismissed).toEqual([]);
      expect(a.dismissed).toEqual(['e2e-ring-1']);

      // The away device comes back (its cursors in its storage): replayed, marked dismissed.
      const back = await device('ack-bo', { storage, autoAck: true });
      try {
        await waitFor(() => back.messages.some((m) => m.id === 'e2e-ring-1'));
        expect(back.messages.find((m) => m.id === 'e2e-ring-1')).toEqual({
          id: 'e2e-ring-1',
          cursor: ring.cursor,
          ack: true,
          dismissed: true,
          data: 'ring',
        });
        expect(back.dismissed).toEqual(['e2e-ring-1']);
        // Not acked again by it (it was dismissed, not rung).
        await new Promise((resolve) => setTimeout(resolve, 500));
        const after = (await status('e2e-ring-1', 'ack-bo')) as AckStatus;
        expect(after.devices.some((d) => d.connectionId === back.pw.connectionId)).toBe(false);
      } finally {
        back.pw.close();
      }
    } finally {
      for (const d of [a, b, c]) d.pw.close();
    }
  });

  it("acks from another user's connection are refused with ack_refused and change nothing", async () => {
    const owner = await device('ack-cy', { autoAck: false });
    try {
      await warm('ack-cy', [owner]);
      await publishOk(stack.offline, {
        id: 'e2e-own-1',
        userId: 'ack-cy',
        data: 1,
        ack: { timeoutSeconds: 60 },
      });
      await waitFor(() => owner.messages.some((m) => m.id === 'e2e-own-1'));
      const mallory = await connectTracked(
        stack,
        stack.offline,
        'ack-mallory',
        await devToken('ack-mallory'),
      );
      const reply = await mallory.client.request(
        { action: 'ack', ids: ['e2e-own-1'], ref: 'k1' },
        (f) => f['ref'] === 'k1',
      );
      expect(reply).toMatchObject({ type: 'error', code: 'ack_refused', ref: 'k1' });
      expect((await status('e2e-own-1', 'ack-cy')) as AckStatus).toMatchObject({
        state: 'pending',
        devices: [{ connectionId: owner.pw.connectionId, postedAt: expect.any(Number) }],
      });
      // An ack frame over the bound: refused as a frame.
      const many = await mallory.client.request(
        { action: 'ack', ids: Array.from({ length: 101 }, (_, i) => `x${i}`), ref: 'k2' },
        (f) => f['ref'] === 'k2',
      );
      expect(many).toMatchObject({ type: 'error', code: 'invalid_frame' });
      // A publish with ack to a topic: refused with a clear error.
      const refused = await stack.offline.invoke<{ error: { code: string; message: string } }>(
        'publish',
        {
          topic: 'news',
          data: 1,
          ack: { timeoutSeconds: 5 },
        },
      );
      expect(refused.error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(/ack needs a userId/),
      });
    } finally {
      owner.pw.close();
    }
  });
});
