import middy from '@middy/core';
import { presence } from '../lib/admin/presence.js';
import { loadSecrets, logger, registry } from '../lib/clients.js';
import { invokeErrors, secretsLoaded } from '../lib/edge/middleware.js';

/** `presence`: `{ userIds?, topic? }` → who is online, and how many a topic has. */
export const handler = middy(async (event: unknown) => presence(event, { registry: registry() }))
  .use(invokeErrors({ logger }))
  .use(secretsLoaded(loadSecrets));
