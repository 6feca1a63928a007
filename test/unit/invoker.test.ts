import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { serializeChunk } from '../../lib/delivery/chunks.js';
import { lambdaChunkInvoker } from '../../lib/delivery/invoker.js';

const lambdaMock = mockClient(LambdaClient);
const lambda = new LambdaClient({ region: 'us-east-1' });
const chunk = serializeChunk({
  message: { id: 'm1', dataJson: '{"n":1}' },
  jobs: [{ cursor: '1-0', recipients: [['c1=', 'https://x.example/prod']] }],
});
/** A response payload as the SDK hands it over (a Uint8Array with helpers we do not use). */
const payload = (value: unknown) =>
  new TextEncoder().encode(JSON.stringify(value)) as NonNullable<InvokeCommandOutput['Payload']>;

beforeEach(() => {
  lambdaMock.reset();
});

describe('lambdaChunkInvoker', () => {
  it('invokes the deliver function with the serialised chunk and returns its counts', async () => {
    // Prepare
    lambdaMock
      .on(InvokeCommand)
      .resolves({ StatusCode: 200, Payload: payload({ delivered: 3, gone: 1, failed: 0 }) });
    const invoke = lambdaChunkInvoker(lambda, 'pushwire-prod-deliver');

    // Act
    const counts = await invoke(chunk);

    // Assess
    expect(counts).toEqual({ delivered: 3, gone: 1, failed: 0, failures: [] });
    const calls = lambdaMock.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input?.FunctionName).toBe('pushwire-prod-deliver');
    expect(Buffer.from(input?.Payload as Uint8Array).toString()).toBe(chunk);
  });

  it('waits for the result (RequestResponse, not an async Event invocation)', async () => {
    // Prepare
    lambdaMock
      .on(InvokeCommand)
      .resolves({ StatusCode: 200, Payload: payload({ delivered: 0, gone: 0, failed: 0 }) });

    // Act
    await lambdaChunkInvoker(lambda, 'f')(chunk);

    // Assess
    const type = lambdaMock.commandCalls(InvokeCommand)[0]?.args[0].input.InvocationType;
    expect(type === undefined || type === 'RequestResponse').toBe(true);
  });

  it('passes on the failures a worker names', async () => {
    // Prepare
    const failures = [
      { connectionId: 'c1=', endpoint: 'https://x.example/prod', reason: 'HTTP 500' },
    ];
    lambdaMock.on(InvokeCommand).resolves({
      StatusCode: 200,
      Payload: payload({ delivered: 0, gone: 0, failed: 1, failures }),
    });

    // Act
    const report = await lambdaChunkInvoker(lambda, 'f')(chunk);

    // Assess
    expect(report).toEqual({ delivered: 0, gone: 0, failed: 1, failures });
  });

  it('throws with the function error and the start of its payload when the worker failed', async () => {
    // Prepare
    lambdaMock.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: payload({ errorType: 'Error', errorMessage: 'redis unavailable' }),
    });
    const invoke = lambdaChunkInvoker(lambda, 'f');

    // Act
    const outcome = invoke(chunk);

    // Assess
    await expect(outcome).rejects.toThrow(/^deliver failed: Unhandled .*redis unavailable/);
  });

  it('throws when the worker answers something other than counts', async () => {
    // Prepare: what invokeErrors returns for a refused chunk
    lambdaMock.on(InvokeCommand).resolves({
      StatusCode: 200,
      Payload: payload({ error: { code: 'invalid_request', message: 'invalid deliver event' } }),
    });
    const invoke = lambdaChunkInvoker(lambda, 'f');

    // Act
    const outcome = invoke(chunk);

    // Assess
    await expect(outcome).rejects.toThrow();
  });

  it('passes on an error from the Lambda API itself', async () => {
    // Prepare
    const failure = Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
    lambdaMock.on(InvokeCommand).rejects(failure);
    const invoke = lambdaChunkInvoker(lambda, 'f');

    // Act
    const outcome = invoke(chunk);

    // Assess
    await expect(outcome).rejects.toThrow('Rate exceeded');
  });
});
