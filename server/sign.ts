import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';
import type { RequestSigner } from './http.js';

const bytes = (data: SourceData): Buffer =>
  typeof data === 'string'
    ? Buffer.from(data)
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** SHA-256 / HMAC-SHA-256 from node:crypto, in the shape the SDK's signer takes. */
class Sha256 implements Checksum {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#create();
  }
  #create(): Hash | Hmac {
    return this.#secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', bytes(this.#secret));
  }
  update(data: Uint8Array): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    this.#hash = this.#create();
  }
}

/** The SDK's default chain, when the service has it (AWS SDK v3 clients bring it along). */
async function nodeProviderChain(): Promise<AwsCredentialIdentityProvider> {
  try {
    return (await import('@aws-sdk/credential-provider-node')).defaultProvider();
  } catch (error) {
    throw new TypeError(
      'awsIamSigner needs credentials: pass them (e.g. fromNodeProviderChain() from ' +
        '@aws-sdk/credential-providers) or install @aws-sdk/credential-provider-node',
      { cause: error },
    );
  }
}

/**
 * SigV4 for the deployed HTTP API (AWS_IAM authorization), with the SDK's own
 * signer. Credentials default to the Node provider chain (environment, SSO,
 * instance or task role) when @aws-sdk/credential-provider-node is installed;
 * both load on first use.
 */
export function awsIamSigner(options: {
  region: string;
  credentials?: AwsCredentialIdentityProvider;
}): RequestSigner {
  let signer: Promise<import('@smithy/signature-v4').SignatureV4> | undefined;
  const load = async () => {
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const credentials = options.credentials ?? (await nodeProviderChain());
    return new SignatureV4({
      credentials,
      region: options.region,
      service: 'execute-api',
      sha256: Sha256,
    });
  };
  return async ({ method, url, headers, body }) => {
    signer ??= load();
    const signed = await (await signer).sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port && { port: Number(url.port) }),
      path: url.pathname,
      headers: { ...headers, host: url.host },
      body,
    });
    return signed.headers;
  };
}
