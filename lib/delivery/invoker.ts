import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import * as v from 'valibot';
import type { ChunkInvoker } from './chunks.js';

const Report = v.object({
  delivered: v.number(),
  gone: v.number(),
  failed: v.number(),
  failures: v.optional(
    v.array(v.object({ connectionId: v.string(), endpoint: v.string(), reason: v.string() })),
    [],
  ),
});

/**
 * Runs a delivery chunk in the `deliver` worker through Lambda Invoke
 * (RequestResponse, so publish can report the counts). Locally the client
 * points at serverless-offline's Lambda endpoint. The payload is the
 * serialised chunk as publish cut it, within FANOUT_CHUNK_MAX_BYTES.
 */
export function lambdaChunkInvoker(lambda: LambdaClient, functionName: string): ChunkInvoker {
  return async (payload) => {
    const response = await lambda.send(
      new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(payload) }),
    );
    const text = response.Payload ? Buffer.from(response.Payload).toString() : '';
    if (response.FunctionError)
      throw new Error(`deliver failed: ${response.FunctionError} ${text.slice(0, 300)}`);
    return v.parse(Report, JSON.parse(text));
  };
}
