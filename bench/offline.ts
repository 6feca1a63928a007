/**
 * Outside-in, through serverless-offline (`npm start` on free ports, the real
 * handlers, a private Redis): real WebSocket clients, driven from outside.
 *
 * - publish vs raw: N clients subscribed to one topic; a `publish` invoked
 *   through the Lambda Invoke API reaches them all, against a bare
 *   keep-alive POST loop (100 in flight) to the same emulator's
 *   `@connections` with the same frame. Both timed to the last client's
 *   receipt; alternated, median of `rounds`.
 * - burst: `burst` clients send a `ping` at once (each concurrent invocation
 *   is a cold instance of `$default`, as on Lambda) against the same frames
 *   sent in batches of 50 (each batch waiting for its pongs), timed to the
 *   last pong.
 */
import { Agent, request } from 'node:http';
import { createKeys } from '../lib/registry/keys.js';
import { startRedisServer } from '../scripts/redis-server.js';
import { devToken } from '../scripts/token.js';
import { startOffline } from '../test/helpers/offline.js';
import { median, now, round } from './common.js';

export interface OfflineResult {
  clients: number;
  publish_per_s: number;
  raw_per_s: number;
  ratio: number;
  runs: { publish_ms: number[]; raw_ms: number[]; returned_ms: number[] };
  /** Median time of a publish to a topic nobody is subscribed to: the emulator's invoke and the fixed work. */
  empty_publish_ms: number;
  burst: {
    frames: number;
    /** Pongs received (a frame whose invocation failed gets none). */
    at_once_answered: number;
    batches_answered: number;
    at_once_per_s: number;
    batches_of_50_per_s: number;
    at_once_ms: number;
    batches_ms: number;
  } | null;
  connect_s: number;
}

const TOPIC = 'bench-offline';

