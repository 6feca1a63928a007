import { createSigner, credentialsProvider, regionalEndpoint, signedPost } from '../aws/signing.js';
import { config, once } from '../clients.js';

/**
 * Asks the presenceEvents function to fan a topic's recorded joins and
 * leaves out: Lambda Invoke with InvocationType Event (queued by Lambda,
 * which runs it asynchronously and retries it twice; the caller waits only
 * for the 202). One signed POST on the signer $default already carries,
 * not the `deliver` invoker (its retries and RequestResponse handling cost
 * $default 1.4 KB it has no use for). A nudge that fails is logged by the
 * registry; the sweep sends the events within its period.
 */
const target = /* @__PURE__ */ once(() => {
  const c = config();
  const url = new URL(c.lambdaEndpoint ?? regionalEndpoint('lambda', c.region));
  return { url, signer: createSigner('lambda', c.region, credentialsProvider(c.credentials)) };
});

export async function nudge(functionName: string, topic: string, delayMs: number): Promise<void> {
  const { url, signer } = target();
  const response = await signedPost(
    signer,
    url,
    `${url.pathname.replace(/\/+$/, '')}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`,
    { 'content-type': 'application/json', 'x-amz-invocation-type': 'Event' },
    Buffer.from(JSON.stringify({ topic, delayMs })),
    { timeoutMs: 3_000 },
  );
  if (response.status !== 202 && response.status !== 200)
    throw new Error(
      `Invoke ${functionName}: HTTP ${response.status} ${response.body.toString('utf8', 0, 200)}`,
    );
}
