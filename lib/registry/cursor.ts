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

export function parseCursor(value: string): Cursor {
  const match = CURSOR.exec(value);
  if (!match)
    throw new ValidationError(`"${value}" is not a cursor (expected <ms>-<seq>)`, 'invalid_cursor');
  return { ms: Number(match[1]), seq: Number(match[2] ?? 0) };
}

export function compareCursors(a: string, b: string): number {
  const x = parseCursor(a);
  const y = parseCursor(b);
  return x.ms - y.ms || x.seq - y.seq;
}

export function normalizeCursor(value: string): string {
  const { ms, seq } = parseCursor(value);
  return `${ms}-${seq}`;
}
