import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type AckTimeoutMessage, signedSendTimeout } from '../../lib/acks/queue.js';
import { type AckTimeoutDeps, handleTimeoutBatch } from '../../lib/acks/timeout.js';
import { type LocalQueue, startLocalQueue } from '../../scripts/local-queue.js';

/**
 * The ack timeouts' SQS path as `npm start` runs it: lib/acks/queue.ts signs
 * SendMessage with the project's signer; scripts/local-queue.ts recomputes
 * the signature, checks the request, holds the message for its delay and
 * invokes a Lambda Invoke endpoint with an SQS event, again after a failure.
 */

const credentials = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
const message = (id: string): AckTimeoutMessage => ({
  v: 1,
  userId: 'alice',
  id,
  dueAt: Date.now(),
  timeoutSeconds: 1,
});

let queue: LocalQueue | undefined;
let lambda: ReturnType<typeof createServer> | undefined;
afterEach(async () => {
  await queue?.close();
  lambda?.closeAllConnections();
  await new Promise((resolve) => (lambda ? lambda.close(resolve) : resolve(undefined)));
  queue = undefined;
  lambda = undefined;
});

/** A stand-in for serverless-offline's Lambda port: records each invocation, answers `answer()`. */
async function lambdaPort(answer: () => object) {
  const invocations: { path: string; event: { Records: { body: string; messageId: string }[] } }[] =
    [];
  lambda = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => {
      invocations.push({ path: req.url ?? '', event: JSON.parse(Buffer.concat(parts).toString()) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer()));
    });
  });
  await new Promise<void>((resolve) => lambda?.listen(0, '127.0.0.1', resolve));
  const address = lambda.address();
  return { port: typeof address === 'object' && address ? address.port : 0, invocations };
}

const waitFor = async (condition: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('not in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('the ack timeout queue (SQS SendMessage, local stand-in)', () => {
  it('accepts a signed SendMessage, holds it for its delay, then invokes ackTimeout with an SQS event', async () => {
    queue = await startLocalQueue({
      region: 'eu-west-1',
      secretFor: (id) => (id === credentials.accessKeyId ? credentials.secretAccessKey : undefined),
      visibilitySeconds: 1,
    });
    const { port, invocations } = await lambdaPort(() => ({ batchItemFailures: [] }));
    queue.run(port, 'pushwire-local-ackTimeout');
    const send = signedSendTimeout({
      region: 'eu-west-1',
      queueUrl: queue.queueUrl,
      endpoint: queue.url,
      credentials: async () => credentials,
    });
    const sentAt = Date.now();
    await send(message('m1'), 1);
    // Over SQS's 900 s: clamped (the handler sends the rest again).
    await send(message('m2'), 2_000);
    expect(queue.refused).toEqual([]);
    expect(queue.received.map((m) => m.delaySeconds)).toEqual([1, 900]);
    await waitFor(() => invocations.length === 1);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(950);
    const [invocation] = invocations;
    expect(invocation?.path).toBe('/2015-03-31/functions/pushwire-local-ackTimeout/invocations');
    expect(invocation?.event.Records).toEqual([
      expect.objectContaining({ eventSource: 'aws:sqs', awsRegion: 'eu-west-1' }),
    ]);
    expect(JSON.parse(invocation?.event.Records[0]?.body as string)).toMatchObject({ id: 'm1' });
  });

  it('refuses a request whose signature does not verify, or signed for another service or region', async () => {
    queue = await startLocalQueue({
      region: 'eu-west-1',
      secretFor: (id) => (id === credentials.accessKeyId ? credentials.secretAccessKey : undefined),
    });
    const wrongKey = signedSendTimeout({
      region: 'eu-west-1',
      queueUrl: queue.queueUrl,
      endpoint: queue.url,
      credentials: async () => ({ ...credentials, secretAccessKey: 'not-the-secret' }),
    });
    await expect(wrongKey(message('x'), 1)).rejects.toThrow(/HTTP 403/);
    const wrongRegion = signedSendTimeout({
      region: 'us-east-1',
      queueUrl: queue.queueUrl,
      endpoint: queue.url,
      credentials: async () => credentials,
    });
    await expect(wrongRegion(message('y'), 1)).rejects.toThrow(/HTTP 403/);
    const wrongQueue = signedSendTimeout({
      region: 'eu-west-1',
      queueUrl: `${queue.url}/000000000000/other`,
      endpoint: queue.url,
      credentials: async () => credentials,
    });
    await expect(wrongQueue(message('z'), 1)).rejects.toThrow(/HTTP 400/);
    expect(queue.received).toEqual([]);
    expect(queue.refused).toEqual([
      expect.stringMatching(/^signature: /),
      expect.stringMatching(/^signature: signed for sqs in us-east-1/),
      expect.stringMatching(/QueueUrl .* is unknown/),
    ]);
  });

  it('delivers a record again after the function reports it failed, until it succeeds', async () => {
    queue = await startLocalQueue({
      region: 'eu-west-1',
      secretFor: () => credentials.secretAccessKey,
      visibilitySeconds: 1,
    });
    let failures = 1;
    const { port, invocations } = await lambdaPort(() =>
      failures-- > 0
        ? {
            batchItemFailures: [
              { itemIdentifier: invocations.at(-1)?.event.Records[0]?.messageId },
            ],
          }
        : { batchItemFailures: [] },
    );
    queue.run(port, 'f');
    await signedSendTimeout({
      region: 'eu-west-1',
      queueUrl: queue.queueUrl,
      endpoint: queue.url,
      credentials: async () => credentials,
    })(message('r1'), 0);
    await waitFor(() => invocations.length === 2);
    expect(invocations[1]?.event.Records[0]?.messageId).toBe(
      invocations[0]?.event.Records[0]?.messageId,
    );
  });
});

describe('ackTimeout on an SQS batch', () => {
  it('handles each record on its own and reports only the failed ones', async () => {
    const deps = {
      store: {
        decide: async (_u: string, id: string) => (id === 'busy' ? 'busy' : 'acked'),
      },
      logger: { info: () => undefined, warn: () => undefined },
    } as unknown as AckTimeoutDeps;
    const record = (messageId: string, body: string) => ({ messageId, body });
    const answer = await handleTimeoutBatch(
      {
        Records: [
          record('1', JSON.stringify(message('fine'))),
          record('2', JSON.stringify(message('busy'))),
          record('3', '{"not":"ours"}'),
          // Not JSON at all: dropped like any message not ours, not redelivered forever.
          record('4', 'not json'),
        ],
      },
      deps,
    );
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    await expect(handleTimeoutBatch({ nope: true }, deps)).rejects.toThrow(/not an SQS event/);
  });
});
