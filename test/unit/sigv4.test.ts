import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { amzDate, canonicalPath, EMPTY_SHA256, SigV4Signer } from '../../lib/gateway/sigv4.js';

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
