/**
 * The property of the model-based test (issue 21, "no silent loss
 * anywhere"), shared by the short run (test/model/model.test.ts, in `npm
 * test`) and the long one (test/model-long/long.test.ts, `npm run
 * test:model`): random worlds and command lists drive the real client library
 * against the real server code on a private Redis (see world.ts), then
 * everything heals and the property is checked: every published message was
 * handed to every intended, still-entitled tab exactly once, or that tab was
 * told (a `gap` after the publish); no revoked, expired or ungranted
 * connection was posted a message; per stream, messages came in order;
 * nothing stayed stuck.
 *
 * Replay a failure with MODEL_SEED=<seed> MODEL_PATH=<path> (printed with
 * every failure). MODEL_WITHOUT=faults,quiet leaves command kinds out.
 */
import fc from 'fast-check';
import type { RedisProcess } from '../helpers/redis-process.js';
import { apply, type Command, commandArb, type Kind, KNOWN_OPEN, worldArb } from './commands.js';
import { type Violation, World, type WorldParams } from './world.js';

export const env = process.env;

export interface Totals {
  runs: number;
  actions: number;
  tasks: number;
  publishes: number;
  handed: number;
  gaps: number;
}

/** What is left out: MODEL_WITHOUT if set, else what finds a defect still open (KNOWN_OPEN). */
export function leftOut(): Set<Kind> {
  return new Set(
    (env['MODEL_WITHOUT'] ?? Object.keys(KNOWN_OPEN).join(','))
      .split(',')
      .filter(Boolean) as Kind[],
  );
}

/** Runs one world through its commands, heals it and returns what the property finds. */
export async function runWorld(
  redisUrl: string,
  params: WorldParams,
  commands: Command[],
  without: ReadonlySet<Kind>,
  totals?: Totals,
): Promise<Violation[]> {
  const world = await World.create(params, redisUrl);
  world.without = without;
  try {
    const ids: string[] = [];
    for (const command of commands) await apply(world, command, ids);
    await world.heal();
    const violations = world.check();
    if (totals) {
      totals.runs++;
      totals.actions += world.actions;
      totals.tasks += world.tasks;
      totals.publishes += world.published.length;
      for (const t of world.tabs) {
        totals.handed += t.handed.length;
        totals.gaps += t.gaps.length;
      }
    }
    return violations;
  } finally {
    await world.dispose();
  }
}

export function modelProperty(
  redis: () => RedisProcess,
  totals: Totals,
  options: { without: ReadonlySet<Kind>; maxCommands: number },
) {
  const { without, maxCommands } = options;
  return fc.asyncProperty(
    worldArb(without),
    fc.array(commandArb(without), { maxLength: maxCommands, size: 'max' }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    async (params, commands: Command[], seed) => {
      const violations = await runWorld(
        redis().url,
        { ...params, seed },
        commands,
        without,
        totals,
      );
      if (violations.length > 0) {
        const shown = violations.slice(0, 8).map((v) => `${v.kind}: ${v.detail}`);
        throw new Error(`${violations.length} violation(s):\n${shown.join('\n')}`);
      }
    },
  );
}
