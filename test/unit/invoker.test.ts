import { describe, expect, it } from 'vitest';
import type { DeliverChunk } from '../../lib/delivery/chunks.js';
import { lambdaChunkInvoker } from '../../lib/delivery/invoker.js';
import type { InvokeResult, LambdaInvoke } from '../../lib/delivery/lambda-invoke.js';

// The Invoke call itself (signing, HTTP, errors) is tested in
// lambda-invoke.test.ts against a local server; here a scripted one.
const chunk: DeliverChunk = {
  jobs: [{ frame: '{"type":"message"}', recipients: [['c1=', 'https://x.example/prod']] }],
};

function scripted(answer: () => Promise<InvokeResult>) {
  const calls: { functionName: string; payload: Uint8Array }[] = [];
  const invoke: LambdaInvoke = async (functionName, payload) => {
    calls.push({ functionName, payload });
    return answer();
  };
  return { invoke, calls };
}
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('lambdaChunkInvoker', () => {
  it('invokes the deliver function with the chunk as JSON and returns its counts', async () => {
    // Prepare
    const { invoke, calls } = scripted(async () => ({
      payload: json({ delivered: 3, gone: 1, failed: 0 }),
    }));

    // Act
    const counts = await lambdaChunkInvoker(invoke, 'pushwire-prod-deliver')(chunk);

    // Assess
    expect(counts).toEqual({ delivered: 3, gone: 1, failed: 0 });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.functionName).toBe('pushwire-prod-deliver');
    expect(JSON.parse(Buffer.from(calls[0]?.payload as Uint8Array).toString())).toEqual(chunk);
  });

  it('throws with the function error and the start of its payload when the worker failed', async () => {
    // Prepare
    const { invoke } = scripted(async () => ({
      functionError: 'Unhandled',
      payload: json({ errorType: 'Error', errorMessage: 'redis unavailable' }),
    }));
    // Act
    const outcome = lambdaChunkInvoker(invoke, 'f')(chunk);
    // Assess
    await expect(outcome).rejects.toThrow(/^deliver failed: Unhandled .*redis unavailable/);
  });

  it('throws when the worker answers something other than counts', async () => {
    // Prepare: what invokeErrors returns for a refused chunk
    const { invoke } = scripted(async () => ({
      payload: json({ error: { code: 'invalid_request', message: 'invalid deliver event' } }),
    }));
    // Act
    const outcome = lambdaChunkInvoker(invoke, 'f')(chunk);
    // Assess
    await expect(outcome).rejects.toThrow();
  });

  it('passes on an error from the Lambda API itself', async () => {
    // Prepare
    const { invoke } = scripted(async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
    });
    // Act
    const outcome = lambdaChunkInvoker(invoke, 'f')(chunk);
    // Assess
    await expect(outcome).rejects.toThrow('Rate exceeded');
  });
});
