import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors.js';
import {
  compareCursors,
  isCursor,
  normalizeCursor,
  parseCursor,
} from '../../lib/registry/cursor.js';

/** Digits of an accepted cursor part: 1 to 16 of them. */
const part = fc.bigInt({ min: 0n, max: 9_999_999_999_999_999n });
const cursorOf = (ms: bigint, seq: bigint) => `${ms}-${seq}`;

describe('isCursor', () => {
  it.each(['0', '0-0', '1732752000000-0', '1732752000000-17', '9999999999999999-9999999999999999'])(
    'accepts %s',
    (value) => {
      // Act + Assess
      expect(isCursor(value)).toBe(true);
    },
  );

  it.each([
    '',
    '-1',
    '1-',
    '-',
    '1-2-3',
    'abc',
    '1732752000000-x',
    ' 1-0',
    '1-0 ',
    '+1-0',
    '1.5-0',
    '12345678901234567-0',
    '0-12345678901234567',
    '$',
  ])('refuses %j', (value) => {
    // Act + Assess
    expect(isCursor(value)).toBe(false);
  });
});

describe('parseCursor', () => {
  it('reads the milliseconds and the sequence number', () => {
    // Act
    const cursor = parseCursor('1732752000000-5');

    // Assess
    expect(cursor).toEqual({ ms: 1_732_752_000_000, seq: 5 });
  });

  it('reads a bare millisecond time as sequence 0', () => {
    // Act
    const cursor = parseCursor('1732752000000');

    // Assess
    expect(cursor).toEqual({ ms: 1_732_752_000_000, seq: 0 });
  });

  it('refuses a non-cursor with an invalid_cursor ValidationError quoting it', () => {
    // Act
    const parse = () => parseCursor('yesterday');

    // Assess
    expect(parse).toThrow(ValidationError);
    expect(parse).toThrow('"yesterday" is not a cursor (expected <ms>-<seq>)');
    try {
      parse();
    } catch (error) {
      expect((error as ValidationError).code).toBe('invalid_cursor');
    }
  });
});

describe('compareCursors', () => {
  it.each([
    ['an earlier millisecond', '1-9', '2-0', -1],
    ['a later millisecond', '2-0', '1-9', 1],
    ['the same millisecond, lower sequence', '5-0', '5-1', -1],
    ['the same millisecond, higher sequence', '5-10', '5-9', 1],
    ['numbers, not text ("10" after "9")', '10-0', '9-0', 1],
    ['equal cursors', '7-3', '7-3', 0],
    ['a bare time and its -0 form', '7', '7-0', 0],
    ['a zero-padded part', '007-01', '7-1', 0],
  ])('orders %s', (_label, a, b, sign) => {
    // Act
    const order = compareCursors(a, b);

    // Assess
    expect(Math.sign(order)).toBe(sign);
  });

  it('orders any two accepted cursors as their (ms, seq) pairs, up to 16 digits', () => {
    fc.assert(
      fc.property(part, part, part, part, (ams, aseq, bms, bseq) => {
        // Prepare
        const expected = ams === bms ? Math.sign(Number(aseq - bseq)) : ams < bms ? -1 : 1;

        // Act
        const order = compareCursors(cursorOf(ams, aseq), cursorOf(bms, bseq));

        // Assess
        expect(Math.sign(order)).toBe(expected);
      }),
    );
  });

  it('tells apart cursors that differ only beyond 2^53', () => {
    // Act
    const order = compareCursors('9007199254740993-0', '9007199254740992-0');

    // Assess
    expect(order).toBeGreaterThan(0);
  });

  it('refuses to compare a non-cursor', () => {
    // Act + Assess
    expect(() => compareCursors('1-0', 'later')).toThrow(ValidationError);
  });
});

describe('normalizeCursor', () => {
  it.each([
    ['0', '0-0'],
    ['1732752000000', '1732752000000-0'],
    ['1732752000000-7', '1732752000000-7'],
    ['0001-002', '1-2'],
  ])('writes %s as %s', (value, normalized) => {
    // Act + Assess
    expect(normalizeCursor(value)).toBe(normalized);
  });

  it('yields a cursor that is still a cursor and compares equal to the input, for any accepted cursor', () => {
    fc.assert(
      fc.property(part, fc.option(part, { nil: undefined }), (ms, seq) => {
        // Prepare
        const value = seq === undefined ? `${ms}` : cursorOf(ms, seq);

        // Act
        const normalized = normalizeCursor(value);

        // Assess
        expect(normalized).toBe(cursorOf(ms, seq ?? 0n));
        expect(isCursor(normalized)).toBe(true);
        expect(compareCursors(normalized, value)).toBe(0);
      }),
    );
  });
});
