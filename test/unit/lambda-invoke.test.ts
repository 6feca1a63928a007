import { createServer, type OutgoingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  LambdaInvokeError,
  lambdaEndpoint,
  signedLambdaInvoke,
} from '../../lib/delivery/lambda-invoke.js';
import { type ReceivedRequest, verifySigV4 } from '../helpers/sigv4.js';

// A local HTTP server stands in for the Lambda Invoke API: real sockets, real
// signed requests; each test scripts its answers.
interface Answer {
  status?: number;
  headers?: OutgoingHttpHeaders;
  body: unknown;
}

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session/token+with=odd chars',
};
let server: Server;
let endpoint: string;
let seen: ReceivedRequest[];
let answers: Answer[];

beforeAll(async () => {
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(parts),
      });
      const answer = answers.shift() ?? { body: { delivered: 0, gone: 0, failed: 0 } };
      res.writeHead(answer.status ?? 200, answer.headers ?? {});
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen = [];
  answers = [];
});

const chunk = {
  jobs: [
    { frame: '{"type":"message","data":"é"}', recipients: [['c1=', 'https://x.example/prod']] },
  ],
};
const invokeWith = (extra: Partial<Parameters<typeof signedLambdaInvoke>[0]> = {}) =>
  signedLambdaInvoke({
    region: 'eu-central-1',
    endpoint,
    credentials: async () => credentials,
    sleep: async () => undefined,
    ...extra,
  });

describe('signedLambdaInvoke', () => {
  it('POSTs the payload to the Invoke API path, RequestResponse, signed for lambda in its region', async () => {
    // Prepare
    const payload = Buffer.from(JSON.stringify(chunk));
    answers = [{ body: { ok: 1 } }];

    // Act
    const result = await invokeWith()('pushwire-prod-deliver', payload);

    // Assess
    expect(JSON.parse(result.payload.toString())).toEqual({ ok: 1 });
    expect(result.functionError).toBeUndefined();
    const request = seen[0] as ReceivedRequest;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/2015-03-31/functions/pushwire-prod-deliver/invocations');
    expect(request.headers['x-amz-invocation-type']).toBe('RequestResponse');
    expect(request.headers['x-amz-security-token']).toBe(credentials.sessionToken);
    expect(request.body.equals(payload)).toBe(true);
    const check = verifySigV4(request, (id) =>
      id === credentials.accessKeyId ? credentials.secretAccessKey : undefined,
    );
    expect(check).toMatchObject({ ok: true, region: 'eu-central-1', service: 'lambda' });
  });

  it('escapes a function given by ARN, and the signature still holds', async () => {
    // Act
    await invokeWith()('arn:aws:lambda:eu-central-1:123456789012:function:d', Buffer.from('{}'));

    // Assess
    const request = seen[0] as ReceivedRequest;
    expect(request.url).toBe(
      '/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-central-1%3A123456789012%3Afunction%3Ad/invocations',
    );
    expect(verifySigV4(request, () => credentials.secretAccessKey).ok).toBe(true);
  });

  it('reports a failed function (200 with X-Amz-Function-Error) as a value', async () => {
    // Prepare
    answers = [
      { headers: { 'x-amz-function-error': 'Unhandled' }, body: { errorMessage: 'boom' } },
    ];
    // Act
    const result = await invokeWith()('f', Buffer.from('{}'));
    // Assess
    expect(result.functionError).toBe('Unhandled');
    expect(result.payload.toString()).toContain('boom');
  });

  it('throws an error named by x-amzn-ErrorType for an API error', async () => {
    // Prepare
    answers = [
      {
        status: 404,
        headers: { 'x-amzn-errortype': 'ResourceNotFoundException:http://internal/' },
        body: { Type: 'User', Message: 'Function not found: f' },
      },
    ];
    // Act
    const outcome = invokeWith()('f', Buffer.from('{}'));
    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 404 },
    });
    await expect(outcome).rejects.toThrow(/Function not found/);
  });

  it('retries a throttled invocation (429: it did not run) and then succeeds', async () => {
    // Prepare
    const throttled = {
      status: 429,
      headers: { 'x-amzn-errortype': 'TooManyRequestsException' },
      body: {},
    };
    answers = [throttled, throttled, { body: { done: true } }];
    const delays: number[] = [];
    // Act
    const result = await invokeWith({ sleep: async (ms) => void delays.push(ms), random: () => 1 })(
      'f',
      Buffer.from('{}'),
    );
    // Assess
    expect(JSON.parse(result.payload.toString())).toEqual({ done: true });
    expect(seen).toHaveLength(3);
    expect(delays).toEqual([100, 200]);
  });

  it('gives up on throttling after its attempts, and never retries other errors', async () => {
    // Prepare
    const throttled = { status: 429, body: {} };
    answers = [throttled, throttled, throttled, { status: 500, body: {} }];
    // Act
    const throttledOutcome = invokeWith()('f', Buffer.from('{}'));
    await expect(throttledOutcome).rejects.toBeInstanceOf(LambdaInvokeError);
    await expect(throttledOutcome).rejects.toMatchObject({ name: 'TooManyRequestsException' });
    const failed = invokeWith()('f', Buffer.from('{}'));
    // Assess
    await expect(failed).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
    expect(seen).toHaveLength(4);
  });

  it('defaults to the region public endpoint', () => {
    expect(lambdaEndpoint('eu-west-1')).toBe('https://lambda.eu-west-1.amazonaws.com');
    expect(lambdaEndpoint('cn-north-1')).toBe('https://lambda.cn-north-1.amazonaws.com.cn');
  });
});
