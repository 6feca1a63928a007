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

// --- Every exit path stops both children and removes the temporary folders ---
// (the private Redis's working folder and this instance's build folder):
// Ctrl-C, SIGTERM, serverless-offline exiting or crashing, the private Redis
// dying, and an error of this script itself. Only SIGKILL escapes.
let stopping = false;
const removeTemporaryFolders = () => {
  if (redis) rmSync(redis.dir, { recursive: true, force: true });
  rmSync(env.PUSHWIRE_BUILD_DIR, { recursive: true, force: true });
};
async function stop(code: number, why?: string) {
  if (stopping) return;
  stopping = true;
  if (why) console.error(`pushwire: ${why}`);
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    // serverless-offline stops its workers on SIGTERM; do not wait forever.
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await redis?.stop();
  removeTemporaryFolders();
  process.exit(code);
}
child.on('exit', (code, signal) => {
  if (stopping) return;
  if (code === 0) void stop(0);
  else void stop(code ?? 1, `serverless-offline exited (${signal ?? `code ${code}`}); stopped.`);
});
redis?.process.on('exit', (code, signal) => {
  // Ctrl-C reaches redis-server too (same process group): give our own
  // SIGINT handler the moment it needs to say this is a shutdown.
  setTimeout(() => {
    if (stopping) return;
    void stop(
      1,
      `the private redis-server (${redis?.url}) exited unexpectedly (${signal ?? `code ${code}`}); ` +
        'pushwire cannot run without it, so it stopped. Run `npm start` again, or set REDIS_URL ' +
        'to a Redis you manage.',
    );
  }, 200);
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(signal, () => void stop(0));
process.on('uncaughtException', (error) => void stop(1, `failed: ${error.stack ?? error}`));
// Last resort if process.exit is called from elsewhere: nothing async runs here.
process.on('exit', removeTemporaryFolders);
