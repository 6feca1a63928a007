/**
 * The model-based test of issue 21, short version (in `npm test`): MODEL_RUNS
 * worlds (default 100) of up to MODEL_COMMANDS commands (default 40). The
 * long one is test/model-long/long.test.ts (`npm run test:model`). See
 * property.ts for what is checked and how to replay a failure.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisProcess } from '../helpers/redis-process.js';
import { FOUND } from './found.js';
import { env, leftOut, modelProperty, runWorld, type Totals } from './property.js';

let redis: RedisProcess;
const totals: Totals = { runs: 0, actions: 0, tasks: 0, publishes: 0, handed: 0, gaps: 0 };

describe('model: no silent loss (issue 21)', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start({ persist: false });
  });
  afterAll(async () => {
    await redis?.stop();
    console.log(`model totals: ${JSON.stringify(totals)}`);
  });

  it.each(FOUND.map((f) => [f.what, f] as const))('found before, holds now: %s', async (_, f) => {
    const violations = await runWorld(redis.url, f.params, f.commands, new Set(), totals);
    expect(violations.map((v) => `${v.kind}: ${v.detail}`)).toEqual([]);
  });

  it('short: a few worlds hold the property', async () => {
    const seed = env['MODEL_SEED'] === undefined ? undefined : Number(env['MODEL_SEED']);
    const property = modelProperty(() => redis, totals, {
      without: leftOut(),
      maxCommands: Number(env['MODEL_COMMANDS'] ?? 40),
    });
    await fc.assert(property, {
      numRuns: Number(env['MODEL_RUNS'] ?? 100),
      ...(seed !== undefined && { seed }),
      ...(env['MODEL_PATH'] && { path: env['MODEL_PATH'] }),
      endOnFailure: env['MODEL_PATH'] !== undefined,
    });
  }, 300_000);
});
