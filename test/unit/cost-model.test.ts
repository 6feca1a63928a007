/**
 * The cost model's arithmetic (bench/cost-model.ts), against hand-computed
 * small cases. Nothing here is timed or measured.
 */
import { describe, expect, it } from 'vitest';
import {
  ackedCost,
  ackedPublishMs,
  ackTimeoutBatchSize,
  ackTimeoutInvocationMs,
  billedUnits,
  costModel,
  defaultInputs,
  framesFor,
  type ModelInputs,
  mergeInputs,
  OPERATIONS,
  perDelivery,
  sqsRequestsPerAcked,
  storedGb,
  type Workload,
} from '../../bench/cost-model.js';

/** Inputs where every operation is free and instant: each invocation bills the 1 ms minimum. */
function zeroInputs(): ModelInputs {
  const inputs = defaultInputs();
  for (const op of OPERATIONS) {
    inputs.ops[op].redisCommands.value = 0;
    inputs.ops[op].roundTrips.value = 0;
    inputs.ops[op].ms.value = 0;
  }
  inputs.frameOverheadBytes.value = 100;
  inputs.postLatencyMs.value = 0;
  inputs.ackTimeoutMs.value = 0;
  inputs.cpuStretch.value = 1;
  inputs.lambdaMemoryMb.value = 1024;
  return inputs;
}

/** One publish a minute to one device; 60 connections of an hour, pinging every minute. */
function tiny(dataBytes: number): Workload {
  return {
    name: 'tiny',
    connections: 60,
    sessionMinutes: 60,
    pingIntervalSeconds: 60,
    subscribesPerConnection: 0,
    publishesPerMinute: 1,
    sizes: [{ bytes: dataBytes, share: 1 }],
    audiences: [{ kind: 'user', recipients: 1, share: 1 }],
    ackedShare: 0,
    ackTimeoutShare: 0,
    deltaShare: 0,
    messagesPerFrame: 1,
    monthDays: 30,
    users: 1,
    topics: 1,
  };
}

const line = (r: ReturnType<typeof costModel>, prefix: string) => {
  const found = r.lines.find((l) => l.item.startsWith(prefix));
  if (!found) throw new Error(`no line ${prefix}`);
  return found;
};

describe('billed units (32 KB = 32,768 bytes)', () => {
  it('counts each started 32,768 bytes, and an empty frame as one', () => {
    expect(billedUnits(0)).toBe(1);
    expect(billedUnits(1)).toBe(1);
    expect(billedUnits(32_768)).toBe(1);
    expect(billedUnits(32_769)).toBe(2);
    expect(billedUnits(65_536)).toBe(2);
    expect(billedUnits(65_537)).toBe(3);
    expect(billedUnits(131_072)).toBe(4);
  });

  it('refuses a negative or non-numeric size', () => {
    expect(() => billedUnits(-1)).toThrow(/≥ 0/);
    expect(() => billedUnits(Number.NaN)).toThrow(/≥ 0/);
  });
});

describe('frames for one delivery', () => {
  const inputs = zeroInputs();

  it('a frame up to 128 KB is one post', () => {
    // 131,072 − 100 bytes of data + 100 of frame = exactly 128 KB: one post, 4 units.
    expect(framesFor(131_072 - 100, inputs)).toEqual({ posts: 1, units: 4, bytes: 131_072 });
    expect(framesFor(32_668, inputs)).toEqual({ posts: 1, units: 1, bytes: 32_768 });
    expect(framesFor(32_669, inputs)).toEqual({ posts: 1, units: 2, bytes: 32_769 });
  });

  it('one byte over 128 KB is sent as parts, each billed on its own', () => {
    // 131,073 − 100 data bytes: parts of 120,000 (+200) and 10,973 (+200).
    const frames = framesFor(131_073 - 100, inputs);
    expect(frames.posts).toBe(2);
    expect(frames.units).toBe(billedUnits(120_200) + billedUnits(10_973 + 200));
    expect(frames.units).toBe(4 + 1);
    expect(frames.bytes).toBe(130_973 + 400);
  });

  it('batching shares frames while they fit in 128 KB', () => {
    // 200 B of data + 100 B frame, 4 per frame: 1,200 bytes, one unit for four deliveries.
    expect(perDelivery(200, { deltaShare: 0, messagesPerFrame: 4 }, inputs)).toMatchObject({
      posts: 0.25,
      units: 0.25,
    });
    // 50,000 B messages do not fit four to a frame: no batching.
    expect(perDelivery(50_000, { deltaShare: 0, messagesPerFrame: 4 }, inputs)).toMatchObject({
      posts: 1,
      units: 2,
    });
  });

  it('a delta is billed at its own size', () => {
    // 100,000 B data: 100,100 B frame = 4 units; a 5 % delta is 5,005 B = 1 unit.
    expect(perDelivery(100_000, { deltaShare: 1, messagesPerFrame: 1 }, inputs).units).toBe(1);
    expect(perDelivery(100_000, { deltaShare: 0.5, messagesPerFrame: 1 }, inputs).units).toBe(2.5);
  });
});

