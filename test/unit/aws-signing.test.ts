import { describe, expect, it } from 'vitest';
import { createSigner, credentialsProvider } from '../../lib/aws/signing.js';
import { ConfigError } from '../../lib/errors.js';

describe('credentialsProvider', () => {
  it('hands over the credentials read from the environment', async () => {
    // Prepare
    const credentials = { accessKeyId: 'ASIA1', secretAccessKey: 's', sessionToken: 't' };
    // Act
    const provided = await credentialsProvider(credentials)();
    // Assess
    expect(provided).toEqual(credentials);
  });

  it('fails at signing time, naming the variables, when Lambda gave none', async () => {
    // Prepare
    const provider = credentialsProvider(undefined);
    // Act
    const outcome = provider();
    // Assess
    await expect(outcome).rejects.toBeInstanceOf(ConfigError);
    await expect(outcome).rejects.toThrow(/AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  });
});

describe('createSigner', () => {
  it('signs for its service and region, with the session token and the headers given', async () => {
    // Prepare
    const signer = createSigner(
      'lambda',
      'ap-southeast-2',
      credentialsProvider({ accessKeyId: 'ASIA1', secretAccessKey: 's', sessionToken: 'tok' }),
    );
    // Act
    const signed = await signer.sign(
      'POST',
      new URL('https://lambda.ap-southeast-2.amazonaws.com'),
      '/2015-03-31/functions/f/invocations',
      { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
      Buffer.from('{}'),
    );
    // Assess
    const headers = Object.fromEntries(
      signed.flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]]] : [])),
    );
    expect(headers['authorization']).toMatch(
      /^AWS4-HMAC-SHA256 Credential=ASIA1\/\d{8}\/ap-southeast-2\/lambda\/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-invocation-type;x-amz-security-token, /,
    );
    expect(headers['x-amz-security-token']).toBe('tok');
    expect(headers['host']).toBe('lambda.ap-southeast-2.amazonaws.com');
    expect(headers['content-type']).toBe('application/json');
  });
});
