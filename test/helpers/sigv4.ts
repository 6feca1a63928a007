import { createHash, createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** A request as a local stand-in for an AWS API received it. */
export interface ReceivedRequest {
  method: string;
  /** As sent: path and query (`req.url`). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SigV4Check {
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
  region?: string;
  service?: string;
  accessKeyId?: string;
}

const rfc3986 = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

/**
 * Recomputes the SigV4 signature of a received request step by step, as AWS
 * documents it (independently of the signer under test), and compares it
 * with the one in its Authorization header. Services other than S3 encode
 * the path twice: once when sent, once more in the canonical request.
 */
export function verifySigV4(
  request: ReceivedRequest,
  secretFor: (accessKeyId: string) => string | undefined,
): SigV4Check {
  const auth = String(request.headers.authorization ?? '');
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!match) return { ok: false, reason: `no SigV4 Authorization header (got "${auth}")` };
  const [, accessKeyId, day, region, service, signedHeaders, signature] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const found = { region, service, accessKeyId };
  const secret = secretFor(accessKeyId);
  if (secret === undefined)
    return { ok: false, reason: `unknown access key ${accessKeyId}`, ...found };
  const amzDate = String(request.headers['x-amz-date'] ?? '');
  if (amzDate.slice(0, 8) !== day)
    return { ok: false, reason: `x-amz-date ${amzDate} is not of day ${day}`, ...found };
  const names = signedHeaders.split(';');
  for (const required of ['host', 'x-amz-date'])
    if (!names.includes(required)) return { ok: false, reason: `${required} not signed`, ...found };
  if (
    request.headers['x-amz-security-token'] !== undefined &&
    !names.includes('x-amz-security-token')
  )
    return { ok: false, reason: 'session token sent but not signed', ...found };
  const [path = '', query = ''] = request.url.split('?', 2);
  const canonicalQuery = query
    .split('&')
    .filter(Boolean)
    .map((pair) =>
      pair
        .split('=', 2)
        .map((p) => rfc3986(decodeURIComponent(p)))
        .join('='),
    )
    .sort()
    .join('&');
  const canonicalRequest = [
    request.method,
    path.split('/').map(rfc3986).join('/'),
    canonicalQuery,
    ...names.map(
      (n) =>
        `${n}:${String(request.headers[n] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}`,
    ),
    '',
    signedHeaders,
    createHash('sha256').update(request.body).digest('hex'),
  ].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  const hmac = (key: Buffer | string, value: string) =>
    createHmac('sha256', key).update(value).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (expected !== signature) return { ok: false, reason: 'signature does not match', ...found };
  const sentHash = request.headers['x-amz-content-sha256'];
  if (
    sentHash !== undefined &&
    sentHash !== createHash('sha256').update(request.body).digest('hex')
  )
    return { ok: false, reason: 'x-amz-content-sha256 is not the body hash', ...found };
  return { ok: true, ...found };
}