describe('per 1 M deliveries', () => {
  it('bills messages out, in, replies and connection minutes as computed by hand', () => {
    // 1 delivery a minute: 1 M deliveries are 1 M minutes.
    const r = costModel(tiny(32_668), zeroInputs());
    expect(r.minutesPer1M).toBe(1_000_000);
    expect(line(r, 'API Gateway messages out').quantity).toBe(1_000_000);
    expect(line(r, 'API Gateway messages out').usd).toBeCloseTo(1.0, 10);
    // In: 1 $connect + 60 pings a minute; out: 60 pongs.
    expect(line(r, 'API Gateway messages in').quantity).toBeCloseTo(61_000_000, 3);
    expect(line(r, 'API Gateway replies').quantity).toBeCloseTo(60_000_000, 3);
    // 60 connections × 1 M minutes at $0.25 per million.
    expect(line(r, 'API Gateway connection minutes').usd).toBeCloseTo(15, 10);
  });

  it('one byte more makes every delivery two units', () => {
    const r = costModel(tiny(32_669), zeroInputs());
    expect(line(r, 'API Gateway messages out').quantity).toBe(2_000_000);
    expect(line(r, 'API Gateway messages out').usd).toBeCloseTo(2.0, 10);
  });

  it('bills Lambda requests and GB-seconds per function', () => {
    const r = costModel(tiny(100), zeroInputs());
    const requests = Object.fromEntries(r.lambda.map((l) => [l.fn.split(' ')[0], l.requests]));
    // Per minute: 1 connect, 1 disconnect, 60 pings, 1 publish; × 1 M minutes.
    expect(requests['connect']).toBeCloseTo(1e6, 3);
    expect(requests['disconnect']).toBeCloseTo(1e6, 3);
    expect(requests['default']).toBeCloseTo(60e6, 3);
    expect(requests['publish']).toBeCloseTo(1e6, 3);
    expect(line(r, 'Lambda requests').usd).toBeCloseTo((63e6 * 0.2) / 1e6, 6);
    // Each invocation bills the 1 ms minimum at 1 GB: 63,000 GB-s at the arm64 price.
    expect(line(r, 'Lambda compute').quantity).toBeCloseTo(63_000, 3);
    expect(line(r, 'Lambda compute').usd).toBeCloseTo(63_000 * 0.0000133334, 6);
  });

  it('prices x86_64 at its own GB-second price', () => {
    const r = costModel(tiny(100), mergeInputs(zeroInputs(), { architecture: 'x86_64' }));
    expect(line(r, 'Lambda compute').usd).toBeCloseTo(63_000 * 0.0000166667, 6);
  });

  it('counts the competitors’ messages and operations by their rules', () => {
    const r = costModel(tiny(100), zeroInputs());
    const by = Object.fromEntries(r.competitors.map((c) => [c.name, c]));
    // Ably: the publish and the delivery, 2 M messages at $2.50/M.
    expect(by['Ably (Standard)']?.per1M).toBeCloseTo(5, 10);
    // AppSync: publish + delivery + connect = 3 M operations, + 60 M connection minutes at
    // $0.08/M, + 1 M frames of 200 B out at $0.09/GB.
    expect(by['AppSync Events']?.per1M).toBeCloseTo(3 + 4.8 + (2e8 / 1024 ** 3) * 0.09, 10);
    expect(line(r, 'Data transfer out').quantity).toBeCloseTo(2e8 / 1024 ** 3, 10);
    // Pusher: 2,880 messages a day and 60 connections fit the free Sandbox.
    expect(by['Pusher Channels']?.per1M).toBe(0);
    expect(by['Pusher Channels']?.how).toMatch(/Sandbox/);
  });

  it('adds the ack line: ack frames, replies, dismisses, SQS, and pushes that fire', () => {
    const w = { ...tiny(100), ackedShare: 1, ackTimeoutShare: 0.5 };
    const acked = ackedCost(w, zeroInputs(), 2);
    const get = (prefix: string) => acked.lines.find((l) => l.item.startsWith(prefix));
    // For the half that is acked: 2 ack frames + 2 replies, and 1 dismiss to the other device.
    expect(get('API Gateway')?.quantity).toBeCloseTo(0.5e6 * (2 + 2 + 1), 3);
    // One acked publish a minute: each timeout is its own batch (a 1 s window gathers no more):
    // SendMessage + the event source mapping's ReceiveMessage and DeleteMessageBatch = 3.
    expect(get('SQS')?.quantity).toBeCloseTo(3e6, 3);
    expect(get('SQS')?.usd).toBeCloseTo(3 * 0.4, 10);
    // Half fire, one device each: 500,000 pushes at $0.50/M mobile + $0.50/M publish.
    expect(get('SNS')?.quantity).toBeCloseTo(5e5, 3);
    expect(get('SNS')?.usd).toBeCloseTo(0.5, 10);
    // At 1,200 acked publishes a minute (20 a second) batches are full (10): 1 + 2/10 = 1.2.
    const busy = ackedCost({ ...w, publishesPerMinute: 1200 }, zeroInputs(), 2);
    expect(busy.lines.find((l) => l.item.startsWith('SQS'))?.usd).toBeCloseTo(1.2 * 0.4, 10);
    expect(busy.lines.find((l) => l.item.startsWith('Lambda requests'))?.quantity).toBeCloseTo(
      1e6 + 1e5,
      3,
    );
  });

  it('bills ack, acked and dismiss frames by their measured sizes', () => {
    const inputs = zeroInputs();
    inputs.ackFrameBytes.value = 40_000; // 2 units in
    inputs.ackedReplyBytes.value = 100; // 1 unit out
    inputs.dismissFrameBytes.value = 70_000; // 3 units out
    const acked = ackedCost({ ...tiny(100), ackedShare: 1, ackTimeoutShare: 0 }, inputs, 2);
    // 1 M acked: 2 M ack frames × (2 + 1) units, 1 M dismisses × 3 units.
    expect(acked.lines[0]?.quantity).toBeCloseTo(2e6 * 3 + 1e6 * 3, 3);
  });

  it('sizes the timeout batch by rate and window, and bills it at the function’s memory', () => {
    const inputs = zeroInputs();
    // 60 a minute = 1 a second, 1 s window: batches of 1; 300 a minute: 5; 6,000: capped at 10.
    expect(ackTimeoutBatchSize(inputs, 60)).toBe(1);
    expect(ackTimeoutBatchSize(inputs, 300)).toBe(5);
    expect(ackTimeoutBatchSize(inputs, 6_000)).toBe(10);
    expect(ackTimeoutBatchSize(inputs, 0.5)).toBe(1);
    expect(sqsRequestsPerAcked(inputs, 5)).toBeCloseTo(1.4, 10);
    inputs.ops.ackTimeoutCheck.ms.value = 1;
    inputs.ops.ackTimeoutCheck.roundTrips.value = 1;
    inputs.ops.ackTimeoutFire.ms.value = 2;
    inputs.ops.ackTimeoutFire.roundTrips.value = 3;
    inputs.redisRttMs.value = 1;
    inputs.ackTimeoutMs.value = 20;
    // 512 MB: CPU stretched ×2 against the 1,024 MB the stretch is given for.
    // None fire, 4 records: CPU 4 × 1 × 2 = 8, one record's trip: 1 → 9 ms.
    expect(ackTimeoutInvocationMs(inputs, 4, 0)).toBe(9);
    // All fire: CPU 4 × 2 × 2 = 16, 3 trips, the push call 20 → 39 ms.
    expect(ackTimeoutInvocationMs(inputs, 4, 1)).toBe(39);
    // Half fire, 2 records: CPU 2 × 1.5 × 2 = 6; 3/4 of batches have one that fires:
    // trips 0.25 × 1 + 0.75 × 3 = 2.5, push 0.75 × 20 = 15 → ceil(23.5) = 24 ms.
    expect(ackTimeoutInvocationMs(inputs, 2, 0.5)).toBe(24);
  });

  it('adds an acknowledged publish’s own work to the publish invocation', () => {
    const inputs = zeroInputs();
    inputs.ops.ackedPublish.ms.value = 2;
    inputs.ops.ackedPublish.roundTrips.value = 2;
    inputs.ops.ackedPublish.redisCommands.value = 3;
    inputs.redisRttMs.value = 0.5;
    inputs.postLatencyMs.value = 20;
    // 2 ms CPU + 2 × 0.5 ms + one SendMessage at 20 ms.
    expect(ackedPublishMs(inputs)).toBe(23);
    const plain = costModel(tiny(100), inputs);
    const acked = costModel({ ...tiny(100), ackedShare: 1, ackTimeoutShare: 0 }, inputs);
    const fn = (r: ReturnType<typeof costModel>) => r.lambda.find((l) => l.fn === 'publish');
    // 1 M publishes, each 23 ms longer at 1 GB: 23,000 GB-s more.
    expect((fn(acked)?.gbSeconds ?? 0) - (fn(plain)?.gbSeconds ?? 0)).toBeCloseTo(23_000, 3);
    expect(acked.redisCommands - plain.redisCommands).toBeCloseTo(3e6, 3);
  });
});

