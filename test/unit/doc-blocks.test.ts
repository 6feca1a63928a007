/**
 * How the docs test reads README.md and docs/*.md (test/helpers/doc-blocks.ts):
 * markers, defaults, and the blocks it refuses to guess about.
 */
import { describe, expect, it } from 'vitest';
import { docBlocks, parseMarker } from '../helpers/doc-blocks.js';

describe('doc-test markers', () => {
  it('reads run, background and their quoted texts (JSON strings)', () => {
    expect(parseMarker(' run aws-cli-v2 expect "\\"delivered\\":1" expect "x" ')).toMatchObject({
      mode: 'run',
      awsCliV2: true,
      expect: ['"delivered":1', 'x'],
    });
    expect(parseMarker('background until "up" then "a b" then "c"')).toMatchObject({
      mode: 'background',
      until: 'up',
      later: ['a b', 'c'],
    });
    expect(parseMarker('deploy-only (a deployed stack)')).toMatchObject({
      mode: 'deploy-only',
      note: '(a deployed stack)',
    });
  });

  it('refuses unknown modes, a background without until, and words that do not fit', () => {
    expect(() => parseMarker('skip')).toThrow('unknown doc-test mode "skip"');
    expect(() => parseMarker('background then "x"')).toThrow('background needs until');
    expect(() => parseMarker('run until "x"')).toThrow('"until" does not go with run');
    expect(() => parseMarker('run expect x')).toThrow('"expect" needs a quoted text');
  });

  it('runs an unmarked sh or ts block, and refuses an unmarked block of another kind', () => {
    const text = [
      '```sh',
      'echo hi',
      '```',
      '',
      '<!-- doc-test: format -->',
      '```json',
      '{}',
      '```',
    ].join('\n');
    const blocks = docBlocks('x.md', text);
    expect(blocks.map((b) => [b.line, b.lang, b.mode, b.code])).toEqual([
      [1, 'sh', 'run', 'echo hi\n'],
      [6, 'json', 'format', '{}\n'],
    ]);
    expect(() => docBlocks('y.md', 'text\n\n```json\n{}\n```\n')).toThrow(
      'y.md:3: a ```json block needs a <!-- doc-test: … --> marker',
    );
  });
});
