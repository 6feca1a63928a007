import { afterEach, describe, expect, it } from 'vitest';
import { type ChunkInvoker, chunkJobs, parseDeliverChunk } from '../../lib/delivery/chunks.js';
import { deliver } from '../../lib/delivery/fanout.js';
import { messageFrame } from '../../lib/delivery/frame.js';
import { publish } from '../../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord } from '../../lib/registry/types.js';
import { TOPOLOGIES, useTopologies } from '../helpers/redis-matrix.js';
import { ENDPOINT_A, noDedup, publishDeps } from './support.js';

/**
 * Issue 7, item 2: any audience x any message up to 128 KB. A `userIds`
 * publish gives each user its own cursor; chunks handed to `deliver` must stay
 * under Lambda's 6 MB synchronous invoke payload limit whatever the audience
 * and the message, and every connection must get its frame once.
 */

/** Lambda's synchronous invoke payload limit (request), in bytes. */
const LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024;
const envs = useTopologies();

/**
 * A gateway that checks each frame as it arrives (id, cursor, data) and keeps
 * only its cursor: 10,000 frames of 120 KB are not held in memory.
 */
class CheckingGateway implements Gateway {
  readonly cursors = new Map<string, string[]>();
  readonly #head: string;
  readonly #tail: Buffer;
  constructor(
    readonly id: string,
    dataJson: string,
  ) {
    this.#head = `{"type":"message","id":${JSON.stringify(id)},"cursor":"`;
    this.#tail = Buffer.from(`","data":${dataJson}}`);
  }

