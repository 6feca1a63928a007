import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { callWithRetry, defaultSleep, type Gateway, type GatewayResult } from './gateway.js';
import { regionOf } from './region.js';

export interface AwsGatewayOptions {
  /**
   * Signing region of endpoints whose host names none (custom domains,
   * serverless-offline). An execute-api host is signed for its own region.
   */
  region: string;
  /** Sockets per endpoint. The SDK default (50) queues a wide fan-out behind itself. */
  maxSockets?: number;
  /** Attempts for a throttled call (429 / LimitExceededException), first included. */
  throttleMaxAttempts?: number;
  /** Total time a throttled call may spend waiting for retries. */
  throttleBudgetMs?: number;
  /** Base of the exponential backoff. */
  throttleBaseDelayMs?: number;
  /** Deadline of one request, per attempt; a timeout is retried like a 5xx. */
  requestTimeoutMs?: number;
  /** Builds the client of one endpoint; tests hand in their own. */
  clientFactory?: (endpoint: string) => ApiGatewayManagementApiClient;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Told of each throttled call about to be retried. */
  onThrottle?: (error: unknown) => void;
}

/**
 * Management API adapter. One client per endpoint, built once per container
 * and kept (keep-alive sockets survive between invocations). The SDK's own
 * retries are off: its retry quota would stall a large fan-out under account
 * throttling; throttles, 5xx, resets and timeouts get our bounded backoff with
 * full jitter instead (the SDK raises a timeout as `TimeoutError`, a reset
 * with its socket error `code`, a 5xx with `$metadata.httpStatusCode`).
 */
export class AwsGateway implements Gateway {
  readonly #clients = new Map<string, ApiGatewayManagementApiClient>();
  readonly #options: Required<Omit<AwsGatewayOptions, 'clientFactory' | 'onThrottle'>> &
    Pick<AwsGatewayOptions, 'clientFactory' | 'onThrottle'>;

  constructor(options: AwsGatewayOptions) {
    this.#options = {
      maxSockets: 256,
      throttleMaxAttempts: 5,
      throttleBudgetMs: 5_000,
      throttleBaseDelayMs: 50,
      requestTimeoutMs: 5_000,
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
      region: regionOf(endpoint, this.#options.region),
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new Agent(agentOptions),
        connectionTimeout: Math.min(2_000, this.#options.requestTimeoutMs),
        requestTimeout: this.#options.requestTimeoutMs,
      }),
    });
  }

  post(
    endpoint: string,
    connectionId: string,
    data: Uint8Array,
    deadline?: number,
  ): Promise<GatewayResult> {
    return this.#call(
      () =>
        this.client(endpoint).send(
          new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }),
        ),
      deadline,
    );
  }

  close(endpoint: string, connectionId: string, deadline?: number): Promise<GatewayResult> {
    return this.#call(
      () => this.client(endpoint).send(new DeleteConnectionCommand({ ConnectionId: connectionId })),
      deadline,
    );
  }

  /** (A deadline bounds the retries here; each attempt's own timeout is the client's.) */
  #call(send: () => Promise<unknown>, deadline?: number): Promise<GatewayResult> {
    return callWithRetry(send, this.#options, deadline);
  }
}
