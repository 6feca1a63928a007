/**
 * What the model draws: a world (users, topics, grants, tabs and their
 * storage, limits) from the whole valid space of names, and a list of
 * commands. Indexes in commands are taken modulo the world's sizes, so any
 * command applies to any world and shrinking stays simple.
 */
import fc from 'fast-check';
import { TOPIC_PATTERN, USER_ID_PATTERN } from '../../lib/constants.js';
import type { Fault, World, WorldParams } from './world.js';

export type Command =
  | { c: 'publishUser'; user: number; id?: string; data: unknown }
  | { c: 'publishUsers'; users: number[]; id?: string; data: unknown }
  | { c: 'publishTopic'; topic: number; id?: string; data: unknown }
  | { c: 'retryPublish'; back: number }
  | { c: 'subscribe'; tab: number; topic: number }
  | { c: 'unsubscribe'; tab: number; topic: number }
  | { c: 'run'; tasks: number }
  | { c: 'advance'; ms: number }
  | { c: 'drop'; tab: number }
  | { c: 'reload'; tab: number }
  | { c: 'kick'; user: number; revoke: boolean }
  | { c: 'ungrant'; user: number; topic: number }
  | { c: 'grant'; user: number; topic: number }
  | { c: 'faults'; tab?: number; faults: Fault[] }
  | { c: 'quiet' }
  | { c: 'redisLoss' }
  | { c: 'storageFull'; storage: number; on: boolean };

/**
 * What can be left out (MODEL_WITHOUT=faults,quiet), e.g. while a known defect
 * is open: a command kind, or a feature of the world: `sharedStorage` (tabs of
 * one user on one storage), `rateLimit` (a replay limit low enough to hit),
 * `staleToken` (tabs that keep one token, as a thief would), `retryAfterLoss`
 * (retries of publishes made before Redis lost its data).
 */
export type Kind = Command['c'] | 'sharedStorage' | 'rateLimit' | 'staleToken' | 'retryAfterLoss';

/**
 * Left out of `npm test` while the defect they find is open (issue 21's item
 * numbers); the long run (`npm run test:model`) leaves nothing out. Remove an
 * entry when its fix lands.
 */
export const KNOWN_OPEN: Record<string, string> = {
  retryAfterLoss:
    'sixth run, seed 750000068: a publish retried with its id after Redis lost its data (and ' +
    'the id with it) is stored and sent again; a client that no longer holds the id (reloaded, ' +
    'or left and joined the topic again) hands it over twice (RELIABILITY.md, "What the model found")',
};

const userId = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 256 })
  .filter((s) => USER_ID_PATTERN.test(s));
const topicName = fc.stringMatching(TOPIC_PATTERN);
const publishId = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,120}$/);

export const worldArb = (without: ReadonlySet<Kind>): fc.Arbitrary<Omit<WorldParams, 'seed'>> =>
  fc
    .record({
      users: fc.uniqueArray(userId, { minLength: 1, maxLength: 3 }),
      topics: fc.uniqueArray(topicName, { minLength: 1, maxLength: 5 }),
      tabs: fc.array(fc.record({ user: fc.nat(), storage: fc.nat(), stale: fc.nat(4) }), {
        minLength: 1,
        maxLength: 4,
      }),
      grants: fc.array(fc.array(fc.nat()), { minLength: 3, maxLength: 3 }),
      wildcard: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      asyncStorage: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      historySize: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(100)),
      replaysPerMinute: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(10)),
      tokenLifetimeSeconds: fc.integer({ min: 20, max: 900 }),
      historyTtlSeconds: fc.integer({ min: 10, max: 60 }),
    })
    .map((w) => ({
      ...w,
      tabs: w.tabs.map((t, i) => ({
        user: t.user % w.users.length,
        storage: without.has('sharedStorage') ? i : t.storage % 4,
        // One tab in five keeps the token it was given (a stolen one).
        ...(t.stale === 0 && !without.has('staleToken') && { stale: true }),
      })),
      replaysPerMinute: without.has('rateLimit') ? 10_000 : w.replaysPerMinute,
      grants: w.grants.map((g) => [...new Set(g.map((t) => t % w.topics.length))]),
    }));

/** Any JSON, or a padded one of any size up to past the publish limit (refused ones are told). */
const data: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 1,
    // Past 128 KB a message goes as parts (PW-F6); past the world's
    // MAX_PUBLISH_BYTES (world.ts, 200,000) it is refused.
    arbitrary: fc.integer({ min: 0, max: 260_000 }).map((n) => ({ pad: 'x'.repeat(n) })),
  },
);

const fault: fc.Arbitrary<Fault> = fc.constantFrom(
  'error',
  'throttle',
  'timeout',
  'timeout-landed',
);

