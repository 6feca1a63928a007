import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../lib/auth/tokens.js';
import { parseDeliverChunk, serializeChunk } from '../../lib/delivery/chunks.js';
import { hookedRequest, relayedClientPublish } from '../../lib/delivery/client-relay.js';
import { messageFrame } from '../../lib/delivery/frame.js';
import { applyHook, type PublishHook } from '../../lib/delivery/publish-hook.js';
import { parseClientFrame } from '../../lib/protocol/frames.js';
import {
  type ClientPublishDeps,
  type ClientPublishEnvelope,
  clientPublish,
} from '../../lib/session/client-publish.js';
import { frames } from '../../lib/session/resume.js';
import { devToken } from '../../scripts/token.js';

/** Client publish (issue 16): `$default`'s checks, the relay's answer, the hook, the frames. */

const connection = { connectionId: 'C1=', userId: 'alice', publishTopics: ['chat:*', 'exact'] };

function deps(answer: (e: ClientPublishEnvelope) => unknown = okAnswer) {
  const relayed: ClientPublishEnvelope[] = [];
  let count = 0;
  const d: ClientPublishDeps = {
    registry: {
      countPublish: async () => ({ count: ++count, resetMs: 400 }),
    },
    relay: async (envelope) => {
      relayed.push(envelope);
      return answer(envelope);
    },
    rate: 3,
    windowSeconds: 1,
    maxBytes: 100,
  };
  return { d, relayed };
}
const okAnswer = (e: ClientPublishEnvelope) => ({
  id: e.clientPublish.request.id,
  recipients: 1,
  cursor: '1-0',
});

