import { createHash } from 'node:crypto';
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { type Credentials, CredentialsCache, type CredentialsProvider } from '../aws/signing.js';
import { canonicalPath, EMPTY_SHA256, SigV4Signer } from '../aws/sigv4.js';
import {
  callWithRetry,
  defaultSleep,
  type Gateway,
  type GatewayResult,
  type RetryPolicy,
} from './gateway.js';
import { regionOf } from './region.js';

/**
 * The management API over plain keep-alive HTTP, SigV4-signed by
 * lib/aws/sigv4.ts: the fan-out hot path.
 *
 * Why not the SDK client: measured on loopback (bench/, BENCHMARKS.md), a
 * PostToConnection through @aws-sdk/client-apigatewaymanagementapi costs
 * about 1 ms of CPU (middleware stack, endpoint rules, serialisation,
 * signing, parsing) against about 0.04 ms for the HTTP request itself, which
 * caps a fan-out at ~10 % of what the wire allows. Here the body's SHA-256 is
 * computed once per frame (not once per recipient), the signing key once per
 * day and region, and each post is one request on a pooled socket.
 * Behaviour matches AwsGateway: 410 is 'gone', throttling and transient
 * failures (5xx, resets, timeouts) are retried with the same policy, anything
 * else throws an error shaped like the SDK's.
 */
export interface SignedHttpGatewayOptions extends Partial<RetryPolicy> {
  /**
   * Signing region of endpoints whose host names none (custom domains,
   * serverless-offline). An execute-api host is signed for its own region.
   */
  region: string;
  /**
   * Signing region of named endpoints (the peers of WS_PEERS): a peer's
   * custom domain names no region, and may be in another one than ours.
   */
  regions?: Readonly<Record<string, string>>;
  /** Lambda's, from the environment: see lib/aws/signing.ts. */
  credentials: CredentialsProvider;
  /** Sockets per endpoint. */
  maxSockets?: number;
  /** Deadline of one request (connect, send, answer), per attempt. */
  requestTimeoutMs?: number;
  /** Host name resolution (tests point execute-api hosts at a local server). */
  lookup?: LookupFunction;
  /** Clock of the signature's date (tests). */
  now?: () => number;
}

