import { credentialsProvider } from '../aws/signing.js';
import { config, once } from '../clients.js';
import { signedLambdaInvoke } from '../delivery/lambda-invoke.js';

/**
 * Asks the presenceEvents function to fan a topic's recorded joins and
 * leaves out (Invoke, InvocationType Event: queued by Lambda, which retries
 * it twice; the caller waits only for the 202). Loaded by the registry on
 * the first event, in the functions whose role may invoke it.
 */
const invoke = /* @__PURE__ */ once(() => {
  const c = config();
  return signedLambdaInvoke({
    region: c.region,
    credentials: credentialsProvider(c.credentials),
    maxSockets: 4,
    ...(c.lambdaEndpoint && { endpoint: c.lambdaEndpoint }),
  });
});

export async function nudge(functionName: string, topic: string, delayMs: number): Promise<void> {
  await invoke()(functionName, Buffer.from(JSON.stringify({ topic, delayMs })), 'Event');
}
