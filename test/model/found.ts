/**
 * What the model found, shrunk, kept as examples that every `npm test` runs
 * again (test/model/model.test.ts): each was a failure once, of the code or
 * of the model's own oracle. The seed and path replay the original with
 * `MODEL_SEED=<seed> MODEL_PATH=<path> MODEL_WITHOUT= npx vitest run
 * --project model` on the code of its day; the example is its shrunk form.
 */
import type { Command } from './commands.js';
import type { WorldParams } from './world.js';

export interface Found {
  what: string;
  /** Where it was found (seed and, where recorded, path of `npm run test:model`). */
  replay: string;
  params: WorldParams;
  commands: Command[];
}

/** One user, one topic, one tab: the smallest world most examples need. */
const one = (over: Partial<WorldParams> = {}): WorldParams => ({
  users: ['u'],
  topics: ['t'],
  tabs: [{ user: 0, storage: 0 }],
  grants: [[0], [], []],
  wildcard: [false, false, false],
  asyncStorage: [false, false, false, false],
  historySize: 100,
  replaysPerMinute: 10,
  tokenLifetimeSeconds: 900,
  historyTtlSeconds: 60,
  seed: 0,
  ...over,
});

export const FOUND: Found[] = [
  {
    what: 'item 3: a post that times out is not retried within the budget (lost, user stream)',
    replay: 'seed 1297080190 (first run)',
    params: one(),
    commands: [
      { c: 'kick', user: 0, revoke: false },
      { c: 'reload', tab: 0 },
      { c: 'run', tasks: 30 },
      { c: 'faults', tab: 0, faults: ['timeout-landed', 'timeout'] },
      { c: 'publishUser', user: 0, data: 1 },
    ],
  },
  {
    what: 'items 1 and 3: a rate-limited re-subscribe is never retried (lost, topic)',
    replay: 'seed 1297080191 (first run)',
    params: one({ topics: ['a', 'b'], grants: [[0, 1], [], []], replaysPerMinute: 1 }),
    commands: [
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'subscribe', tab: 0, topic: 1 },
      { c: 'run', tasks: 30 },
      { c: 'faults', tab: 0, faults: ['timeout', 'error'] },
      { c: 'publishTopic', topic: 1, data: 2 },
    ],
  },
  {
    what: 'a re-subscription replays what was handed over (duplicate; closed by subscribed.cursor)',
    replay: 'seed 1297493114 (second run)',
    params: one(),
    commands: [
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'run', tasks: 30 },
      { c: 'publishTopic', topic: 0, data: 3 },
      { c: 'run', tasks: 30 },
      { c: 'advance', ms: 2_000 },
      { c: 'reload', tab: 0 },
      { c: 'run', tasks: 30 },
      { c: 'unsubscribe', tab: 0, topic: 0 },
      { c: 'advance', ms: 2_000 },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'run', tasks: 30 },
      { c: 'advance', ms: 2_000 },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'a revocation does not outlive Redis losing its data (revoked)',
    replay: 'seed -1830243317 (first runs); fixed by the token epoch',
    // Tab 1 keeps its first token (stolen): refused once revoked, until the
    // data loss took the revocation; then it connected and received.
    params: one({
      tabs: [
        { user: 0, storage: 0 },
        { user: 0, storage: 1, stale: true },
      ],
    }),
    commands: [
      { c: 'kick', user: 0, revoke: true },
      { c: 'advance', ms: 2_000 },
      { c: 'redisLoss' },
      { c: 'advance', ms: 5_000 },
      { c: 'publishUser', user: 0, data: 4 },
    ],
  },
  {
    what: 'unsubscribe, subscribe again, reload before subscribed: handed over again (duplicate)',
    replay:
      'seed 720000088 (this round, third run); fixed by the client keeping where a stream was left',
    params: one({
      users: ['ක'],
      topics: ['.'],
      grants: [[], [], []],
      wildcard: [true, false, false],
    }),
    commands: [
      { c: 'publishTopic', topic: 0, data: { pad: '' } },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'reload', tab: 0 },
      { c: 'advance', ms: 1 },
      { c: 'unsubscribe', tab: 0, topic: 0 },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'the same with a reload between unsubscribe and subscribe (where it was left is stored)',
    replay: 'made from seed 720000088',
    params: one({ grants: [[], [], []], wildcard: [true, false, false] }),
    commands: [
      { c: 'publishTopic', topic: 0, data: 5 },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'reload', tab: 0 },
      { c: 'advance', ms: 1 },
      { c: 'unsubscribe', tab: 0, topic: 0 },
      { c: 'advance', ms: 1 },
      { c: 'reload', tab: 0 },
      { c: 'advance', ms: 1 },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'oracle: a page told its storage fails may reload knowing nothing (was: lost)',
    replay: 'seed -1912925671, this round',
    params: one({ users: ['ଓ'], topics: ['a'], grants: [[], [], []] }),
    commands: [
      { c: 'storageFull', storage: 0, on: true },
      { c: 'publishUsers', users: [0], data: {} },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'oracle: after such a reload, the new page is due what comes after its own joins (topic)',
    replay: 'seed 720000000..720000020 (this round, third run)',
    params: one({
      users: ['!'],
      topics: ['a'],
      grants: [[], [], []],
      wildcard: [true, false, false],
    }),
    commands: [
      { c: 'storageFull', storage: 0, on: true },
      { c: 'subscribe', tab: 0, topic: 0 },
      { c: 'advance', ms: 1 },
      { c: 'reload', tab: 0 },
      { c: 'publishTopic', topic: 0, data: [] },
    ],
  },
  {
    what: 'oracle: after such a reload, the new page is due what comes after its own joins (user)',
    replay: 'seed 720000000..720000020 (this round, third run)',
    params: one({ grants: [[], [], []], historySize: 1 }),
    commands: [
      { c: 'storageFull', storage: 0, on: true },
      { c: 'reload', tab: 0 },
      { c: 'publishUser', user: 0, data: {} },
    ],
  },
  {
    what: "oracle: after such a reload, order is promised from the new page's join on",
    replay: 'seed 740000008 (this round, fifth run)',
    params: one({
      users: ['!'],
      topics: ['-'],
      grants: [[], [], []],
      historySize: 2,
      replaysPerMinute: 1,
      tokenLifetimeSeconds: 20,
      historyTtlSeconds: 10,
    }),
    commands: [
      { c: 'storageFull', storage: 0, on: true },
      { c: 'publishUser', user: 0, data: false },
      { c: 'reload', tab: 0 },
      { c: 'run', tasks: 5 },
      { c: 'faults', faults: ['error', 'timeout-landed'] },
      { c: 'publishUsers', users: [0], data: 0 },
    ],
  },
  {
    what: 'oracle: the same, with two tabs on kept tokens beside it and a kick',
    replay: 'seed 740000041 (this round, fifth run)',
    params: one({
      users: ['!'],
      topics: ['.'],
      tabs: [
        { user: 0, storage: 0, stale: true },
        { user: 0, storage: 0, stale: true },
        { user: 0, storage: 1 },
      ],
      grants: [[], [], []],
      replaysPerMinute: 1,
      tokenLifetimeSeconds: 20,
      historyTtlSeconds: 10,
    }),
    commands: [
      { c: 'storageFull', storage: 1, on: true },
      { c: 'publishUser', user: 0, data: '' },
      { c: 'reload', tab: 20 },
      { c: 'run', tasks: 1 },
      { c: 'publishUser', user: 0, data: '' },
      { c: 'kick', user: 0, revoke: false },
    ],
  },
  {
    what: 'oracle: an async storage that fails the last write (at close) tells the page that goes',
    replay: 'seed 750000023 (this round, sixth run)',
    params: one({ grants: [[], [], []], asyncStorage: [true, false, false, false] }),
    commands: [
      { c: 'storageFull', storage: 0, on: true },
      { c: 'publishUser', user: 0, data: {} },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'oracle: a message handed over again after such a reload is a duplicate, not out of order',
    replay: 'seed 700000001, this round',
    params: one({ grants: [[], [], []], historySize: 2, replaysPerMinute: 1 }),
    commands: [
      { c: 'reload', tab: 0 },
      { c: 'publishUser', user: 0, data: [] },
      { c: 'storageFull', storage: 0, on: true },
      { c: 'publishUser', user: 0, data: [] },
      { c: 'run', tasks: 5 },
      { c: 'reload', tab: 0 },
    ],
  },
  {
    what: 'oracle: a post decided before exp may land after it, retried (was: expired)',
    replay: 'seed 700000003, this round',
    params: one({ grants: [[], [], []], tokenLifetimeSeconds: 20, historyTtlSeconds: 10 }),
    commands: [
      { c: 'advance', ms: 14_040 },
      { c: 'faults', faults: ['timeout'] },
      { c: 'publishUser', user: 0, data: {} },
    ],
  },
];
