import {
  ApiGatewayManagementApiClient,
  ApiGatewayManagementApiServiceException,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { kick } from '../../lib/admin/kick.js';
import { ValidationError } from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import type { Connection } from '../../lib/registry/types.js';
import { fakeRegistry, recordingLogger } from './fakes.js';

const EP = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
const api = mockClient(ApiGatewayManagementApiClient);

const connection = (connectionId: string): Connection => ({
  connectionId,
  userId: 'u1',
  endpoint: EP,
  connectedAt: 0,
  allowedTopics: [],
  topics: [],
});

/** A registry holding some connections; remove() takes them out and returns them. */
function registryWith(...ids: string[]) {
  const held = new Map(ids.map((id) => [id, connection(id)]));
  return fakeRegistry({
    lookupUser: async () =>
      [...held.values()].map(({ connectionId, endpoint }) => ({ connectionId, endpoint })),
    remove: async (id) => {
      const found = held.get(id) ?? null;
      held.delete(id);
      return found;
    },
  });
}

const gateway = () => new AwsGateway({ region: 'us-east-1', sleep: async () => undefined });
const closedIds = () =>
  api.commandCalls(DeleteConnectionCommand).map((c) => c.args[0].input.ConnectionId);

beforeEach(() => {
  api.reset();
  api.on(DeleteConnectionCommand).resolves({});
  api.on(PostToConnectionCommand).resolves({});
});
const lastFrames = () =>
  api
    .commandCalls(PostToConnectionCommand)
    .map((c) => JSON.parse(Buffer.from(c.args[0].input.Data as Uint8Array).toString()));

describe('kick', () => {
  it('posts a last frame naming why before it closes: kicked, or revoked (PW-X2)', async () => {
    // Prepare
    const { registry } = registryWith('c1');
    const { logger } = recordingLogger();

    // Act
    await kick({ connectionIds: ['c1'] }, { registry, gateway: gateway(), logger });
    const kicked = lastFrames();
    api.resetHistory();
    const held = connection('c2');
    const { registry: revoking } = fakeRegistry({
      revokeUser: async () => undefined,
      lookupUser: async () => [{ connectionId: 'c2', endpoint: EP }],
      remove: async () => held,
    });
    await kick(
      { userId: 'u1', revoke: true },
      { registry: revoking, gateway: gateway(), logger, revocationTtlSeconds: 60 },
    );

    // Assess
    expect(kicked).toEqual([
      { type: 'error', code: 'kicked', message: 'the server closed this connection' },
    ]);
    expect(lastFrames()).toMatchObject([{ type: 'error', code: 'revoked' }]);
    expect(closedIds()).toEqual(['c2']);
  });

  it('still closes when the last frame cannot be posted', async () => {
    // Prepare
    api.on(PostToConnectionCommand).rejects(new Error('boom'));
    const { registry } = registryWith('c1');
    const { logger } = recordingLogger();

    // Act
    const result = await kick({ connectionIds: ['c1'] }, { registry, gateway: gateway(), logger });

    // Assess
    expect(result).toMatchObject({ closed: 1, failed: 0 });
    expect(closedIds()).toEqual(['c1']);
  });

  it('closes and removes every connection of a user', async () => {
    // Prepare
    const { registry, calls } = registryWith('c1', 'c2');
    const { logger } = recordingLogger();

    // Act
    const result = await kick({ userId: 'u1' }, { registry, gateway: gateway(), logger });

    // Assess
    expect(result).toEqual({ connections: 2, closed: 2, gone: 0, failed: 0 });
    expect(closedIds().sort()).toEqual(['c1', 'c2']);
    const removed = calls.filter((c) => c.method === 'remove').map((c) => c.args[0]);
    expect(removed.sort()).toEqual(['c1', 'c2']);
  });

  it('counts a connection with no record as gone without calling API Gateway', async () => {
    // Prepare
    const { registry } = registryWith('c1');
    const { logger } = recordingLogger();

    // Act
    const result = await kick(
      { connectionIds: ['c1', 'unknown', 'c1'] },
      { registry, gateway: gateway(), logger },
    );

    // Assess: the duplicate id is kicked once
    expect(result).toEqual({ connections: 2, closed: 1, gone: 1, failed: 0 });
    expect(closedIds()).toEqual(['c1']);
  });

  it('counts a connection API Gateway reports gone as gone', async () => {
    // Prepare
    api
      .on(DeleteConnectionCommand, { ConnectionId: 'c2' })
      .rejects(new GoneException({ message: 'gone', $metadata: { httpStatusCode: 410 } }));
    const { registry } = registryWith('c1', 'c2');
    const { logger } = recordingLogger();

    // Act
    const result = await kick(
      { connectionIds: ['c1', 'c2'] },
      { registry, gateway: gateway(), logger },
    );

    // Assess
    expect(result).toEqual({ connections: 2, closed: 1, gone: 1, failed: 0 });
  });

  it('removes the records even when the close fails, and logs the failure', async () => {
    // Prepare
    api.on(DeleteConnectionCommand).rejects(
      new ApiGatewayManagementApiServiceException({
        name: 'InternalServerErrorException',
        $fault: 'server',
        message: 'boom',
        $metadata: { httpStatusCode: 500 },
      }),
    );
    const { registry, calls } = registryWith('c1');
    const { logger, warnings } = recordingLogger();

    // Act
    const result = await kick({ connectionIds: ['c1'] }, { registry, gateway: gateway(), logger });

    // Assess
    expect(result).toEqual({ connections: 1, closed: 0, gone: 0, failed: 1 });
    expect(calls.map((c) => c.method)).toEqual(['remove']);
    expect(warnings).toEqual([
      {
        message: 'could not close connection',
        extra: { connectionId: 'c1', reason: 'InternalServerErrorException (HTTP 500): boom' },
      },
    ]);
  });

  it.each([
    ['no target', {}],
    ['both targets', { userId: 'u1', connectionIds: ['c1'] }],
    ['an empty connectionIds list', { connectionIds: [] }],
    ['an unknown field', { userId: 'u1', reason: 'ban' }],
  ])('refuses a request with %s before touching anything', async (_label, input) => {
    // Prepare
    const { registry, calls } = fakeRegistry();
    const { logger } = recordingLogger();

    // Act
    const outcome = kick(input, { registry, gateway: gateway(), logger });

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(ValidationError);
    await expect(outcome).rejects.toThrow(/^invalid kick request: /);
    expect(calls).toEqual([]);
    expect(api.send.callCount).toBe(0);
  });
});
