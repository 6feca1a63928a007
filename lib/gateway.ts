import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/** The outcome of one call to a connection: done, or the connection no longer exists. */
export type GatewayResult = 'ok' | 'gone';

/**
 * The gateway port: post to or close one connection. A 410 is a value, not an
 * exception, because a vanished connection is an ordinary event in fan-out.
 * Anything else (throttling that outlived its retries, network, 5xx) throws.
 */
export interface Gateway {
  post(endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult>;
  close(endpoint: string, connectionId: string): Promise<GatewayResult>;
}

export interface AwsGatewayOptions {
  region: string;
  /** Sockets per endpoint. The SDK default (50) queues a wide fan-out behind itself. */
  maxSockets?: number;
  /** Attempts for a throttled call (429 / LimitExceededException), first included. */
  throttleMaxAttempts?: number;
  /** Total time a throttled call may spend waiting for retries. */
  throttleBudgetMs?: number;
  /** Base of the exponential backoff. */
  throttleBaseDelayMs?: number;
  /** Builds the client of one endpoint; tests hand in their own. */
  clientFactory?: (endpoint: string) => ApiGatewayManagementApiClient;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export function isGone(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  // Real API Gateway says GoneException; serverless-offline's bare 410 reaches
  // the SDK as an "Unknown" error carrying only the status code.
  return e?.name === 'GoneException' || e?.$metadata?.httpStatusCode === 410;
}

export function isThrottled(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    e?.name === 'LimitExceededException' ||
    e?.name === 'ThrottlingException' ||
    e?.$metadata?.httpStatusCode === 429
  );
}

export const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Management API adapter. One client per endpoint, built once per container
 * and kept (keep-alive sockets survive between invocations). The SDK's own
 * retries are off: its retry quota would stall a large fan-out under account
 * throttling; throttles get our bounded backoff with full jitter instead.
 */
export class AwsGateway implements Gateway {
  readonly #clients = new Map<string, ApiGatewayManagementApiClient>();
  readonly #options: Required<Omit<AwsGatewayOptions, 'clientFactory'>> &
    Pick<AwsGatewayOptions, 'clientFactory'>;

  constructor(options: AwsGatewayOptions) {
    this.#options = {
      maxSockets: 256,
      throttleMaxAttempts: 5,
      throttleBudgetMs: 5_000,
      throttleBaseDelayMs: 50,
      sleep: defaultSleep,
      random: Math.random,
      ...options,
    };
  }

  client(endpoint: string): ApiGatewayManagementApiClient {
    let client = this.#clients.get(endpoint);
    if (!client) {
      client = this.#options.clientFactory?.(endpoint) ?? this.#build(endpoint);
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  #build(endpoint: string): ApiGatewayManagementApiClient {
    const agentOptions = { keepAlive: true, maxSockets: this.#options.maxSockets };
    return new ApiGatewayManagementApiClient({
      endpoint,
      region: this.#options.region,
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new Agent(agentOptions),
        connectionTimeout: 2_000,
        requestTimeout: 5_000,
      }),
    });
  }

  post(endpoint: string, connectionId: string, data: Uint8Array): Promise<GatewayResult> {
    return this.#call(() =>
      this.client(endpoint).send(
        new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }),
      ),
    );
  }

  close(endpoint: string, connectionId: string): Promise<GatewayResult> {
    return this.#call(() =>
      this.client(endpoint).send(new DeleteConnectionCommand({ ConnectionId: connectionId })),
    );
  }

  #call(send: () => Promise<unknown>): Promise<GatewayResult> {
    return callWithRetry(send, this.#options);
  }
}

export interface RetryPolicy {
  throttleMaxAttempts: number;
  throttleBudgetMs: number;
  throttleBaseDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

/**
 * One management API call: 'ok', 'gone' on a 410, throttling retried with
 * exponential backoff and full jitter within a bound on attempts and time;
 * anything else (or a throttle that outlived the bounds) is thrown.
 */
export async function callWithRetry(
  send: () => Promise<unknown>,
  policy: RetryPolicy,
): Promise<GatewayResult> {
  const { throttleMaxAttempts, throttleBudgetMs, throttleBaseDelayMs, sleep, random } = policy;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await send();
      return 'ok';
    } catch (error) {
      if (isGone(error)) return 'gone';
      if (!isThrottled(error) || attempt >= throttleMaxAttempts) throw error;
      // Full jitter: spreads retries of a throttled fan-out instead of
      // letting them hit the account limit again in lockstep.
      const delay = Math.floor(random() * throttleBaseDelayMs * 2 ** (attempt - 1));
      if (Date.now() - started + delay > throttleBudgetMs) throw error;
      await sleep(delay);
    }
  }
}