export function commandArb(without: ReadonlySet<Kind>): fc.Arbitrary<Command> {
  const all: { weight: number; kind: Kind; arbitrary: fc.Arbitrary<Command> }[] = [
    {
      weight: 6,
      kind: 'publishUser',
      arbitrary: fc.record(
        { c: fc.constant('publishUser' as const), user: fc.nat(), id: publishId, data },
        { requiredKeys: ['c', 'user', 'data'] },
      ),
    },
    {
      weight: 2,
      kind: 'publishUsers',
      arbitrary: fc.record(
        {
          c: fc.constant('publishUsers' as const),
          users: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
          id: publishId,
          data,
        },
        { requiredKeys: ['c', 'users', 'data'] },
      ),
    },
    {
      weight: 6,
      kind: 'publishTopic',
      arbitrary: fc.record(
        { c: fc.constant('publishTopic' as const), topic: fc.nat(), id: publishId, data },
        { requiredKeys: ['c', 'topic', 'data'] },
      ),
    },
    {
      weight: 1,
      kind: 'retryPublish',
      arbitrary: fc.record({ c: fc.constant('retryPublish' as const), back: fc.nat(5) }),
    },
    {
      weight: 4,
      kind: 'subscribe',
      arbitrary: fc.record({
        c: fc.constant('subscribe' as const),
        tab: fc.nat(),
        topic: fc.nat(),
      }),
    },
    {
      weight: 1,
      kind: 'unsubscribe',
      arbitrary: fc.record({
        c: fc.constant('unsubscribe' as const),
        tab: fc.nat(),
        topic: fc.nat(),
      }),
    },
    {
      weight: 8,
      kind: 'run',
      arbitrary: fc.record({
        c: fc.constant('run' as const),
        tasks: fc.integer({ min: 1, max: 30 }),
      }),
    },
    {
      weight: 3,
      kind: 'advance',
      arbitrary: fc.record({
        c: fc.constant('advance' as const),
        ms: fc.oneof(fc.integer({ min: 1, max: 3_000 }), fc.integer({ min: 1, max: 40_000 })),
      }),
    },
    {
      weight: 2,
      kind: 'drop',
      arbitrary: fc.record({ c: fc.constant('drop' as const), tab: fc.nat() }),
    },
    {
      weight: 1,
      kind: 'reload',
      arbitrary: fc.record({ c: fc.constant('reload' as const), tab: fc.nat() }),
    },
    {
      weight: 1,
      kind: 'kick',
      arbitrary: fc.record({
        c: fc.constant('kick' as const),
        user: fc.nat(),
        revoke: fc.boolean(),
      }),
    },
    {
      weight: 1,
      kind: 'ungrant',
      arbitrary: fc.record({ c: fc.constant('ungrant' as const), user: fc.nat(), topic: fc.nat() }),
    },
    {
      weight: 1,
      kind: 'grant',
      arbitrary: fc.record({ c: fc.constant('grant' as const), user: fc.nat(), topic: fc.nat() }),
    },
    {
      weight: 2,
      kind: 'faults',
      arbitrary: fc.record(
        {
          c: fc.constant('faults' as const),
          tab: fc.nat(),
          faults: fc.array(fault, { minLength: 1, maxLength: 6 }),
        },
        { requiredKeys: ['c', 'faults'] },
      ),
    },
    {
      weight: 1,
      kind: 'quiet',
      arbitrary: fc.constant({ c: 'quiet' as const }),
    },
    {
      weight: 1,
      kind: 'redisLoss',
      arbitrary: fc.constant({ c: 'redisLoss' as const }),
    },
    {
      weight: 1,
      kind: 'storageFull',
      arbitrary: fc.record({
        c: fc.constant('storageFull' as const),
        storage: fc.nat(3),
        on: fc.boolean(),
      }),
    },
  ];
  return fc.oneof(...all.filter((a) => !without.has(a.kind)));
}

/** Virtual time a run may add before healing: the client's 300 s floor must stay ahead of Redis's clock. */
const ADVANCE_BUDGET_MS = 110_000;

export async function apply(world: World, command: Command, ids: string[]): Promise<void> {
  const { users, topics } = world.params;
  const tab = (n: number) => world.tabs[n % world.tabs.length] as World['tabs'][number];
  const unique = (id: string | undefined) => {
    if (id === undefined) return undefined;
    // The id as drawn (any legal one, `constructor` included) unless already used.
    const made = ids.includes(id) ? `${id}.${ids.length}` : id;
    ids.push(made);
    return made;
  };
  world.actions++;
  switch (command.c) {
    case 'publishUser':
      return world.publish(
        { userId: command.user % users.length, id: unique(command.id) },
        JSON.stringify(command.data),
      );
    case 'publishUsers':
      return world.publish(
        {
          userIds: [...new Set(command.users.map((u) => u % users.length))],
          id: unique(command.id),
        },
        JSON.stringify(command.data),
      );
    case 'publishTopic':
      return world.publish(
        { topic: command.topic % topics.length, id: unique(command.id) },
        JSON.stringify(command.data),
      );
    case 'retryPublish':
      return world.retry(command.back);
    case 'subscribe':
      return world.subscribe(tab(command.tab), command.topic % topics.length);
    case 'unsubscribe':
      return world.unsubscribe(tab(command.tab), command.topic % topics.length);
    case 'run':
      return world.run(command.tasks);
    case 'advance': {
      const ms = Math.min(command.ms, ADVANCE_BUDGET_MS - world.clock.advanced);
      if (ms > 0) await world.advance(ms);
      return;
    }
    case 'drop':
      return world.drop(tab(command.tab));
    case 'reload':
      return world.reload(tab(command.tab));
    case 'kick':
      return world.kick(command.user % users.length, command.revoke);
    case 'ungrant':
      return world.ungrant(command.user % users.length, command.topic % topics.length);
    case 'grant':
      return world.grant(command.user % users.length, command.topic % topics.length);
    case 'faults': {
      const target = command.tab === undefined ? undefined : world.current(tab(command.tab))?.id;
      for (const f of command.faults) world.faults.push({ conn: target, fault: f });
      return;
    }
    case 'quiet': {
      // Longer than HISTORY_TTL_SECONDS with nothing published: streams expire whole.
      const ms = world.params.historyTtlSeconds * 1000 + 1_000;
      if (world.clock.advanced + ms <= ADVANCE_BUDGET_MS) await world.advance(ms);
      return;
    }
    case 'redisLoss':
      return world.redisLosesData();
    case 'storageFull': {
      const storage = world.tabs.find(
        (t) => t.storage === world.storages[command.storage],
      )?.storage;
      if (storage) storage.full = command.on;
      return;
    }
  }
}
