import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { gateway } from '../lib/aws-clients.js';
import {
  config,
  eventOutbox,
  events,
  loadSecrets,
  logger,
  once,
  redis,
  registry,
} from '../lib/clients.js';
import { fanoutDeps } from '../lib/edge/fanout-wiring.js';
import { invocationDeadline, invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';
import { eventsFlushed } from '../lib/events/flush.js';
import { metrics, withMetrics } from '../lib/observability/metrics.js';
import { presenceEvents } from '../lib/presence/events.js';
import { RedisPresenceSweeper } from '../lib/registry/presence-sweep.js';

/** Built here, not in lib/clients.ts: only this function sweeps (see presence-sweep.ts). */
const sweeper = once(() => new RedisPresenceSweeper(redis(), registry()));

/**
 * `presenceEvents`: fans out joins and leaves (invoked by $default and
 * $disconnect with `{ topic, delayMs }`), and every minute sweeps the
 * devices whose $disconnect was lost (docs/presence.md).
 */
export const handler = middy(async (event: unknown, context: Context) => {
  const deadline = invocationDeadline(context);
  const { presence } = config();
  const result = await presenceEvents(event, {
    registry: registry(),
    sweeper: sweeper(),
    events: events(),
    coalesceAbove: presence.coalesceAbove,
    ...fanoutDeps(gateway(), deadline),
    // A sweep stops taking topics with 10 s of its minute left.
    keepGoing: () => deadline === undefined || Date.now() < deadline - 10_000,
  });
  if (result.events > 0) logger().info('presence events', { ...result });
  return result;
})
  .use(withMetrics())
  .use(eventsFlushed({ buffer: events, outbox: eventOutbox, logger, metrics }))
  .use(invokeErrors({ logger, metrics }))
  .use(secretsLoaded(loadSecrets));
