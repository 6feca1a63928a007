import { describe, expect, it } from 'vitest';
import { checkFloor, MAX_FLOOR_SPREAD } from '../../bench/report.js';
import { type PaceLimiter, Pacer, pacedGateway } from '../../lib/delivery/pacing.js';
import type { Gateway, GatewayResult } from '../../lib/gateway/gateway.js';

/** A bucket in memory: grants from a fixed stock, records each request. */
class StockLimiter implements PaceLimiter {
  readonly asked: [want: number, keep: number][] = [];
  throttles = 0;
  granted = 0;
  failing = false;
  constructor(public stock: number) {}
  async take(want: number, keep: number): Promise<[number, number]> {
    this.asked.push([want, keep]);
    if (this.failing) throw new Error('redis down');
    const granted = Math.max(0, Math.min(want, this.stock - keep));
    this.stock -= granted;
    this.granted += granted;
    return [granted, granted === 0 ? 5 : 0];
  }
  async throttled(): Promise<void> {
    this.throttles++;
  }
}

const okGateway = (): Gateway & { posts: number } => {
  const g = {
    posts: 0,
    async post(): Promise<GatewayResult> {
      g.posts++;
      return 'ok';
    },
    async close(): Promise<GatewayResult> {
      return 'ok';
    },
  };
  return g;
};

describe('Pacer', () => {
  it('asks for as many tokens as posts wait, in batches, and never lets more posts through than it was granted', async () => {
    // Prepare
    const limiter = new StockLimiter(25);
    const sleeps: number[] = [];
    const pacer = new Pacer({
      limiter,
      batch: 10,
      keep: 0,
      sleep: async (ms) => {
        sleeps.push(ms);
        limiter.stock += 10; // time passes: the bucket refills
      },
    });
    const inner = okGateway();
    const gateway = pacedGateway(inner, pacer);
    // Act
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => gateway.post('e', `c${i}`, new Uint8Array())),
    );
    // Assess: 40 posts took 40 tokens in batches of at most 10, and waited when the stock ran out.
    expect(inner.posts).toBe(40);
    expect(limiter.asked.every(([want]) => want <= 10)).toBe(true);
    expect(sleeps.length).toBeGreaterThan(0);
    expect(limiter.granted).toBe(40);
  });

  it('leaves the reserve in the bucket for the bulk lane, not for the small one', async () => {
    const bulk = new StockLimiter(0);
    await new Pacer({
      limiter: bulk,
      batch: 5,
      keep: 30,
      sleep: async () => {
        bulk.stock = 100;
      },
    }).acquire();
    const small = new StockLimiter(5);
    await new Pacer({ limiter: small, batch: 5, keep: 0 }).acquire();
    expect(bulk.asked.every(([, keep]) => keep === 30)).toBe(true);
    expect(small.asked).toEqual([[1, 0]]);
  });

  it('goes on unpaced when the bucket cannot be reached, and says so', async () => {
    const limiter = new StockLimiter(0);
    limiter.failing = true;
    const errors: unknown[] = [];
    const pacer = new Pacer({ limiter, batch: 5, keep: 0, onError: (e) => errors.push(e) });
    const inner = okGateway();
    await Promise.all(
      Array.from({ length: 3 }, () => pacedGateway(inner, pacer).post('e', 'c', new Uint8Array())),
    );
    expect(inner.posts).toBe(3);
    expect(errors).toHaveLength(1);
    // Within the unpaced second, posts do not ask again.
    await pacedGateway(inner, pacer).post('e', 'c', new Uint8Array());
    expect(limiter.asked).toHaveLength(1);
  });

  it('sends a post still throttled after the gateway retries back for a token, and lowers the shared rate', async () => {
    // Prepare: the first two attempts are refused as AWS refuses them.
    const limiter = new StockLimiter(10);
    const pacer = new Pacer({ limiter, batch: 1, keep: 0 });
    let calls = 0;
    const inner: Gateway = {
      post: async () => {
        calls++;
        if (calls <= 2)
          throw Object.assign(new Error('Rate exceeded'), {
            name: 'LimitExceededException',
            $metadata: { httpStatusCode: 429 },
          });
        return 'ok';
      },
      close: async () => 'ok',
    };
    // Act
    const result = await pacedGateway(inner, pacer).post('e', 'c', new Uint8Array());
    // Assess: three rounds, each with its own token; the throttle was reported.
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(limiter.granted).toBe(3);
    expect(limiter.throttles).toBe(1);
  });

  it('gives up on a throttled post after its rounds, and passes other errors through at once', async () => {
    const limiter = new StockLimiter(100);
    const throttled = Object.assign(new Error('Rate exceeded'), {
      $metadata: { httpStatusCode: 429 },
    });
    let calls = 0;
    const always: Gateway = {
      post: async () => {
        calls++;
        throw throttled;
      },
      close: async () => {
        calls++;
        throw new Error('forbidden');
      },
    };
    const gateway = pacedGateway(always, new Pacer({ limiter, batch: 1, keep: 0 }));
    await expect(gateway.post('e', 'c', new Uint8Array())).rejects.toBe(throttled);
    expect(calls).toBe(3);
    await expect(gateway.close('e', 'c')).rejects.toThrow('forbidden');
    expect(calls).toBe(4);
  });

  it('lowers the shared rate when a retry answers a throttle, not a 5xx or a timeout', () => {
    // Prepare
    const limiter = new StockLimiter(0);
    const pacer = new Pacer({ limiter, batch: 5, keep: 0 });
    // Act: an outage's retries first (issue 19: they once emptied the bucket every second).
    pacer.retried(Object.assign(new Error('down'), { $metadata: { httpStatusCode: 503 } }));
    pacer.retried(Object.assign(new Error('slow'), { name: 'TimeoutError', code: 'ETIMEDOUT' }));
    const before = limiter.throttles;
    pacer.retried(Object.assign(new Error('Rate exceeded'), { name: 'LimitExceededException' }));
    // Assess
    expect(before).toBe(0);
    expect(limiter.throttles).toBe(1);
  });

  it('reports a throttle to the shared bucket at most once a second', async () => {
    const limiter = new StockLimiter(0);
    const pacer = new Pacer({ limiter, batch: 5, keep: 0 });
    pacer.throttled();
    pacer.throttled();
    pacer.throttled();
    expect(limiter.throttles).toBe(1);
  });
});

describe('checkFloor (benchmark validity, issue 19)', () => {
  it('refuses a floor measured once or varying over 20 %, accepts a steady one', () => {
    expect(checkFloor([15_000])).toMatchObject({ valid: false, spread: null });
    expect(checkFloor([10_000, 12_500])).toMatchObject({ valid: false });
    expect(checkFloor([10_000, 12_500]).says).toContain('not valid: floor varied 25 %');
    expect(checkFloor([10_000, 10_000 * (1 + MAX_FLOOR_SPREAD)]).valid).toBe(true);
    expect(checkFloor([20_000, 21_000, 22_000])).toMatchObject({
      valid: true,
      says: 'floor spread 10 %',
    });
  });
});
