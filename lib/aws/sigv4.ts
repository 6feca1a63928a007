import { createHash, createHmac, hash } from 'node:crypto';

/**
 * AWS Signature Version 4, the one signer of every AWS call pushwire makes
 * (management API posts, Lambda Invoke, SSM, Secrets Manager, EventBridge
 * PutEvents). Requests have no query string (none of those calls has one);
 * it signs `host`, `x-amz-date`, `x-amz-content-sha256` (unless told not to),
 * `x-amz-security-token` with temporary credentials, and any other headers
 * given (`content-type`, `x-amz-target`, ...: AWS wants every `x-amz-*`
 * header sent to be signed). The management API's shape (no other headers)
 * takes a fast path.
 *
 * Why hand-written: profiled at N = 10,000 (BENCHMARKS.md), the SDK's
 * generic `SignatureV4` cost ~38 µs of CPU per post, a quarter of the
 * publisher's CPU: per call it sorts and filters headers, formats the date,
 * hashes the credentials to look its signing-key cache up, and awaits four
 * promises. Here the signing key is derived once per (day, region, secret),
 * the date string once per second, the canonical path of the endpoint once,
 * the body hash once per frame, and everything of the canonical request,
 * string to sign and Authorization header but the connection id once per
 * second and request shape (#template); a post is one SHA-256 of the
 * ~300-byte canonical request and one HMAC (issue 19, BENCHMARKS.md). test/unit/sigv4.test.ts checks it against
 * `@smithy/signature-v4` on random ids, bodies, dates, regions, tokens and
 * headers, and against AWS's published SigV4 test-suite vectors.
 *
 * Why not the SDK's signer for the other calls: one signer is one thing to
 * trust, and `@smithy/signature-v4` with its hashing added ~15 KB to every
 * zip (all of them read secrets through it).
 */

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface SignInput {
  method: string;
  /** The Host header as sent: host name, and `:port` when not the scheme's default. */
  host: string;
  /** The path as sent on the wire (already percent-encoded once). */
  path: string;
  /** Hex SHA-256 of the body (of '' when there is none). */
  payloadHash: string;
  region: string;
  credentials: SigningCredentials;
  /**
   * Other headers to send and sign, names in lower case (`content-type`,
   * `x-amz-target`, ...); never host, x-amz-date, x-amz-security-token or
   * authorization, which the signer sets.
   */
  headers?: Readonly<Record<string, string>>;
  /** Send and sign `x-amz-content-sha256` (default true; AWS's test suite has none). */
  contentSha256Header?: boolean;
}

/** The headers a signed request carries, as `[name, value, …]` (Node's raw header form). */
export type SignedHeaders = string[];

const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

/** RFC 3986 escaping as SigV4 wants it: encodeURIComponent plus `!'()*`. */
function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The canonical URI of a path: segments normalised (empty, `.` and `..`
 * removed as RFC 3986 says) and the result URI-encoded once more, slashes
 * kept: for every service but S3, SigV4 encodes the (already encoded) path
 * twice.
 */
