import { ValidationError } from '../errors.js';

/**
 * A cursor is a Redis stream entry id, `<ms>-<seq>`: a position in one user's
 * or one topic's history. `0` (or `0-0`) means "from the beginning".
 */
export interface Cursor {
  ms: number;
  seq: number;
}

const CURSOR = /^(\d{1,16})(?:-(\d{1,16}))?$/;

export function isCursor(value: string): boolean {
  return CURSOR.test(value);
}

/** The two parts of a cursor, exact: 16 digits overflow a double's 2^53. */
function cursorParts(value: string): [ms: bigint, seq: bigint] {
  const match = CURSOR.exec(value);
  if (!match)
    throw new ValidationError(`"${value}" is not a cursor (expected <ms>-<seq>)`, 'invalid_cursor');
  return [BigInt(match[1] as string), BigInt(match[2] ?? 0)];
}

export function parseCursor(value: string): Cursor {
  const [ms, seq] = cursorParts(value);
  return { ms: Number(ms), seq: Number(seq) };
}

export function compareCursors(a: string, b: string): number {
  const [ams, aseq] = cursorParts(a);
  const [bms, bseq] = cursorParts(b);
  if (ams !== bms) return ams < bms ? -1 : 1;
  return aseq === bseq ? 0 : aseq < bseq ? -1 : 1;
}

export function normalizeCursor(value: string): string {
  const [ms, seq] = cursorParts(value);
  return `${ms}-${seq}`;
}
