import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../lib/constants.js';
import { chunkJobs, type DeliverChunk } from '../../lib/delivery/chunks.js';
import { messageFrame, messageHead } from '../../lib/delivery/frame.js';
import { PART_BYTES, partFrames, splitFrame } from '../../lib/delivery/parts.js';

/** What a client does with parts (client/pushwire.ts, docs/clients.md): join the data strings in order. */
function reassemble(parts: Buffer[]): string {
  const frames = parts.map((p) => JSON.parse(p.toString('utf8')) as Record<string, unknown>);
  frames.forEach((f, n) => {
    expect(Object.keys(f)).toEqual(['type', 'id', 'n', 'of', 'data']);
    expect(f).toMatchObject({ type: 'part', n, of: parts.length });
  });
  return frames.map((f) => f['data'] as string).join('');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Every part: within `max` bytes, valid UTF-8 (no replacement characters), no lone surrogate at either end. */
function checkParts(parts: Buffer[], max: number) {
  for (const part of parts) {
    expect(part.length).toBeLessThanOrEqual(max);
    expect(Buffer.from(part.toString('utf8')).equals(part)).toBe(true);
    const data = (JSON.parse(part.toString('utf8')) as { data: string }).data;
    expect(data).not.toMatch(LONE_SURROGATE);
  }
}

/** A message frame of exactly `bytes` bytes, its data a string of `unit` repeated (and ASCII filler). */
function frameOf(bytes: number, id = 'm1', unit = 'x', cursor = '1733500000000-0'): string {
  const empty = Buffer.byteLength(messageFrame(id, '""', cursor));
  const unitBytes = Buffer.byteLength(JSON.stringify(unit)) - 2;
  const count = Math.floor((bytes - empty) / unitBytes);
  const filler = 'y'.repeat(bytes - empty - count * unitBytes);
  const text = messageFrame(id, JSON.stringify(unit.repeat(count) + filler), cursor);
  expect(Buffer.byteLength(text)).toBe(bytes);
  return text;
}

describe('partFrames (PW-F6)', () => {
  it('leaves a frame of exactly 128 KB whole', () => {
    const text = frameOf(MAX_MESSAGE_BYTES);
    expect(partFrames('m1', '', text, MAX_MESSAGE_BYTES)).toBeUndefined();
  });

  it('cuts a frame one byte over 128 KB into two parts that join back into it', () => {
    const text = frameOf(MAX_MESSAGE_BYTES + 1);
    const parts = partFrames('m1', '', text, MAX_MESSAGE_BYTES) ?? [];
    expect(parts).toHaveLength(2);
    checkParts(parts, PART_BYTES);
    expect(reassemble(parts)).toBe(text);
    // Full parts: the first is within the envelope's digits of the bound.
    expect(parts[0]?.length).toBeGreaterThan(PART_BYTES - 20);
  });

  it('cuts 1 MiB of ASCII into 9 parts of at most 127 KiB', () => {
    const text = frameOf(1024 * 1024);
    const parts = partFrames('m1', '', text, MAX_MESSAGE_BYTES) ?? [];
    expect(parts).toHaveLength(9);
    checkParts(parts, PART_BYTES);
    expect(reassemble(parts)).toBe(text);
  });

  it.each([
    ['2-byte characters', 'é'],
    ['3-byte characters', '€'],
    ['4-byte characters (surrogate pairs)', '😀'],
    ['quotes (escaped: 2 bytes each)', '"'],
    ['backslashes (escaped: 2 bytes each)', '\\'],
    ['control characters (escaped in the frame, then again in the part)', '\n'],
    ['a mix', 'a😀é"€\\\u2028'],
  ])('never exceeds the bound nor splits a character with %s across every cut', (_, unit) => {
    // Shifting the data by one byte at a time puts every byte of the unit on a cut.
    for (let shift = 0; shift < 8; shift++) {
      const text = frameOf(300_000 + shift, 'm1', unit);
      const parts = partFrames('m1', '', text, MAX_MESSAGE_BYTES) ?? [];
      expect(parts.length).toBeGreaterThan(1);
      checkParts(parts, PART_BYTES);
      expect(reassemble(parts)).toBe(text);
    }
  });

  it('keeps a surrogate pair together when the cut falls between its halves', () => {
    // A small bound makes the cut land at every offset of a pair.
    for (let pad = 0; pad < 6; pad++) {
      const text = `{"type":"message","id":"e","data":"${'x'.repeat(pad)}${'😀'.repeat(40)}"}`;
      const parts = partFrames('e', '', text, 50, 120) ?? [];
      checkParts(parts, 120);
      expect(reassemble(parts)).toBe(text);
    }
  });

  it('holds for any text at any bound (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 400 }),
        fc.integer({ min: 90, max: 300 }),
        (data, max) => {
          const text = messageFrame('p', JSON.stringify(data));
          const parts = partFrames('p', '', text, 0, max);
          if (!parts) return;
          checkParts(parts, max);
          expect(reassemble(parts)).toBe(text);
          // What replay uses: the same cut.
          expect(splitFrame('p', text, max).map(String)).toEqual(parts.map(String));
        },
      ),
    );
  });

  it('cuts the same with and without the memo, whatever the head', () => {
    const dataJson = JSON.stringify('é😀"x'.repeat(60_000));
    const tail = `,"data":${dataJson}}`;
    const memo = new Map<number, [number, Buffer[]]>();
    for (const cursor of ['1-0', '1733500000000-0', '1733500000000-12', '1733500000001-3']) {
      const head = messageHead('m', cursor, 'room:1');
      const memoed = partFrames('m', head, tail, MAX_MESSAGE_BYTES, PART_BYTES, memo) ?? [];
      const plain = partFrames('m', '', head + tail, MAX_MESSAGE_BYTES) ?? [];
      expect(memoed.map(String)).toEqual(plain.map(String));
      expect(reassemble(memoed)).toBe(messageFrame('m', dataJson, cursor, 'room:1'));
    }
    // Cursors whose heads weigh the same share their cut.
    expect(memo.size).toBe(3);
  });
});

describe('chunkJobs with a message over 128 KB', () => {
  it('gives each cursor its parts, and a small message one frame as before', () => {
    const big = JSON.stringify('z'.repeat(400_000));
    const chunk: DeliverChunk = {
      message: { id: 'big', dataJson: big, topic: 't' },
      jobs: [
        { cursor: '1-1', recipients: [['A', 'https://e.example/s']] },
        { cursor: '1-2', recipients: [['B', 'https://e.example/s']] },
      ],
    };
    const jobs = [...chunkJobs(chunk)];
    expect(jobs).toHaveLength(2);
    for (const [i, job] of jobs.entries()) {
      const parts = (job.frames ?? []) as Buffer[];
      expect(parts).toHaveLength(4);
      expect(job.frame).toBe(parts[0]);
      checkParts(parts, PART_BYTES);
      expect(reassemble(parts)).toBe(messageFrame('big', big, `1-${i + 1}`, 't'));
    }
    const small = [...chunkJobs({ ...chunk, message: { id: 's', dataJson: '1' } })];
    expect(small[0]?.frames).toBeUndefined();
    expect(String(small[0]?.frame)).toBe(messageFrame('s', '1', '1-1'));
  });
});
