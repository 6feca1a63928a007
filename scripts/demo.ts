/**
 * `npm run demo`: a page on http://localhost:3003 that connects to a running
 * `npm start` with the client library. Options: --port (the page, 3003),
 * --ws-port (pushwire's WebSocket port, 3001), --lambda-port (3002).
 */
import { parseArgs } from 'node:util';
import { startDemoServer } from './demo-server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3003' },
    'ws-port': { type: 'string', default: '3001' },
    'lambda-port': { type: 'string', default: '3002' },
  },
});

// Before the Lambda client exists: the SDK checks at construction (see local-env.ts).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
const demo = await startDemoServer({
  port: Number(values.port),
  wsUrl: `ws://localhost:${values['ws-port']}`,
  lambdaPort: Number(values['lambda-port']),
});
console.log(
  `pushwire demo: ${demo.url} (against ws://localhost:${values['ws-port']} and the Lambda API on ` +
    `http://localhost:${values['lambda-port']}: keep \`npm start\` running)`,
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void demo.close().then(() => process.exit(0)));
}
