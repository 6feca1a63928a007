/**
 * The model-based test of issue 21, long version (`npm run test:model`; not
 * in `npm test`): fresh seeds for MODEL_MINUTES (default 5), up to
 * MODEL_COMMANDS commands a world (default 80), nothing left out unless
 * MODEL_WITHOUT says so; each failure is shrunk and recorded, then all are
 * reported. See test/model/property.ts for what is checked; replay a failure
 * with `MODEL_SEED=<seed> MODEL_PATH=<path> MODEL_WITHOUT= npx vitest run
 * --project model` (the short run's file replays any seed and path).
 */
import { loadavg } from 'node:os';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisProcess } from '../helpers/redis-process.js';
import type { Kind } from '../model/commands.js';
import { env, modelProperty, type Totals } from '../model/property.js';

let redis: RedisProcess;
const totals: Totals = { runs: 0, actions: 0, tasks: 0, publishes: 0, handed: 0, gaps: 0 };

describe('model, long: no silent loss (issue 21)', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start({ persist: false });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('fresh seeds for minutes; every failure shrunk and recorded', async () => {
    const started = Date.now();
    const deadline = started + Number(env['MODEL_MINUTES'] ?? 5) * 60_000;
    const without = new Set((env['MODEL_WITHOUT'] ?? '').split(',').filter(Boolean) as Kind[]);
    const property = modelProperty(() => redis, totals, {
      without,
      maxCommands: Number(env['MODEL_COMMANDS'] ?? 80),
    });
    const found: string[] = [];
    const seeds: number[] = [];
    let fresh = 0;
    let seed = Number(env['MODEL_SEED'] ?? Date.now() % 2 ** 31);
    while (Date.now() < deadline) {
      seeds.push(seed);
      const result = await fc.check(property, {
        seed,
        numRuns: 20,
        interruptAfterTimeLimit: Math.max(1, deadline - Date.now()),
        markInterruptAsFailure: false,
      });
      fresh += result.numRuns;
      if (result.failed && !result.interrupted) {
        found.push(
          `seed ${result.seed} path ${result.counterexamplePath}\n` +
            `counterexample: ${fc.stringify(result.counterexample)}\n${String((result.errorInstance as Error)?.message ?? result.errorInstance)}`,
        );
        console.log(`model: failure ${found.length}\n${found.at(-1)}`);
      }
      seed = (seed + 1) % 2 ** 31;
    }
    const minutes = ((Date.now() - started) / 60_000).toFixed(1);
    console.log(
      `model long run: ${minutes} min, seeds ${seeds[0]}..${seeds.at(-1)} (${seeds.length} × 20 runs; ${fresh} run), ` +
        `${found.length} failure(s), totals ${JSON.stringify(totals)}, load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}`,
    );
    expect(found).toEqual([]);
  }, 3_600_000);
});
