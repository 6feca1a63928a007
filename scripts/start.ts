/**
 * `npm start`: runs pushwire under serverless-offline. Without REDIS_URL it
 * starts a private redis-server on a free port. Extra arguments go to
 * serverless-offline, e.g. a second instance beside the first:
 *   npm start -- --websocketPort 3101 --lambdaPort 3102 --httpPort 3100
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEV_AWS_ENV, DEV_JWT_SECRET } from './local-env.js';
import { type RedisServer, startRedisServer } from './redis-server.js';

const args = process.argv.slice(2);
const { values } = parseArgs({
  args,
  strict: false,
  options: {
    websocketPort: { type: 'string' },
    lambdaPort: { type: 'string' },
    httpPort: { type: 'string' },
  },
});
const wsPort = String(values.websocketPort ?? 3001);
const lambdaPort = String(values.lambdaPort ?? 3002);

let redis: RedisServer | undefined;
let redisUrl = process.env['REDIS_URL'];
if (!redisUrl) {
  redis = await startRedisServer();
  redisUrl = redis.url;
  console.log(
    `pushwire: no REDIS_URL given, started a private redis-server at ${redisUrl} (stops with this process)`,
  );
} else {
  console.log(`pushwire: using Redis at ${redisUrl.replace(/\/\/[^@]*@/, '//***@')}`);
}

const env = {
  ...DEV_AWS_ENV,
  JWT_SECRET: DEV_JWT_SECRET,
  ...process.env,
  REDIS_URL: redisUrl,
  // serverless-offline's events say localhost/local; its management API lives here instead.
  WS_CALLBACK_URL: process.env['WS_CALLBACK_URL'] ?? `http://localhost:${wsPort}`,
  LAMBDA_ENDPOINT: process.env['LAMBDA_ENDPOINT'] ?? `http://localhost:${lambdaPort}`,
  PUSHWIRE_BUILD_DIR: process.env['PUSHWIRE_BUILD_DIR'] ?? `.esbuild-${wsPort}`,
};

// A build left by an earlier layout (say .js beside .cjs) would be loaded first.
rmSync(env.PUSHWIRE_BUILD_DIR, { recursive: true, force: true });

const child = spawn('node_modules/.bin/osls', ['offline', 'start', '--stage', 'local', ...args], {
  env,
  stdio: ['inherit', 'pipe', 'pipe'],
});
let announced = false;
child.stdout?.pipe(process.stdout);
child.stderr?.pipe(process.stderr);
const watch = (chunk: Buffer) => {
  if (!announced && chunk.toString().includes('[websocket] listening')) {
    announced = true;
    const user = wsPort === '3001' ? '' : ` --port ${wsPort} --lambda-port ${lambdaPort}`;
    console.log(
      [
        '',
        `pushwire is up: WebSocket ws://localhost:${wsPort}?token=<JWT>, publish via http://localhost:${lambdaPort}`,
        `  listen:  npm run listen -- --user alice${user}`,
        `  publish: npm run publish -- --user alice${user} '{"hello":"world"}'`,
        '',
      ].join('\n'),
    );
  }
};
child.stdout?.on('data', watch);
child.stderr?.on('data', watch);

let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  if (child.exitCode === null) child.kill('SIGTERM');
  await redis?.stop();
  process.exit(code);
}
child.on('exit', (code) => void stop(code ?? 0));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop(0));
