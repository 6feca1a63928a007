import { createDelta } from 'fossil-delta';

/**
 * Delta topics (issue 17, docs/protocol.md PW-D): a message's `data` as a
 * fossil delta against the previous entry of its topic's stream, computed
 * once per publish. The delta is made over the UTF-8 bytes of the two JSON
 * texts and carried as a JSON string of one character per byte (U+0000 to
 * U+00FF): fossil inserts raw byte runs that may cut a multi-byte character,
 * so decoding them as UTF-8 (fossil-delta's createStringDelta) would
 * corrupt non-ASCII data.
 *
 * Undefined when the previous entry is unreadable, or when the delta would
 * not be smaller than the data itself: those subscribers get the whole
 * message (always correct).
 */
export function deltaOf(previousEntry: string, dataJson: string): string | undefined {
  // A history entry is {"id":…,"from"?:…,"data":…} with `data` last, as
  // publish wrote it: its text is the data text the subscriber was sent.
  // (`,"data":` cannot occur inside the id or from strings: a quote in a
  // JSON string is escaped.) Anything else is parsed and serialised again
  // (stringify∘parse∘stringify is stringify).
  const at = previousEntry.indexOf(',"data":');
  let base: string | undefined;
  if (at > 0 && previousEntry.endsWith('}')) base = previousEntry.slice(at + 8, -1);
  else
    try {
      base = JSON.stringify((JSON.parse(previousEntry) as { data: unknown }).data);
    } catch {
      return undefined;
    }
  if (base === undefined) return undefined;
  const delta = Buffer.from(createDelta(Buffer.from(base), Buffer.from(dataJson))).toString(
    'latin1',
  );
  return Buffer.byteLength(JSON.stringify(delta)) < Buffer.byteLength(dataJson) ? delta : undefined;
}
