/**
 * Batch publish, measured (issue 17): management API calls (posts) and
 * billed API Gateway units (each WebSocket message is billed in 32 KB
 * increments) per 1,000,000 deliveries, the same messages published one by
 * one (`publish`) versus in batches (`publishBatch`), over a real Redis and
 * a gateway that counts every post it makes (in the bench, the signed HTTP
 * gateway posting to bench/mgmt-server.ts, whose own count must agree).
 *
 * `npm run bench -- --only=batch` runs it; `measureBatchCost` is the
 * reusable part (the cost model takes its figures from it, or from the last
 * run's bench/batch-results.json through `lastBatchFigures`).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publishBatch } from '../lib/delivery/batch.js';
import { type PublishDeps, type PublishResult, publish } from '../lib/delivery/publish.js';
import type { Gateway, GatewayResult } from '../lib/gateway/gateway.js';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { prng } from '../test/helpers/prng.js';

/** API Gateway bills WebSocket messages in 32 KB increments. */
export const BILLING_UNIT_BYTES = 32 * 1024;

/** Billed units of one WebSocket message of `bytes` (at least one). */
export const billedUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / BILLING_UNIT_BYTES));

/** A Gateway that counts what it posts (and passes it on to `inner`, when given; else answers ok). */
export class CountingGateway implements Gateway {
  posts = 0;
  units = 0;
  bytes = 0;
  constructor(private readonly inner?: Gateway) {}
  post(endpoint: string, connectionId: string, data: Uint8Array, deadline?: number) {
    this.posts++;
    this.units += billedUnits(data.byteLength);
    this.bytes += data.byteLength;
    return this.inner
      ? this.inner.post(endpoint, connectionId, data, deadline)
      : Promise.resolve<GatewayResult>('ok');
  }
  close(endpoint: string, connectionId: string, deadline?: number) {
    return this.inner
      ? this.inner.close(endpoint, connectionId, deadline)
      : Promise.resolve<GatewayResult>('ok');
  }
  reset() {
    this.posts = 0;
    this.units = 0;
    this.bytes = 0;
  }
}

/** A workload: who is connected, and what one call publishes. */
export interface BatchWorkload {
  name: string;
  description: string;
  users: number;
  /** Devices per user, drawn uniformly from [min, max]. */
  devices: [number, number];
  topics: number;
  /** Share of all connections subscribed to each topic (drawn independently per topic). */
  topicShare: number;
  /** One call's messages, as targets (the sizes are drawn per message). */
  messages: (pick: Picker) => Target[];
  /** Message `data` sizes in bytes, drawn uniformly from [min, max]. */
  sizes: [number, number];
}

type Target = { userId: string } | { userIds: string[] } | { topic: string };

interface Picker {
  user(): string;
  users(n: number): string[];
  topic(i: number): string;
}

export const WORKLOADS: BatchWorkload[] = [
  {
    name: 'user+topics',
    description:
      "20 messages per call, 0.5–4 KB: 15 to one user's 1–3 devices, one to each of 5 topics (each followed by ~20% of 200 users' 1–3 devices)",
    users: 200,
    devices: [1, 3],
    topics: 5,
    topicShare: 0.2,
    sizes: [512, 4096],
    messages: (p) => {
      const user = p.user();
      return [
        ...Array.from({ length: 15 }, () => ({ userId: user })),
        ...Array.from({ length: 5 }, (_, i) => ({ topic: p.topic(i) })),
      ];
    },
  },
  {
    name: 'digest',
    description:
      "20 messages per call, 0.5–4 KB, all to one user's 1–3 devices (a notification digest, a chat catching up)",
    users: 200,
    devices: [1, 3],
    topics: 0,
    topicShare: 0,
    sizes: [512, 4096],
    messages: (p) => {
      const user = p.user();
      return Array.from({ length: 20 }, () => ({ userId: user }));
    },
  },
  {
    name: 'topics',
    description:
      "20 messages per call, 0.5–4 KB, 4 to each of 5 topics, each followed by ~20% of 200 users' 1–3 devices (a dashboard of feeds)",
    users: 200,
    devices: [1, 3],
    topics: 5,
    topicShare: 0.2,
    sizes: [512, 4096],
    messages: (p) => Array.from({ length: 20 }, (_, i) => ({ topic: p.topic(i % 5) })),
  },
  {
    name: 'spread',
    description:
      '20 messages per call, 0.5–4 KB, spread thin: 12 to 12 random users, 3 to 4 random users each, one to each of 5 topics (200 users, 1–3 devices, topics ~20%): most connections get one message per call, the least batching can save',
    users: 200,
    devices: [1, 3],
    topics: 5,
    topicShare: 0.2,
    sizes: [512, 4096],
    messages: (p) => [
      ...Array.from({ length: 12 }, () => ({ userId: p.user() })),
      ...Array.from({ length: 3 }, () => ({ userIds: p.users(4) })),
      ...Array.from({ length: 5 }, (_, i) => ({ topic: p.topic(i) })),
    ],
  },
];

/** Posts, billed units and bytes, in total and per 1,000,000 deliveries. */
export interface Wire {
  posts: number;
  units: number;
  bytes: number;
  posts_per_million: number;
  units_per_million: number;
}

