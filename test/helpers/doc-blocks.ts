import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The fenced code blocks of README.md and docs/*.md, each with what the docs
 * test (test/e2e/docs.test.ts) does with it. A block is preceded by a marker
 * comment, on the line right before its fence:
 *
 *   <!-- doc-test: run expect "text" -->        run to completion (exit 0); its output holds "text"
 *   <!-- doc-test: background until "a" then "b" -->   started and left running once it printed "a";
 *                                                 it must print "b" before the file's examples end
 *   <!-- doc-test: deploy-only (why) -->         needs an AWS account: not run here
 *   <!-- doc-test: setup (why) -->               what the harness itself does (npm ci, npm start)
 *   <!-- doc-test: ci -->                        test commands: checked against package.json and .ci/run
 *   <!-- doc-test: format -->                    not a command: a payload, frame or layout shown
 *   <!-- doc-test: covered-by test/e2e/x.test.ts -->   run by that test (e.g. a second npm start)
 *
 * `aws-cli-v2` after `run` says the command needs AWS CLI v2. Quoted texts are
 * JSON strings (escape `"` as `\"`). A sh/ts/js block without a marker is run
 * with no expectation; any other block without one is an error.
 */
export type Mode = 'run' | 'background' | 'deploy-only' | 'setup' | 'ci' | 'format' | 'covered-by';

export interface DocBlock {
  /** README.md or docs/x.md. */
  file: string;
  /** Line of the opening fence (1-based). */
  line: number;
  lang: string;
  code: string;
  mode: Mode;
  expect: string[];
  until?: string;
  /** Texts a background block must print before its file ends (`then "…"` in the marker). */
  later: string[];
  awsCliV2: boolean;
  /** For covered-by: the test file; else the note after the mode. */
  note: string;
}

const MODES = new Set<Mode>([
  'run',
  'background',
  'deploy-only',
  'setup',
  'ci',
  'format',
  'covered-by',
]);
export const RUNNABLE = new Set(['sh', 'bash', 'shell', 'ts', 'typescript', 'js', 'javascript']);
const QUOTED = /"(?:\\.|[^"\\])*"/y;

/** Parses one marker's text (what follows `doc-test:`). */
export function parseMarker(text: string): Omit<DocBlock, 'file' | 'line' | 'lang' | 'code'> {
  const trimmed = text.trim();
  const mode = trimmed.split(/\s+/)[0] as Mode;
  if (!MODES.has(mode)) throw new Error(`unknown doc-test mode "${mode}"`);
  const rest = trimmed.slice(mode.length).trim();
  const block = {
    mode,
    expect: [] as string[],
    later: [] as string[],
    awsCliV2: false,
    note: rest,
  } as Omit<DocBlock, 'file' | 'line' | 'lang' | 'code'>;
  if (mode !== 'run' && mode !== 'background') return block;
  let i = 0;
  const skipSpace = () => {
    while (i < rest.length && /\s/.test(rest[i] as string)) i++;
  };
  for (skipSpace(); i < rest.length; skipSpace()) {
    const word = /^[a-z-0-9]+/.exec(rest.slice(i))?.[0];
    if (!word) throw new Error(`doc-test marker: cannot read "${rest.slice(i)}"`);
    i += word.length;
    if (word === 'aws-cli-v2') {
      block.awsCliV2 = true;
      continue;
    }
    skipSpace();
    QUOTED.lastIndex = i;
    const quoted = QUOTED.exec(rest)?.[0];
    if (!quoted) throw new Error(`doc-test marker: "${word}" needs a quoted text`);
    i += quoted.length;
    const value = JSON.parse(quoted) as string;
    if (word === 'expect' && mode === 'run') block.expect.push(value);
    else if (word === 'until' && mode === 'background') block.until = value;
    else if (word === 'then' && mode === 'background') block.later.push(value);
    else throw new Error(`doc-test marker: "${word}" does not go with ${mode}`);
  }
  if (mode === 'background' && block.until === undefined)
    throw new Error('doc-test marker: background needs until "…"');
  return block;
}

/** The code blocks of one Markdown file, with their markers. */
export function docBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*([\w-]*)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const [, indent, fence, lang = ''] = open;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && (lines[i] as string).trim() !== fence; i++)
      body.push((lines[i] as string).slice((indent as string).length));
    let j = start - 1;
    while (j >= 0 && (lines[j] as string).trim() === '') j--;
    const marker = /^\s*<!--\s*doc-test:(.*?)-->\s*$/.exec(lines[j] ?? '');
    const where = `${file}:${start + 1}`;
    let parsed: ReturnType<typeof parseMarker>;
    try {
      if (marker) parsed = parseMarker(marker[1] as string);
      else if (RUNNABLE.has(lang))
        parsed = { mode: 'run', expect: [], later: [], awsCliV2: false, note: '' };
      else
        throw new Error(
          `a \`\`\`${lang || '(no language)'} block needs a <!-- doc-test: … --> marker`,
        );
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`);
    }
    blocks.push({ file, line: start + 1, lang, code: `${body.join('\n')}\n`, ...parsed });
  }
  return blocks;
}

/** README.md, then docs/*.md in name order: every document the test covers. */
export function documents(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

export function allBlocks(root: string): DocBlock[] {
  return documents(root).flatMap((file) => docBlocks(file, readFileSync(join(root, file), 'utf8')));
}
