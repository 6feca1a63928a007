import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CredentialsProvider,
  createSigner,
  regionalEndpoint,
  signedPost,
} from '../aws/signing.js';

/**
 * Lambda Invoke (RequestResponse) as one SigV4-signed POST to
 * `/2015-03-31/functions/{name}/invocations`, the call `@aws-sdk/client-lambda`
 * makes. Why not that client: bundled (the zips carry what they run, see
 * docs/deploying.md, "What each zip carries"), it adds ~540 KB to `publish` (@smithy/core, the
 * endpoint rules, the client's ~110 KB of operations we never call), which
 * would take it past its 700 KB target; this is a few KB on the signer that
 * the management API posts already use.
 */

/** What one invocation answered. */
export interface InvokeResult {
  payload: Buffer;
  /** `Unhandled` (or `Handled`) when the function itself failed: Lambda still answers 200. */
  functionError?: string;
}

export type LambdaInvoke = (functionName: string, payload: Uint8Array) => Promise<InvokeResult>;

/** An error of the Invoke API itself, named and shaped as the SDK's. */
export class LambdaInvokeError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

export interface SignedLambdaInvokeOptions {
  region: string;
  /** Default: the region's public endpoint. Locally, serverless-offline's Lambda port. */
  endpoint?: string;
  credentials: CredentialsProvider;
  /** Sockets kept for invocations (publish runs FANOUT_PARALLEL_CHUNKS at once). */
  maxSockets?: number;
  /** Attempts for a throttled invocation (429: it did not run, so a retry is safe), first included. */
  throttleMaxAttempts?: number;
  throttleBaseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export function lambdaEndpoint(region: string): string {
  return regionalEndpoint('lambda', region);
}

export function signedLambdaInvoke(options: SignedLambdaInvokeOptions): LambdaInvoke {
  const url = new URL(options.endpoint ?? lambdaEndpoint(options.region));
  const https = url.protocol === 'https:';
  const base = url.pathname.replace(/\/+$/, '');
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 50 };
  const agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const signer = createSigner('lambda', options.region, options.credentials);
  const attempts = options.throttleMaxAttempts ?? 3;
  const baseDelay = options.throttleBaseDelayMs ?? 100;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const random = options.random ?? Math.random;

  const once = async (functionName: string, payload: Uint8Array): Promise<InvokeResult> => {
    // No socket timeout: a RequestResponse invocation is silent until the
    // worker returns (up to its own timeout); publish's timeout bounds it.
    const response = await signedPost(
      signer,
      url,
      `${base}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`,
      { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
      payload,
      { agent },
    );
    if (response.status >= 200 && response.status < 300) {
      const functionError = response.headers['x-amz-function-error'];
      return {
        payload: response.body,
        ...(typeof functionError === 'string' && { functionError }),
      };
    }
    // Lambda names the error in a header (`TooManyRequestsException:<doc url>`).
    const type = String(response.headers['x-amzn-errortype'] ?? '').split(':')[0];
    const name =
      type || (response.status === 429 ? 'TooManyRequestsException' : 'LambdaInvokeError');
    const text = response.body.toString('utf8', 0, 300);
    throw new LambdaInvokeError(
      name,
      response.status,
      `Invoke ${functionName}: HTTP ${response.status} ${name} ${text}`.trim(),
    );
  };

  return async (functionName, payload) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(functionName, payload);
      } catch (error) {
        const throttled =
          error instanceof LambdaInvokeError && error.$metadata.httpStatusCode === 429;
        if (!throttled || attempt >= attempts) throw error;
        await sleep(Math.floor(random() * baseDelay * 2 ** (attempt - 1)));
      }
    }
  };
}