export function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalised = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${
    segments.length > 0 && path.endsWith('/') ? '/' : ''
  }`;
  return escapeUri(normalised).replace(/%2F/g, '/');
}

/** A header value as SigV4 canonicalises it: trimmed, inner runs of whitespace as one space. */
const canonicalValue = (value: string) => value.trim().replace(/\s+/g, ' ');

/** `YYYYMMDDTHHMMSSZ` of a time in ms. */
export function amzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** The parts of a fast-path signature that do not depend on the canonical URI. */
interface Template {
  readonly date: string;
  readonly payloadHash: string;
  readonly host: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secret: string;
  readonly token: string | undefined;
  readonly key: HmacKey;
  readonly requestMethod: string;
  /** `${method}\n`: the canonical request's start. */
  readonly method: string;
  readonly canonicalTail: string;
  readonly stringToSign: string;
  readonly authorization: string;
}

export class SigV4Signer {
  readonly #service: string;
  readonly #now: () => number;
  /** Signing keys by `day/region` (as HMAC pads), for the secret in #keysFor. */
  readonly #keys = new Map<string, HmacKey>();
  #keysFor = '';
  #second = Number.NaN;
  #date = '';
  #day = '';
  /** The fast path's parts for the last request it signed (#template). */
  #last: Template | undefined;

  constructor(options: { service?: string; now?: () => number } = {}) {
    this.#service = options.service ?? 'execute-api';
    this.#now = options.now ?? Date.now;
  }

  /** The signing key of (day, region, service) for this secret, derived once. */
  #signingKey(secret: string, day: string, region: string): HmacKey {
    if (secret !== this.#keysFor) {
      this.#keys.clear();
      this.#keysFor = secret;
    }
    const id = `${day}/${region}`;
    let key = this.#keys.get(id);
    if (!key) {
      // Days and regions in use are few; a long-lived container crosses days.
      if (this.#keys.size >= 64) this.#keys.clear();
      let raw = hmac(`AWS4${secret}`, day);
      raw = hmac(raw, region);
      raw = hmac(raw, this.#service);
      key = new HmacKey(hmac(raw, 'aws4_request'));
      this.#keys.set(id, key);
    }
    return key;
  }

  #clock(): void {
    const ms = this.#now();
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#date = amzDate(second * 1000);
      this.#day = this.#date.slice(0, 8);
    }
  }

  /**
   * Headers for one request, Authorization included. `canonicalUri` may be
   * given when the caller has it (canonicalPath(path)); it is computed
   * otherwise.
   */
  sign(input: SignInput, canonicalUri = canonicalPath(input.path)): SignedHeaders {
    if (input.headers !== undefined || input.contentSha256Header === false)
      return this.#signGeneral(input, canonicalUri);
    this.#clock();
    const t = this.#template(input);
    const signature = t.key.sign(
      t.stringToSign + hash('sha256', t.method + canonicalUri + t.canonicalTail),
    );
    const headers = [
      'host',
      t.host,
      'x-amz-content-sha256',
      t.payloadHash,
      'x-amz-date',
      t.date,
      'authorization',
      t.authorization + signature,
    ];
    if (t.token) headers.push('x-amz-security-token', t.token);
    return headers;
  }

  /**
   * Everything of a fast-path signature but the canonical URI, for the last
   * (method, host, body hash, region, credentials, second) signed: a fan-out
   * signs thousands of posts that differ only in their connection id, so per
   * post this is a few string comparisons, not a canonical request and a
   * credential scope rebuilt. Any input that differs builds it again; a new
   * second does too (the date is in the canonical request and the string to
   * sign), and a new day or secret a new signing key with it.
   */
  #template(input: SignInput): Template {
    const { credentials, host, method, payloadHash, region } = input;
    const token = credentials.sessionToken;
    const date = this.#date;
    const t = this.#last;
    if (
      t !== undefined &&
      t.date === date &&
      t.payloadHash === payloadHash &&
      t.host === host &&
      t.requestMethod === method &&
      t.region === region &&
      t.accessKeyId === credentials.accessKeyId &&
      t.secret === credentials.secretAccessKey &&
      t.token === token
    ) {
      return t;
    }
    const day = this.#day;
    const scope = `${day}/${region}/${this.#service}/aws4_request`;
    const signed = token
      ? 'host;x-amz-content-sha256;x-amz-date;x-amz-security-token'
      : 'host;x-amz-content-sha256;x-amz-date';
    const fresh: Template = {
      date,
      payloadHash,
      host,
      region,
      accessKeyId: credentials.accessKeyId,
      secret: credentials.secretAccessKey,
      token,
      key: this.#signingKey(credentials.secretAccessKey, day, region),
      requestMethod: method,
      method: `${method}\n`,
      // The canonical request is `${method}\n${canonicalUri}` followed by this.
      canonicalTail:
        '\n\n' +
        `host:${canonicalValue(host)}\nx-amz-content-sha256:${payloadHash}\nx-amz-date:${date}\n` +
        (token ? `x-amz-security-token:${canonicalValue(token)}\n` : '') +
        `\n${signed}\n${payloadHash}`,
      stringToSign: `${ALGORITHM}\n${date}\n${scope}\n`,
      authorization: `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=`,
    };
    this.#last = fresh;
    return fresh;
  }

  /** Any headers: the canonical list built and sorted per request (not the hot path). */
  #signGeneral(input: SignInput, canonicalUri: string): SignedHeaders {
    if (input.path.includes('?')) throw new Error('SigV4Signer signs no query string');
    this.#clock();
    const date = this.#date;
    const day = this.#day;
    const { credentials, region } = input;
    const scope = `${day}/${region}/${this.#service}/aws4_request`;
    const sent: [string, string][] = [
      ['host', input.host],
      ['x-amz-date', date],
    ];
    if (input.contentSha256Header !== false) sent.push(['x-amz-content-sha256', input.payloadHash]);
    if (credentials.sessionToken) sent.push(['x-amz-security-token', credentials.sessionToken]);
    for (const [name, value] of Object.entries(input.headers ?? {})) {
      if (RESERVED.has(name) || name !== name.toLowerCase())
        throw new Error(`SigV4Signer: header "${name}" must be lower case and not one it sets`);
      sent.push([name, value]);
    }
    sent.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const signed = sent.map(([name]) => name).join(';');
    const canonicalRequest =
      `${input.method}\n${canonicalUri}\n\n` +
      sent.map(([name, value]) => `${name}:${canonicalValue(value)}\n`).join('') +
      `\n${signed}\n${input.payloadHash}`;
    const stringToSign = `${ALGORITHM}\n${date}\n${scope}\n${hash('sha256', canonicalRequest)}`;
    const signature = this.#signingKey(credentials.secretAccessKey, day, region).sign(stringToSign);
    const headers = sent.flat();
    headers.push(
      'authorization',
      `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
    );
    return headers;
  }
}

const RESERVED = new Set([
  'host',
  'x-amz-date',
  'x-amz-content-sha256',
  'x-amz-security-token',
  'authorization',
]);

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * HMAC-SHA-256 with a fixed key, from two one-shot hashes (RFC 2104:
 * H((K ^ opad) || H((K ^ ipad) || m))). Why not createHmac: each call
 * creates a native Hmac object that the garbage collector must finalise;
 * with a hundred requests in flight, that (not the hashing) made a
 * createHmac + createHash signature cost ~20 µs per post instead of ~5
 * measured alone. One-shot `hash()` allocates no such object. Messages are
 * the ASCII string-to-sign, written into a reused buffer.
 */
class HmacKey {
  readonly #inner: Buffer;
  readonly #outer = Buffer.alloc(64 + 32);
  #view: Buffer | undefined;

  constructor(key: Buffer) {
    // Keys of SHA-256 HMAC up to 64 bytes are used as they are, zero-padded (ours are 32).
    const block = Buffer.alloc(64);
    key.copy(block);
    this.#inner = Buffer.alloc(64 + 512);
    for (let i = 0; i < 64; i++) {
      this.#inner[i] = (block[i] as number) ^ 0x36;
      this.#outer[i] = (block[i] as number) ^ 0x5c;
    }
  }

  /** Hex HMAC of an ASCII message. */
  sign(message: string): string {
    let inner = this.#inner;
    if (64 + message.length > inner.length) {
      inner = Buffer.alloc(64 + message.length);
      this.#inner.copy(inner, 0, 0, 64);
    }
    const length = 64 + inner.write(message, 64, 'latin1');
    // Strings to sign of one key all have one length (date, scope, hash): the
    // view is made once, and the inner digest travels as a latin1 ('binary')
    // string rather than a new Buffer (two objects per post fewer to collect).
    let view = this.#view;
    if (view === undefined || view.length !== length || view.buffer !== inner.buffer) {
      view = inner.subarray(0, length);
      this.#view = view;
    }
    this.#outer.write(hash('sha256', view, 'binary'), 64, 'binary');
    return hash('sha256', this.#outer, 'hex');
  }
}
