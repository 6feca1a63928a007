import { createHash, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { type ReceivedRequest, verifySigV4 } from '../test/helpers/sigv4.js';
import { requestServer } from './local-bus.js';

/**
 * A local stand-in for the SQS queue of acknowledged messages' timeouts
 * (issue 18, docs/acks.md): answers AmazonSQS.SendMessage (JSON protocol) as
 * SQS does after checking the request's shape and recomputing its SigV4
 * signature; holds each message for its DelaySeconds, then hands it to the
 * `ackTimeout` function through serverless-offline's Lambda port with an
 * SQS-shaped event (what the event source mapping does in AWS). Records the
 * function reports failed (batchItemFailures) come back after a visibility
 * timeout, up to `maxReceives` times, as with the queue's redrive policy.
 */

export interface QueuedMessage {
  messageId: string;
  body: string;
  delaySeconds: number;
  receives: number;
}

export interface LocalQueue {
  url: string;
  /** The QueueUrl requests must name. */
  queueUrl: string;
  received: QueuedMessage[];
  refused: string[];
  /** Starts handing due messages to the function (once serverless-offline is up). */
  run(lambdaPort: string | number, functionName: string): void;
  close(): Promise<void>;
}

export interface LocalQueueOptions {
  region: string;
  /** The access key's secret, for the SigV4 check (undefined: unknown key). */
  secretFor: (accessKeyId: string) => string | undefined;
  queueName?: string;
  /** Seconds before a failed record is delivered again (default 5). */
  visibilitySeconds?: number;
  maxReceives?: number;
  print?: (line: string) => void;
  port?: number;
}

/** Why a SendMessage request is not one, or its parsed body. */
export function parseSendMessage(
  request: ReceivedRequest,
  queueUrl: string,
): { body: string; delaySeconds: number } | { error: string } {
  if (request.method !== 'POST' || request.url !== '/') return { error: 'not POST /' };
  if (request.headers['x-amz-target'] !== 'AmazonSQS.SendMessage')
    return { error: `x-amz-target is ${request.headers['x-amz-target']}` };
  if (request.headers['content-type'] !== 'application/x-amz-json-1.0')
    return { error: `content-type is ${request.headers['content-type']}` };
  let json: { QueueUrl?: unknown; MessageBody?: unknown; DelaySeconds?: unknown };
  try {
    json = JSON.parse(request.body.toString('utf8'));
  } catch {
    return { error: 'body is not JSON' };
  }
  if (json.QueueUrl !== queueUrl) return { error: `QueueUrl ${String(json.QueueUrl)} is unknown` };
  if (typeof json.MessageBody !== 'string' || json.MessageBody === '')
    return { error: 'MessageBody must be a non-empty string' };
  if (Buffer.byteLength(json.MessageBody) > 256 * 1024) return { error: 'MessageBody over 256 KB' };
  const delay = json.DelaySeconds ?? 0;
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > 900)
    return { error: 'DelaySeconds must be an integer from 0 to 900' };
  return { body: json.MessageBody, delaySeconds: delay };
}

export async function startLocalQueue(options: LocalQueueOptions): Promise<LocalQueue> {
  const name = options.queueName ?? 'pushwire-local-acks';
  const received: QueuedMessage[] = [];
  const refused: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let target: { port: string | number; functionName: string } | undefined;
  const waiting: QueuedMessage[] = [];
  let closed = false;
  const print = options.print ?? (() => undefined);

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const deliver = async (m: QueuedMessage): Promise<void> => {
    if (closed) return;
    if (!target) {
      waiting.push(m);
      return;
    }
    m.receives++;
    const event = {
      Records: [
        {
          messageId: m.messageId,
          receiptHandle: `${m.messageId}#${m.receives}`,
          body: m.body,
          attributes: {
            ApproximateReceiveCount: String(m.receives),
            SentTimestamp: String(Date.now()),
          },
          messageAttributes: {},
          md5OfBody: createHash('md5').update(m.body).digest('hex'),
          eventSource: 'aws:sqs',
          eventSourceARN: `arn:aws:sqs:${options.region}:000000000000:${name}`,
          awsRegion: options.region,
        },
      ],
    };
    let failed = true;
    try {
      const res = await fetch(
        `http://localhost:${target.port}/2015-03-31/functions/${target.functionName}/invocations`,
        { method: 'POST', body: JSON.stringify(event) },
      );
      const text = await res.text();
      const answer = JSON.parse(text || '{}') as { batchItemFailures?: unknown[] };
      failed =
        !res.ok ||
        res.headers.get('x-amz-function-error') !== null ||
        (answer.batchItemFailures?.length ?? 0) > 0;
      if (failed) print(`pushwire ack queue: ${m.messageId} failed (${text.slice(0, 200)})`);
    } catch (error) {
      print(
        `pushwire ack queue: ${m.messageId}: ${error instanceof Error ? error.message : error}`,
      );
    }
    if (failed && !closed) {
      if (m.receives >= (options.maxReceives ?? 5)) {
        print(
          `pushwire ack queue: ${m.messageId} gave up after ${m.receives} receives (dead-letter)`,
        );
        return;
      }
      later((options.visibilitySeconds ?? 5) * 1000, () => void deliver(m));
    }
  };

  let queueUrl = '';
  const server: Server = requestServer((request, res) => {
    const reply = (status: number, body: object) =>
      res
        .writeHead(status, { 'content-type': 'application/x-amz-json-1.0' })
        .end(JSON.stringify(body));
    const check = verifySigV4(request, options.secretFor);
    const denied = !check.ok
      ? check.reason
      : check.service !== 'sqs' || check.region !== options.region
        ? `signed for ${check.service} in ${check.region}`
        : undefined;
    if (denied !== undefined) {
      refused.push(`signature: ${denied}`);
      reply(403, { __type: 'com.amazonaws.sqs#AccessDenied', message: denied });
      return;
    }
    const parsed = parseSendMessage(request, queueUrl);
    if ('error' in parsed) {
      refused.push(parsed.error);
      reply(400, { __type: 'com.amazonaws.sqs#InvalidParameterValue', message: parsed.error });
      return;
    }
    const m: QueuedMessage = {
      messageId: randomUUID(),
      body: parsed.body,
      delaySeconds: parsed.delaySeconds,
      receives: 0,
    };
    received.push(m);
    later(parsed.delaySeconds * 1000, () => void deliver(m));
    reply(200, {
      MessageId: m.messageId,
      MD5OfMessageBody: createHash('md5').update(parsed.body).digest('hex'),
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  queueUrl = `${url}/000000000000/${name}`;
  return {
    url,
    queueUrl,
    received,
    refused,
    run(lambdaPort, functionName) {
      target = { port: lambdaPort, functionName };
      for (const m of waiting.splice(0)) void deliver(m);
    },
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
