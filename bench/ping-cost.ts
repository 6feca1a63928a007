/**
 * What one `ping` costs in Redis as a connection's topics grow, and what
 * MAX_TOPICS_PER_CONNECTION therefore bounds it to. Counts commands (INFO
 * commandstats) and times pings against a private redis-server.
 *
 *   npx esbuild bench/ping-cost.ts --bundle --platform=node --format=esm \
 *     --loader:.lua=text --packages=external --outfile=node_modules/.cache/ping-cost.mjs \
 *     && node node_modules/.cache/ping-cost.mjs [topics...]   (default: 0 10 100 1000 2000)
 */
import { Redis } from 'ioredis';
import { createRedis } from '../lib/clients.js';
import { RedisRegistry } from '../lib/registry/redis.js';
import { handleFrame } from '../lib/session/session.js';
import { startRedisServer } from '../scripts/redis-server.js';

const counts = process.argv.slice(2).map(Number);
const sizes = counts.length > 0 ? counts : [0, 10, 100, 1_000, 2_000];

async function totalCommands(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  let total = 0;
  for (const line of info.split('\n')) {
    const m = /^cmdstat_(\w+):calls=(\d+)/.exec(line);
    if (m && !['info', 'ping', 'client', 'hello', 'command', 'select'].includes(m[1] as string))
      total += Number(m[2]);
  }
  return total;
}

const server = await startRedisServer();
// As the functions build it (auto-pipelining on).
const redis = createRedis([server.url], false);
const admin = new Redis(server.url);
const registry = new RedisRegistry(redis, {
  prefix: 'pwbench-ping:',
  connectionTtlSeconds: 660,
  historySize: 100,
  historyTtlSeconds: 86_400,
});
const gateway = { post: async () => 'ok' as const, close: async () => 'ok' as const };
console.log('topics  commands/ping  ms/ping (median of 20)');
for (const n of sizes) {
  const record = {
    connectionId: `ping-${n}`,
    userId: `ping-user-${n}`,
    endpoint: 'https://x.execute-api.us-east-1.amazonaws.com/prod',
    connectedAt: Date.now(),
    allowedTopics: ['*'],
  };
  await registry.register(record);
  for (let i = 0; i < n; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - i) }, (_, j) =>
        registry.subscribe(record, `t-${i + j}`),
      ),
    );
  }
  const before = await totalCommands(admin);
  await handleFrame(record.connectionId, '{"action":"ping"}', { registry, gateway });
  const commands = (await totalCommands(admin)) - before;
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await handleFrame(record.connectionId, '{"action":"ping"}', { registry, gateway });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${String(n).padStart(6)}  ${String(commands).padStart(13)}  ${(times[10] as number).toFixed(2).padStart(7)}`,
  );
}
redis.disconnect();
admin.disconnect();
await server.stop();
