import middy from '@middy/core';
import { logger, registry } from '../lib/clients.js';
import { invokeErrors } from '../lib/middleware.js';
import { presence } from '../lib/presence.js';

/** `presence`: `{ userIds?, topic? }` → who is online, and how many a topic has. */
export const handler = middy(async (event: unknown) =>
  presence(event, { registry: registry() }),
).use(invokeErrors({ logger }));
