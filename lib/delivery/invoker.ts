import * as v from 'valibot';
import type { ChunkInvoker } from './chunks.js';
import type { LambdaInvoke } from './lambda-invoke.js';

const Counts = v.object({ delivered: v.number(), gone: v.number(), failed: v.number() });

/**
 * Runs a delivery chunk in the `deliver` worker through Lambda Invoke
 * (RequestResponse, so publish can report the counts). Locally the client
 * points at serverless-offline's Lambda endpoint.
 */
export function lambdaChunkInvoker(invoke: LambdaInvoke, functionName: string): ChunkInvoker {
  return async (chunk) => {
    const response = await invoke(functionName, Buffer.from(JSON.stringify(chunk)));
    const text = response.payload.toString();
    if (response.functionError)
      throw new Error(`deliver failed: ${response.functionError} ${text.slice(0, 300)}`);
    return v.parse(Counts, JSON.parse(text));
  };
}