describe('clientPublish ($default)', () => {
  it('relays an allowed publish with the user as `from`, echo by default, and answers published', async () => {
    const { d, relayed } = deps();
    const reply = await clientPublish(connection, { topic: 'chat:1', data: { t: 1 }, id: 'm1' }, d);
    expect(reply).toEqual({ type: 'published', topic: 'chat:1', id: 'm1', cursor: '1-0' });
    expect(relayed).toEqual([
      {
        clientPublish: {
          from: 'alice',
          connectionId: 'C1=',
          request: { topic: 'chat:1', data: { t: 1 }, id: 'm1' },
        },
      },
    ]);
  });

  it('echo:false leaves out the sending connection; ephemeral is passed on; an id is made when none is given', async () => {
    const { d, relayed } = deps();
    const reply = await clientPublish(
      connection,
      { topic: 'exact', data: 1, echo: false, ephemeral: true },
      d,
    );
    const request = relayed[0]?.clientPublish.request;
    expect(request).toMatchObject({ exceptConnectionId: 'C1=', ephemeral: true });
    expect(request?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.id).toBe(request?.id);
  });

  it.each([
    ['chat', 'forbidden'],
    ['chatroom:1', 'forbidden'],
    ['exactly', 'forbidden'],
  ])('refuses %s with %s and relays nothing', async (topic, code) => {
    const { d, relayed } = deps();
    await expect(clientPublish(connection, { topic, data: 1 }, d)).rejects.toMatchObject({ code });
    expect(relayed).toEqual([]);
  });

  it('denies by default: a connection without publish grants may publish nowhere', async () => {
    const { d } = deps();
    await expect(
      clientPublish({ connectionId: 'C2=', userId: 'bob' }, { topic: 'chat:1', data: 1 }, d),
    ).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('refuses data over maxBytes with too_large (exactly maxBytes passes)', async () => {
    const { d } = deps();
    await expect(
      clientPublish(connection, { topic: 'chat:1', data: 'x'.repeat(98) }, d),
    ).resolves.toMatchObject({ type: 'published' });
    await expect(
      clientPublish(connection, { topic: 'chat:1', data: 'x'.repeat(99) }, d),
    ).rejects.toMatchObject({ code: 'too_large' });
  });

  it('refuses past the rate with rate_limited, retryAfter from the window left, and the topic', async () => {
    const { d, relayed } = deps();
    for (let i = 0; i < 3; i++) await clientPublish(connection, { topic: 'chat:1', data: i }, d);
    const refused = await clientPublish(connection, { topic: 'chat:1', data: 4 }, d).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      code: 'rate_limited',
      extra: { retryAfter: 1, topic: 'chat:1' },
    });
    expect(relayed).toHaveLength(3);
  });

  it("passes the publish function's refusals on by code, and a failed relay as unavailable", async () => {
    const refusal = (code: string) => () => ({ error: { code, message: `no: ${code}` } });
    for (const code of ['hook_denied', 'hook_failed', 'too_large', 'invalid_request']) {
      const { d } = deps(refusal(code));
      await expect(
        clientPublish(connection, { topic: 'chat:1', data: 1, id: 'x' }, d),
      ).rejects.toMatchObject({ code, message: `no: ${code}`, status: 400 });
    }
    const { d } = deps(() => {
      throw new Error('socket hang up');
    });
    await expect(
      clientPublish(connection, { topic: 'chat:1', data: 1, id: 'x' }, d),
    ).rejects.toMatchObject({ code: 'unavailable' });
    const { d: odd } = deps(() => ({ id: 'another' }));
    await expect(
      clientPublish(connection, { topic: 'chat:1', data: 1, id: 'x' }, odd),
    ).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('answers a duplicate as the first publish, marked duplicate', async () => {
    const { d } = deps((e) => ({
      id: e.clientPublish.request.id,
      cursor: '5-1',
      duplicate: true,
    }));
    await expect(
      clientPublish(connection, { topic: 'chat:1', data: 1, id: 'again' }, d),
    ).resolves.toEqual({
      type: 'published',
      topic: 'chat:1',
      id: 'again',
      cursor: '5-1',
      duplicate: true,
    });
  });
});

describe('the publish frame (PW-C1)', () => {
  it('parses publish with its options, and refuses `from`, a bad id or no data', () => {
    expect(
      parseClientFrame(
        '{"action":"publish","topic":"t","data":null,"id":"a.b:c-1","echo":false,"ephemeral":true}',
      ),
    ).toEqual({
      action: 'publish',
      topic: 't',
      data: null,
      id: 'a.b:c-1',
      echo: false,
      ephemeral: true,
    });
    for (const bad of [
      '{"action":"publish","topic":"t","data":1,"from":"mallory"}',
      '{"action":"publish","topic":"t","data":1,"id":"no spaces"}',
      '{"action":"publish","topic":"t"}',
      '{"action":"publish","topic":"t","data":1,"echo":"no"}',
    ])
      expect(() => parseClientFrame(bad), bad).toThrow(
        expect.objectContaining({ code: 'invalid_frame' }),
      );
  });

  it('a token`s publish claim is read with the same rule as topics; absent, none', async () => {
    const secret = 'x'.repeat(40);
    const verify = createTokenVerifier({ secret });
    expect(await verify(await devToken('u', { secret, publish: ['chat:*'] }))).toMatchObject({
      publish: ['chat:*'],
    });
    expect(await verify(await devToken('u', { secret }))).toMatchObject({ publish: [] });
    await expect(verify(await devToken('u', { secret, publish: ['chat*'] }))).rejects.toThrow(
      /"publish" entries/,
    );
  });
});

describe('the publish hook (PW-C7)', () => {
  const request = {
    topic: 'chat:1',
    data: { text: 'hi' },
    id: 'm1',
    userId: 'alice',
    connectionId: 'C1=',
    ephemeral: false,
  };
  const hook = (call: PublishHook['call'], topics = ['chat:*'], timeoutMs = 50): PublishHook => ({
    topics,
    timeoutMs,
    call,
  });

  it('allows as is, allows with replaced data, or denies with the reason', async () => {
    expect(
      await applyHook(
        hook(async () => ({ allow: true })),
        request,
      ),
    ).toEqual({ text: 'hi' });
    expect(
      await applyHook(
        hook(async () => ({ allow: true, data: null })),
        request,
      ),
    ).toBeNull();
    await expect(
      applyHook(
        hook(async () => ({ allow: false, reason: 'no links' })),
        request,
      ),
    ).rejects.toMatchObject({ code: 'hook_denied', message: 'refused: no links' });
  });

  it('fails distinctly (hook_failed) on an error, a timeout or an answer without a boolean allow', async () => {
    const failing: PublishHook['call'][] = [
      async () => {
        throw new Error('boom');
      },
      () => new Promise(() => undefined),
      async () => 42,
      async () => ({ allow: 'yes' }),
      async () => null,
    ];
    for (const call of failing)
      await expect(applyHook(hook(call), request)).rejects.toMatchObject({
        code: 'hook_failed',
        status: 424,
      });
  });

  it('is not called for topics outside its patterns, nor without a hook', async () => {
    let called = 0;
    const counting = hook(async () => {
      called++;
      return { allow: false };
    });
    expect(await applyHook(counting, { ...request, topic: 'news' })).toEqual({ text: 'hi' });
    expect(await applyHook(undefined, request)).toEqual({ text: 'hi' });
    expect(called).toBe(0);
  });

  it('the publish function reads the relayed envelope, and runs the hook before publishing', async () => {
    const envelope = {
      clientPublish: {
        from: 'alice',
        connectionId: 'C1=',
        request: { topic: 'chat:1', data: { text: 'hi' }, id: 'm1', ephemeral: true },
      },
    };
    const relayed = relayedClientPublish(envelope);
    expect(relayedClientPublish({ topic: 'x', data: 1 })).toBeUndefined();
    expect(() => relayedClientPublish({ clientPublish: { from: 'a' } })).toThrow(/envelope/);
    let seen: unknown;
    const result = await hookedRequest(
      relayed as NonNullable<typeof relayed>,
      hook(async (r) => {
        seen = r;
        return { allow: true, data: { text: 'HI' } };
      }),
    );
    expect(seen).toEqual({ ...request, ephemeral: true });
    expect(result).toEqual({
      request: { topic: 'chat:1', data: { text: 'HI' }, id: 'm1', ephemeral: true },
      origin: { from: 'alice' },
    });
  });
});

describe('frames with from and ephemeral (PW-C5, PW-C6)', () => {
  it('messageFrame is JSON.stringify of its fields, in order', () => {
    const frame = messageFrame('m', '{"a":1}', undefined, 't', { from: 'u', ephemeral: true });
    expect(frame).toBe(
      JSON.stringify({
        type: 'message',
        id: 'm',
        topic: 't',
        from: 'u',
        ephemeral: true,
        data: { a: 1 },
      }),
    );
    expect(messageFrame('m', '1', '1-0', 't', { from: 'u' })).toBe(
      JSON.stringify({ type: 'message', id: 'm', topic: 't', cursor: '1-0', from: 'u', data: 1 }),
    );
  });

  it('a deliver chunk carries from and ephemeral to the worker', () => {
    const chunk = {
      message: { id: 'm', dataJson: '"x"', topic: 't', from: 'u', ephemeral: true as const },
      jobs: [{ recipients: [['C=', 'https://e.example/s'] as [string, string]] }],
    };
    expect(parseDeliverChunk(JSON.parse(serializeChunk(chunk)))).toEqual(chunk);
  });

  it('a replayed client publish keeps its from', () => {
    const [frame] = [...frames([{ cursor: '1-0', entry: '{"id":"m","from":"u","data":2}' }], 't')];
    expect(JSON.parse(String(frame?.text ?? ''))).toEqual({
      type: 'message',
      id: 'm',
      topic: 't',
      cursor: '1-0',
      from: 'u',
      data: 2,
    });
  });
});
