import { execFileSync } from 'node:child_process';
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  awsIamSigner,
  createPushwire,
  InvalidRequestError,
  PushwireError,
  TooLargeError,
  UnavailableError,
} from '../../server/index.js';

const lambdaMock = mockClient(LambdaClient);
const client = new LambdaClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
});
const payload = (value: unknown) =>
  new TextEncoder().encode(JSON.stringify(value)) as NonNullable<InvokeCommandOutput['Payload']>;
const sent = () =>
  lambdaMock.commandCalls(InvokeCommand).map((c) => ({
    name: c.args[0].input.FunctionName,
    body: JSON.parse(Buffer.from(c.args[0].input.Payload as Uint8Array).toString()),
  }));
const throttled = () =>
  Object.assign(new Error('Rate exceeded'), {
    name: 'TooManyRequestsException',
    $metadata: { httpStatusCode: 429 },
  });
const result = { recipients: 1, delivered: 1, gone: 0, failed: 0, chunks: 0, stored: true };
/** Records the backoff waits instead of sleeping. */
function noSleep() {
  const waits: number[] = [];
  return { waits, retry: { sleep: async (ms: number) => void waits.push(ms), random: () => 1 } };
}

beforeEach(() => {
  lambdaMock.reset();
});

describe('server SDK over Lambda Invoke', () => {
  it('names the function from service and stage and gives a publish an id', async () => {
    // Prepare
    lambdaMock.on(InvokeCommand).callsFake(async (input) => ({
      StatusCode: 200,
      Payload: payload({ ...result, id: JSON.parse(Buffer.from(input.Payload).toString()).id }),
    }));
    const pushwire = createPushwire({ lambda: { stage: 'prod', client } });

    // Act
    const reply = await pushwire.publish({ userId: 'alice', data: { hi: 1 } });

    // Assess
    const [call] = sent();
    expect(call?.name).toBe('pushwire-prod-publish');
    expect(call?.body).toEqual({ userId: 'alice', data: { hi: 1 }, id: expect.any(String) });
    expect(call?.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.id).toBe(call?.body.id);
  });

  it('publishes a batch through the publish function, giving each message without an id its own, kept across retries', async () => {
    // Prepare
    let calls = 0;
    lambdaMock.on(InvokeCommand).callsFake(async (input) => {
      if (calls++ === 0) throw throttled();
      const { messages } = JSON.parse(Buffer.from(input.Payload).toString()) as {
        messages: { id: string }[];
      };
      return {
        StatusCode: 200,
        Payload: payload({
          messages: messages.map(({ id }) => ({ ...result, id })),
          recipients: 2,
          delivered: 2,
          gone: 0,
          failed: 0,
          chunks: 0,
        }),
      };
    });
    const { retry } = noSleep();
    const pushwire = createPushwire({ lambda: { stage: 'prod', client }, retry });

    // Act
    const reply = await pushwire.publishBatch({
      messages: [
        { userId: 'alice', data: 1 },
        { id: 'mine', topic: 'news', data: 2 },
      ],
    });

    // Assess
    const [first, second] = sent();
    expect(first?.name).toBe('pushwire-prod-publish');
    expect(first?.body).toEqual({
      messages: [
        { userId: 'alice', data: 1, id: expect.stringMatching(/^[0-9a-f-]{36}$/) },
        { id: 'mine', topic: 'news', data: 2 },
      ],
    });
    expect(second?.body).toEqual(first?.body);
    expect(reply.messages.map((m) => m.id)).toEqual([first?.body.messages[0].id, 'mine']);
  });

  it('retries a throttled invoke and a failed function with backoff, with the same id', async () => {
    // Prepare
    lambdaMock
      .on(InvokeCommand)
      .rejectsOnce(throttled())
      .resolvesOnce({
        StatusCode: 200,
        FunctionError: 'Unhandled',
        Payload: payload({ errorMessage: 'Redis down' }),
      })
      .resolves({ StatusCode: 200, Payload: payload({ ...result, id: 'x' }) });
    const { waits, retry } = noSleep();
    const pushwire = createPushwire({
      lambda: { service: 'chat', stage: 'dev', client },
      retry: { ...retry, baseDelayMs: 100 },
    });

    // Act
    await pushwire.publish({ topic: 'news', data: 1 });

    // Assess
    const calls = sent();
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.name))).toEqual(new Set(['chat-dev-publish']));
    expect(new Set(calls.map((c) => c.body.id)).size).toBe(1);
    expect(waits).toEqual([100, 200]);
  });

  it('keeps a caller-given id', async () => {
    // Prepare
    lambdaMock
      .on(InvokeCommand)
      .resolves({ StatusCode: 200, Payload: payload({ ...result, id: 'order-7' }) });
    const pushwire = createPushwire({ lambda: { stage: 'prod', client } });

    // Act
    await pushwire.publish({ userIds: ['a', 'b'], data: 1, id: 'order-7' });

    // Assess
    expect(sent()[0]?.body.id).toBe('order-7');
  });

  it('refuses a request over what one Lambda invocation takes (6 MB) with TooLargeError, sending nothing', async () => {
    // Prepare
    const pushwire = createPushwire({ lambda: { stage: 'prod', client }, retry: noSleep().retry });

    // Act
    const large = pushwire.publish({ userId: 'a', data: 'x'.repeat(6 * 1024 * 1024) });

    // Assess
    await expect(large).rejects.toThrow(TooLargeError);
    await expect(large).rejects.toMatchObject({
      code: 'too_large',
      message: expect.stringMatching(
        /^the request is 629\d{4} bytes; Lambda takes at most 6291456/,
      ),
    });
    expect(sent()).toHaveLength(0);
  });

  it('throws InvalidRequestError and TooLargeError at once, without retrying', async () => {
    // Prepare
    lambdaMock
      .on(InvokeCommand)
      .resolvesOnce({
        StatusCode: 200,
        Payload: payload({ error: { code: 'invalid_request', message: 'data is required' } }),
      })
      .resolvesOnce({
        StatusCode: 200,
        Payload: payload({ error: { code: 'too_large', message: 'message is 200000 bytes' } }),
      });
    const pushwire = createPushwire({ lambda: { stage: 'prod', client }, retry: noSleep().retry });

    // Act
    const invalid = pushwire.publish({ userId: 'a' } as never);
    const large = pushwire.publish({ userId: 'a', data: 'x'.repeat(10) });

    // Assess
    await expect(invalid).rejects.toThrow(InvalidRequestError);
    await expect(invalid).rejects.toMatchObject({
      code: 'invalid_request',
      message: 'data is required',
    });
    await expect(large).rejects.toThrow(TooLargeError);
    expect(sent()).toHaveLength(2);
  });

  it('gives up after maxAttempts with an UnavailableError', async () => {
    // Prepare
    lambdaMock.on(InvokeCommand).rejects(throttled());
    const pushwire = createPushwire({
      lambda: { stage: 'prod', client },
      retry: { ...noSleep().retry, maxAttempts: 4 },
    });

    // Act
    const call = pushwire.presence({ userIds: ['a'] });

    // Assess
    await expect(call).rejects.toThrow(UnavailableError);
    await expect(call).rejects.toMatchObject({ attempts: 4, status: 429 });
    expect(sent()).toHaveLength(4);
    expect(sent()[0]?.name).toBe('pushwire-prod-presence');
  });

  it('does not retry a missing function or a denied invoke', async () => {
    // Prepare
    lambdaMock.on(InvokeCommand).rejects(
      Object.assign(new Error('Function not found'), {
        name: 'ResourceNotFoundException',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    const pushwire = createPushwire({ lambda: { functionNames: { kick: 'my-kick' }, client } });

    // Act
    const call = pushwire.kick({ userId: 'a' });

    // Assess
    await expect(call).rejects.toMatchObject({ code: 'invoke_failed', status: 404 });
    await expect(call).rejects.toThrow(PushwireError);
    expect(sent()).toEqual([{ name: 'my-kick', body: { userId: 'a' } }]);
  });
});

describe('server SDK over HTTP', () => {
  /** A fetch that answers from a list and records what it was sent. */
  function fakeFetch(answers: (() => Response)[]) {
    const requests: { url: string; init: RequestInit }[] = [];
    const fetch = (async (url: URL | string, init: RequestInit = {}) => {
      requests.push({ url: String(url), init });
      const next = answers.shift();
      if (!next) throw new Error('no more answers');
      return next();
    }) as typeof globalThis.fetch;
    return { fetch, requests };
  }
  const json = (status: number, value: unknown) => () =>
    new Response(JSON.stringify(value), {
      status,
      headers: { 'content-type': 'application/json' },
    });

  it('POSTs to <url>/<operation> and maps 400 and 413 to typed errors', async () => {
    // Prepare
    const { fetch, requests } = fakeFetch([
      json(200, { ...result, id: 'i' }),
      json(400, { error: { code: 'invalid_request', message: 'bad target' } }),
      json(413, { error: { code: 'too_large', message: 'too big' } }),
    ]);
    const pushwire = createPushwire({ http: { url: 'http://localhost:3000/', fetch } });

    // Act
    const ok = await pushwire.publish({ userId: 'a', data: 1 });
    const bad = pushwire.publish({ userId: 'a', data: 1 });
    await expect(bad).rejects.toMatchObject({ name: 'InvalidRequestError', status: 400 });
    const big = pushwire.publish({ userId: 'a', data: 1 });
    await expect(big).rejects.toThrow(TooLargeError);

    // Assess
    expect(ok.delivered).toBe(1);
    expect(requests.map((r) => r.url)).toEqual(Array(3).fill('http://localhost:3000/publish'));
    expect(requests[0]?.init.method).toBe('POST');
  });

  it('retries 429, 5xx and network failures with the same id', async () => {
    // Prepare
    const { fetch, requests } = fakeFetch([
      json(429, { message: 'Too Many Requests' }),
      () => {
        throw new TypeError('fetch failed');
      },
      json(502, { message: 'Internal server error' }),
      json(200, { ...result, id: 'i' }),
    ]);
    const pushwire = createPushwire({
      http: { url: 'http://localhost:3000', fetch },
      retry: { ...noSleep().retry, maxAttempts: 4 },
    });

    // Act
    await pushwire.publish({ userId: 'a', data: 1 });

    // Assess
    const ids = requests.map((r) => JSON.parse(String(r.init.body)).id);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(1);
  });

  it('signs requests with SigV4 for execute-api when given awsIamSigner', async () => {
    // Prepare
    const { fetch, requests } = fakeFetch([json(200, { users: {} })]);
    const pushwire = createPushwire({
      http: {
        url: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod',
        fetch,
        sign: awsIamSigner({
          region: 'eu-west-1',
          credentials: async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }),
        }),
      },
    });

    // Act
    await pushwire.presence({ userIds: ['a'] });

    // Assess
    const headers = requests[0]?.init.headers as Record<string, string>;
    expect(headers['authorization']).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=.*host.*, Signature=[0-9a-f]{64}$/,
    );
    expect(headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
  });
});

describe('the package', () => {
  beforeAll(() => {
    execFileSync('npm', ['run', '--silent', 'build:server'], { stdio: 'pipe' });
  }, 60_000);

  it('is importable as pushwire/server by a plain Node service (package.json exports)', () => {
    // Act
    const exported = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('pushwire/server'); console.log(Object.keys(m).sort().join(','))",
      ],
      { encoding: 'utf8' },
    ).trim();

    // Assess
    expect(exported.split(',')).toEqual(
      expect.arrayContaining([
        'createPushwire',
        'Pushwire',
        'InvalidRequestError',
        'TooLargeError',
        'UnavailableError',
        'awsIamSigner',
      ]),
    );
  });
});
