import {
  type CredentialsProvider,
  createSigner,
  regionalEndpoint,
  signedPost,
} from './aws/signing.js';
import type { SecretFetcher } from './secrets.js';

export interface SignedFetcherOptions {
  region: string;
  credentials: CredentialsProvider;
  /** Default: the region's public endpoints. Tests point these at stand-ins. */
  ssmEndpoint?: string;
  secretsManagerEndpoint?: string;
}

/**
 * The production fetcher: SSM GetParameter (SecureStrings decrypted) or
 * Secrets Manager GetSecretValue, each one SigV4-signed JSON POST with the
 * signer the zips already carry (lib/aws/signing.ts). Not Powertools
 * Parameters: its providers build an SDK v3 client, and the zips carry what
 * they run (docs/deploying.md, "What each zip carries"); bundled, @aws-sdk/client-ssm with
 * Powertools Parameters adds ~490 KB to every function (measured with
 * esbuild, minified), past every bundle target. Each secret is read once per
 * container (lib/clients.ts caches the resolved config).
 */
export function signedFetcher(options: SignedFetcherOptions): SecretFetcher {
  return async (name) => {
    const secretsManager = /^arn:[^:]+:secretsmanager:/.test(name);
    // An ARN names its own region; a plain parameter name is in ours.
    const region = name.startsWith('arn:')
      ? (name.split(':')[3] ?? options.region)
      : options.region;
    const service = secretsManager ? 'secretsmanager' : 'ssm';
    const endpoint =
      (secretsManager ? options.secretsManagerEndpoint : options.ssmEndpoint) ??
      regionalEndpoint(service, region);
    const reply = await signedJsonPost(
      endpoint,
      service,
      region,
      options.credentials,
      secretsManager ? 'secretsmanager.GetSecretValue' : 'AmazonSSM.GetParameter',
      secretsManager ? { SecretId: name } : { Name: name, WithDecryption: true },
    );
    const value = secretsManager
      ? (reply as { SecretString?: unknown }).SecretString
      : (reply as { Parameter?: { Value?: unknown } }).Parameter?.Value;
    if (typeof value !== 'string') throw new Error('the answer holds no string value');
    return value;
  };
}

/** An error answered by SSM or Secrets Manager, named by its `__type`. */
export class AwsJsonError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

async function signedJsonPost(
  endpoint: string,
  service: string,
  region: string,
  credentials: CredentialsProvider,
  target: string,
  body: unknown,
): Promise<unknown> {
  const url = new URL(endpoint);
  const payload = Buffer.from(JSON.stringify(body));
  const response = await signedPost(
    createSigner(service, region, credentials),
    url,
    url.pathname || '/',
    { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target },
    payload,
    { timeoutMs: 5_000 },
  );
  let json: { __type?: unknown; message?: unknown; Message?: unknown } = {};
  try {
    json = JSON.parse(response.body.toString('utf8'));
  } catch {
    // Not JSON: the status says enough.
  }
  if (response.status >= 200 && response.status < 300) return json;
  // `__type` may be "com.amazonaws...#ParameterNotFound"; keep the name.
  const name = String(json.__type ?? `HTTP${response.status}`)
    .split('#')
    .pop() as string;
  const message = String(json.message ?? json.Message ?? '').slice(0, 200);
  throw new AwsJsonError(name, response.status, message || `HTTP ${response.status}`);
}
