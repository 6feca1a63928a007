/**
 * `pushwire/delta`: delta topics for the pushwire client (issue 17,
 * docs/clients.md#delta-topics). A separate import, so apps that use no
 * delta topics do not download it:
 *
 *   import { Pushwire } from 'pushwire/client';
 *   import { fossilDelta } from 'pushwire/delta';
 *   const pw = new Pushwire({ url, token, delta: fossilDelta });
 *
 * Keeps each topic's newest message (as its JSON text, taken before the app
 * sees the object, so an app changing it cannot change the base) and turns
 * delta frames into whole messages with fossil-delta (the format of
 * Centrifugo's clients). The delta is over the UTF-8 bytes of the two JSON
 * texts, carried as a string of one character per byte (docs/protocol.md
 * PW-D3). A delta whose base is not the message held, that does not apply,
 * whose checksum fails, or that is not UTF-8 JSON is refused: the library
 * then fetches the message whole and never hands over corrupt data.
 */
import { applyDelta } from 'fossil-delta';
import type { DeltaApplier, Frame } from './pushwire.js';

/** `<ms>-<seq>` as two numbers (stream ids: ms fit a double exactly). */
const key = (cursor: string) => cursor.split('-').map(Number) as [number, number];
const after = (a: string, b: string) => {
  const [am, as] = key(a);
  const [bm, bs] = key(b);
  return am > bm || (am === bm && as > bs);
};
/** A string's UTF-8 bytes (no TextEncoder needed: React Native's Hermes lacks TextDecoder). */
const bytes = (binary: string): Uint8Array => {
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    const c = binary.charCodeAt(i);
    if (c > 255) throw new Error('not a byte string');
    out[i] = c;
  }
  return out;
};
const toUtf8 = (text: string) => bytes(unescape(encodeURIComponent(text)));
/** Throws (URIError) on bytes that are not UTF-8. */
const fromUtf8 = (data: Uint8Array) => {
  let binary = '';
  for (let i = 0; i < data.length; i += 8192)
    binary += String.fromCharCode(...data.subarray(i, i + 8192));
  return decodeURIComponent(escape(binary));
};

/** The `delta` option of `new Pushwire(…)`: one applier per client. */
export function fossilDelta(): DeltaApplier {
  /** Per topic: the cursor and JSON text of the newest message held. */
  const held: Record<string, [string, string]> = Object.create(null);
  return (frame: Frame): boolean => {
    const { topic, cursor, delta } = frame;
    // Deltas come only on a topic's stored messages; anything else is left as it is.
    if (topic === undefined || cursor === undefined || frame.ephemeral) return !delta;
    let text: string;
    if (delta) {
      const base = held[topic];
      if (!base || base[0] !== delta.base || typeof frame.data !== 'string') return false;
      try {
        text = fromUtf8(applyDelta(toUtf8(base[1]), bytes(frame.data)));
        frame.data = JSON.parse(text);
      } catch {
        return false;
      }
      delete frame.delta;
    } else {
      text = JSON.stringify(frame.data);
    }
    const current = held[topic];
    if (!current || after(cursor, current[0])) held[topic] = [cursor, text];
    return true;
  };
}
