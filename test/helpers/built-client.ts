import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import type * as Client from '../../client/pushwire.js';
import { CLIENT_BUNDLE, writeClientBundle } from '../../scripts/build-client.js';
import { devToken } from '../../scripts/token.js';

/**
 * The client library as apps get it: the bundle `npm run build:client`
 * writes, built from the current source first (client/dist is not tracked,
 * so a stale one would test old code).
 */
export async function builtClient(): Promise<typeof Client> {
  await writeClientBundle();
  return (await import(pathToFileURL(CLIENT_BUNDLE).href)) as typeof Client;
}

export async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A device: the built library connected as `user` (a dev token), recording its messages and dismisses. */
export async function libraryDevice(
  lib: typeof Client,
  url: string,
  user: string,
  options: Partial<Client.Options> = {},
) {
  const pw = new lib.Pushwire({
    url,
    token: await devToken(user),
    storage: null,
    WebSocket: WebSocket as unknown as Client.SocketClass,
    ...options,
  });
  const messages: Client.Message[] = [];
  const dismissed: string[] = [];
  pw.on('message', (m) => messages.push(m));
  pw.on('dismiss', ({ id }) => dismissed.push(id));
  pw.connect();
  await waitFor(() => pw.state === 'connected' && pw.connectionId !== undefined);
  return { pw, messages, dismissed };
}
