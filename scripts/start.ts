/**
 * `npm start`: runs pushwire under serverless-offline. Without REDIS_URL it
 * starts a private redis-server on a free port. Extra arguments go to
 * serverless-offline, e.g. a second instance beside the first:
 *   npm start -- --websocketPort 3101 --lambdaPort 3102 --httpPort 3100
 * Our own: --quiet (or PUSHWIRE_QUIET=1) shows only pushwire's lines.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { DEFAULT_WEBPUSH_HOSTS, loadConfig } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { createKeys } from '../lib/registry/keys.js';
import { DEV_AWS_ENV, DEV_JWT_SECRET, DEV_VAPID, nodeSupportNotice } from './local-env.js';
import { startLocalEvents } from './local-events.js';
import { startLocalQueue } from './local-queue.js';
import { startLocalWebPush } from './local-webpush.js';
import { checkRedis, maskRedisUrl, type RedisServer, startRedisServer } from './redis-server.js';

// Our own options, taken out before the rest goes to serverless-offline.
const QUIET_FLAGS = new Set(['--quiet', '-q']);
const quiet =
  process.argv.slice(2).some((a) => QUIET_FLAGS.has(a)) ||
  ['1', 'true'].includes(process.env['PUSHWIRE_QUIET'] ?? '');
const args = process.argv.slice(2).filter((a) => !QUIET_FLAGS.has(a));
const { values } = parseArgs({
  args,
  strict: false,
  options: {
    websocketPort: { type: 'string' },
    lambdaPort: { type: 'string' },
    httpPort: { type: 'string' },
    region: { type: 'string' },
  },
});
const wsPort = String(values.websocketPort ?? 3001);
const lambdaPort = String(values.lambdaPort ?? 3002);
const httpPort = String(values.httpPort ?? 3000);

const nodeNotice = nodeSupportNotice(process.version);
if (nodeNotice) console.error(nodeNotice);

// The region, and the configuration checked before anything starts.
// serverless-offline replaces AWS_REGION with the provider's region, which is
// `--region` (default us-east-1): pass a chosen AWS_REGION on as --region.
const region =
  (typeof values.region === 'string' && values.region) ||
  process.env['AWS_REGION'] ||
  DEV_AWS_ENV.AWS_REGION;
if (values.region === undefined) args.push('--region', region);

const baseEnv: Record<string, string | undefined> = {
  ...DEV_AWS_ENV,
  JWT_SECRET: DEV_JWT_SECRET,
  // Web Push with the dev key pair (docs/push.md); http:// endpoints for the local push service below.
  ...(process.env['VAPID_PRIVATE_KEY_PARAMETER'] ? {} : DEV_VAPID),
  PUSH_ALLOW_HTTP_ENDPOINTS: 'true',
  ...process.env,
  AWS_REGION: region,
  // serverless-offline's events say localhost/local; its management API lives here instead.
  WS_CALLBACK_URL: process.env['WS_CALLBACK_URL'] ?? `http://localhost:${wsPort}`,
  LAMBDA_ENDPOINT: process.env['LAMBDA_ENDPOINT'] ?? `http://localhost:${lambdaPort}`,
  PUSHWIRE_BUILD_DIR: process.env['PUSHWIRE_BUILD_DIR'] ?? `.esbuild-${wsPort}`,
  // No X-Ray daemon here; metrics stay on (EMF lines in this output).
  POWERTOOLS_TRACE_ENABLED: process.env['POWERTOOLS_TRACE_ENABLED'] ?? 'false',
  // Lambda sets this; Powertools counts a ColdStart only when it says on-demand.
  AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
};

// The functions read the same variables at their cold start: a bad one would
// otherwise start "up" and answer every handshake with 500.
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig({ ...baseEnv, REDIS_URL: baseEnv['REDIS_URL'] || 'redis://127.0.0.1:6379' });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`pushwire: not starting: ${error.message}`);
  process.exit(1);
}

let redis: RedisServer | undefined;
let redisUrl = process.env['REDIS_URL'];
if (!redisUrl) {
  try {
    redis = await startRedisServer();
  } catch (error) {
    // A missing redis-server is a set-up step, not a crash: the message only.
    console.error(`pushwire: not starting: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
  redisUrl = redis.url;
  console.log(
    `pushwire: no REDIS_URL given, started a private redis-server at ${redisUrl} (stops with this process)`,
  );
} else {
  // A REDIS_URL that answers nothing would otherwise start "up" and answer
  // every handshake 500 and every publish `internal`.
  const problem = await checkRedis(redisUrl, baseEnv['REDIS_CLUSTER'] === 'true');
  if (problem) {
    console.error(`pushwire: not starting: ${problem}`);
    process.exit(1);
  }
  console.log(`pushwire: using Redis at ${maskRedisUrl(redisUrl)}`);
}

// A Redis with no data yet begins its epoch now, not at the first $connect:
// a token minted before that connect would be refused as older than the data
// (SECURITY.md, "Revocation and Redis data loss"). Does nothing to a Redis
// already marked.
// (The script is read as text: tsx does not load .lua modules.)
try {
  const keys = createKeys(config.redis.prefix);
  const [first = redisUrl, ...rest] = redisUrl.split(',').map((u) => u.trim());
  const options = { maxRetriesPerRequest: 1, ...(first.startsWith('rediss://') && { tls: {} }) };
  const client = config.redis.cluster
    ? new Cluster([first, ...rest], { redisOptions: options })
    : new Redis(first, options);
  try {
    const lua = readFileSync(
      new URL('../lib/registry/scripts/endpoint.lua', import.meta.url),
      'utf8',
    );
    await client.eval(lua, 3, keys.endpoints(), keys.epoch(), keys.tokenEpoch(), '', 0, Date.now());
  } finally {
    client.disconnect();
  }
} catch (error) {
  console.warn(`pushwire: could not mark the epoch: ${(error as Error).message}`);
}

const env: Record<string, string | undefined> = { ...baseEnv, REDIS_URL: redisUrl };
const buildDir = env['PUSHWIRE_BUILD_DIR'] as string;

// Lifecycle events (EVENTS=...): a stand-in bus here, the relay invoked from here (docs/events.md).
const eventsConfig = loadConfig(env);
const localEvents =
  eventsConfig.events.types.length > 0
    ? await startLocalEvents(eventsConfig, (line) => console.log(line))
    : undefined;
if (localEvents) env['AWS_ENDPOINT_URL_EVENTBRIDGE'] = localEvents.bus.url;

// Acknowledged messages' timeouts (issue 18, docs/acks.md): the same SQS path
// as in AWS, through a stand-in queue that checks each signed SendMessage,
// holds it for its delay and invokes `ackTimeout` as SQS's event source would.
const ackQueue = await startLocalQueue({
  region,
  secretFor: (id) =>
    id === eventsConfig.credentials?.accessKeyId
      ? eventsConfig.credentials.secretAccessKey
      : undefined,
  print: (line) => console.log(line),
});
env['ACK_QUEUE_URL'] = ackQueue.queueUrl;
env['AWS_ENDPOINT_URL_SQS'] = ackQueue.url;
// A local Web Push service (docs/push.md, "Locally"): subscriptions from
// POST <url>/subscribe; every push it receives is VAPID-checked, decrypted and
// printed. The browsers' push services stay allowed, so a real browser's
// subscription (Chrome: fcm.googleapis.com) gets real pushes from here too.
const localWebPush = await startLocalWebPush({
  onPush: (push) => console.log(`pushwire push ${push.subscriptionId} ${push.text}`),
});
if (!env['PUSH_WEBPUSH_HOSTS'])
  env['PUSH_WEBPUSH_HOSTS'] = `${DEFAULT_WEBPUSH_HOSTS},127.0.0.1,localhost`;

// A build left by an earlier layout (say .js beside .cjs) would be loaded first.
rmSync(buildDir, { recursive: true, force: true });

const child = spawn('node_modules/.bin/osls', ['offline', 'start', '--stage', 'local', ...args], {
  env,
  stdio: ['inherit', 'pipe', 'pipe'],
});
let announced = false;
// Quiet mode keeps pushwire's own lines (JSON logs, EMF metrics) and problems.
// Known and explained in docs/services.md ("HTTP API"): no signature is checked locally.
const KNOWN = /does not support the AWS_IAM authorization type/;
const ours = (line: string) =>
  line.trimStart().startsWith('{') || (/error|warn|exception|✖/i.test(line) && !KNOWN.test(line));
for (const [stream, out] of [
  [child.stdout, process.stdout],
  [child.stderr, process.stderr],
] as const) {
  if (!stream) continue;
  if (!quiet) stream.pipe(out);
  else
    createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
      if (ours(line)) out.write(`${line}\n`);
    });
}
// Up means the WebSocket and the HTTP API both listen (they start side by side).
// serverless-offline says "[websocket] listening" before the server behind it
// binds the port; "[http for websocket] listening" comes once it has.
const ready = { websocket: false, http: false };
const watch = (chunk: Buffer) => {
  const text = chunk.toString();
  if (text.includes('[http for websocket] listening')) ready.websocket = true;
  if (text.includes('Server ready:')) ready.http = true;
  if (!announced && ready.websocket && ready.http) {
    announced = true;
    localEvents?.run(lambdaPort, 'pushwire-local-events');
    ackQueue.run(lambdaPort, 'pushwire-local-ackTimeout');
    // Commands that work on the ports this instance uses.
    const listenPort = wsPort === '3001' ? '' : ` --port ${wsPort}`;
    const publishPort = lambdaPort === '3002' ? '' : ` --lambda-port ${lambdaPort}`;
    console.log(
      [
        '',
        `pushwire is up: WebSocket ws://localhost:${wsPort}?token=<JWT>`,
        `  Lambda Invoke API http://localhost:${lambdaPort} (pushwire-local-publish, -presence, -kick, -status)`,
        `  HTTP API http://localhost:${httpPort}/publish, /presence, /kick, /status`,
        `  listen:  npm run listen -- --user alice${listenPort}`,
        `  publish: npm run publish -- --user alice${publishPort} '{"hello":"world"}'`,
        `       or: curl -X POST localhost:${httpPort}/publish -d '{"userId":"alice","data":{"hello":"world"}}'`,
        `  metrics: the {"_aws":…} lines below (CloudWatch EMF)${quiet ? '' : '; --quiet hides serverless-offline'}`,
        `  push:    local Web Push service ${localWebPush.url} (POST /subscribe for a test subscription; pushes print as "pushwire push …"); VAPID public key ${env['VAPID_PUBLIC_KEY'] ?? '(none)'}`,
        localEvents
          ? `  events:  ${eventsConfig.events.types.join(', ')}: "pushwire event …" lines below (stand-in bus ${localEvents.bus.url})`
          : '  events:  none (EVENTS=all npm start prints lifecycle events; docs/events.md)',
        '',
      ].join('\n'),
    );
  }
};
child.stdout?.on('data', watch);
child.stderr?.on('data', watch);

// AWS runs presenceEvents every minute (a schedule, serverless.yml), which
// serverless-offline does not: its sweep of expired presence devices (a lost
// $disconnect still means a leave) is invoked from here, every
// PRESENCE_SWEEP_MS (default 5 s), once the Lambda port answers.
const sweepMs = Number(process.env['PRESENCE_SWEEP_MS'] ?? 5_000);
const sweep =
  sweepMs > 0
    ? setInterval(() => {
        if (!announced || stopping) return;
        fetch(
          `http://localhost:${lambdaPort}/2015-03-31/functions/pushwire-local-presenceEvents/invocations`,
          { method: 'POST', body: '{"source":"npm-start.schedule"}' },
        )
          .then((response) => response.arrayBuffer())
          .catch(() => undefined);
      }, sweepMs)
    : undefined;
sweep?.unref();

// --- Every exit path stops both children and removes the temporary folders ---
// (the private Redis's working folder and this instance's build folder):
// Ctrl-C, SIGTERM, serverless-offline exiting or crashing, the private Redis
// dying, and an error of this script itself. Only SIGKILL escapes.
let stopping = false;
const removeTemporaryFolders = () => {
  if (redis) rmSync(redis.dir, { recursive: true, force: true });
  rmSync(buildDir, { recursive: true, force: true });
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
  await localEvents?.stop().catch(() => undefined);
  await ackQueue.close().catch(() => undefined);
  await localWebPush.close().catch(() => undefined);
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
