import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { AwsCredentials } from './config.js';
import { ConfigError } from './errors.js';

/**
 * SigV4 for the AWS calls the functions make (management API posts, Lambda
 * Invoke of `deliver`, SSM and Secrets Manager reads of secrets), bundled into each zip rather than taken from
 * the runtime's copy of the SDK (README, "Deploying").
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
export function credentialsProvider(
  credentials: AwsCredentials | undefined,
): AwsCredentialIdentityProvider {
  return async () => {
    if (credentials) return credentials;
    throw new ConfigError(
      'AWS credentials are required to sign requests: environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them from the function role)',
    );
  };
}

/** A signer for one service and region: the SDK's signer, with Node's crypto for hashing. */
export function createSigner(
  service: string,
  region: string,
  credentials: AwsCredentialIdentityProvider,
): SignatureV4 {
  return new SignatureV4({ service, region, credentials, sha256: Hash.bind(null, 'sha256') });
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
 * whole: what Lambda Invoke, SSM and Secrets Manager calls have in common.
 * `timeoutMs`: give up on a silent socket (none by default).
 */
export async function signedPost(
  signer: SignatureV4,
  url: URL,
  path: string,
  headers: Record<string, string>,
  payload: Uint8Array,
  options: { agent?: Agent; timeoutMs?: number } = {},
): Promise<SignedResponse> {
  const signed = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port && { port: Number(url.port) }),
    path,
    query: {},
    headers: { host: url.host, 'content-length': String(payload.byteLength), ...headers },
    body: payload,
  });
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<SignedResponse>((resolve, reject) => {
    const req = request(
      {
        method: 'POST',
        host: url.hostname,
        port: url.port || undefined,
        path: signed.path,
        headers: signed.headers,
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
