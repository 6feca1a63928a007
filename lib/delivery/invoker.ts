import * as v from 'valibot';
import type { ChunkInvoker } from './chunks.js';
import type { LambdaInvoke } from './lambda-invoke.js';

const Report = v.object({
  delivered: v.number(),
  gone: v.number(),
  failed: v.number(),
  failures: v.optional(
    v.array(v.object({ connectionId: v.string(), endpoint: v.string(), reason: v.string() })),
    [],
  ),
  /** A batch chunk's counts per message (lib/delivery/batch-frames.ts). */
  messages: v.optional(
    v.array(
      v.object({ n: v.number(), delivered: v.number(), gone: v.number(), failed: v.number() }),
    ),
  ),
});

/**
 * Runs a delivery chunk in the `deliver` worker through Lambda Invoke
 * (RequestResponse, so publish can report the counts). Locally the client
 * points at serverless-offline's Lambda endpoint. The payload is the
 * serialised chunk as publish cut it, within FANOUT_CHUNK_MAX_BYTES.
 */
export function lambdaChunkInvoker(invoke: LambdaInvoke, functionName: string): ChunkInvoker {
  return async (payload) => {
    const response = await invoke(functionName, Buffer.from(payload));
    const text = response.payload.toString();
    if (response.functionError)
      throw new Error(`deliver failed: ${response.functionError} ${text.slice(0, 300)}`);
    return v.parse(Report, JSON.parse(text));
  };
}
