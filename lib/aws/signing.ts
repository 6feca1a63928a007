import { createHash } from 'node:crypto';
import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AwsCredentials } from '../config.js';
import { ConfigError } from '../errors.js';
import { type SigningCredentials, SigV4Signer } from './sigv4.js';

/**
 * Signed requests for the AWS calls the functions make (management API
 * posts, Lambda Invoke of `deliver`, SSM and Secrets Manager reads of
 * secrets, EventBridge PutEvents), all through the one signer in ./sigv4.ts,
 * bundled into each zip rather than taken from the runtime's copy of the SDK
 * (docs/deploying.md, "What each zip carries").
 *
 * Credentials are the ones Lambda puts in the environment for the function's
 * role (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), read
 * once by lib/config.ts; they stay valid for the execution environment's
 * life. Measured, bundled (esbuild, minified): the SDK's Node chain
 * (@aws-sdk/credential-provider-node: profiles, SSO, web identity, IMDS)
 * adds ~150 KB to every posting function, and even
 * @aws-sdk/credential-provider-env adds ~18 KB (its @aws-sdk/core import
 * keeps endpoint partition tables esbuild cannot drop), for code that never
 * runs in Lambda.
 */

/** Credentials to sign with; `expiration` when they are temporary and the provider knows when. */
export interface Credentials extends SigningCredentials {
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<Credentials>;

export function credentialsProvider(credentials: AwsCredentials | undefined): CredentialsProvider {
  return async () => {
    if (credentials) return credentials;
    throw new ConfigError(
      'AWS credentials are required to sign requests: environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them from the function role)',
    );
  };
}

/** Credentials are asked for again this long before they expire. */
const CREDENTIALS_REFRESH_MS = 5 * 60_000;

/**
 * The credentials to sign with: kept until shortly before they expire, so a
 * request does not wait on the provider (the fan-out signs thousands per
 * publish), and asked for once however many requests want them meanwhile.
 */
export class CredentialsCache {
  readonly #provider: CredentialsProvider;
  #identity: Credentials | undefined;
  #resolving: Promise<Credentials> | undefined;

  constructor(provider: CredentialsProvider) {
    this.#provider = provider;
  }

  /** The cached credentials, or a promise of fresh ones. */
  current(): Credentials | Promise<Credentials> {
    const identity = this.#identity;
    if (
      identity &&
      (!identity.expiration || identity.expiration.getTime() - CREDENTIALS_REFRESH_MS > Date.now())
    ) {
      return identity;
    }
    // Signed with what the provider answered, even if it expires soon: asking again would loop.
    this.#resolving ??= this.#provider().then(
      (fresh) => {
        this.#identity = fresh;
        this.#resolving = undefined;
        return fresh;
      },
      (error: unknown) => {
        this.#resolving = undefined;
        throw error;
      },
    );
    return this.#resolving;
  }
}

/** Signs requests to one service in one region. */
export interface ServiceSigner {
  readonly service: string;
  readonly region: string;
  /** Node's raw header list of a signed request: `host`, the given headers, the signature. */
  sign(
    method: string,
    url: URL,
    path: string,
    headers: Record<string, string>,
    payload: Uint8Array,
  ): Promise<string[]>;
}

export function createSigner(
  service: string,
  region: string,
  credentials: CredentialsProvider,
): ServiceSigner {
  const signer = new SigV4Signer({ service });
  const cache = new CredentialsCache(credentials);
  return {
    service,
    region,
    async sign(method, url, path, headers, payload) {
      return signer.sign({
        method,
        host: url.host,
        path,
        payloadHash: createHash('sha256').update(payload).digest('hex'),
        region,
        credentials: await cache.current(),
        headers,
      });
    },
  };
}

/** A service's public endpoint in a region (China's partition ends in .cn). */
export function regionalEndpoint(service: string, region: string): string {
  return `https://${service}.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

export interface SignedResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/**
 * One SigV4-signed POST of `payload` to `path` on `url`'s host, answered
 * whole: what Lambda Invoke, SSM, Secrets Manager and EventBridge calls have
 * in common. `headers` are signed too (names in lower case).
 * `timeoutMs`: give up on a silent socket (none by default).
 */
export async function signedPost(
  signer: ServiceSigner,
  url: URL,
  path: string,
  headers: Record<string, string>,
  payload: Uint8Array,
  options: { agent?: Agent; timeoutMs?: number } = {},
): Promise<SignedResponse> {
  const signed = await signer.sign('POST', url, path, headers, payload);
  signed.push('content-length', String(payload.byteLength));
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<SignedResponse>((resolve, reject) => {
    const req = request(
      {
        method: 'POST',
        host: url.hostname,
        port: url.port || undefined,
        path,
        headers: signed,
        ...(options.agent && { agent: options.agent }),
        ...(options.timeoutMs !== undefined && { timeout: options.timeoutMs }),
      },
      (res: IncomingMessage) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts),
          }),
        );
        res.on('error', reject);
      },
    );
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      req.on('timeout', () => req.destroy(new Error(`${url.host} did not answer within ${ms} ms`)));
    }
    req.on('error', reject);
    req.end(payload);
  });
}
