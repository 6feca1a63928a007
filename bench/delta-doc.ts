/**
 * The delta-topic workload (issue 17): a ~100 KB JSON document of which
 * about 1 % changes per message, and what a message of it costs on the wire,
 * whole and as a fossil delta. Pure functions (no Redis, no network): the
 * `delta` bench section and the `cost` model both use them.
 */
import { createDelta } from 'fossil-delta';
import { prng } from '../test/helpers/prng.js';

/** API Gateway bills a WebSocket message in 32 KB units (PRICES.apigw_message_unit_bytes). */
export const UNIT_BYTES = 32 * 1024;
export const billedUnits = (bytes: number): number => Math.max(1, Math.ceil(bytes / UNIT_BYTES));

const random = prng;

export interface Row {
  id: string;
  name: string;
  price: number;
  stock: number;
  tags: string[];
  updated: string;
}

/** A catalogue-like document of `rows` rows (~100 KB at 800 rows). */
export function document(rows = 800, seed = 1): { rows: Row[]; version: number } {
  const r = random(seed);
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india'];
  const pick = () => words[Math.floor(r() * words.length)] as string;
  return {
    version: 0,
    rows: Array.from({ length: rows }, (_, i) => ({
      id: `sku-${String(i).padStart(5, '0')}`,
      name: `${pick()} ${pick()} ${pick()}`,
      price: Math.round(r() * 100_000) / 100,
      stock: Math.floor(r() * 1000),
      tags: [pick(), pick()],
      updated: new Date(1_700_000_000_000 + Math.floor(r() * 1e9)).toISOString(),
    })),
  };
}

/**
 * `count` successive versions of the document, each changing ~1 % of its
 * bytes: a few rows get a new price, stock and timestamp.
 */
export function series(count: number, rows = 800, seed = 1): string[] {
  const doc = document(rows, seed);
  const r = random(seed + 1);
  const out = [JSON.stringify(doc)];
  // ~1 % of the bytes: each touched row changes ~75 of its ~135 bytes.
  const touched = Math.max(1, Math.round(rows * 0.0175));
  for (let n = 1; n < count; n++) {
    doc.version = n;
    for (let k = 0; k < touched; k++) {
      const row = doc.rows[Math.floor(r() * rows)] as Row;
      row.price = Math.round(r() * 100_000) / 100;
      row.stock = Math.floor(r() * 1000);
      row.updated = new Date(1_800_000_000_000 + n * 1000 + k).toISOString();
    }
    out.push(JSON.stringify(doc));
  }
  return out;
}

/**
 * Share of a version's bytes that changed: per row, the span between its
 * first and last character that differ from the row before, summed.
 */
export function changedShare(a: string, b: string): number {
  const before = (JSON.parse(a) as { rows: Row[] }).rows.map((r) => JSON.stringify(r));
  const after = (JSON.parse(b) as { rows: Row[] }).rows.map((r) => JSON.stringify(r));
  let changed = 0;
  after.forEach((row, i) => {
    const old = before[i] ?? '';
    if (row === old) return;
    let start = 0;
    while (row[start] === old[start]) start++;
    let end = 0;
    while (end < row.length - start && row[row.length - 1 - end] === old[old.length - 1 - end])
      end++;
    changed += row.length - start - end;
  });
  return changed / b.length;
}

/** A fossil delta as the wire carries it: its bytes as a JSON string, one char per byte (docs/protocol.md PW-D3). */
export function deltaText(base: string, next: string): string {
  return Buffer.from(createDelta(Buffer.from(base), Buffer.from(next))).toString('latin1');
}

const frameHead = (cursor: string) =>
  `{"type":"message","id":"0f8fad5b-d9cb-469f-a165-70867728950e","topic":"doc:catalogue","cursor":${JSON.stringify(cursor)}`;

/** A whole message frame's bytes. */
export const plainFrameBytes = (dataJson: string): number =>
  Buffer.byteLength(`${frameHead('1765000000000-0')},"data":${dataJson}}`);

/** A delta message frame's bytes (PW-D3). */
export const deltaFrameBytes = (delta: string): number =>
  Buffer.byteLength(
    `${frameHead('1765000000001-0')},"delta":{"base":"1765000000000-0"},"data":${JSON.stringify(delta)}}`,
  );

export interface DeltaCost {
  /** Bytes of the document (compact JSON). */
  document_bytes: number;
  /** Mean share of its bytes a message changes. */
  changed_share: number;
  plain_frame_bytes: number;
  delta_frame_bytes: number;
  plain_units: number;
  delta_units: number;
}

/**
 * Bytes and billed 32 KB units per message, whole versus delta, over
 * `count` successive versions of the ~100 KB document (means; units are
 * billed per message, so they are summed per message, then averaged).
 * For the `cost` model: multiply by the delta share of its deliveries.
 */
