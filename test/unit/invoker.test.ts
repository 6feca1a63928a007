import { describe, expect, it } from 'vitest';
import { serializeChunk } from '../../lib/delivery/chunks.js';
import { lambdaChunkInvoker } from '../../lib/delivery/invoker.js';
import type { InvokeResult, LambdaInvoke } from '../../lib/delivery/lambda-invoke.js';

// The Invoke call itself (signing, HTTP, errors) is tested in
// lambda-invoke.test.ts against a local server; here a scripted one.
const chunk = serializeChunk({
  message: { id: 'm1', dataJson: '{"n":1}' },
  jobs: [{ cursor: '1-0', recipients: [['c1=', 'https://x.example/prod']] }],
});

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
  it('invokes the deliver function with the serialised chunk and returns its counts', async () => {
    // Prepare
    const { invoke, calls } = scripted(async () => ({
      payload: json({ delivered: 3, gone: 1, failed: 0 }),
    }));

    // Act
    const counts = await lambdaChunkInvoker(invoke, 'pushwire-prod-deliver')(chunk);

    // Assess
    expect(counts).toEqual({ delivered: 3, gone: 1, failed: 0, failures: [] });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.functionName).toBe('pushwire-prod-deliver');
    expect(Buffer.from(calls[0]?.payload as Uint8Array).toString()).toBe(chunk);
  });

  it('passes on the failures a worker names', async () => {
    // Prepare
    const failures = [
      { connectionId: 'c1=', endpoint: 'https://x.example/prod', reason: 'HTTP 500' },
    ];
    const { invoke } = scripted(async () => ({
      payload: json({ delivered: 0, gone: 0, failed: 1, failures }),
    }));

    // Act
    const report = await lambdaChunkInvoker(invoke, 'f')(chunk);

    // Assess
    expect(report).toEqual({ delivered: 0, gone: 0, failed: 1, failures });
  });

  it("passes on a batch chunk's counts per message", async () => {
    // Prepare
    const messages = [
      { n: 0, delivered: 2, gone: 1, failed: 0 },
      { n: 3, delivered: 1, gone: 0, failed: 0 },
    ];
    const { invoke } = scripted(async () => ({
      payload: json({ delivered: 2, gone: 1, failed: 0, failures: [], messages }),
    }));

    // Act
    const report = await lambdaChunkInvoker(invoke, 'f')(chunk);

    // Assess
    expect(report).toEqual({ delivered: 2, gone: 1, failed: 0, failures: [], messages });
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
