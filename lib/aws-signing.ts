import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { AwsCredentials } from './config.js';
import { ConfigError } from './errors.js';

/**
 * SigV4 for the two AWS calls the functions make (management API posts,
 * Lambda Invoke of `deliver`), bundled into each zip rather than taken from
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
