import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import * as v from 'valibot';
import type { ChunkInvoker } from './chunks.js';

const Counts = v.object({ delivered: v.number(), gone: v.number(), failed: v.number() });

/**
 * Runs a delivery chunk in the `deliver` worker through Lambda Invoke
 * (RequestResponse, so publish can report the counts). Locally the client
 * points at serverless-offline's Lambda endpoint.
 */
export function lambdaChunkInvoker(lambda: LambdaClient, functionName: string): ChunkInvoker {
  return async (chunk) => {
    const response = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName,
        Payload: Buffer.from(JSON.stringify(chunk)),
      }),
    );
    const text = response.Payload ? Buffer.from(response.Payload).toString() : '';
    if (response.FunctionError)
      throw new Error(`deliver failed: ${response.FunctionError} ${text.slice(0, 300)}`);
    return v.parse(Counts, JSON.parse(text));
  };
}
