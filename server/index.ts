import { randomUUID } from 'node:crypto';
import { type PushwireError, TooLargeError, toError, UnavailableError } from './errors.js';
import { type HttpTransportOptions, httpTransport } from './http.js';
import { type LambdaTransportOptions, lambdaTransport } from './lambda.js';
import type {
  AckStatus,
  DeviceList,
  DeviceRegistered,
  DeviceRemoved,
  DeviceTarget,
  KickRequest,
  KickResult,
  Member,
  Operation,
  PresenceRequest,
  PresenceResult,
  PublishBatchRequest,
  PublishBatchResult,
  PublishRequest,
  PublishResult,
  StatusRequest,
  Transport,
} from './types.js';

/**
 * pushwire's server SDK: publish, presence, kick and push devices from any Node service,
 * over Lambda Invoke or the HTTP API.
 *
 *   import { createPushwire } from 'pushwire/server';
 *   const pushwire = createPushwire({ lambda: { stage: 'prod' } });
 *   await pushwire.publish({ userId: 'alice', data: { hello: 'world' } });
 *
 * A publish without an `id` gets one here, and every retry of it sends the
 * same id: pushwire's dedup makes a retried publish reach no device twice.
 */

export * from './errors.js';
export type { RequestSigner } from './http.js';
export { awsIamSigner } from './sign.js';
export type * from './types.js';
export { httpTransport, lambdaTransport };

/** Lambda's synchronous invoke payload limit, 6 MB: every way in to `publish` goes through one. */
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export interface RetryOptions {
  /** Attempts per call, the first included (default 3). */
  maxAttempts?: number;
  /** Base of the exponential backoff with full jitter (default 100 ms). */
  baseDelayMs?: number;
  /** Longest single wait (default 5 s). */
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export type PushwireOptions = (
  | { lambda: LambdaTransportOptions }
  | { http: HttpTransportOptions }
  | { transport: Transport }
) & { retry?: RetryOptions };

export class Pushwire {
  readonly #transport: Transport;
  readonly #retry: Required<RetryOptions>;

  constructor(options: PushwireOptions) {
    this.#transport =
      'transport' in options
        ? options.transport
        : 'lambda' in options
          ? lambdaTransport(options.lambda)
          : httpTransport(options.http);
    this.#retry = {
      maxAttempts: 3,
      baseDelayMs: 100,
      maxDelayMs: 5_000,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      random: Math.random,
      ...options.retry,
    };
  }

  /** Sends `data` to the target. Throws InvalidRequestError, TooLargeError, UnavailableError. */
  async publish(request: PublishRequest): Promise<PublishResult> {
    const withId = { ...request, id: request.id ?? randomUUID() };
    // Over what a Lambda invocation takes, Lambda (or the HTTP API in front
    // of it) refuses the request in its own words: say it as pushwire would.
    const bytes = Buffer.byteLength(JSON.stringify(withId));
    if (bytes > MAX_REQUEST_BYTES) {
      throw new TooLargeError(
        `the request is ${bytes} bytes; Lambda takes at most ${MAX_REQUEST_BYTES} per invocation (and the deployment's MAX_PUBLISH_BYTES bounds data further)`,
      );
    }
    return (await this.#call('publish', withId)) as PublishResult;
  }

  /**
   * Many messages, each to its own target, in one call; each connection
   * receives its messages combined in as few frames as 128 KB allows. Every
   * message without an `id` gets one here (kept across retries). Check each
   * result: a message may be a `duplicate`, or carry an `error`.
   */
  async publishBatch(request: PublishBatchRequest): Promise<PublishBatchResult> {
    const messages = request.messages.map((m) => ({ ...m, id: m.id ?? randomUUID() }));
    return (await this.#call('publish', { messages })) as PublishBatchResult;
  }

  async presence(request: PresenceRequest): Promise<PresenceResult> {
    return (await this.#call('presence', request)) as PresenceResult;
  }

  /**
   * Every user on a topic, page by page (`limit` per request): a
   * 100,000-member topic is never loaded whole, here or in Redis.
   */
  async *members(topic: string, options: { limit?: number } = {}): AsyncGenerator<Member> {
    let cursor: string | undefined;
    do {
      const page = await this.presence({
        topic,
        members: true,
        ...(cursor !== undefined && { cursor }),
        ...(options.limit !== undefined && { limit: options.limit }),
      });
      yield* page.members ?? [];
      cursor = page.next;
    } while (cursor !== undefined);
  }

  async kick(request: KickRequest): Promise<KickResult> {
    return (await this.#call('kick', request)) as KickResult;
  }

  /**
   * An acknowledged message's delivery status: where it was posted, who
   * acked it and when, the push (docs/acks.md). Throws a PushwireError with
   * code `not_found` once its state has expired with its history.
   */
  async status(request: StatusRequest): Promise<AckStatus> {
    return (await this.#call('status', request)) as AckStatus;
  }

  /**
   * Registers a push device for a user (docs/push.md): a browser
   * PushSubscription or an APNs/FCM token. Registering it again renews it.
   * Throws InvalidRequestError for a bad one, PushwireError `push_unsupported`
   * for a kind this deployment has no provider for.
   */
  async registerDevice(userId: string, target: DeviceTarget): Promise<DeviceRegistered> {
    return (await this.#call('devices', {
      action: 'register',
      userId,
      ...target,
    })) as DeviceRegistered;
  }

  /** Removes a user's push device, by its id or its subscription or token. */
  async removeDevice(
    userId: string,
    device: { id: string } | DeviceTarget,
  ): Promise<DeviceRemoved> {
    return (await this.#call('devices', { action: 'remove', userId, ...device })) as DeviceRemoved;
  }

  /** A user's push devices. */
  async listDevices(userId: string): Promise<DeviceList> {
    return (await this.#call('devices', { action: 'list', userId })) as DeviceList;
  }

  async #call(operation: Operation, body: object): Promise<unknown> {
    const { maxAttempts, baseDelayMs, maxDelayMs, sleep, random } = this.#retry;
    for (let attempt = 1; ; attempt++) {
      const reply = await this.#transport.call(operation, body);
      if (reply.ok) return reply.value;
      if (!reply.retryable) throw toError(reply) satisfies PushwireError;
      if (attempt >= maxAttempts) {
        throw new UnavailableError(
          `${operation} failed after ${attempt} attempts: ${reply.message}`,
          attempt,
          {
            ...(reply.status !== undefined && { status: reply.status }),
            cause: reply.cause ?? reply,
          },
        );
      }
      // Full jitter: many services retrying a throttled pushwire spread out.
      await sleep(Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1))));
    }
  }
}

export const createPushwire = (options: PushwireOptions): Pushwire => new Pushwire(options);