describe('what Redis stores', () => {
  it('keeps up to HISTORY_SIZE entries per stream, and bills at least 1 GB', () => {
    const inputs = zeroInputs();
    inputs.frameOverheadBytes.value = 0;
    inputs.connectionRecordBytes.value = 0;
    inputs.redisMemoryOverhead.value = 1;
    inputs.historySize.value = 128;
    // 3 users, 1,440 messages a day to users: 480 each, capped at 128 of 1/128 GiB = 3 GiB.
    const w = { ...tiny(2 ** 30 / 128), users: 3 };
    expect(storedGb(w, inputs).gb).toBe(3);
    // The month's fixed cost: 3 GB × 720 h × $0.125.
    expect(costModel(w, inputs).monthly.fixed).toBeCloseTo(3 * 24 * 30 * 0.125, 6);
    // A day's messages below the cap: 1,440 entries over 30 users = 48 each.
    inputs.historySize.value = 1_000;
    expect(storedGb({ ...w, users: 30 }, inputs).gb).toBe((1_440 * 2 ** 30) / 128 / 2 ** 30);
    // Tiny: the 1 GB minimum.
    expect(storedGb(tiny(100), defaultInputs()).gb).toBe(1);
  });
});

describe('inputs and workloads', () => {
  it('takes measured figures from a file and refuses unknown ones', () => {
    const merged = mergeInputs(defaultInputs(), {
      ops: { ack: { redisCommands: { value: 4, source: 'measured', note: 'branch acks' } } },
      deltaBytesRatio: { value: 0.02, source: 'measured', note: 'branch delta' },
    });
    expect(merged.ops.ack.redisCommands).toEqual({
      value: 4,
      source: 'measured',
      note: 'branch acks',
    });
    expect(merged.deltaBytesRatio.value).toBe(0.02);
    expect(() => mergeInputs(defaultInputs(), { nope: {} })).toThrow(/unknown model input "nope"/);
    expect(() =>
      mergeInputs(defaultInputs(), { deltaBytesRatio: { value: -1, source: 'measured' } }),
    ).toThrow(/≥ 0/);
    expect(() =>
      mergeInputs(defaultInputs(), { deltaBytesRatio: { value: 1, source: 'guessed' } }),
    ).toThrow(/source/);
  });

  it('reports every assumed figure by name', () => {
    const r = costModel(tiny(100), defaultInputs());
    expect(r.assumed.some((a) => a.startsWith('ack.redisCommands'))).toBe(true);
    const measured = mergeInputs(defaultInputs(), {
      ops: { ack: { redisCommands: { value: 3, source: 'measured', note: 'x' } } },
    });
    expect(
      costModel(tiny(100), measured).assumed.some((a) => a.startsWith('ack.redisCommands')),
    ).toBe(false);
  });

  it('refuses a workload whose shares do not add up, with what is wrong', () => {
    const bad = { ...tiny(100), sizes: [{ bytes: 100, share: 0.5 }] };
    expect(() => costModel(bad, zeroInputs())).toThrow(/sizes: shares must sum to 1/);
    const noUsers = {
      ...tiny(100),
      ackedShare: 0.1,
      audiences: [{ kind: 'topic' as const, recipients: 5, share: 1 }],
    };
    expect(() => costModel(noUsers, zeroInputs())).toThrow(/needs a user audience/);
    expect(() => costModel({ ...tiny(100), connections: 0 }, zeroInputs())).toThrow(
      /connections must be a number > 0/,
    );
  });
});

describe('large messages: the model against the real splitter', () => {
  it('gives the parts and units partFrames() makes at 200 KB, 512 KiB and 1 MiB', async () => {
    const { measureParts, inputsFrom } = await import('../../bench/cost.js');
    const parts = measureParts();
    const inputs = inputsFrom(
      {
        ops: {},
        frame_overhead_bytes: 120,
        parts,
        command_mix: {},
        loadavg: [0, 0],
      },
      null,
    );
    expect(inputs.largePartBytes.source).toBe('measured');
    for (const x of parts) {
      // Every part fits API Gateway's 128 KB; the model counts the same parts and units.
      expect(x.full_part_bytes).toBeLessThanOrEqual(131_072);
      const m = framesFor(x.data_bytes, inputs);
      expect(m.posts).toBe(x.parts);
      expect(m.units).toBe(x.units);
      // Bytes within 2 % (the model charges the escaping per part, not per quote).
      expect(Math.abs(m.bytes - x.bytes_posted) / x.bytes_posted).toBeLessThan(0.02);
    }
    expect(parts.map((x) => x.parts)).toEqual([2, 5, 10]);
  });
});
