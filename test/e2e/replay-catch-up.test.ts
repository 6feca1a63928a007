/**
 * Catching up under load, end to end: a client that was away from a topic
 * publishing a steady 200 messages/s subscribes with its last cursor through
 * serverless-offline (the replay runs in its `$default`, posting through its
 * management API), catches up while publishing goes on, and ends up with
 * every message once. Then the publishes stop and a final resume finds
 * nothing left.
 *
 * The publisher runs lib/delivery/publish in this process (as the `publish`
 * function does: same Redis, same signed management API client, posting to
 * serverless-offline): 200 invocations a second of serverless-offline's
 * Lambda emulator, which starts a worker per concurrent invocation, is more
 * than this 2-core machine sustains (measured: ~10/s).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PublishDeps, publish } from '../../lib/delivery/publish.js';
import { SignedHttpGateway } from '../../lib/gateway/signed.js';
import { compareCursors } from '../../lib/registry/cursor.js';
import { RedisRegistry } from '../../lib/registry/redis.js';
import { DEV_AWS_ENV } from '../../scripts/local-env.js';
import { devToken } from '../../scripts/token.js';
import { TestClient } from '../helpers/client.js';
import { untilPasses, useStack } from '../helpers/stack.js';

const HISTORY = 2_000;
const stack = useStack({ env: { HISTORY_SIZE: String(HISTORY) } });

const RATE = 200;

let redis: Redis;
let deps: PublishDeps;
beforeAll(() => {
  redis = new Redis(stack.redis.url);
  const registry = new RedisRegistry(redis, {
    prefix: 'pw:',
    connectionTtlSeconds: 660,
    historySize: HISTORY,
    historyTtlSeconds: 86_400,
  });
  deps = {
    registry,
    dedup: {
      claim: async () => ({ state: 'claimed', token: 't' }),
      complete: async () => undefined,
      release: async () => undefined,
    },
    gateway: new SignedHttpGateway({
      region: DEV_AWS_ENV.AWS_REGION,
      credentials: async () => ({
        accessKeyId: DEV_AWS_ENV.AWS_ACCESS_KEY_ID,
        secretAccessKey: DEV_AWS_ENV.AWS_SECRET_ACCESS_KEY,
      }),
    }),
    prune: (connectionId) => registry.remove(connectionId),
    logger: { warn: () => undefined },
    concurrency: 16,
    chunkSize: 2_000,
    chunkMaxBytes: 5 * 1024 * 1024,
    parallelChunks: 1,
    deliverAttempts: 1,
  };
});
afterAll(() => redis?.disconnect());

describe('replay under a steady publish rate', () => {
  it('catches up with a topic publishing ~200 messages/s: every message once', async () => {
    const topic = 'busy-e2e';
    const token = await devToken('busy-e2e', { topics: [topic] });
    const first = await publish({ topic, data: { n: -1 } }, deps);

    // The publisher: one publish started every 5 ms, whatever the others are doing.
    const published: { n: number; cursor: string }[] = [];
    let stop = false;
    let n = 0;
    const started = Date.now();
    const pending: Promise<void>[] = [];
    const publisher = (async () => {
      while (!stop) {
        const due = started + (n * 1000) / RATE;
        if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
        const i = n++;
        pending.push(
          publish({ topic, id: `e${i}`, data: { n: i } }, deps).then((r) => {
            published.push({ n: i, cursor: r.cursor as string });
          }),
        );
      }
    })();

    // Away for 2 s, then back with the cursor of the last message seen.
    await new Promise((r) => setTimeout(r, 2_000));
    const client = await TestClient.connect(stack.offline.wsUrl({ token }));
    stack.open.push(client);
    const backlog = published.length;
    const asked = Date.now();
    const resumed = await client.request(
      { action: 'subscribe', topic, since: first.cursor },
      (f) => f.type === 'resumed',
    );
    const catchUpMs = Date.now() - asked;
    await new Promise((r) => setTimeout(r, 1_500));
    stop = true;
    await publisher;
    await Promise.all(pending);
    const rate = (published.length * 1000) / (Date.now() - started);

    // Every publish has returned; a ping round trip brings in the last posts.
    await client.request({ action: 'ping' }, (f) => f.type === 'pong');
    const frames = client.messages();
    const messages = frames.map((m) => ({
      n: (m['data'] as { n: number }).n,
      cursor: m['cursor'] as string,
    }));
    const got = new Set(messages.map((m) => m.n));
    const lost = published.filter((p) => !got.has(p.n)).length;
    const doubled = messages.length - got.size;
    // Replayed: up to the last message that came in a batch; live after it.
    const handOff = frames.findLastIndex((f) => client.batched.has(f)) + 1;
    const inversions = (from: number, to: number) => {
      let count = 0;
      for (let i = Math.max(1, from); i < to; i++) {
        if (compareCursors(messages[i]?.cursor as string, messages[i - 1]?.cursor as string) < 0) {
          count++;
        }
      }
      return count;
    };
    // Within the replay, and from the hand-over on (its boundary included).
    const replayInversions = inversions(1, handOff);
    const liveInversions = inversions(handOff, messages.length);
    const boundary = inversions(handOff, handOff + 1) + inversions(handOff + 1, handOff + 2);
    console.info(
      `e2e catch-up: asked ${RATE}/s, achieved ${rate.toFixed(0)}/s; backlog ${backlog} ` +
        `at subscribe, resumed after ${catchUpMs} ms (${client.batches} batch frames); ` +
        `published ${published.length}, lost ${lost}, doubled ${doubled}, ` +
        `out of cursor order: ${replayInversions} of ${handOff} replayed, ` +
        `${liveInversions} from the hand-over on (${messages.length - handOff} live; ` +
        `${boundary} at the first two live messages)`,
    );

    expect(resumed).toEqual({ type: 'resumed', topic, recovered: true });
    expect(lost).toBe(0);
    expect(doubled).toBe(0);
    expect(client.batches).toBeGreaterThan(0);
    // The replay itself arrives in order.
    expect(replayInversions).toBe(0);

    // A final resume from the last cursor finds nothing more: live delivery lost nothing.
    const last = [...messages].sort((a, b) => compareCursors(a.cursor, b.cursor)).at(-1);
    const before = client.messages().length;
    await client.request(
      { action: 'subscribe', topic, since: last?.cursor },
      (f) => f.type === 'resumed' && f['recovered'] === true,
    );
    await untilPasses(async () => expect(client.messages().length).toBe(before));
  }, 90_000);
});
