/**
 * `npm run bench -- --paced`: fan-out at the account's limit (issue 19,
 * bench/paced.ts). Flags (defaults in brackets):
 *   --members=100000     audience of each scenario
 *   --rate=2000          the stand-in account's limit, posts/s (AWS's default is 10,000)
 *   --burst=1000         its bucket (AWS's default is 5,000)
 *   --latency=20         median ms of a post (lognormal, --sigma=0.5)
 *   --pace=0.95          PACE_RATE as a share of --rate
 *   --pace-burst=200 --pace-reserve=50
 *   --workers=8          deliver processes
 *   --scenarios=one,several,unpaced
 * Appends each result to bench/paced-results.json and prints it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config.js';
import type { RedisRegistry } from '../lib/registry/redis.js';
import { startRedisServer } from '../scripts/redis-server.js';
import {
  AWS_ENV,
  JWT_SECRET,
  killAllChildrenNow,
  PREFIX,
  root,
  stopAllChildren,
} from './common.js';
import { publishDeps } from './fanout.js';
import { startMgmtServer } from './mgmt.js';
import { benchPaced, type PacedSettings, standIn } from './paced.js';
import { cleanup, client } from './redis.js';

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const num = (name: string, fallback: number) => Number(arg(name, String(fallback)));

async function main(): Promise<void> {
  Object.assign(process.env, AWS_ENV);
  const redisServer = await startRedisServer();
  const spawned = redisServer.process;
  process.on('exit', () => spawned.kill('SIGKILL'));
  const redis = client(redisServer.url);
  const mgmt = await startMgmtServer();
  const out = join(root(), 'bench', 'paced-results.json');
  try {
    const config = loadConfig({
      REDIS_URL: redisServer.url,
      JWT_SECRET,
      REDIS_PREFIX: PREFIX,
      ...AWS_ENV,
    });
    const registry = publishDeps(redis, config).registry as RedisRegistry;
    const rate = num('rate', 2_000);
    const base: PacedSettings = {
      members: num('members', 100_000),
      workers: num('workers', 8),
      account: {
        rate,
        burst: num('burst', 1_000),
        latencyMs: num('latency', 20),
        sigma: num('sigma', 0.5),
      },
      pace: {
        rate: Math.floor(rate * num('pace', 0.95)),
        burst: num('pace-burst', 200),
        reserve: num('pace-reserve', 50),
      },
      bigPublishes: 1,
      smallPublishes: 0,
      smallEveryMs: 1_000,
      memoryMb: 1_024,
    };
    const scenarios: Record<string, PacedSettings> = {
      one: base,
      several: { ...base, bigPublishes: 3, smallPublishes: 10, smallEveryMs: 2_000 },
      unpaced: { ...base, pace: { ...base.pace, rate: 0 } },
      'unpaced-several': {
        ...base,
        pace: { ...base.pace, rate: 0 },
        bigPublishes: 3,
        smallPublishes: 10,
        smallEveryMs: 2_000,
      },
    };
    // The publish runs as Lambda would, with serverless.yml's 300 s timeout
    // (bench/big-publisher.ts): it waits for its chunks, so an audience that
    // needs longer than that at the paced rate cannot finish in one publish.
    const paceSeconds = base.members / Math.max(1, base.pace.rate);
    console.log(
      `stand-in: ${standIn(base.account.rate, base.account.burst)}; ${base.members} members at PACE_RATE ${base.pace.rate}/s: at least ${Math.round(paceSeconds)} s`,
    );
    if (base.pace.rate > 0 && paceSeconds > 270)
      console.warn(
        `warning: ${Math.round(paceSeconds)} s at the paced rate is past 90 % of publish's 300 s timeout; raise --rate (a faster stand-in) or lower --members`,
      );
    const results = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as unknown[]) : [];
    for (const name of arg('scenarios', 'one,several,unpaced').split(',')) {
      const settings = scenarios[name];
      if (!settings) throw new Error(`unknown scenario ${name}`);
      console.log(`scenario ${name}…`);
      const result = await benchPaced({
        redis,
        redisUrl: redisServer.url,
        registry,
        mgmt,
        scenario: name,
        settings,
        loadavg: () => loadavg()[0] ?? 0,
      });
      console.log(JSON.stringify(result));
      results.push({ date: new Date().toISOString(), ...result });
      writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    }
  } finally {
    await mgmt.stop();
    await stopAllChildren();
    await cleanup(redis).catch(() => undefined);
    redis.disconnect();
    await redisServer.stop();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildrenNow();
    process.exit(130); // 'exit' also stops the private redis-server
  });
}
process.on('exit', killAllChildrenNow);

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
