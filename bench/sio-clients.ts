/**
 * Socket.IO clients, in their own process: connects `count` clients
 * (websocket transport only, one connection each), then reports each round
 * in which every connected client got the message.
 *
 * IPC in:  { type: 'connect', url, count, concurrency, budgetMs }
 * IPC out: { type: 'connected', count, ms }, then per round { type: 'done', round }
 */
import { io, type Socket } from 'socket.io-client';

const sockets: Socket[] = [];
let round = -1;
let received = 0;

function onMessage(message: { round: number }) {
  if (message.round !== round) {
    round = message.round;
    received = 0;
  }
  received++;
  if (received === sockets.length) process.send?.({ type: 'done', round });
}

function connectOne(url: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: 20_000,
    });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', () => {
      socket.close();
      resolve(null);
    });
  });
}

async function connectAll(url: string, count: number, concurrency: number, budgetMs: number) {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && performance.now() - t0 < budgetMs) {
        next++;
        const socket = await connectOne(url);
        if (socket) {
          socket.on('msg', onMessage);
          sockets.push(socket);
        }
      }
    }),
  );
  process.send?.({ type: 'connected', count: sockets.length, ms: performance.now() - t0 });
}

process.on(
  'message',
  (m: { type?: string; url: string; count: number; concurrency: number; budgetMs: number }) => {
    if (m.type === 'connect') void connectAll(m.url, m.count, m.concurrency, m.budgetMs);
  },
);
const stop = () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
