import { median, now, percentile, round } from './common.js';
import { benchRegistry, client, commandStats, roundTripCounter } from './redis.js';

export interface LookupRow {
  connections: number;
  /** Round trips of registry.lookupUser (the one-user resolution), counted as socket writes. */
  round_trips: number;
  /** Redis commands it ran (INFO commandstats; null on a shared Redis). */
  commands: number | null;
  command_names: string[] | null;
  /** Median time of one lookupUser, ms. */
  ours_ms: number;
  ours_p99_ms: number;
  /** The step publish() itself runs for a user (history append + members, one Lua script). */
  publish_step_round_trips: number;
  publish_step_ms: number;
  /** Median time of one PING on the same client: the floor of any round trip. */
  ping_ms: number;
}

export async function benchLookup(options: {
  redisUrl: string;
  privateRedis: boolean;
  endpoint: string;
  iterations: number;
  sizes: number[];
}): Promise<LookupRow[]> {
  const redis = client(options.redisUrl);
  try {
    const registry = benchRegistry(redis);
    const counter = await roundTripCounter(redis);
    const rows: LookupRow[] = [];
    const entry = JSON.stringify({ id: 'lookup', data: { text: 'x'.repeat(64) } });
    for (const size of options.sizes) {
      const userId = `lookup-${size}`;
      for (let i = 0; i < size; i++) {
        await registry.register({
          connectionId: `lk${size}-${i}`,
          userId,
          endpoint: options.endpoint,
          connectedAt: Date.now(),
          allowedTopics: [],
        });
      }
      const audience = registry.userAudience(userId);
      const found = await registry.lookupUser(userId);
      if (found.length !== size) throw new Error(`lookup found ${found.length} of ${size}`);
      // Warm: scripts loaded (EVALSHA hits), sockets hot.
      for (let i = 0; i < 50; i++) {
        await registry.lookupUser(userId);
        await registry.publish(audience, entry, 2_000);
        await redis.ping();
      }

      if (options.privateRedis) await redis.config('RESETSTAT');
      counter.reset();
      await registry.lookupUser(userId);
      const roundTrips = counter.roundTrips();
      let commands: number | null = null;
      let commandNames: string[] | null = null;
      if (options.privateRedis) {
        const stats = await commandStats(redis);
        commands = [...stats.values()].reduce((sum, calls) => sum + calls, 0);
        commandNames = [...stats.keys()];
      }
      counter.reset();
      const step = await registry.publish(audience, entry, 2_000);
      const stepRoundTrips = counter.roundTrips();
      if (step.members?.length !== size) throw new Error('publish step returned the wrong members');

      const lookupTimes: number[] = [];
      const stepTimes: number[] = [];
      const pingTimes: number[] = [];
      // Interleaved, so drift (GC, the other core) hits all three alike.
      for (let i = 0; i < options.iterations; i++) {
        let t = now();
        await redis.ping();
        pingTimes.push(now() - t);
        t = now();
        await registry.lookupUser(userId);
        lookupTimes.push(now() - t);
        t = now();
        await registry.publish(audience, entry, 2_000);
        stepTimes.push(now() - t);
      }
      rows.push({
        connections: size,
        round_trips: roundTrips,
        commands,
        command_names: commandNames,
        ours_ms: round(median(lookupTimes), 4),
        ours_p99_ms: round(percentile(lookupTimes, 99), 4),
        publish_step_round_trips: stepRoundTrips,
        publish_step_ms: round(median(stepTimes), 4),
        ping_ms: round(median(pingTimes), 4),
      });
    }
    return rows;
  } finally {
    redis.disconnect();
  }
}
