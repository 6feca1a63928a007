import type { DedupStore } from '../../lib/delivery/dedup.js';
import type { PublishDeps } from '../../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';
import type { RedisRegistry } from '../../lib/registry/redis.js';
import type { ConnectionRecord } from '../../lib/registry/types.js';

export interface Post {
  endpoint: string;
  connectionId: string;
  frame: string;
}

/**
 * An in-memory Gateway (the port of lib/gateway/gateway.ts, not an SDK mock): records
 * every post and close, answers 'gone' for the connections told to vanish,
 * and can take a little time per post so concurrent work interleaves.
 */
export class RecordingGateway implements Gateway {
  readonly posts: Post[] = [];
  readonly closes: { endpoint: string; connectionId: string }[] = [];
  readonly gone = new Set<string>();
  delayMs: (connectionId: string) => number = () => 0;

  async post(endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    const delay = this.delayMs(connectionId);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.gone.has(connectionId)) return 'gone';
    this.posts.push({ endpoint, connectionId, frame: Buffer.from(data).toString('utf8') });
    return 'ok';
  }

  async close(endpoint: string, connectionId: string): Promise<GatewayResult> {
    if (this.gone.has(connectionId)) return 'gone';
    this.closes.push({ endpoint, connectionId });
    return 'ok';
  }

  /** Parsed frames posted to one connection, in posting order, with replay batches unpacked. */
  framesTo(connectionId: string): Frame[] {
    return this.posts
      .filter((p) => p.connectionId === connectionId)
      .flatMap((p) => unpack(JSON.parse(p.frame) as Frame | BatchFrame));
  }

  /** How many posts each connection received. */
  countsByConnection(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const p of this.posts) counts[p.connectionId] = (counts[p.connectionId] ?? 0) + 1;
    return counts;
  }
}

export interface Frame {
  type: string;
  id: string;
  data: unknown;
  cursor?: string;
  topic?: string;
}

export interface BatchFrame {
  type: 'batch';
  messages: Frame[];
}

/** The message frames one posted frame carries (a replay `batch` carries several). */
export const unpack = (frame: Frame | BatchFrame): Frame[] =>
  frame.type === 'batch' ? (frame as BatchFrame).messages : [frame as Frame];

export interface TestDeps extends PublishDeps {
  warnings: { message: string; extra: Record<string, unknown> }[];
}

/** Publish dependencies over a real registry; no invokeChunk, so every chunk is delivered in-process. */
export function publishDeps(
  registry: RedisRegistry,
  gateway: Gateway,
  dedup: DedupStore,
  chunkSize = 100,
): TestDeps {
  const warnings: TestDeps['warnings'] = [];
  return {
    registry,
    dedup,
    gateway,
    prune: (connectionId) => registry.remove(connectionId),
    logger: { warn: (message, extra) => warnings.push({ message, extra }) },
    concurrency: 8,
    chunkSize,
    chunkMaxBytes: 5 * 1024 * 1024,
    parallelChunks: 2,
    deliverAttempts: 2,
    warnings,
  };
}

/** A dedup store that never sees an id twice, for tests that publish without ids. */
export const noDedup: DedupStore = {
  claim: async () => ({ state: 'claimed', token: 'none' }),
  complete: async () => undefined,
  release: async () => undefined,
};

export const ENDPOINT_A = 'https://aaaa.execute-api.eu-west-1.amazonaws.com/prod';
export const ENDPOINT_B = 'https://bbbb.execute-api.us-east-1.amazonaws.com/prod';

let sequence = 0;

/** A connection record with a fresh id (API Gateway ids look like `L0SM9cOFvHcCIhw=`). */
export function connection(
  userId: string,
  overrides: Partial<ConnectionRecord> = {},
): ConnectionRecord {
  sequence++;
  return {
    connectionId: `Cid${sequence}x${Math.random().toString(36).slice(2, 8)}=`,
    userId,
    endpoint: ENDPOINT_A,
    connectedAt: 1_700_000_000_000 + sequence,
    allowedTopics: ['news', 'room:*'],
    ...overrides,
  };
}
