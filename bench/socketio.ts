import type { ChildProcess } from 'node:child_process';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { forkEntry, median, nextMessage, now, round, sleep, stopChild } from './common.js';
import { PAYLOAD } from './fanout.js';

export interface SocketIoResult {
  n_requested: number;
  /** Clients that connected within the budget; the rate is over these. */
  n_connected: number;
  /** Messages per second: connected clients / time from emit to the last client's receipt. */
  per_s: number | null;
  runs_ms: number[];
  connect_s: number;
  client_processes: number;
  note?: string;
}

/**
 * The publishing side: a Socket.IO server with no clients and no port, only
 * the Redis adapter. Its emit goes through Redis pub/sub to the server that
 * holds the clients, as a backend's emit would in a Socket.IO cluster.
 */
export function createEmitter(redis: Redis) {
  const pub = redis.duplicate();
  const sub = redis.duplicate();
  const io = new Server({ adapter: createAdapter(pub, sub) });
  return {
    emit: (message: unknown) => io.emit('msg', message),
    close: () => {
      // Not io.close(): this server never attached an engine (it would throw).
      pub.disconnect();
      sub.disconnect();
    },
  };
}

export async function benchSocketIo(options: {
  redisUrl: string;
  emitter: ReturnType<typeof createEmitter>;
  n: number;
  rounds: number;
  connectBudgetMs: number;
  roundTimeoutMs: number;
}): Promise<SocketIoResult> {
  const { n } = options;
  const processes = n > 2_000 ? 2 : 1;
  const server = forkEntry('sio-server', { REDIS_URL: options.redisUrl });
  const clients: ChildProcess[] = [];
  try {
    const { port } = await nextMessage<{ type: 'ready'; port: number }>(server, 'ready', 15_000);
    const url = `http://127.0.0.1:${port}`;
    const t0 = now();
    const connected = await Promise.all(
      Array.from({ length: processes }, async (_, i) => {
        const child = forkEntry('sio-clients');
        clients.push(child);
        const count = Math.floor(n / processes) + (i < n % processes ? 1 : 0);
        const reply = nextMessage<{ type: 'connected'; count: number }>(
          child,
          'connected',
          options.connectBudgetMs + 30_000,
        );
        child.send({
          type: 'connect',
          url,
          count,
          concurrency: 100,
          budgetMs: options.connectBudgetMs,
        });
        return (await reply).count;
      }),
    );
    const connectS = (now() - t0) / 1000;
    const total = connected.reduce((a, b) => a + b, 0);
    const result: SocketIoResult = {
      n_requested: n,
      n_connected: total,
      per_s: null,
      runs_ms: [],
      connect_s: round(connectS, 1),
      client_processes: processes,
    };
    if (total === 0) return { ...result, note: 'no client could connect' };
    const receiving = clients.filter((_, i) => (connected[i] ?? 0) > 0);
    await sleep(300); // the adapter's subscription settles
    // Round 0 warms up (JIT, buffers) and is not counted.
    for (let r = 0; r <= options.rounds; r++) {
      const waits = receiving.map((c) =>
        nextMessage(c, 'done', options.roundTimeoutMs).then(() => now()),
      );
      const start = now();
      options.emitter.emit({ round: r, data: PAYLOAD });
      try {
        const ends = await Promise.all(waits);
        if (r > 0) result.runs_ms.push(round(Math.max(...ends) - start, 2));
      } catch (error) {
        result.note = `round ${r}: ${String(error)}`;
        break;
      }
      await sleep(100);
    }
    if (result.runs_ms.length > 0) {
      result.per_s = round(total / (median(result.runs_ms) / 1000));
    }
    if (total < n) {
      result.note = `${result.note ? `${result.note}; ` : ''}only ${total} of ${n} clients connected within ${options.connectBudgetMs / 1000} s; the rate is over those`;
    }
    return result;
  } finally {
    await Promise.all(clients.map((c) => stopChild(c, 10_000)));
    await stopChild(server);
  }
}
