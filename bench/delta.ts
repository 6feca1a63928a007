/**
 * `npm run bench -- --only=delta` (issue 17): delta topics measured.
 *
 * 1. The libraries compared before choosing (bench/delta-doc.ts
 *    compareDeltaLibraries), with each apply side's client code size.
 * 2. The real publish path (lib/delivery/publish.ts, Redis, the signed
 *    HTTP gateway posting to the bench's fake management API) on a delta
 *    topic with two subscribers, one that asked for deltas and one that did
 *    not, over successive versions of the ~100 KB document each changed by
 *    ~1 %: bytes posted and billed 32 KB units per message to each, and the
 *    publish time with and without the delta computed.
 */
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import type { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import { publish } from '../lib/delivery/publish.js';
import type { Gateway } from '../lib/gateway/gateway.js';
import { RedisRegistry } from '../lib/registry/redis.js';
import { now, PREFIX, root, round } from './common.js';
import {
  billedUnits,
  compareDeltaLibraries,
  type DeltaCost,
  deltaCostPerMessage,
  type LibraryRow,
  series,
} from './delta-doc.js';
import { publishDeps } from './fanout.js';
import type { MgmtServer } from './mgmt.js';

export interface DeltaBench {
  libraries: LibraryRow[];
  /** pushwire/delta (client/dist/delta.js), min+gzip bytes. */
  client_delta_module_gzip: number;
  /** Computed from the document series alone (what `cost` reuses). */
  model: DeltaCost;
  /** Measured through publish(): per message, mean over `messages`. */
  measured: {
    messages: number;
    document_bytes: number;
    plain_bytes_per_message: number;
    delta_bytes_per_message: number;
    plain_units_per_message: number;
    delta_units_per_message: number;
    /** Mean publish() time on the delta topic (delta computed once per publish) and on a plain topic. */
    publish_ms_delta_topic: number;
    publish_ms_plain_topic: number;
  };
}

const gz = (code: string) => gzipSync(code, { level: 9 }).length;

/** min+gzip bytes of a bundle of `contents` (an ES module re-exporting what is measured). */
async function entrySize(contents: string): Promise<number> {
  const result = await build({
    stdin: { contents, resolveDir: root(), loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    // As scripts/build-client.ts: private members mangled, no legal comments.
    mangleProps: /_$/,
    legalComments: 'none',
    write: false,
  });
  return gz(result.outputFiles[0]?.text ?? '');
}

export async function benchDelta(options: {
  redis: Redis;
  config: Config;
  mgmt: MgmtServer;
  messages: number;
}): Promise<DeltaBench> {
  const { redis, config, mgmt, messages } = options;
  const libraries = await compareDeltaLibraries({
    fossil: await entrySize(`export { applyDelta } from 'fossil-delta';`),
    jsdiff: await entrySize(`export { applyPatch } from 'diff';`),
    gzip: 0,
  });

  const base = publishDeps(redis, config);
  const registry = new RedisRegistry(redis, {
    prefix: PREFIX,
    connectionTtlSeconds: config.connectionTtlSeconds,
    historySize: config.history.size,
    historyTtlSeconds: config.history.ttlSeconds,
    deltaTopics: ['doc:*'],
  });
  const posted = new Map<string, { bytes: number; units: number; posts: number }>();
  const real = base.gateway;
  const gateway: Gateway = {
    post: (endpoint, connectionId, data) => {
      const seen = posted.get(connectionId) ?? { bytes: 0, units: 0, posts: 0 };
      seen.bytes += data.byteLength;
      seen.units += billedUnits(data.byteLength);
      seen.posts++;
      posted.set(connectionId, seen);
      return real.post(endpoint, connectionId, data);
    },
    close: (endpoint, connectionId) => real.close(endpoint, connectionId),
  };
  const deps = { ...base, registry, gateway, prune: (id: string) => registry.remove(id) };

  const ids = ['delta-asks', 'delta-plain', 'plain-topic'];
  await mgmt.register(ids);
  const join = async (connectionId: string, topic: string, delta: boolean) => {
    const record = {
      connectionId,
      userId: connectionId,
      endpoint: mgmt.endpoint,
      connectedAt: Date.now(),
      allowedTopics: ['*'],
    };
    await registry.register(record);
    await registry.subscribeWithCursor(record, topic, undefined, delta);
  };
  const docs = series(messages + 1);
  await publish({ topic: 'doc:bench', data: JSON.parse(docs[0] as string) }, deps);
  await publish({ topic: 'other:bench', data: JSON.parse(docs[0] as string) }, deps);
  await join('delta-asks', 'doc:bench', true);
  await join('delta-plain', 'doc:bench', false);
  await join('plain-topic', 'other:bench', true);
  // The first message after a live join is whole (no base yet): not counted.
  await publish({ topic: 'doc:bench', data: JSON.parse(docs[1] as string) }, deps);
  await publish({ topic: 'other:bench', data: JSON.parse(docs[1] as string) }, deps);
  posted.clear();

  let deltaMs = 0;
  let plainMs = 0;
  for (let i = 2; i <= messages; i++) {
    const data = JSON.parse(docs[i] as string) as unknown;
    let t0 = now();
    await publish({ topic: 'doc:bench', data }, deps);
    deltaMs += now() - t0;
    t0 = now();
    await publish({ topic: 'other:bench', data }, deps);
    plainMs += now() - t0;
  }
  const n = messages - 1;
  const asks = posted.get('delta-asks');
  const plain = posted.get('delta-plain');
  if (asks?.posts !== n || plain?.posts !== n)
    throw new Error(`expected ${n} posts each, got ${asks?.posts} and ${plain?.posts}`);
  return {
    libraries,
    // As scripts/build-client.ts bundles it (that file runs a build at import: not imported here).
    client_delta_module_gzip: await entrySize(`export { fossilDelta } from './client/delta.ts';`),
    model: deltaCostPerMessage(),
    measured: {
      messages: n,
      document_bytes: Buffer.byteLength(docs[1] as string),
      plain_bytes_per_message: Math.round(plain.bytes / n),
      delta_bytes_per_message: Math.round(asks.bytes / n),
      plain_units_per_message: round(plain.units / n, 2),
      delta_units_per_message: round(asks.units / n, 2),
      publish_ms_delta_topic: round(deltaMs / n, 2),
      publish_ms_plain_topic: round(plainMs / n, 2),
    },
  };
}
