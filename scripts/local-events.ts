import type { Config } from '../lib/config.js';
import { verifySigV4 } from '../test/helpers/sigv4.js';
import { type LocalBus, startLocalBus } from './local-bus.js';

/**
 * Lifecycle events under `npm start`: a local stand-in bus that checks each
 * PutEvents (shape, and the SigV4 signature with the dev credentials) and
 * prints each event as one line, `pushwire event <detail-type> <detail JSON>`;
 * and, since serverless-offline runs no schedules, the `events` function
 * invoked here back to back (in AWS a schedule starts it every minute), each
 * run relaying until its time is nearly up.
 */
export interface LocalEvents {
  bus: LocalBus;
  /** Starts invoking the relay function (once serverless-offline is up). */
  run(lambdaPort: string, functionName: string): void;
  stop(): Promise<void>;
}

export async function startLocalEvents(
  c: Config,
  print: (line: string) => void,
): Promise<LocalEvents> {
  const credentials = c.credentials;
  const bus = await startLocalBus({
    verify: (request) => {
      const check = verifySigV4(request, (id) =>
        id === credentials?.accessKeyId ? credentials.secretAccessKey : undefined,
      );
      if (!check.ok) return check.reason;
      if (check.service !== 'events' || check.region !== c.region)
        return `signed for ${check.service} in ${check.region}`;
      return undefined;
    },
    onEntry: (entry) => print(`pushwire event ${entry.DetailType} ${entry.Detail}`),
  });
  let running = true;
  let loop: Promise<void> | undefined;
  const stopped = new AbortController();
  return {
    bus,
    run(lambdaPort, functionName) {
      loop ??= (async () => {
        while (running) {
          try {
            const res = await fetch(
              `http://localhost:${lambdaPort}/2015-03-31/functions/${functionName}/invocations`,
              { method: 'POST', body: '{}', signal: stopped.signal },
            );
            const text = await res.text();
            if (!res.ok || res.headers.get('x-amz-function-error'))
              throw new Error(`HTTP ${res.status} ${text.slice(0, 300)}`);
          } catch (error) {
            if (!running) return;
            print(
              `pushwire events relay: ${error instanceof Error ? error.message : error}; again in 1 s`,
            );
            await new Promise((resolve) => setTimeout(resolve, 1_000));
          }
        }
      })();
    },
    async stop() {
      running = false;
      stopped.abort();
      await loop;
      await bus.close();
    },
  };
}
