import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../lib/constants.js';
import type { DedupStore } from '../../lib/delivery/dedup.js';
import {
  DEFAULT_MAX_PUBLISH_BYTES,
  messageFrame,
  type PublishDeps,
  parsePublishRequest,
  publish,
} from '../../lib/delivery/publish.js';
import { PublishInProgressError, TooLargeError, ValidationError } from '../../lib/errors.js';
import { AwsGateway } from '../../lib/gateway/sdk.js';
import { createKeys, type Recipient } from '../../lib/registry/keys.js';
import type { ConnectionRegistry, PublishStep } from '../../lib/registry/types.js';
import { fakeRegistry } from './fakes.js';

const EP = 'https://aaa.execute-api.us-east-1.amazonaws.com/prod';
/** The longest cursor a frame can carry, which publish sizes every frame with. */
const LONGEST_CURSOR = `${'9'.repeat(16)}-${'9'.repeat(16)}`;

const api = mockClient(ApiGatewayManagementApiClient);
const keys = createKeys('pw:');

/** Runs parsePublishRequest and returns the ValidationError it threw. */
function refusal(input: unknown): ValidationError {
  try {
    parsePublishRequest(input);
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('parsePublishRequest', () => {
  it.each([
    ['userId', { userId: 'u1', data: { hello: 'world' } }],
    ['userIds', { userIds: ['u1', 'u2'], data: 1 }],
    ['connectionIds', { connectionIds: ['c1='], data: 'text' }],
    ['topic', { topic: 'team:42', data: [1, 2] }],
    ['broadcast', { broadcast: true, data: false }],
    [
      'an id and exceptConnectionId',
      { id: 'order-7:a.b_c', userId: 'u1', exceptConnectionId: 'c9=', data: {} },
    ],
    ['null data', { userId: 'u1', data: null }],
  ])('accepts a request with %s', (_label, input) => {
    // Act
    const request = parsePublishRequest(input);

    // Assess
    expect(request).toEqual(input);
  });

  it('refuses a request without data and says data is required', () => {
    // Act
    const error = refusal({ userId: 'u1' });

    // Assess
    expect(error.message).toMatch(/^invalid publish request: /);
    expect(error.message).toMatch(/data is required/);
    expect(error.message).not.toMatch(/unknown field/);
  });

  it('refuses a request whose data is explicitly undefined', () => {
    // Act
    const error = refusal({ userId: 'u1', data: undefined });

    // Assess
    expect(error.message).toMatch(/data is required/);
  });

  it('refuses a request with no target and lists the targets', () => {
    // Act
    const error = refusal({ data: 1 });

    // Assess
    expect(error.message).toContain(
      'exactly one target is required: userId, userIds, connectionIds, topic, broadcast',
    );
  });

  it('refuses a request with two targets', () => {
    // Act
    const error = refusal({ userId: 'u1', topic: 'news', data: 1 });

    // Assess
    expect(error.message).toContain('exactly one target is required');
  });

  it('refuses an empty userIds list', () => {
    // Act
    const error = refusal({ userIds: [], data: 1 });

    // Assess
    expect(error.message).toContain('userIds must not be empty');
  });

  it('refuses an empty connectionIds list', () => {
    // Act
    const error = refusal({ connectionIds: [], data: 1 });

    // Assess
    expect(error.message).toContain('connectionIds must not be empty');
  });

  it('refuses an unknown field and names it', () => {
    // Act
    const error = refusal({ userId: 'u1', data: 1, priority: 'high' });

    // Assess
    expect(error.message).toContain('unknown field "priority"');
  });

  it.each([
    ['a space', 'a b'],
    ['an empty id', ''],
    ['129 characters', 'x'.repeat(129)],
    ['a slash', 'a/b'],
  ])('refuses an id with %s and says what an id may contain', (_label, id) => {
    // Act
    const error = refusal({ id, userId: 'u1', data: 1 });

    // Assess
    expect(error.message).toContain('id: id must be 1-128 characters of A-Z a-z 0-9 _ . : -');
  });

  it('refuses broadcast: false, which would be a target that targets nobody', () => {
    // Act
    const error = refusal({ broadcast: false, data: 1 });

    // Assess
    expect(error.message).toContain('broadcast must be true when given');
  });

  it('refuses a connection id containing the member separator |', () => {
    // Act
    const error = refusal({ connectionIds: ['a|b'], data: 1 });

    // Assess
    expect(error.message).toMatch(/connectionIds\.0/);
  });

  it('refuses a topic that is not a valid topic name', () => {
    // Act
    const error = refusal({ topic: 'news*', data: 1 });

    // Assess
    expect(error.message).toContain('topic: topic must be');
  });

  it.each([
    ['a string', 'hello'],
    ['null', null],
    ['a number', 42],
  ])('refuses %s instead of an object, saying an object is expected', (_label, input) => {
    // Act
    const error = refusal(input);

    // Assess
    expect(error.message).toMatch(/object/i);
    expect(error.message).not.toMatch(/unknown field/);
  });
  it('refuses an array of requests (one request per call)', () => {
    // Act
    const parse = () => parsePublishRequest([{ userId: 'u1', data: 1 }]);

    // Assess
    expect(parse).toThrow(ValidationError);
    expect(parse).toThrow(/^invalid publish request: /);
  });
});

describe('messageFrame', () => {
  it('equals JSON.stringify of the same frame, for any id, data, cursor and topic', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.jsonValue(),
        fc.option(fc.string({ minLength: 1 }), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        (id, data, cursor, topic) => {
          // Prepare
          const expected = JSON.stringify({
            type: 'message',
            id,
            ...(topic !== undefined && { topic }),
            ...(cursor !== undefined && { cursor }),
            data,
          });

          // Act
          const frame = messageFrame(id, JSON.stringify(data), cursor, topic);

          // Assess
          expect(frame).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ['plain', 'm1', { a: 1 }, undefined, undefined],
    ['with a cursor', 'm2', [1, 'two', null], '1732752000000-0', undefined],
    ['with a topic', 'm3', 'text', undefined, 'team:42'],
    ['with both', 'm4', { nested: { deep: [true] } }, '5-1', 'news'],
    ['with characters to escape', 'q"uote\\', 'line\nbreak "q" \u2028', undefined, 'a=b'],
  ])('builds the frame %s exactly as JSON.stringify would', (_label, id, data, cursor, topic) => {
    // Prepare
    const expected = JSON.stringify({
      type: 'message',
      id,
      ...(topic !== undefined && { topic }),
      ...(cursor !== undefined && { cursor }),
      data,
    });

    // Act
    const frame = messageFrame(id, JSON.stringify(data), cursor, topic);

    // Assess
    expect(frame).toBe(expected);
    expect(JSON.parse(frame)).toEqual(JSON.parse(expected));
  });

  it('leaves the cursor out when it is empty (the message was not stored)', () => {
    // Act
    const frame = messageFrame('m1', '1', '');

    // Assess
    expect(JSON.parse(frame)).toEqual({ type: 'message', id: 'm1', data: 1 });
  });
});

// ---------------------------------------------------------------------------
// publish() with hand-written fakes of its ports (registry, dedup) and the
// real AwsGateway over a mocked management API client.

/** A dedup fake that records calls and claims ids the first time it sees them ('running' while pending). */
function fakeDedup(seen: Map<string, unknown> = new Map()) {
  const calls: string[] = [];
  const dedup: DedupStore = {
    claim: async (id) => {
      calls.push(`claim:${id}`);
      if (seen.has(id)) {
        const first = seen.get(id);
        return first === null ? { state: 'running' } : { state: 'done', first };
      }
      seen.set(id, null);
      return { state: 'claimed', token: `token-${id}` };
    },
    complete: async (id, result) => {
      calls.push(`complete:${id}`);
      seen.set(id, result);
    },
    release: async (id, token) => {
      calls.push(`release:${id}:${token}`);
      seen.delete(id);
    },
  };
  return { dedup, calls };
}

function publishDeps(registry: ConnectionRegistry, dedup: DedupStore): PublishDeps {
  return {
    registry,
    dedup,
    gateway: new AwsGateway({ region: 'us-east-1', sleep: async () => undefined }),
    prune: async () => undefined,
    logger: { warn: () => undefined },
    concurrency: 4,
    chunkSize: 100,
    chunkMaxBytes: 5 * 1024 * 1024,
    parallelChunks: 2,
    deliverAttempts: 2,
  };
}

const member = (connectionId: string): Recipient => ({ connectionId, endpoint: EP });
const userRegistry = (step: PublishStep) =>
  fakeRegistry({
    userAudience: (userId) => keys.audience('user', userId),
    topicAudience: (topic) => keys.audience('topic', topic),
    publish: async () => step,
  });

/** The frames posted through the mocked management API, by connection id. */
const posted = () =>
  api.commandCalls(PostToConnectionCommand).map((call) => ({
    connectionId: call.args[0].input.ConnectionId,
    frame: JSON.parse(Buffer.from(call.args[0].input.Data as Uint8Array).toString()),
  }));

/** A string of data whose frame (with `cursor`) is exactly `bytes` long. */
function dataForFrameOf(bytes: number, id: string, cursor = LONGEST_CURSOR): string {
  const overhead = Buffer.byteLength(messageFrame(id, '""', cursor));
  return 'x'.repeat(bytes - overhead);
}

beforeEach(() => {
  api.reset();
  api.on(PostToConnectionCommand).resolves({});
});

describe('publish size check (MAX_PUBLISH_BYTES, PW-S1.1)', () => {
  it('refuses data over the default 1 MiB with TooLargeError naming the limit, before storing or claiming anything', async () => {
    // Prepare: 1 MiB of data as JSON is the string's contents and its two quotes
    const { registry, calls: registryCalls } = fakeRegistry();
    const { dedup, calls: dedupCalls } = fakeDedup();
    const input = { id: 'big-1', userId: 'u1', data: 'x'.repeat(DEFAULT_MAX_PUBLISH_BYTES - 1) };

    // Act
    const outcome = publish(input, publishDeps(registry, dedup));

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(TooLargeError);
    await expect(outcome).rejects.toMatchObject({ code: 'too_large', status: 413 });
    await expect(outcome).rejects.toThrow(
      `data is ${DEFAULT_MAX_PUBLISH_BYTES + 1} bytes as JSON; this deployment publishes at most ${DEFAULT_MAX_PUBLISH_BYTES} (MAX_PUBLISH_BYTES)`,
    );
    expect(registryCalls).toEqual([]);
    expect(dedupCalls).toEqual([]);
    expect(api.send.callCount).toBe(0);
  });

  it('takes the limit from its deps, counting UTF-8 bytes, not characters', async () => {
    // Prepare: 1,000 euro signs are 3,002 bytes of JSON
    const { registry, calls } = fakeRegistry();
    const { dedup } = fakeDedup();
    const deps = { ...publishDeps(registry, dedup), maxPublishBytes: 3_001 };

    // Act
    const outcome = publish({ id: 'm1', topic: 't', data: '€'.repeat(1_000) }, deps);

    // Assess
    await expect(outcome).rejects.toThrow(/data is 3002 bytes as JSON; .* at most 3001/);
    expect(calls).toEqual([]);
  });

  it('accepts data of exactly the limit and posts it as parts that make its frame', async () => {
    // Prepare
    const cursor = '1732752000000-0';
    const { registry } = userRegistry({ cursor, count: 1, members: [member('c1')] });
    const { dedup } = fakeDedup();
    const data = 'é'.repeat((DEFAULT_MAX_PUBLISH_BYTES - 2) / 2);

    // Act
    const result = await publish({ id: 'm1', userId: 'u1', data }, publishDeps(registry, dedup));

    // Assess: 1 MiB in parts of at most 127 KiB: 9 posts, one delivery
    expect(result).toMatchObject({ delivered: 1, failed: 0, cursor });
    const parts = posted();
    expect(parts).toHaveLength(9);
    expect(
      parts.map((p) => [p.connectionId, p.frame.type, p.frame.id, p.frame.n, p.frame.of]),
    ).toEqual(parts.map((_, n) => ['c1', 'part', 'm1', n, 9]));
    const text = parts.map((p) => p.frame.data as string).join('');
    expect(text).toBe(messageFrame('m1', JSON.stringify(data), cursor));
  });

  it('posts a frame of exactly 128 KB whole, and one a byte longer as two parts', async () => {
    const cursor = '1732752000000-0';
    for (const [bytes, posts] of [
      [MAX_MESSAGE_BYTES, 1],
      [MAX_MESSAGE_BYTES + 1, 2],
    ] as const) {
      // Prepare
      api.resetHistory();
      const { registry } = userRegistry({ cursor, count: 1, members: [member('c1')] });
      const { dedup } = fakeDedup();
      const data = dataForFrameOf(bytes, 'm1', cursor);

      // Act
      const result = await publish({ userId: 'u1', id: 'm1', data }, publishDeps(registry, dedup));

      // Assess
      expect(result.delivered).toBe(1);
      const frames = posted();
      expect(frames).toHaveLength(posts);
      const text =
        posts === 1
          ? JSON.stringify(frames[0]?.frame)
          : frames.map((f) => f.frame.data as string).join('');
      expect(Buffer.byteLength(text)).toBe(bytes);
      expect(JSON.parse(text)).toEqual({ type: 'message', id: 'm1', cursor, data });
    }
  });

  it('refuses an invalid request before storing or claiming anything', async () => {
    // Prepare
    const { registry, calls: registryCalls } = fakeRegistry();
    const { dedup, calls: dedupCalls } = fakeDedup();

    // Act
    const outcome = publish({ id: 'x', data: 1 }, publishDeps(registry, dedup));

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(ValidationError);
    expect(registryCalls).toEqual([]);
    expect(dedupCalls).toEqual([]);
  });
});

describe('publish with fake ports', () => {
  it('stores a user message, delivers it with its cursor to live members but the excepted one', async () => {
    // Prepare
    const { registry } = userRegistry({
      cursor: '1732752000000-4',
      count: 3,
      members: [member('c1'), member('sender'), member('c2')],
    });
    const { dedup } = fakeDedup();

    // Act
    const result = await publish(
      { id: 'm1', userId: 'u1', exceptConnectionId: 'sender', data: { n: 1 } },
      publishDeps(registry, dedup),
    );

    // Assess
    expect(result).toEqual({
      id: 'm1',
      recipients: 2,
      delivered: 2,
      gone: 0,
      failed: 0,
      chunks: 0,
      stored: true,
      cursor: '1732752000000-4',
    });
    const frame = { type: 'message', id: 'm1', cursor: '1732752000000-4', data: { n: 1 } };
    expect(posted()).toEqual([
      { connectionId: 'c1', frame },
      { connectionId: 'c2', frame },
    ]);
  });

  it('puts the topic and its cursor in a topic message frame', async () => {
    // Prepare
    const { registry } = userRegistry({ cursor: '9-0', count: 1, members: [member('c1')] });
    const { dedup } = fakeDedup();

    // Act
    const result = await publish({ topic: 'news', data: 'hi' }, publishDeps(registry, dedup));

    // Assess
    expect(result.stored).toBe(true);
    expect(result.cursor).toBe('9-0');
    expect(posted()[0]?.frame).toEqual({
      type: 'message',
      id: result.id,
      topic: 'news',
      cursor: '9-0',
      data: 'hi',
    });
  });

  it('generates an id when none is given and then uses no dedup at all', async () => {
    // Prepare
    const { registry } = userRegistry({ cursor: '', count: 0, members: [] });
    const { dedup, calls } = fakeDedup();

    // Act
    const result = await publish({ userId: 'u1', data: 1 }, publishDeps(registry, dedup));

    // Assess
    expect(result.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.stored).toBe(false);
    expect(result).not.toHaveProperty('cursor');
    expect(calls).toEqual([]);
  });

  it('answers a repeated id with the first result marked duplicate, sending nothing again', async () => {
    // Prepare
    const { registry, calls: registryCalls } = userRegistry({
      cursor: '1-0',
      count: 1,
      members: [member('c1')],
    });
    const { dedup, calls: dedupCalls } = fakeDedup();
    const deps = publishDeps(registry, dedup);
    const first = await publish({ id: 'once', userId: 'u1', data: 1 }, deps);
    const callsAfterFirst = registryCalls.length;

    // Act
    const second = await publish({ id: 'once', userId: 'u1', data: 1 }, deps);

    // Assess
    expect(second).toEqual({ ...first, duplicate: true });
    expect(registryCalls).toHaveLength(callsAfterFirst);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(1);
    expect(dedupCalls).toEqual(['claim:once', 'complete:once', 'claim:once']);
  });

  it('gives the id back when the publish fails, so a retry can deliver', async () => {
    // Prepare
    const failure = new Error('redis unavailable');
    const { registry } = fakeRegistry({
      userAudience: (userId) => keys.audience('user', userId),
      publish: async () => {
        throw failure;
      },
    });
    const { dedup, calls } = fakeDedup();

    // Act
    const outcome = publish(
      { id: 'retry-me', userId: 'u1', data: 1 },
      publishDeps(registry, dedup),
    );

    // Assess
    await expect(outcome).rejects.toBe(failure);
    expect(calls).toEqual(['claim:retry-me', 'release:retry-me:token-retry-me']);
  });

  it('refuses a publish whose id another attempt still holds, sending and storing nothing', async () => {
    // Prepare: the first attempt claimed the id and has not completed
    const { registry, calls: registryCalls } = userRegistry({
      cursor: '1-0',
      count: 1,
      members: [member('c1')],
    });
    const { dedup } = fakeDedup(new Map([['busy', null]]));

    // Act
    const outcome = publish({ id: 'busy', userId: 'u1', data: 1 }, publishDeps(registry, dedup));

    // Assess
    const error = await outcome.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishInProgressError);
    expect(error).toMatchObject({ code: 'in_progress', status: 503, expose: true });
    expect(registryCalls).toEqual([]);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(0);
  });

  it('hands the caller-given id to the registry so a retry gets the cursor it was stored under', async () => {
    // Prepare
    const { registry, calls } = userRegistry({ cursor: '5-0', count: 0, members: [] });
    const { dedup } = fakeDedup();

    // Act
    await publish({ id: 'order-7', userIds: ['u1', 'u2'], data: 1 }, publishDeps(registry, dedup));
    await publish({ userId: 'u3', data: 1 }, publishDeps(registry, dedup));

    // Assess: the 4th argument of registry.publish is the id, only when the caller gave one
    const publishes = calls.filter((c) => c.method === 'publish').map((c) => c.args[3]);
    expect(publishes).toEqual(['order-7', 'order-7', undefined]);
  });

  it('counts connection ids with no record as gone and skips the excepted one', async () => {
    // Prepare
    const known = new Set(['c1', 'c3']);
    const { registry } = fakeRegistry({
      get: async (connectionId) =>
        known.has(connectionId)
          ? {
              connectionId,
              userId: 'u',
              endpoint: EP,
              connectedAt: 0,
              allowedTopics: [],
              topics: [],
            }
          : null,
    });
    const { dedup } = fakeDedup();

    // Act
    const result = await publish(
      { connectionIds: ['c1', 'c2', 'c3', 'c1', 'me'], exceptConnectionId: 'me', data: 1 },
      publishDeps(registry, dedup),
    );

    // Assess
    expect(result).toMatchObject({
      recipients: 3,
      delivered: 2,
      gone: 1,
      failed: 0,
      stored: false,
    });
    expect(posted().map((p) => p.connectionId)).toEqual(['c1', 'c3']);
    expect(posted()[0]?.frame).toEqual({ type: 'message', id: result.id, data: 1 });
  });
});
