import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { amzDate, canonicalPath, EMPTY_SHA256, SigV4Signer } from '../../lib/aws/sigv4.js';

// The hand-written signer of the fan-out hot path must produce, for every
// request it signs, exactly the Authorization the SDK's own signer computes.

/** Node's crypto as the SDK signer's hash. */
class Sha256 implements Checksum {
  #hash;
  constructor(secret?: SourceData) {
    this.#hash =
      secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {}
}
const toBuffer = (data: SourceData) =>
  typeof data === 'string'
    ? Buffer.from(data)
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** API Gateway connection ids look like `L0SM9cOFvHcCIhw=`: base64, padded, url-safe or not. */
const connectionId = fc
  .tuple(
    fc.string({
      unit: fc.constantFrom(...`${BASE64URL}+/`.split('')),
      minLength: 1,
      maxLength: 24,
    }),
    fc.constantFrom('', '=', '=='),
  )
  .map(([body, pad]) => body + pad);
const region = fc.constantFrom(
  'us-east-1',
  'eu-west-1',
  'ap-southeast-2',
  'us-gov-west-1',
  'cn-north-1',
  'eu-central-2',
);
const host = fc.oneof(
  fc
    .tuple(fc.stringMatching(/^[a-z0-9]{10}$/), region)
    .map(([api, r]) => `${api}.execute-api.${r}.amazonaws.com`),
  fc.constantFrom('push.example.com', 'localhost:3001', '127.0.0.1:40123'),
);
const stage = fc.constantFrom('', '/prod', '/live', '/a-b_c', '/v1.2');
/** Bodies with non-ASCII text: JSON frames in any script, emoji, control characters. */
const body = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constant(Buffer.alloc(0)),
);
// 1970 … 2100, whole seconds (SigV4 dates have second precision).
const date = fc.integer({ min: 0, max: 4_102_444_799 }).map((s) => s * 1000);
const secret = fc.string({
  unit: fc.constantFrom(...`${BASE64URL}+/`.split('')),
  minLength: 1,
  maxLength: 40,
});
const accessKeyId = fc.stringMatching(/^(AKIA|ASIA)[A-Z0-9]{16}$/);
/** Session tokens are long base64 strings; some carry `=`, `+`, `/`. */
const sessionToken = fc.option(
  fc.string({
    unit: fc.constantFrom(...`${BASE64URL}+/=`.split('')),
    minLength: 1,
    maxLength: 400,
  }),
  { nil: undefined },
);