  async post(_endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    // Compared as bytes (head, cursor, then the data as it must end the frame),
    // so checking 10,000 frames of 120 KB costs memcmp, not string building.
    const frame = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const head = frame.subarray(0, this.#head.length + 40).toString('latin1');
    const match = /^([0-9]+-[0-9]+)"/.exec(head.slice(this.#head.length));
    const cursor = match?.[1];
    if (!head.startsWith(this.#head) || cursor === undefined) {
      throw new Error(`unexpected frame head to ${connectionId}: ${head}`);
    }
    const rest = frame.subarray(this.#head.length + cursor.length);
    if (!rest.equals(this.#tail))
      throw new Error(`frame to ${connectionId} differs from the message`);
    const seen = this.cursors.get(connectionId);
    if (seen) seen.push(cursor);
    else this.cursors.set(connectionId, [cursor]);
    return 'ok';
  }

  async close(): Promise<GatewayResult> {
    return 'ok';
  }
}

/**
 * A `deliver` worker as Lambda would run it: the payload is checked against
 * the invoke limit, parsed from JSON as the event, and delivered by the same
 * code functions/deliver.ts runs.
 */
function checkingInvoker(gateway: Gateway, sizes: number[]): ChunkInvoker {
  return async (payload) => {
    const bytes = Buffer.byteLength(payload);
    sizes.push(bytes);
    if (bytes > LAMBDA_SYNC_PAYLOAD_LIMIT) {
      throw new Error(`payload of ${bytes} bytes is over Lambda's ${LAMBDA_SYNC_PAYLOAD_LIMIT}`);
    }
    const chunk = parseDeliverChunk(JSON.parse(payload));
    return deliver(chunkJobs(chunk), {
      gateway,
      prune: async () => undefined,
      logger: { warn: () => undefined },
      concurrency: 50,
    });
  };
}

async function registerUsers(registry: RedisRegistry, count: number): Promise<string[]> {
  const users = Array.from({ length: count }, (_, i) => `user-${i}`);
  // Registered in slices: a few hundred in flight at once, as many $connects would be.
  for (let i = 0; i < users.length; i += 500) {
    await Promise.all(
      users.slice(i, i + 500).map((userId, j) => {
        const record: ConnectionRecord = {
          connectionId: `C${i + j}x=`,
          userId,
          endpoint: ENDPOINT_A,
          connectedAt: 1_700_000_000_000,
          allowedTopics: [],
        };
        return registry.register(record);
      }),
    );
  }
  return users;
}

/** `data` whose frame is about `bytes` long. */
const dataOf = (bytes: number) => ({ body: 'x'.repeat(bytes - 120) });

describe.each(TOPOLOGIES)('userIds publish to big audiences on %s Redis', (topology) => {
  const env = envs[topology];
  // 10,000 users x 120 KB is 1.2 GB of history (each user's stream keeps its copy): free it.
  afterEach(async () => {
    await Promise.all(env.masters.map((m) => m.flushall()));
  });

  it.each([
    { users: 2_500, kb: 4 },
    { users: 2_500, kb: 120 },
    { users: 10_000, kb: 4 },
    { users: 10_000, kb: 120 },
  ])(
    'reaches $users users with a $kb KB message, every chunk under the invoke limit with the data once',
    async ({ users: count, kb }) => {
      // Prepare
      const registry = env.registry();
      const users = await registerUsers(registry, count);
      const id = `big-${count}-${kb}`;
      const data = dataOf(kb * 1024);
      const dataJson = JSON.stringify(data);
      const gateway = new CheckingGateway(id, dataJson);
      const sizes: number[] = [];
      const deps = {
        ...publishDeps(registry, gateway, noDedup, 2_000),
        invokeChunk: checkingInvoker(gateway, sizes),
      };

      // Act
      const result = await publish({ id, userIds: users, data }, deps);

      // Assess: every connection once, with its own user's cursor
      expect(result).toMatchObject({
        recipients: count,
        delivered: count,
        gone: 0,
        failed: 0,
        chunks: count / 2_000 > 1 ? Math.ceil(count / 2_000) : 0,
        stored: true,
      });
      expect(gateway.cursors.size).toBe(count);
      for (const [connectionId, cursors] of gateway.cursors) {
        expect(cursors, connectionId).toHaveLength(1);
      }
      const sample = [0, Math.floor(count / 2), count - 1];
      for (const i of sample) {
        const [last] = await env.redis.xrevrange(
          registry.userAudience(`user-${i}`).keys.history,
          '+',
          '-',
          'COUNT',
          1,
        );
        expect(gateway.cursors.get(`C${i}x=`)).toEqual([last?.[0]]);
      }
      // Each chunk carries the data once: its size is the data plus ~100 bytes a recipient.
      expect(sizes).toHaveLength(result.chunks);
      for (const size of sizes) {
        expect(size).toBeLessThan(Buffer.byteLength(dataJson) + 2_000 * 200);
      }
      console.info(
        `${topology}: ${count} users x ${kb} KB: ${result.chunks} chunks of ${sizes.join(', ')} bytes ` +
          `(one frame per user would be ${Math.min(count, 2_000) * Buffer.byteLength(messageFrame(id, dataJson, '1732752000000-0'))} bytes a chunk)`,
      );
    },
    120_000,
  );

  it('cuts chunks by bytes when FANOUT_CHUNK_MAX_BYTES is the tighter bound', async () => {
    // Prepare: 3,000 users, 120 KB, up to 10,000 recipients a chunk but 300 KB at most
    const registry = env.registry();
    const users = await registerUsers(registry, 3_000);
    const data = dataOf(120 * 1024);
    const gateway = new CheckingGateway('tight', JSON.stringify(data));
    const sizes: number[] = [];
    const deps = {
      ...publishDeps(registry, gateway, noDedup, 10_000),
      chunkMaxBytes: 300 * 1024,
      invokeChunk: checkingInvoker(gateway, sizes),
    };

    // Act
    const result = await publish({ id: 'tight', userIds: users, data }, deps);

    // Assess
    expect(result).toMatchObject({ recipients: 3_000, delivered: 3_000, failed: 0 });
    expect(result.chunks).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(300 * 1024);
    expect(gateway.cursors.size).toBe(3_000);
  }, 60_000);
});
