import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../scripts/redis-server.js';
import { devToken } from '../../scripts/token.js';
import { TestClient } from '../helpers/client.js';
import { type Offline, startOffline } from '../helpers/offline.js';

let redis: RedisServer;
let offline: Offline;

beforeAll(async () => {
  redis = await startRedisServer();
  offline = await startOffline(redis.url);
});
afterAll(async () => {
  await offline?.stop();
  await redis?.stop();
});

describe('push, end to end through serverless-offline', () => {
  it('delivers a publish to the connected user', async () => {
    const client = await TestClient.connect(offline.wsUrl({ token: await devToken('alice') }));
    await client.request({ action: 'ping' }, (f) => f.type === 'pong');
    const result = await offline.invoke<{ delivered: number }>('publish', {
      userId: 'alice',
      data: { n: 1 },
    });
    expect(result).toMatchObject({ recipients: 1, delivered: 1, gone: 0, failed: 0 });
    const message = await client.next((f) => f.type === 'message');
    expect(message['data']).toEqual({ n: 1 });
    await client.close();
  });
});