export interface BatchCost {
  workload: string;
  description: string;
  calls: number;
  messages: number;
  /** Message-to-connection deliveries (the same both ways). */
  deliveries: number;
  plain: Wire;
  batched: Wire;
  /** batched / plain. */
  posts_ratio: number;
  units_ratio: number;
}

const random = prng;

const perMillion = (count: number, deliveries: number) =>
  deliveries === 0 ? 0 : Math.round((count * 1_000_000) / deliveries);

export interface MeasureOptions {
  /** Publish dependencies over a real registry; its gateway is wrapped to count. */
  deps: PublishDeps & { registry: RedisRegistry };
  /** The endpoint connection records name (the management API the gateway posts to). */
  endpoint: string;
  /** Called with the connection ids made, before publishing (e.g. to register them with bench/mgmt-server.ts). */
  onConnections?: (ids: string[]) => Promise<void>;
  /** Calls per workload (each call: one batch, or its messages one by one). */
  calls?: number;
  workloads?: BatchWorkload[];
  seed?: number;
}

/**
 * Runs each workload twice over the same connections, messages one by one
 * and then as batches, and counts what reached the gateway.
 */
export async function measureBatchCost(options: MeasureOptions): Promise<BatchCost[]> {
  const { deps, endpoint } = options;
  const counter = new CountingGateway(deps.gateway);
  const counted: PublishDeps = { ...deps, gateway: counter };
  const rows: BatchCost[] = [];
  for (const [w, workload] of (options.workloads ?? WORKLOADS).entries()) {
    const rand = random((options.seed ?? 17) + w);
    const between = ([lo, hi]: [number, number]) => lo + Math.floor(rand() * (hi - lo + 1));
    const tag = `b${w}x${Date.now().toString(36)}`;
    const users = Array.from({ length: workload.users }, (_, i) => `${tag}-u${i}`);
    const topics = Array.from({ length: workload.topics }, (_, i) => `${tag}-t${i}`);
    const ids: string[] = [];
    for (const userId of users) {
      for (let d = between(workload.devices); d > 0; d--) {
        const connectionId = `${tag}c${ids.length}=`;
        ids.push(connectionId);
        const record = {
          connectionId,
          userId,
          endpoint,
          connectedAt: Date.now(),
          allowedTopics: ['*'],
        };
        await deps.registry.register(record);
        for (const topic of topics) {
          if (rand() < workload.topicShare) await deps.registry.subscribe(record, topic);
        }
      }
    }
    await options.onConnections?.(ids);
    const pick: Picker = {
      user: () => users[Math.floor(rand() * users.length)] as string,
      users: (n) => {
        const chosen = new Set<string>();
        while (chosen.size < n) chosen.add(users[Math.floor(rand() * users.length)] as string);
        return [...chosen];
      },
      topic: (i) => topics[i % topics.length] as string,
    };
    const calls = Array.from({ length: options.calls ?? 50 }, () =>
      workload.messages(pick).map((target) => ({
        ...target,
        data: { text: 'x'.repeat(between(workload.sizes)) },
      })),
    );

    const wire = (deliveries: number): Wire => ({
      posts: counter.posts,
      units: counter.units,
      bytes: counter.bytes,
      posts_per_million: perMillion(counter.posts, deliveries),
      units_per_million: perMillion(counter.units, deliveries),
    });

    counter.reset();
    let plainDeliveries = 0;
    for (const messages of calls) {
      for (const message of messages) {
        const result: PublishResult = await publish(message, counted);
        plainDeliveries += result.delivered;
      }
    }
    const plain = wire(plainDeliveries);

    counter.reset();
    let batchedDeliveries = 0;
    for (const messages of calls) {
      const result = await publishBatch({ messages }, counted);
      for (const m of result.messages) if ('delivered' in m) batchedDeliveries += m.delivered;
    }
    const batched = wire(batchedDeliveries);
    if (batchedDeliveries !== plainDeliveries) {
      throw new Error(
        `${workload.name}: ${plainDeliveries} deliveries one by one but ${batchedDeliveries} batched`,
      );
    }
    rows.push({
      workload: workload.name,
      description: workload.description,
      calls: calls.length,
      messages: calls.reduce((s, c) => s + c.length, 0),
      deliveries: plainDeliveries,
      plain,
      batched,
      posts_ratio: Math.round((batched.posts / plain.posts) * 1000) / 1000,
      units_ratio: Math.round((batched.units / plain.units) * 1000) / 1000,
    });
    await Promise.all(ids.map((id) => deps.registry.remove(id)));
  }
  return rows;
}

const figuresFile = (root: string) => join(root, 'bench', 'batch-results.json');

/** Keeps a run's figures in bench/batch-results.json (also after `--only=batch`), for the cost model. */
export function writeBatchFigures(
  rows: BatchCost[],
  date: string,
  root = process.env['PUSHWIRE_ROOT'] ?? process.cwd(),
): void {
  writeFileSync(figuresFile(root), `${JSON.stringify({ date, workloads: rows }, null, 2)}\n`);
}

/** The batch figures of the last `npm run bench` that ran the batch section (bench/batch-results.json), if any. */
export function lastBatchFigures(
  root = process.cwd(),
): { date: string; workloads: BatchCost[] } | null {
  const file = figuresFile(root);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as { date: string; workloads: BatchCost[] };
}
