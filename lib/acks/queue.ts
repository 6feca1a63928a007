import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  type CredentialsProvider,
  createSigner,
  regionalEndpoint,
  signedPost,
} from '../aws/signing.js';
import type { Notify } from '../push/types.js';

/**
 * The timeouts of acknowledged messages wait in an SQS queue (issue 18,
 * docs/acks.md "Why SQS"): one message per user and acknowledged publish,
 * sent with DelaySeconds = the timeout (SQS holds a message at most 900 s;
 * a longer timeout is sent again by `ackTimeout` for what remains). One
 * SigV4-signed JSON POST (AmazonSQS.SendMessage) through the signer every
 * AWS call uses.
 */

/** SQS's longest per-message delay. */
export const MAX_DELAY_SECONDS = 900;

/** The body of a timeout message: all the timeout needs, should Redis have lost the state. */
export interface AckTimeoutMessage {
  v: 1;
  userId: string;
  id: string;
  cursor?: string;
  /** When the timeout is due (ms). */
  dueAt: number;
  timeoutSeconds: number;
  notify?: Notify;
  /** The Redis epoch at publish (lib/registry/keys.ts epoch): tells data loss from expiry. */
  epoch?: string;
}

export type SendTimeout = (message: AckTimeoutMessage, delaySeconds: number) => Promise<void>;

export interface SignedSqsOptions {
  region: string;
  queueUrl: string;
  /** Default: the region's endpoint. `npm start` and tests: the local stand-in. */
  endpoint?: string;
  credentials: CredentialsProvider;
  timeoutMs?: number;
}

export function signedSendTimeout(options: SignedSqsOptions): SendTimeout {
  const url = new URL(options.endpoint ?? regionalEndpoint('sqs', options.region));
  const agent = new (url.protocol === 'https:' ? HttpsAgent : HttpAgent)({
    keepAlive: true,
    maxSockets: 16,
  });
  const signer = createSigner('sqs', options.region, options.credentials);
  return async (message, delaySeconds) => {
    const body = {
      QueueUrl: options.queueUrl,
      MessageBody: JSON.stringify(message),
      DelaySeconds: Math.max(0, Math.min(MAX_DELAY_SECONDS, Math.ceil(delaySeconds))),
    };
    const response = await signedPost(
      signer,
      url,
      url.pathname || '/',
      { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.SendMessage' },
      Buffer.from(JSON.stringify(body)),
      { agent, timeoutMs: options.timeoutMs ?? 5_000 },
    );
    if (response.status !== 200) {
      throw new Error(
        `SQS SendMessage: HTTP ${response.status} ${response.body.toString('utf8').slice(0, 200)}`,
      );
    }
  };
}