interface Endpoint {
  url: URL;
  /** `url.host`, `url.hostname`, `url.port`, read once (URL's getters build a new string each time). */
  host: string;
  hostname: string;
  port: string | undefined;
  /** Path prefix of the stage (`/prod`), or '' (serverless-offline, custom domains). */
  base: string;
  /** The canonical URI of `{base}/@connections/`, to which a post adds its id. */
  canonicalBase: string;
  /** The region its signature is for. */
  region: string;
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

/** What an encoded connection id's characters may be for its canonical form to be plain. */
const PLAIN_SEGMENT = /^[A-Za-z0-9\-_.~%]+$/;

/**
 * The canonical URI of a post to `id` (encodeURIComponent of a connection
 * id): for an id of unreserved characters and %XX escapes (every API Gateway
 * id: base64 with `=`), encoding it again only turns `%` into `%25`, which is
 * what canonicalPath computes, without splitting and re-joining the path.
 * `.` and `..` are path steps, not ids: canonicalPath normalises them as the
 * server would.
 */
function canonicalUri(target: Endpoint, id: string, path: string): string {
  if (id === '.' || id === '..') return canonicalPath(path);
  if (PLAIN_SEGMENT.test(id)) return target.canonicalBase + id.replaceAll('%', '%25');
  return target.canonicalBase + canonicalPath(id);
}

export class SignedHttpGateway implements Gateway {
  readonly #signer: SigV4Signer;
  /** Kept until shortly before they expire: one promise per fan-out, not per post. */
  readonly #credentials: CredentialsCache;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #payloadHashes = new WeakMap<Uint8Array, string>();
  readonly #policy: RetryPolicy;
  readonly #maxSockets: number;
  readonly #timeout: number;
  readonly #region: string;
  readonly #regions: Readonly<Record<string, string>>;
  readonly #lookup: LookupFunction | undefined;
  /** Requests in flight and when each must have been answered (one sweep, not a timer each). */
  readonly #deadlines = new Map<ClientRequest, number>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: SignedHttpGatewayOptions) {
    this.#credentials = new CredentialsCache(options.credentials);
    this.#signer = new SigV4Signer({ ...(options.now && { now: options.now }) });
    this.#policy = {
      throttleMaxAttempts: options.throttleMaxAttempts ?? 5,
      throttleBudgetMs: options.throttleBudgetMs ?? 5_000,
      throttleBaseDelayMs: options.throttleBaseDelayMs ?? 50,
      sleep: options.sleep ?? defaultSleep,
      random: options.random ?? Math.random,
      ...(options.onThrottle && { onThrottle: options.onThrottle }),
    };
    this.#maxSockets = options.maxSockets ?? 256;
    this.#timeout = options.requestTimeoutMs ?? 5_000;
    this.#region = options.region;
    this.#regions = options.regions ?? {};
    this.#lookup = options.lookup;
  }

  #endpoint(endpoint: string): Endpoint {
    let found = this.#endpoints.get(endpoint);
    if (!found) {
      const url = new URL(endpoint);
      const https = url.protocol === 'https:';
      const agentOptions = {
        keepAlive: true,
        maxSockets: this.#maxSockets,
        ...(this.#lookup && { lookup: this.#lookup }),
      };
      const base = url.pathname.replace(/\/+$/, '');
      found = {
        url,
        host: url.host,
        hostname: url.hostname,
        port: url.port || undefined,
        base,
        canonicalBase: canonicalPath(`${base}/@connections/x`).slice(0, -1),
        region: this.#regions[endpoint] ?? regionOf(endpoint, this.#region),
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

  post(
    endpoint: string,
    connectionId: string,
    data: Uint8Array,
    deadline?: number,
  ): Promise<GatewayResult> {
    return callWithRetry(
      () => this.#send('POST', endpoint, connectionId, data, deadline),
      this.#policy,
      deadline,
    );
  }

  close(endpoint: string, connectionId: string, deadline?: number): Promise<GatewayResult> {
    return callWithRetry(
      () => this.#send('DELETE', endpoint, connectionId, undefined, deadline),
      this.#policy,
      deadline,
    );
  }

  #send(
    method: 'POST' | 'DELETE',
    endpoint: string,
    connectionId: string,
    body: Uint8Array | undefined,
    deadline: number | undefined,
  ): Promise<void> {
    const credentials = this.#credentials.current();
    if (credentials instanceof Promise)
      return credentials.then((fresh) =>
        this.#request(method, endpoint, connectionId, body, fresh, deadline),
      );
    return this.#request(method, endpoint, connectionId, body, credentials, deadline);
  }

  #request(
    method: 'POST' | 'DELETE',
    endpoint: string,
    connectionId: string,
    body: Uint8Array | undefined,
    credentials: Credentials,
    deadline: number | undefined,
  ): Promise<void> {
    const target = this.#endpoint(endpoint);
    const id = encodeURIComponent(connectionId);
    const path = `${target.base}/@connections/${id}`;
    const headers = this.#signer.sign(
      {
        method,
        host: target.host,
        path,
        // Once per frame (a WeakMap hit for every other recipient).
        payloadHash: body ? this.#payloadHash(body) : EMPTY_SHA256,
        region: target.region,
        credentials,
      },
      canonicalUri(target, id, path),
    );
    if (body) headers.push('content-length', String(body.byteLength));
    return new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        this.#deadlines.delete(req);
        reject(error);
      };
      const req = target.request(
        {
          method,
          host: target.hostname,
          port: target.port,
          path,
          // Node's raw form: stored as given, without setHeader's per-header bookkeeping.
          headers,
          agent: target.agent,
        },
        (res: IncomingMessage) => {
          const code = res.statusCode ?? 0;
          // A response cut off midway (reset, or our deadline) fails the call.
          res.on('error', fail);
          if (code >= 200 && code < 300) {
            res.on('end', () => {
              this.#deadlines.delete(req);
              resolve();
            });
            res.resume();
            return;
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (text.length < 500) text += chunk;
          });
          res.on('end', () => {
            this.#deadlines.delete(req);
            reject(
              new ManagementApiError(
                ERROR_NAMES[code] ?? 'ManagementApiError',
                code,
                `${method} @connections/${connectionId}: HTTP ${code} ${text}`.trim(),
              ),
            );
          });
        },
      );
      req.on('error', fail);
      // A whole-request deadline (not the socket's idle timeout): a peer that
      // trickles bytes or never answers must not hold a post, and the fan-out
      // slot it takes, past the bound. Its error is a transient one.
      this.#watch(req, deadline);
      req.end(body);
    });
  }

  /**
   * Bounds every request by requestTimeoutMs with one timer for all of them:
   * a socket timeout per request (http's `timeout` option) adds and removes
   * listeners and re-arms a timer on every post, measurable at this rate.
   */
  #watch(req: ClientRequest, deadline = Number.POSITIVE_INFINITY): void {
    this.#deadlines.set(req, Math.min(Date.now() + this.#timeout, deadline));
    if (this.#sweeper) return;
    const every = Math.max(10, Math.min(1_000, Math.floor(this.#timeout / 4)));
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [req, deadline] of this.#deadlines) {
        if (deadline > now) continue;
        this.#deadlines.delete(req);
        req.destroy(requestTimeout(this.#timeout));
      }
      if (this.#deadlines.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, every);
    this.#sweeper.unref();
  }
}
