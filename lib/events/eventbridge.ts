import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CredentialsProvider,
  createSigner,
  regionalEndpoint,
  signedPost,
} from '../aws/signing.js';

/**
 * EventBridge PutEvents as one SigV4-signed JSON POST (the signer every AWS
 * call uses, lib/aws/), in batches within the API's limits, with bounded
 * retries of what failed.
 */

/** One entry of a PutEvents request (the API's own field names). */
export interface PutEventsEntry {
  Source: string;
  DetailType: string;
  /** A JSON object, as a string. */
  Detail: string;
  EventBusName: string;
  /** Seconds since 1970 (the JSON protocol's timestamps). */
  Time?: number;
}

/** Per entry, in request order: its event id, or why it failed. */
export type PutEventsAnswer = { EventId: string } | { ErrorCode: string; ErrorMessage?: string };

export type PutEvents = (entries: readonly PutEventsEntry[]) => Promise<PutEventsAnswer[]>;

/** PutEvents takes at most 10 entries and 256 KB per request. */
export const MAX_ENTRIES = 10;
export const MAX_REQUEST_BYTES = 256 * 1024;

/** An error of the PutEvents API itself, named as the SDK names it. */
export class PutEventsError extends Error {
  readonly status: number;
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.status = status;
  }
  /** Throttled, a server-side failure or no answer: worth another attempt. */
  get retryable(): boolean {
    return this.status === 0 || this.status >= 500 || /Throttl/.test(this.name);
  }
}

export interface SignedPutEventsOptions {
  region: string;
  /** Default: the region's public endpoint. Tests and `npm start` point it at a stand-in bus. */
  endpoint?: string;
  credentials: CredentialsProvider;
  timeoutMs?: number;
}

export function signedPutEvents(options: SignedPutEventsOptions): PutEvents {
  const url = new URL(options.endpoint ?? regionalEndpoint('events', options.region));
  const agentOptions = { keepAlive: true, maxSockets: 4 };
  const agent =
    url.protocol === 'https:' ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const signer = createSigner('events', options.region, options.credentials);
  return async (entries) => {
    const response = await signedPost(
      signer,
      url,
      url.pathname || '/',
      { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AWSEvents.PutEvents' },
      Buffer.from(JSON.stringify({ Entries: entries })),
      { agent, timeoutMs: options.timeoutMs ?? 5_000 },
    ).catch((error: unknown) => {
      throw new PutEventsError(
        'NetworkError',
        0,
        error instanceof Error ? error.message : String(error),
      );
    });
    let json: { Entries?: PutEventsAnswer[]; __type?: unknown; message?: unknown } = {};
    try {
      json = JSON.parse(response.body.toString('utf8'));
    } catch {
      // Not JSON: the status says enough.
    }
    if (response.status < 200 || response.status >= 300) {
      const name = String(json.__type ?? `HTTP${response.status}`)
        .split('#')
        .pop() as string;
      throw new PutEventsError(
        name,
        response.status,
        `PutEvents: HTTP ${response.status} ${name} ${String(json.message ?? '').slice(0, 200)}`.trim(),
      );
    }
    if (!Array.isArray(json.Entries) || json.Entries.length !== entries.length)
      throw new PutEventsError(
        'InvalidResponse',
        0,
        'PutEvents answered without one result per entry',
      );
    return json.Entries;
  };
}

/** Bytes an entry counts for against the request limit (its JSON, an over-estimate of AWS's count). */
const entryBytes = (entry: PutEventsEntry) => Buffer.byteLength(JSON.stringify(entry)) + 1;

/** Entries in requests of at most MAX_ENTRIES and MAX_REQUEST_BYTES, in order. */
export function batches(
  entries: readonly PutEventsEntry[],
  maxEntries = MAX_ENTRIES,
  maxBytes = MAX_REQUEST_BYTES,
): PutEventsEntry[][] {
  const out: PutEventsEntry[][] = [];
  let current: PutEventsEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entryBytes(entry);
    if (current.length > 0 && (current.length >= maxEntries || bytes + size > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export interface SendOptions {
  /** Attempts per entry, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface SendResult {
  sent: number;
  /** Entries not sent after every attempt (or refused as they are). */
  failed: number;
  /** Why, for the log: the last error code of each kind. */
  errors: string[];
}

/**
 * Sends entries in batches; an entry PutEvents reports failed (the answer's
 * FailedEntryCount, an ErrorCode per entry) or a request that failed as a
 * whole (throttled, 5xx, no answer) is tried again, up to `attempts` times
 * with exponential backoff and full jitter. A request refused for what it
 * is (4xx: access denied, validation) is not retried.
 */
export async function sendEvents(
  entries: readonly PutEventsEntry[],
  putEvents: PutEvents,
  options: SendOptions = {},
): Promise<SendResult> {
  const attempts = options.attempts ?? 3;
  const baseDelay = options.baseDelayMs ?? 100;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const random = options.random ?? Math.random;
  const result: SendResult = { sent: 0, failed: 0, errors: [] };
  const errors = new Set<string>();
  const tooBig = entries.filter((e) => entryBytes(e) > MAX_REQUEST_BYTES);
  if (tooBig.length > 0) {
    result.failed += tooBig.length;
    errors.add('EntryTooLarge');
  }
  for (const batch of batches(entries.filter((e) => entryBytes(e) <= MAX_REQUEST_BYTES))) {
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      let retry: PutEventsEntry[] = [];
      try {
        const answers = await putEvents(pending);
        answers.forEach((answer, i) => {
          if ('EventId' in answer) result.sent++;
          else {
            errors.add(answer.ErrorCode);
            retry.push(pending[i] as PutEventsEntry);
          }
        });
      } catch (error) {
        const name = error instanceof Error ? error.name : 'Error';
        errors.add(name);
        if (error instanceof PutEventsError && !error.retryable) {
          result.failed += pending.length;
          break;
        }
        retry = pending;
      }
      if (retry.length > 0 && attempt >= attempts) {
        result.failed += retry.length;
        break;
      }
      if (retry.length > 0) await sleep(Math.floor(random() * baseDelay * 2 ** (attempt - 1)));
      pending = retry;
    }
  }
  result.errors = [...errors];
  return result;
}
