/**
 * The `publish` function as Lambda would run it, alone in its process so that
 * its memory is what gets measured: the real handler of functions/publish.ts
 * (Redis, dedup, chunk invoker through LAMBDA_ENDPOINT, all from its env).
 * Samples its own RSS every 10 ms and reports the peak over its whole life.
 *
 * IPC in:  { type: 'publish', event, tag? } (several may run at once; each answer echoes its tag)
 * IPC out: { type: 'ready' }, { type: 'result', result, startAt, ms, peakRss, rssBefore, samples }
 */
import { handler } from '../functions/publish.js';
import { lambdaContext } from './common.js';

let peak = 0;
let samples = 0;
const sample = () => {
  const rss = process.memoryUsage.rss();
  samples++;
  if (rss > peak) peak = rss;
};
const timer = setInterval(sample, 10);
sample();

process.on('message', (message: { type?: string; event?: unknown; tag?: string }) => {
  if (message.type !== 'publish') return;
  void (async () => {
    sample();
    const rssBefore = process.memoryUsage.rss();
    const startAt = Date.now();
    const t0 = performance.now();
    try {
      const result = await (handler(
        message.event,
        lambdaContext('pushwire-bench-publish', 300_000) as never,
      ) as Promise<unknown>);
      const ms = performance.now() - t0;
      sample();
      process.send?.({
        type: 'result',
        tag: message.tag,
        result,
        startAt,
        ms,
        peakRss: peak,
        rssBefore,
        samples,
      });
    } catch (error) {
      process.send?.({ type: 'result', tag: message.tag, error: String(error) });
    }
  })();
});
process.send?.({ type: 'ready' });
const stop = () => {
  clearInterval(timer);
  process.exit(0);
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
