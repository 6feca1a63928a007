import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';
import {
  callWithRetry,
  defaultSleep,
  type Gateway,
  type GatewayResult,
  type RetryPolicy,
} from './gateway.js';

/**
 * The management API over plain keep-alive HTTP, signed with the SDK's own
 * SigV4 signer: the fan-out hot path.
 *
 * Why not the SDK client: measured on loopback (bench/, BENCHMARKS.md), a
 * PostToConnection through @aws-sdk/client-apigatewaymanagementapi costs
 * about 1 ms of CPU (middleware stack, endpoint rules, serialisation,
 * signing, parsing) against about 0.1 ms for the HTTP request itself, which
 * caps a fan-out at ~10 % of what the wire allows. Here the body's SHA-256 is
 * computed once per frame (not once per recipient), the signing key is
 * cached by the signer, and each post is one request on a pooled socket.
 * Behaviour matches AwsGateway: 410 is 'gone', throttling and transient
 * failures (5xx, resets, timeouts) are retried with the same policy, anything
 * else throws an error shaped like the SDK's.
 */
export interface SignedHttpGatewayOptions extends Partial<RetryPolicy> {
  region: string;
  /** Lambda's, from the environment: see lib/aws-signing.ts. */
  credentials: AwsCredentialIdentityProvider;
  /** Sockets per endpoint. */
  maxSockets?: number;
  /** Deadline of one request (connect, send, answer), per attempt. */
  requestTimeoutMs?: number;
}

/** Node's crypto as the signer's hash (one class for SHA-256 and HMAC-SHA-256). */
class NodeSha256 implements Checksum {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#create();
  }

  #create(): Hash | Hmac {
    return this.#secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', toBuffer(this.#secret));
  }

  update(data: Uint8Array): void {
    this.#hash.update(toBuffer(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }

  reset(): void {
    this.#hash = this.#create();
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

interface Endpoint {
  url: URL;
  /** Path prefix of the stage (`/prod`), or '' (serverless-offline, custom domains). */
  base: string;
  agent: HttpAgent;
  request: typeof httpRequest;
}

/** An error shaped like the SDK's, so isGone/isThrottled treat both alike. */
export class ManagementApiError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

/** A request that got no complete answer in time: named as the SDK names it, so it is retried alike. */
function requestTimeout(ms: number): Error {
  return Object.assign(new Error(`no answer from the management API within ${ms} ms`), {
    name: 'TimeoutError',
    code: 'ETIMEDOUT',
  });
}

const ERROR_NAMES: Record<number, string> = {
  403: 'ForbiddenException',
  410: 'GoneException',
  413: 'PayloadTooLargeException',
  429: 'LimitExceededException',
};

export class SignedHttpGateway implements Gateway {
  readonly #signer: SignatureV4;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #payloadHashes = new WeakMap<Uint8Array, string>();
  readonly #policy: RetryPolicy;
  readonly #maxSockets: number;
  readonly #timeout: number;

  constructor(options: SignedHttpGatewayOptions) {
    this.#signer = new SignatureV4({
      credentials: options.credentials,
      region: options.region,
      service: 'execute-api',
      sha256: NodeSha256,
    });
    this.#policy = {
      throttleMaxAttempts: options.throttleMaxAttempts ?? 5,
      throttleBudgetMs: options.throttleBudgetMs ?? 5_000,
      throttleBaseDelayMs: options.throttleBaseDelayMs ?? 50,
      sleep: options.sleep ?? defaultSleep,
      random: options.random ?? Math.random,
    };
    this.#maxSockets = options.maxSockets ?? 256;
    this.#timeout = options.requestTimeoutMs ?? 5_000;
  }

  #endpoint(endpoint: string): Endpoint {
    let found = this.#endpoints.get(endpoint);
    if (!found) {
      const url = new URL(endpoint);
      const https = url.protocol === 'https:';
      const agentOptions = { keepAlive: true, maxSockets: this.#maxSockets };
      found = {
        url,
        base: url.pathname.replace(/\/+$/, ''),
        agent: https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions),
        request: https ? httpsRequest : httpRequest,
      };
      this.#endpoints.set(endpoint, found);
    }
    return found;
  }

  #payloadHash(data: Uint8Array): string {
    let hash = this.#payloadHashes.get(data);
    if (hash === undefined) {
      hash = createHash('sha256').update(data).digest('hex');
      this.#payloadHashes.set(data, hash);
    }
    return hash;
  }

  post(endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    return callWithRetry(() => this.#send('POST', endpoint, connectionId, data), this.#policy);
  }

  close(endpoint: string, connectionId: string): Promise<GatewayResult> {
    return callWithRetry(() => this.#send('DELETE', endpoint, connectionId), this.#policy);
  }

  async #send(
    method: 'POST' | 'DELETE',
    endpoint: string,
    connectionId: string,
    body?: Uint8Array,
  ): Promise<void> {
    const target = this.#endpoint(endpoint);
    const { url } = target;
    const headers: Record<string, string> = { host: url.host };
    if (body) {
      headers['content-length'] = String(body.byteLength);
      // Precomputed once per frame; the signer uses it instead of hashing again.
      headers['x-amz-content-sha256'] = this.#payloadHash(body);
    }
    const signed = await this.#signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port && { port: Number(url.port) }),
      path: `${target.base}/@connections/${encodeURIComponent(connectionId)}`,
      query: {},
      headers,
      ...(body && { body }),
    });
    const status = await new Promise<{ code: number; text: string }>((resolve, reject) => {
      const req = target.request(
        {
          method,
          host: url.hostname,
          port: url.port || undefined,
          path: signed.path,
          headers: signed.headers,
          agent: target.agent,
          timeout: this.#timeout,
        },
        (res: IncomingMessage) => {
          const code = res.statusCode ?? 0;
          // A response cut off midway (reset, or our deadline) fails the call.
          res.on('error', fail);
          if (code >= 200 && code < 300) {
            res.resume();
            res.on('end', () => done({ code, text: '' }));
            return;
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (text.length < 500) text += chunk;
          });
          res.on('end', () => done({ code, text }));
        },
      );
      // A whole-request deadline, not only the socket's idle timeout: a peer
      // that trickles bytes or never answers must not hold a post (and the
      // fan-out slot it takes) past the bound. Its error is a transient one.
      const deadline = setTimeout(() => req.destroy(requestTimeout(this.#timeout)), this.#timeout);
      function done(value: { code: number; text: string }) {
        clearTimeout(deadline);
        resolve(value);
      }
      function fail(error: Error) {
        clearTimeout(deadline);
        reject(error);
      }
      req.on('timeout', () => req.destroy(requestTimeout(this.#timeout)));
      req.on('error', fail);
      req.end(body);
    });
    if (status.code >= 200 && status.code < 300) return;
    throw new ManagementApiError(
      ERROR_NAMES[status.code] ?? 'ManagementApiError',
      status.code,
      `${method} @connections/${connectionId}: HTTP ${status.code} ${status.text}`.trim(),
    );
  }
}