describe('SigV4Signer', () => {
  it('computes the Authorization @smithy/signature-v4 computes, for random requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          id: connectionId,
          body,
          date,
          region,
          host,
          stage,
          method: fc.constantFrom('POST', 'DELETE') as fc.Arbitrary<'POST' | 'DELETE'>,
          accessKeyId,
          secretAccessKey: secret,
          sessionToken,
        }),
        async (c) => {
          // Prepare
          const credentials = {
            accessKeyId: c.accessKeyId,
            secretAccessKey: c.secretAccessKey,
            ...(c.sessionToken !== undefined && { sessionToken: c.sessionToken }),
          };
          const path = `${c.stage}/@connections/${encodeURIComponent(c.id)}`;
          const payload = c.method === 'POST' ? c.body : undefined;
          const payloadHash = payload
            ? createHash('sha256').update(payload).digest('hex')
            : EMPTY_SHA256;
          const [hostname, port] = c.host.split(':');
          const reference = new SignatureV4({
            credentials,
            region: 'us-east-1',
            service: 'execute-api',
            sha256: Sha256,
          });
          // Act
          const theirs = await reference.sign(
            {
              method: c.method,
              protocol: 'https:',
              hostname: hostname as string,
              ...(port && { port: Number(port) }),
              path,
              query: {},
              headers: { host: c.host, 'x-amz-content-sha256': payloadHash },
              ...(payload && { body: payload }),
            },
            { signingDate: new Date(c.date), signingRegion: c.region },
          );
          const ours = new SigV4Signer({ now: () => c.date }).sign({
            method: c.method,
            host: c.host,
            path,
            payloadHash,
            region: c.region,
            credentials,
          });
          // Assess: the same signed headers, the same values.
          const mine = Object.fromEntries(
            ours.flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]]] : [])),
          );
          expect(mine['authorization']).toBe(theirs.headers['authorization']);
          expect(mine['x-amz-date']).toBe(theirs.headers['x-amz-date']);
          expect(mine['x-amz-security-token']).toBe(theirs.headers['x-amz-security-token']);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('signs the headers it is given as @smithy/signature-v4 does (JSON APIs: Invoke, SSM, PutEvents)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          body,
          date,
          region,
          service: fc.constantFrom('lambda', 'ssm', 'secretsmanager', 'events'),
          target: fc.constantFrom('AWSEvents.PutEvents', 'AmazonSSM.GetParameter', 'x  y '),
          contentType: fc.constantFrom('application/x-amz-json-1.1', ' application/json '),
          accessKeyId,
          secretAccessKey: secret,
          sessionToken,
        }),
        async (c) => {
          // Prepare
          const credentials = {
            accessKeyId: c.accessKeyId,
            secretAccessKey: c.secretAccessKey,
            ...(c.sessionToken !== undefined && { sessionToken: c.sessionToken }),
          };
          const host = `${c.service}.${c.region}.amazonaws.com`;
          const payloadHash = createHash('sha256').update(c.body).digest('hex');
          const headers = { 'content-type': c.contentType, 'x-amz-target': c.target };
          const reference = new SignatureV4({
            credentials,
            region: c.region,
            service: c.service,
            sha256: Sha256,
          });
          // Act
          const theirs = await reference.sign(
            {
              method: 'POST',
              protocol: 'https:',
              hostname: host,
              path: '/',
              query: {},
              headers: { host, 'x-amz-content-sha256': payloadHash, ...headers },
              body: c.body,
            },
            { signingDate: new Date(c.date) },
          );
          const ours = new SigV4Signer({ service: c.service, now: () => c.date }).sign({
            method: 'POST',
            host,
            path: '/',
            payloadHash,
            region: c.region,
            credentials,
            headers,
          });
          // Assess
          const mine = Object.fromEntries(
            ours.flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]]] : [])),
          );
          expect(mine['authorization']).toBe(theirs.headers['authorization']);
          expect(mine['x-amz-target']).toBe(c.target);
        },
      ),
      { numRuns: 200 },
    );
  });

  // AWS's published SigV4 test suite (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
  // aws-sig-v4-test-suite): credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service".
  // The vectors without a query string (no call of ours has one) and with the token signed
  // (post-sts-header-after adds it unsigned). The suite signs no x-amz-content-sha256; the last
  // vector, from the newer suite (aws-c-auth's v4 tests), does.
  const SUITE_TOKEN =
    'AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==';
  const suite: {
    name: string;
    method: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
    token?: string;
    contentSha256?: true;
    signed: string;
    signature: string;
  }[] = [
    {
      name: 'get-vanilla',
      method: 'GET',
      signed: 'host;x-amz-date',
      signature: '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    },
    {
      name: 'get-header-key-duplicate',
      method: 'GET',
      headers: { 'my-header1': 'value2,value2,value1' },
      signed: 'host;my-header1;x-amz-date',
      signature: 'c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea',
    },
    {
      name: 'get-header-value-multiline',
      method: 'GET',
      headers: { 'my-header1': 'value1,value2,value3' },
      signed: 'host;my-header1;x-amz-date',
      signature: 'ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790',
    },
    {
      name: 'get-header-value-order',
      method: 'GET',
      headers: { 'my-header1': 'value4,value1,value3,value2' },
      signed: 'host;my-header1;x-amz-date',
      signature: '08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01',
    },
    {
      name: 'get-header-value-trim',
      method: 'GET',
      headers: { 'my-header1': ' value1', 'my-header2': ' "a   b   c"' },
      signed: 'host;my-header1;my-header2;x-amz-date',
      signature: 'acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736',
    },
    {
      name: 'get-unreserved',
      method: 'GET',
      path: '/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
      signed: 'host;x-amz-date',
      signature: '07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f',
    },
    {
      name: 'get-utf8',
      method: 'GET',
      path: '/\u1234',
      signed: 'host;x-amz-date',
      signature: '8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85',
    },
    {
      name: 'post-vanilla',
      method: 'POST',
      signed: 'host;x-amz-date',
      signature: '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b',
    },
    {
      name: 'post-header-key-sort',
      method: 'POST',
      headers: { 'my-header1': 'value1' },
      signed: 'host;my-header1;x-amz-date',
      signature: 'c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c',
    },
    {
      name: 'post-header-value-case',
      method: 'POST',
      headers: { 'my-header1': 'VALUE1' },
      signed: 'host;my-header1;x-amz-date',
      signature: 'cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d',
    },
    {
      name: 'post-sts-header-before',
      method: 'POST',
      token: SUITE_TOKEN,
      signed: 'host;x-amz-date;x-amz-security-token',
      signature: '85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead',
    },
    {
      name: 'post-x-www-form-urlencoded',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Param1=value1',
      signed: 'content-type;host;x-amz-date',
      signature: 'ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a',
    },
    {
      name: 'post-x-www-form-urlencoded-parameters',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf8' },
      body: 'Param1=value1',
      signed: 'content-type;host;x-amz-date',
      signature: '1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe',
    },
    {
      name: 'post-x-www-form-urlencoded (with x-amz-content-sha256)',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '13' },
      body: 'Param1=value1',
      contentSha256: true,
      signed: 'content-length;content-type;host;x-amz-content-sha256;x-amz-date',
      signature: 'd3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b',
    },
  ];

  it.each(suite)('computes the signature of AWS test-suite vector $name', (vector) => {
    // Prepare
    const signer = new SigV4Signer({
      service: 'service',
      now: () => Date.UTC(2015, 7, 30, 12, 36),
    });
    // Act
    const headers = signer.sign({
      method: vector.method,
      host: 'example.amazonaws.com',
      path: vector.path ?? '/',
      payloadHash: createHash('sha256')
        .update(vector.body ?? '')
        .digest('hex'),
      region: 'us-east-1',
      credentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        ...(vector.token && { sessionToken: vector.token }),
      },
      headers: vector.headers ?? {},
      ...(!vector.contentSha256 && { contentSha256Header: false }),
    });
    // Assess
    expect(headers[headers.indexOf('authorization') + 1]).toBe(
      `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=${vector.signed}, Signature=${vector.signature}`,
    );
  });

  it('signs a sequence of requests with one long-lived signer as a fresh signer signs each', () => {
    // The fast path keeps the parts of the last signature that do not depend
    // on the connection id (#template) and the HMAC pads per day and region:
    // a sequence that changes one input at a time (second, day at midnight
    // UTC, host, body, method, region, access key, secret, token, all at
    // once) must never be signed with a stale part.
    const step = fc.record({
      id: connectionId,
      method: fc.constantFrom('POST', 'DELETE'),
      payloadHash: fc.constantFrom(EMPTY_SHA256, 'a'.repeat(64), 'b'.repeat(64)),
      host: fc.constantFrom('push.example.com', 'localhost:3001'),
      region: fc.constantFrom('eu-west-1', 'us-east-1'),
      accessKeyId: fc.constantFrom('AKIAONE', 'ASIATWO'),
      secretAccessKey: fc.constantFrom('one', 'two'),
      sessionToken: fc.constantFrom(undefined, 'tok+/=', 'other'),
      // Steps of 0 s, 1 s and across midnight UTC.
      advance: fc.constantFrom(0, 0, 0, 1_000, 86_400_000),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 2, maxLength: 40 }), (steps) => {
        let now = Date.UTC(2026, 0, 1, 23, 59, 59);
        const longLived = new SigV4Signer({ now: () => now });
        for (const c of steps) {
          now += c.advance;
          const input = {
            method: c.method,
            host: c.host,
            path: `/@connections/${encodeURIComponent(c.id)}`,
            payloadHash: c.payloadHash,
            region: c.region,
            // A new object each time, as after a credentials refresh, or the same values again.
            credentials: {
              accessKeyId: c.accessKeyId,
              secretAccessKey: c.secretAccessKey,
              ...(c.sessionToken !== undefined && { sessionToken: c.sessionToken }),
            },
          };
          const fresh = new SigV4Signer({ now: () => now }).sign(input);
          expect(longLived.sign(input)).toEqual(fresh);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('re-signs with the new secret when a credentials object is refreshed in place', () => {
    const signer = new SigV4Signer({ now: () => Date.UTC(2026, 5, 1) });
    const credentials = { accessKeyId: 'AKID', secretAccessKey: 'one' };
    const input = {
      method: 'POST',
      host: 'h',
      path: '/@connections/c',
      payloadHash: EMPTY_SHA256,
      region: 'eu-west-1',
      credentials,
    };
    const first = signer.sign(input);
    credentials.secretAccessKey = 'two';
    const second = signer.sign(input);
    expect(second).not.toEqual(first);
    expect(second).toEqual(new SigV4Signer({ now: () => Date.UTC(2026, 5, 1) }).sign(input));
  });

  it('normalises path steps and encodes the path twice, as the SDK does', () => {
    expect(canonicalPath('/prod/@connections/abc%3D')).toBe('/prod/%40connections/abc%253D');
    expect(canonicalPath('/prod/./a/../@connections/x')).toBe('/prod/%40connections/x');
    expect(canonicalPath('/')).toBe('/');
  });

  it('formats the date as YYYYMMDDTHHMMSSZ', () => {
    expect(amzDate(Date.UTC(2026, 10, 28, 6, 5, 9, 999))).toBe('20261128T060509Z');
  });

  it('derives a new signing key when the day, region or secret changes', () => {
    // Prepare: the signature of one request under changing inputs; every one differs.
    let now = Date.UTC(2026, 0, 1, 23, 59, 59);
    const signer = new SigV4Signer({ now: () => now });
    const input = {
      method: 'POST' as const,
      host: 'h',
      path: '/@connections/c',
      payloadHash: EMPTY_SHA256,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'one' },
    };
    const signature = (extra: Partial<typeof input> = {}) =>
      /Signature=(\w+)/.exec(signer.sign({ ...input, ...extra }).join('\n'))?.[1];
    // Act
    const first = signature();
    now += 1_000; // the next day
    const nextDay = signature();
    const otherRegion = signature({ region: 'eu-west-2' });
    const otherSecret = signature({ credentials: { accessKeyId: 'AKID', secretAccessKey: 'two' } });
    const sameAgain = signature();
    // Assess
    expect(new Set([first, nextDay, otherRegion, otherSecret]).size).toBe(4);
    expect(sameAgain).toBe(nextDay);
  });
});
