/**
 * The built client as apps get it (npm run build:client): one ESM file, no
 * imports, nothing React Native's Hermes cannot parse, within the issue's
 * 5 KB min+gzip budget. BENCHMARKS.md quotes the size this prints.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bundleClient, CLIENT_SIZE_LIMIT, gzipSize } from '../../scripts/build-client.js';

describe('client bundle', () => {
  it('is one dependency-free ES module within 5 KB min+gzip', async () => {
    // Act
    const code = await bundleClient();
    const gzip = gzipSize(code);
    console.log(`client bundle: ${Buffer.byteLength(code)} bytes minified, ${gzip} bytes min+gzip`);

    // Assess
    expect(gzip).toBeLessThanOrEqual(CLIENT_SIZE_LIMIT);
    // Nothing to resolve at run time: no import or require of anything.
    expect(code).not.toMatch(/\bimport\s*[({"'\w*]|\brequire\s*\(/);
    // No `#private` fields or static blocks (Hermes), no `process`/`Buffer` (browsers).
    expect(code).not.toMatch(/#|static\s*\{|\bprocess\.|\bBuffer\b/);

    const dir = mkdtempSync(join(tmpdir(), 'pushwire-client-'));
    try {
      writeFileSync(join(dir, 'pushwire.js'), code);
      const loaded = (await import(pathToFileURL(join(dir, 'pushwire.js')).href)) as Record<
        string,
        unknown
      >;
      expect(Object.keys(loaded).sort()).toEqual(['Pushwire', 'compareCursors']);
      expect(typeof loaded['Pushwire']).toBe('function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
