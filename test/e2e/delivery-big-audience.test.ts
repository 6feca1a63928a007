import { describe, expect, it } from 'vitest';
import { devToken } from '../../scripts/token.js';
import { TestClient } from '../helpers/client.js';
import { eventually } from '../helpers/offline.js';
import { isMessage, publishOk, useStack } from '../helpers/stack.js';

/**
 * Issue 7, item 2, end to end: a `userIds` publish to 2,500 users, each with
 * a real WebSocket client, through serverless-offline. With FANOUT_CHUNK at
 * its default (2,000) the audience is two chunks handed to the real `deliver`
 * function over the Lambda Invoke API; before chunks carried the data once,
 * a 4 KB message made an 8.4 MB chunk here (over Lambda's 6 MB).
 */

const USERS = 2_500;
// serverless-offline answers a post only once its WebSocket frame is written;
// with 2,500 clients in this process on two shared cores that can take longer
// than the 5 s deadline meant for API Gateway (20-50 ms a post), and a timed-out
// post that landed is retried: a duplicate, which clients drop by id.
const stack = useStack({ env: { MANAGEMENT_API_TIMEOUT_MS: '60000' } });

describe('a userIds publish to 2,500 users through deliver workers', () => {
  it("reaches every user once, each frame with that user's own cursor", async () => {
    const users = Array.from({ length: USERS }, (_, i) => `bulk-${i}`);
    const clients: TestClient[] = [];
    // Ten handshakes at a time: each $connect is a Lambda invocation, and
    // serverless-offline gives each concurrent one its own instance.
    for (let i = 0; i < users.length; i += 10) {
      const batch = await Promise.all(
        users
          .slice(i, i + 10)
          .map(async (u) => TestClient.connect(stack.offline.wsUrl({ token: await devToken(u) }))),
      );
      clients.push(...batch);
      stack.open.push(...batch);
    }
    const data = { body: 'z'.repeat(4 * 1024) };
    const runs = () => stack.offline.output().split('(λ: deliver)').length - 1;
    const runsBefore = runs();

    const result = await publishOk(stack.offline, { id: 'bulk-1', userIds: users, data });

    expect(result).toMatchObject({
      recipients: USERS,
      delivered: USERS,
      gone: 0,
      failed: 0,
      chunks: 2,
      stored: true,
    });
    await eventually(() => runs() - runsBefore >= 2, 10_000, 'two deliver runs');
    await Promise.all(clients.map((c) => c.next(isMessage('bulk-1'), 30_000)));
    let copies = 0;
    for (const [i, c] of clients.entries()) {
      const frames = c.messages().filter(isMessage('bulk-1'));
      expect(frames.length, users[i]).toBeGreaterThanOrEqual(1);
      // At-least-once: any second copy is the same frame (same id, same cursor).
      expect(new Set(frames.map((f) => JSON.stringify(f))).size, users[i]).toBe(1);
      expect(frames[0]?.['data']).toEqual(data);
      copies += frames.length;
    }
    console.info(`2,500 users: ${copies} frames received for 2,500 recipients`);
    // Spot-check cursors against the users' own streams.
    for (const i of [0, 1_999, 2_000, USERS - 1]) {
      const [last] = await stack.probe.redis.xrevrange(
        stack.probe.keys.audience('user', users[i] as string).keys.history,
        '+',
        '-',
        'COUNT',
        1,
      );
      expect(clients[i]?.messages().find(isMessage('bulk-1'))?.['cursor']).toBe(last?.[0]);
    }
  }, 300_000);
});