export function deltaCostPerMessage(count = 20, rows = 800): DeltaCost {
  const docs = series(count + 1, rows);
  let plain = 0;
  let delta = 0;
  let plainUnits = 0;
  let deltaUnits = 0;
  let changed = 0;
  for (let i = 1; i < docs.length; i++) {
    const p = plainFrameBytes(docs[i] as string);
    const d = deltaFrameBytes(deltaText(docs[i - 1] as string, docs[i] as string));
    plain += p;
    delta += d;
    plainUnits += billedUnits(p);
    deltaUnits += billedUnits(d);
    changed += changedShare(docs[i - 1] as string, docs[i] as string);
  }
  return {
    document_bytes: Buffer.byteLength(docs[0] as string),
    changed_share: changed / count,
    plain_frame_bytes: Math.round(plain / count),
    delta_frame_bytes: Math.round(delta / count),
    plain_units: plainUnits / count,
    delta_units: deltaUnits / count,
  };
}

export interface LibraryRow {
  library: string;
  /** Mean bytes of what travels instead of the document. */
  delta_bytes: number;
  create_ms: number;
  apply_ms: number;
  /** The client code that applies it, minified and gzipped (bytes). */
  client_gzip_bytes: number;
}

const timed = (fn: () => void, runs: number): number => {
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) fn();
  return (performance.now() - t0) / runs;
};

/**
 * Measures before choosing (issue 17): fossil-delta against a line diff
 * (jsdiff's unified patch of the document printed one value per line, the
 * nearest installed alternative: no JSON-patch library is) and against
 * gzip of the whole document (what compression alone would save; API
 * Gateway bills the uncompressed frame, and compresses nothing itself).
 * `clientGzip`: min+gzip bytes of each apply side, measured by the caller
 * (esbuild is a dev tool the pure part does not import).
 */
export async function compareDeltaLibraries(
  clientGzip: Record<string, number>,
  count = 10,
): Promise<LibraryRow[]> {
  const { applyDelta } = await import('fossil-delta');
  // `diff` ships no types (and @types/diff is not installed): the two calls used.
  const { applyPatch, createPatch } = (await import('diff' as string)) as {
    createPatch(name: string, a: string, b: string, h1: string, h2: string, o: object): string;
    applyPatch(source: string, patch: string): string | false;
  };
  const { gzipSync, gunzipSync } = await import('node:zlib');
  const docs = series(count + 1);
  const pairs = docs.slice(1).map((next, i) => [docs[i] as string, next] as const);
  const lines = (json: string) => JSON.stringify(JSON.parse(json), null, 1);
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const rows: LibraryRow[] = [];

  /** Mean ms of fn per item, over `runs` passes (after one warm-up pass). */
  const each = <T>(items: readonly T[], fn: (item: T, i: number) => unknown, runs: number) => {
    const pass = () => {
      items.forEach((item, i) => {
        fn(item, i);
      });
    };
    pass();
    return round2(timed(pass, runs) / items.length);
  };

  const fossil = pairs.map(([a, b]) => deltaText(a, b));
  rows.push({
    library: 'fossil-delta 2.0 (bytes as latin1 JSON string)',
    delta_bytes: mean(fossil.map((d) => Buffer.byteLength(JSON.stringify(d)))),
    create_ms: each(pairs, ([a, b]) => deltaText(a, b), 3),
    apply_ms: each(
      pairs,
      ([a], i) => applyDelta(Buffer.from(a), Buffer.from(fossil[i] as string, 'latin1')),
      3,
    ),
    client_gzip_bytes: clientGzip['fossil'] ?? 0,
  });

  const pretty = pairs.map(([a, b]) => [lines(a), lines(b)] as const);
  const patches = pretty.map(([a, b]) => createPatch('d', a, b, '', '', { context: 0 }));
  rows.push({
    library: 'diff (jsdiff) 5.2 unified patch, one value per line',
    delta_bytes: mean(patches.map((p) => Buffer.byteLength(JSON.stringify(p)))),
    create_ms: each(pretty, ([a, b]) => createPatch('d', a, b, '', '', { context: 0 }), 1),
    apply_ms: each(pretty, ([a], i) => applyPatch(a, patches[i] as string), 3),
    client_gzip_bytes: clientGzip['jsdiff'] ?? 0,
  });

  const zipped = pairs.map(([, b]) => gzipSync(b, { level: 9 }));
  rows.push({
    library: 'gzip -9 of the whole document (no delta)',
    delta_bytes: mean(zipped.map((z) => z.length)),
    create_ms: each(pairs, ([, b]) => gzipSync(b, { level: 9 }), 1),
    apply_ms: each(zipped, (z) => gunzipSync(z), 3),
    client_gzip_bytes: clientGzip['gzip'] ?? 0,
  });
  // Both deltas must give the document back exactly.
  pairs.forEach(([a, b], i) => {
    const f = Buffer.from(applyDelta(Buffer.from(a), Buffer.from(fossil[i] as string, 'latin1')));
    if (f.toString() !== b) throw new Error('fossil-delta did not give the document back');
    if (
      applyPatch((pretty[i] as [string, string])[0], patches[i] as string) !==
      (pretty[i] as [string, string])[1]
    )
      throw new Error('jsdiff did not give the document back');
  });
  return rows;
}
