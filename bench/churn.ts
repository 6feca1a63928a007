import { spawn } from 'node:child_process';
import { SignJWT } from 'jose';
import { createTokenVerifier, type TokenVerifier } from '../lib/auth/tokens.js';
import { connect, disconnect } from '../lib/session/session.js';
import { JWT_SECRET, now, PREFIX, pool, round } from './common.js';
import { benchRegistry, client, commandStats, roundTripCounter } from './redis.js';

export interface RedisBenchmarkRow {
  /** The command run, with how many times a connect + disconnect pair issues it. */
  command: string;
  per_pair: number;
  rps: number;
  stands_for?: string;
}

export interface ChurnResult {
  /** connect() + disconnect() pairs per second, JWT verified on every connect. */
  ours_per_s: number;
  /** The same with verification replaced by a stub: Redis work only. */
  ours_no_verify_per_s: number;
  /** redis-benchmark's rates for the same command mix, combined into pairs per second. */
  redis_benchmark_per_s: number;
  pairs: number;
  concurrency: number;
  /** Round trips of one pair on its own (write bursts on the socket). */
  round_trips_per_pair: number;
  /** Redis commands per pair over the measured run (INFO commandstats; null on a shared Redis). */
  commands_per_pair: number | null;
  command_mix: Record<string, number> | null;
  redis_benchmark: RedisBenchmarkRow[];
}

const ENDPOINT = 'http://127.0.0.1:9/bench';

/**
 * A redis-benchmark command standing for each command a pair issues, keyed by
 * INFO commandstats' name. redis-benchmark cannot send MULTI or EXEC alone (a
 * second MULTI on a connection is an error and it stops), so those, and any
 * command without a template, are run as PING, the cheapest round trip.
 */
function template(name: string): string[] | null {
  const c = `${PREFIX}rb:c:{__rand_int__}`;
  const live = `${PREFIX}rb:u:{u:__rand_int__}:c`;
  const member = `rb__rand_int__|${ENDPOINT}`;
  const templates: Record<string, string[]> = {
    hset: [
      'HSET',
      c,
      'userId',
      'u1',
      'endpoint',
      ENDPOINT,
      'connectedAt',
      '1732752000000',
      'allowedTopics',
      '[]',
    ],
    expire: ['EXPIRE', c, '660'],
    zadd: ['ZADD', live, '1732752000000', member],
    hgetall: ['HGETALL', c],
    smembers: ['SMEMBERS', `${c}:t`],
    zrem: ['ZREM', live, member],
    del: ['DEL', c, `${c}:t`],
  };
  return templates[name] ?? null;
}

/** What register() + remove() sent when this was written; used only when INFO is not ours to reset. */
const FALLBACK_MIX: Record<string, number> = {
  multi: 4,
  exec: 4,
  hset: 1,
  expire: 3,
  zadd: 2,
  hgetall: 1,
  smembers: 1,
  zrem: 3,
  del: 1,
};

function redisBenchmark(
  url: string,
  args: string[],
  requests: number,
  clients: number,
): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const child = spawn(
      'redis-benchmark',
      [
        '-h',
        hostname,
        '-p',
        port,
        '-n',
        String(requests),
        '-c',
        String(clients),
        '-P',
        '1',
        '-r',
        '100000',
        '--csv',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', (error) =>
      reject(new Error(`redis-benchmark: ${error.message} (is it on PATH?)`)),
    );
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('"') && !l.startsWith('"test"'));
      const rps = Number(line?.split('","')[1]);
      if (code !== 0 || !Number.isFinite(rps) || rps <= 0) {
        reject(new Error(`redis-benchmark ${args[0]} failed (${code}): ${out.slice(-300)}`));
      } else resolve(rps);
    });
  });
}

async function tokens(count: number): Promise<string[]> {
  const key = new TextEncoder().encode(JWT_SECRET);
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({ topics: ['news'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`churn-user-${i}`)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(key),
    ),
  );
}

export async function benchChurn(options: {
  redisUrl: string;
  privateRedis: boolean;
  pairs: number;
  concurrency: number;
  redisBenchmarkRequests: number;
}): Promise<ChurnResult> {
  const redis = client(options.redisUrl);
  try {
    const registry = benchRegistry(redis);
    const signed = await tokens(100);
    const verified = createTokenVerifier({ secret: JWT_SECRET });
    const stub: TokenVerifier = async () => ({
      userId: 'churn-stub',
      topics: ['news'],
      expiresAt: Date.now() + 3_600_000,
      issuedAt: Date.now(),
    });
    const pair = async (id: string, token: string, verifyToken: TokenVerifier) => {
      await connect(
        { connectionId: id, domainName: '127.0.0.1', stage: 'bench', token },
        { registry, verifyToken, callbackUrl: ENDPOINT },
      );
      if (!(await disconnect(id, { registry }))) throw new Error(`disconnect found no ${id}`);
    };
    const run = async (tag: string, count: number, verifyToken: TokenVerifier) => {
      const ids = Array.from({ length: count }, (_, i) => `${tag}-${i}`);
      const t0 = now();
      await pool(ids, options.concurrency, (id, i) =>
        pair(id, signed[i % signed.length] as string, verifyToken),
      );
      return count / ((now() - t0) / 1000);
    };

    // Round trips of one pair on its own (nothing else in flight to share a write with).
    await run('warm', 500, verified);
    const counter = await roundTripCounter(redis);
    await pair('rt-0', signed[0] as string, verified);
    const roundTrips = counter.roundTrips();

    if (options.privateRedis) await redis.config('RESETSTAT');
    const ours = await run('ch', options.pairs, verified);
    let mix: Record<string, number> | null = null;
    let commands: number | null = null;
    if (options.privateRedis) {
      const stats = await commandStats(redis);
      mix = {};
      commands = 0;
      for (const [name, calls] of stats) {
        mix[name] = round(calls / options.pairs, 3);
        commands += calls / options.pairs;
      }
      commands = round(commands, 2);
    }
    const oursNoVerify = await run('chnv', options.pairs, stub);

    const rows: RedisBenchmarkRow[] = [];
    // The mix as measured (commandstats over our run), else the one known when this was written.
    for (const [name, perPair] of Object.entries(mix ?? FALLBACK_MIX)) {
      const args = template(name) ?? ['PING'];
      const rps = await redisBenchmark(
        options.redisUrl,
        args,
        options.redisBenchmarkRequests,
        options.concurrency,
      );
      rows.push({
        command: args.join(' '),
        per_pair: perPair,
        rps: round(rps),
        ...(args[0] === 'PING' && { stands_for: name.toUpperCase() }),
      });
    }
    // A pair issues each command per_pair times; at the measured rates its Redis time is the sum.
    const secondsPerPair = rows.reduce((sum, row) => sum + row.per_pair / row.rps, 0);
    return {
      ours_per_s: round(ours),
      ours_no_verify_per_s: round(oursNoVerify),
      redis_benchmark_per_s: round(1 / secondsPerPair),
      pairs: options.pairs,
      concurrency: options.concurrency,
      round_trips_per_pair: roundTrips,
      commands_per_pair: commands,
      command_mix: mix,
      redis_benchmark: rows,
    };
  } finally {
    redis.disconnect();
  }
}
