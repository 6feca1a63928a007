import type { InvokeCommandOutput, LambdaClient, LambdaClientConfig } from '@aws-sdk/client-lambda';
import type { Operation, Reply, Transport } from './types.js';

export interface LambdaTransportOptions {
  /** The serverless service name (default `pushwire`): functions are `<service>-<stage>-<operation>`. */
  service?: string;
  /** The stage it is deployed as (`prod`; `local` under `npm start`). */
  stage?: string;
  /** Full function names or ARNs, instead of service and stage. */
  functionNames?: Partial<Record<Operation, string>>;
  /** Your own client (credentials, region, endpoint); else one is built from `clientConfig`. */
  client?: LambdaClient;
  clientConfig?: LambdaClientConfig;
}

/** Errors of the Invoke API itself that a later attempt may not meet. */
const RETRYABLE = new Set([
  'TooManyRequestsException',
  'ServiceException',
  'EC2ThrottledException',
  'ResourceNotReadyException',
  'ThrottlingException',
]);

/**
 * Lambda Invoke (RequestResponse). @aws-sdk/client-lambda is loaded on the
 * first call, so a service using only the HTTP API never needs it.
 */
export function lambdaTransport(options: LambdaTransportOptions): Transport {
  const names = (operation: Operation): string => {
    const given = options.functionNames?.[operation];
    if (given) return given;
    if (!options.stage)
      throw new TypeError('lambdaTransport needs a stage (or functionNames) to name the functions');
    return `${options.service ?? 'pushwire'}-${options.stage}-${operation}`;
  };
  let sdk:
    | Promise<{
        client: LambdaClient;
        Invoke: typeof import('@aws-sdk/client-lambda').InvokeCommand;
      }>
    | undefined;
  const load = async () => {
    const { InvokeCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
    return {
      client: options.client ?? new LambdaClient(options.clientConfig ?? {}),
      Invoke: InvokeCommand,
    };
  };
  return {
    async call(operation, body): Promise<Reply> {
      const FunctionName = names(operation);
      sdk ??= load();
      const { client, Invoke } = await sdk;
      let response: InvokeCommandOutput;
      try {
        response = await client.send(
          new Invoke({ FunctionName, Payload: new TextEncoder().encode(JSON.stringify(body)) }),
        );
      } catch (error) {
        const e = error as {
          name?: string;
          message?: string;
          $metadata?: { httpStatusCode?: number };
        };
        const status = e.$metadata?.httpStatusCode;
        return {
          ok: false,
          // No status: the request never got an answer (network, timeout).
          retryable: RETRYABLE.has(e.name ?? '') || status === undefined || status >= 500,
          code: 'invoke_failed',
          message: `invoking ${FunctionName} failed: ${e.name ?? 'Error'}: ${e.message ?? ''}`,
          ...(status !== undefined && { status }),
          cause: error,
        };
      }
      const text = response.Payload ? new TextDecoder().decode(response.Payload) : '';
      if (response.FunctionError) {
        // The function threw (a Redis outage, a timeout): nothing was promised, try again.
        return {
          ok: false,
          retryable: true,
          code: 'function_error',
          message: `${FunctionName} failed (${response.FunctionError}): ${text.slice(0, 500)}`,
        };
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return {
          ok: false,
          retryable: false,
          code: 'bad_reply',
          message: `${FunctionName} answered ${text.slice(0, 200)}`,
        };
      }
      const refused = (value as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      if (refused && typeof refused.code === 'string') {
        return {
          ok: false,
          retryable: false,
          code: refused.code,
          message: String(refused.message ?? refused.code),
        };
      }
      return { ok: true, value };
    },
  };
}
