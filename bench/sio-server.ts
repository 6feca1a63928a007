/**
 * The Socket.IO alternative, in its own process: one Socket.IO server
 * (websocket transport only) with @socket.io/redis-adapter on the
 * benchmark's Redis. A message emitted by any other adapter-equipped server
 * reaches it through Redis pub/sub and is broadcast to its connected clients.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const url = process.env['REDIS_URL'] as string;
const pub = new Redis(url);
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  // No heartbeats during the run: 10,000 clients on two busy cores must not time out.
  pingInterval: 600_000,
  pingTimeout: 600_000,
  adapter: createAdapter(pub, sub),
});

http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  process.send?.({ type: 'ready', port: typeof address === 'object' && address?.port });
});
process.on('message', (message: { type?: string }) => {
  if (message.type === 'count') process.send?.({ type: 'count', sockets: io.engine.clientsCount });
});
const stop = () => {
  io.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
