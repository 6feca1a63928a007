/** `npm run listen -- --user alice [--topic news] [--port 3001]`: prints every frame that arrives. */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { devToken } from './token.js';

const { values } = parseArgs({
  options: {
    user: { type: 'string', default: 'alice' },
    topic: { type: 'string', multiple: true, default: [] },
    port: { type: 'string', default: '3001' },
    'lambda-port': { type: 'string' },
    since: { type: 'string' },
  },
});
const topics = values.topic ?? [];
const token = await devToken(values.user ?? 'alice', { topics });
const query = new URLSearchParams({ token, ...(values.since && { since: values.since }) });
const ws = new WebSocket(`ws://localhost:${values.port}?${query}`);

ws.on('open', () => {
  console.log(`listening as ${values.user} on ws://localhost:${values.port} (Ctrl-C to stop)`);
  for (const topic of topics) ws.send(JSON.stringify({ action: 'subscribe', topic }));
  if (values.since) ws.send(JSON.stringify({ action: 'ping' }));
  // API Gateway closes a connection idle for 10 minutes; a ping also renews our TTL.
  setInterval(() => ws.send(JSON.stringify({ action: 'ping' })), 5 * 60_000).unref();
});
ws.on('message', (data) => console.log(data.toString()));
ws.on('unexpected-response', (_req, res) => {
  console.error(`connection refused: HTTP ${res.statusCode}`);
  process.exit(1);
});
ws.on('error', (error) => {
  console.error(`connection failed: ${error.message} (is \`npm start\` running?)`);
  process.exit(1);
});
ws.on('close', (code) => {
  console.log(`closed (${code})`);
  process.exit(0);
});
