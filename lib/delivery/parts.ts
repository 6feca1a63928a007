/**
 * A message frame larger than API Gateway's 128 KB as `part` frames
 * (PW-F6): each carries a slice of the frame's JSON text as a JSON string;
 * a client joins the slices of parts 0 … of-1 (by `id`) into the frame's
 * text. No dependencies: `$default` (replay) carries this file.
 */

/** Largest part frame: 1 KiB under API Gateway's 128 KB, however it counts a frame's overhead. */
export const PART_BYTES = 127 * 1024;

/**
 * The part frames of a message frame's `text` (of message `id`), each at most
 * `max` bytes. Slices are cut by what they weigh as JSON string contents
 * (UTF-8 bytes, `"` and `\` escaped), never between the two halves of a
 * surrogate pair, so each part is valid UTF-8 and JSON on its own. The
 * caller decides a frame is too large for one post (over 128 KB).
 */
export function splitFrame(id: string, text: string, max = PART_BYTES): Buffer[] {
  const key = JSON.stringify(id);
  const cuts = [0];
  weigh(text, 0, room(key, max), cuts);
  return cuts.map((at, n) => part(key, n, cuts.length, text.slice(at, cuts[n + 1])));
}

/**
 * splitFrame of `head + tail`, or undefined when that fits one post (at most
 * `whole` bytes). `memo` (one per `tail`): frames whose heads weigh the same
 * share every part after the first (a `deliver` chunk's jobs differ only in
 * the cursor, inside the head), so a 1 MiB message to many cursors is cut
 * once. The head must fit the first part (it is a few hundred bytes).
 */
export function partFrames(
  id: string,
  head: string,
  tail: string,
  whole: number,
  max = PART_BYTES,
  memo?: Map<number, [number, Buffer[]]>,
): Buffer[] | undefined {
  if (Buffer.byteLength(head) + Buffer.byteLength(tail) <= whole) return undefined;
  const key = JSON.stringify(id);
  const start = weigh(head, 0, room(key, max), []);
  let cut = memo?.get(start);
  if (!cut) {
    const cuts: number[] = [];
    weigh(tail, start, room(key, max), cuts);
    const of = cuts.length + 1;
    const rest = cuts.map((at, i) => part(key, i + 1, of, tail.slice(at, cuts[i + 1])));
    cut = [cuts[0] ?? tail.length, rest];
    memo?.set(start, cut);
  }
  const [first, rest] = cut;
  return [part(key, 0, rest.length + 1, head + tail.slice(0, first)), ...rest];
}

/** Bytes a part's data may weigh: `max` less the envelope with the longest n and of (7 digits). */
const room = (key: string, max: number) =>
  max - Buffer.byteLength(`{"type":"part","id":${key},"n":9999999,"of":9999999,"data":""}`);

const part = (key: string, n: number, of: number, slice: string) =>
  Buffer.from(`{"type":"part","id":${key},"n":${n},"of":${of},"data":${JSON.stringify(slice)}}`);

/**
 * Weighs `text` as JSON string contents from `used` bytes into the current
 * slice, pushing the index of each cut (where a new slice starts) to `cuts`;
 * answers the weight of the last slice.
 */
function weigh(text: string, used: number, room: number, cuts: number[]): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair is 4 bytes of UTF-8, never cut; a lone surrogate is escaped (\udxxx).
    const pair = (c & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    const w = pair
      ? 4
      : c === 34 || c === 92
        ? 2
        : c < 32 || (c & 0xf800) === 0xd800
          ? 6
          : c < 0x80
            ? 1
            : c < 0x800
              ? 2
              : 3;
    if (used + w > room) {
      cuts.push(i);
      used = 0;
    }
    used += w;
    if (pair) i++;
  }
  return used;
}