/** A bare WebSocket that counts frames of one type and resolves waiters by count. */
class Counter {
  counts = new Map<string, number>();
  /** When the last frame of each type arrived (now()). */
  lastAt = new Map<string, number>();
  #waiters: { type: string; count: number; resolve: () => void }[] = [];
  seen(type: string): void {
    const count = (this.counts.get(type) ?? 0) + 1;
    this.counts.set(type, count);
    this.lastAt.set(type, now());
    this.#waiters = this.#waiters.filter((w) => {
      if (w.type === type && count >= w.count) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
  until(type: string, count: number, timeoutMs: number): Promise<void> {
    if ((this.counts.get(type) ?? 0) >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`${type}: ${this.counts.get(type) ?? 0} of ${count} in ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      this.#waiters.push({
        type,
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

async function pool<T>(items: readonly T[], concurrency: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

export async function benchOffline(options: {
  clients: number;
  rounds: number;
  burst: number;
  connectConcurrency: number;
}): Promise<OfflineResult> {
  // ws is a devDependency; loaded here so the rest of the bench does not need it.
  const { default: WebSocket } = await import('ws');
  const redis = await startRedisServer();
  const offline = await startOffline(redis.url, {
    // The publishing function delivers to the whole audience itself (no
    // deliver workers), as for ours in the fan-out section.
    FANOUT_CHUNK: String(Math.max(2_000, options.clients)),
  });
  const sockets: InstanceType<typeof WebSocket>[] = [];
  try {
    const counter = new Counter();
    // One user per client: MAX_CONNECTIONS_PER_USER (issue 9) refuses the
    // 51st connection of one user with a 429.
    const tokens = await Promise.all(
      Array.from({ length: options.clients }, (_, i) =>
        devToken(`bench-${i}`, { topics: [TOPIC] }),
      ),
    );
    const t0 = now();
    await pool(tokens, options.connectConcurrency, async (token) => {
      const ws = new WebSocket(offline.wsUrl({ token }));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.on('message', (data: Buffer) => {
        const type = /"type":"(\w+)"/.exec(data.toString())?.[1] ?? 'unknown';
        counter.seen(type);
      });
      sockets.push(ws);
      const subscribed = counter.counts.get('subscribed') ?? 0;
      ws.send(JSON.stringify({ action: 'subscribe', topic: TOPIC }));
      await counter.until('subscribed', subscribed + 1, 60_000);
    });
    await counter.until('subscribed', options.clients, 60_000);
    const connectS = round((now() - t0) / 1000, 1);
    console.log(`  ${options.clients} clients connected and subscribed in ${connectS} s`);

    // The members as Redis holds them: connection ids for the raw loop.
    const { Redis } = await import('ioredis');
    const probe = new Redis(redis.url);
    const live = createKeys('pw:').audience('topic', TOPIC).keys.live;
    const members = await probe.zrange(live, 0, -1);
    probe.disconnect();
    const ids = members.map((m) => m.slice(0, m.indexOf('|')));
    if (ids.length !== options.clients) {
      throw new Error(`the topic has ${ids.length} live members, expected ${options.clients}`);
    }

    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    const post = (id: string, body: Buffer) =>
      new Promise<void>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: offline.wsPort,
            method: 'POST',
            path: `/@connections/${encodeURIComponent(id)}`,
            agent,
            headers: { 'content-length': body.length },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300
                ? resolve()
                : reject(new Error(`raw: HTTP ${res.statusCode}`)),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const data = { text: 'x'.repeat(64), at: 1732752000000, kind: 'bench' };
    const publishMs: number[] = [];
    const rawMs: number[] = [];
    const returnedMs: number[] = [];
    // A warm-up of each (instances, sockets), then alternated rounds.
    for (let round_ = -1; round_ < options.rounds; round_++) {
      let target = (counter.counts.get('message') ?? 0) + options.clients;
      let start = now();
      const result = await offline.invoke<{ delivered: number }>('publish', {
        topic: TOPIC,
        data,
      });
      if (round_ >= 0) returnedMs.push(now() - start);
      await counter.until('message', target, 60_000);
      if (round_ >= 0) publishMs.push(now() - start);
      if (result.delivered !== options.clients) {
        throw new Error(`publish delivered ${result.delivered} of ${options.clients}`);
      }
      const frame = Buffer.from(
        JSON.stringify({ type: 'message', id: `raw-${round_}`, topic: TOPIC, cursor: '1-0', data }),
      );
      target += options.clients;
      start = now();
      await pool(ids, 100, (id) => post(id, frame));
      await counter.until('message', target, 60_000);
      if (round_ >= 0) rawMs.push(now() - start);
    }
    agent.destroy();
    const emptyMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = now();
      await offline.invoke('publish', { topic: `${TOPIC}-nobody`, data });
      emptyMs.push(now() - start);
    }
    console.log(
      `  publish ${publishMs.map((x) => round(x)).join(', ')} ms; raw ${rawMs.map((x) => round(x)).join(', ')} ms`,
    );

    let burst: OfflineResult['burst'] = null;
    if (options.burst > 0) {
      const group = sockets.slice(0, options.burst);
      const pongs = () => counter.counts.get('pong') ?? 0;
      // At once first: every frame past the instances warm from the subscribes
      // is a cold start. Frames whose invocation fails (a cold instance past
      // the function timeout on a loaded machine) get no pong: counted, not waited for.
      const before = pongs();
      let start = now();
      for (const ws of group) ws.send('{"action":"ping"}');
      await counter.until('pong', before + group.length, 120_000).catch(() => undefined);
      const atOnceMs = (counter.lastAt.get('pong') ?? now()) - start;
      // Let stragglers land before the batches count their own pongs.
      for (let last = -1, waited = 0; pongs() !== last && waited < 30_000; waited += 3_000) {
        last = pongs();
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      }
      const answered = pongs() - before;
      // In batches of 50, each waiting for its pongs: a bounded rate of frames.
      let batchesAnswered = 0;
      start = now();
      for (let i = 0; i < group.length; i += 50) {
        const batch = group.slice(i, i + 50);
        const from = pongs();
        for (const ws of batch) ws.send('{"action":"ping"}');
        await counter.until('pong', from + batch.length, 60_000).catch(() => undefined);
        batchesAnswered += pongs() - from;
      }
      const batchesMs = now() - start;
      burst = {
        frames: group.length,
        at_once_answered: answered,
        batches_answered: batchesAnswered,
        at_once_per_s: round(answered / (atOnceMs / 1000)),
        batches_of_50_per_s: round(batchesAnswered / (batchesMs / 1000)),
        at_once_ms: round(atOnceMs),
        batches_ms: round(batchesMs),
      };
      console.log(
        `  burst of ${group.length}: at once ${answered} answered in ${round(atOnceMs)} ms; in batches of 50 ${batchesAnswered} in ${round(batchesMs)} ms`,
      );
    }

    const publishPerS = options.clients / (median(publishMs) / 1000);
    const rawPerS = options.clients / (median(rawMs) / 1000);
    return {
      clients: options.clients,
      publish_per_s: round(publishPerS),
      raw_per_s: round(rawPerS),
      ratio: round(publishPerS / rawPerS, 2),
      runs: {
        publish_ms: publishMs.map((x) => round(x)),
        raw_ms: rawMs.map((x) => round(x)),
        returned_ms: returnedMs.map((x) => round(x)),
      },
      empty_publish_ms: round(median(emptyMs)),
      burst,
      connect_s: connectS,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    await offline.stop();
    await redis.stop();
  }
}
