/**
 * Summarises a `.cpuprofile` written by `npm run bench -- --profile --cpu-prof`
 * into where the fan-out's CPU goes, by category, as shares of the busy
 * (non-idle) time: `npx tsx bench/profile-summary.ts bench/profiles/<file>`.
 * Multiply a share by the measured CPU µs per post (printed by the profile
 * run) for µs per post. A sample is put in the first category (in the order
 * below) that any frame of its stack matches.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: [string, (f: CallFrame) => boolean][] = [
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['idle', (f) => f.functionName === '(idle)'],
  [
    'SigV4 signing (canonical request, hashes, HMACs, date)',
    (f) =>
      /^(signRequest|getSigningKey|getSignature|NodeSha256|#payloadHash|createHmac|createHash|hash|sign|authorization|#signingKey|#template|#amzDate|#clock|canonicalUri|canonicalPath|escapeUri|sigv4.*)$/.test(
        f.functionName,
      ) || /aws\/sigv4/.test(f.url),
  ],
  ['Redis (ioredis, registry)', (f) => /ioredis|registry/.test(f.url)],
  [
    'HTTP request out (ClientRequest, agent, headers, socket write)',
    (f) =>
      /^(ClientRequest|addRequest|onSocketNT|tickOnSocket|_flush|_storeHeader|setHeader|writev)$/.test(
        f.functionName,
      ),
  ],
  [
    'HTTP response in (socket read, parser, free socket)',
    (f) =>
      /^(socketOnData|parserOnIncomingClient|parserOnHeadersComplete|onStreamRead|emitFreeNT|onFree|responseOnEnd|responseKeepAlive|resOnFinish)$/.test(
        f.functionName,
      ),
  ],
];

const [file] = process.argv.slice(2);
if (!file) throw new Error('usage: tsx bench/profile-summary.ts <file.cpuprofile>');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const category = new Map<number, string>();
function classify(id: number): string {
  const known = category.get(id);
  if (known) return known;
  const frames: CallFrame[] = [];
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const node = byId.get(cur);
    if (node) frames.push(node.callFrame);
  }
  let found = 'other JS (publish, worker pool or p-map, promises, retry wrapper, timers)';
  for (const [name, test] of CATEGORIES) {
    if (frames.some(test)) {
      found = name;
      break;
    }
  }
  category.set(id, found);
  return found;
}

const totals = new Map<string, number>();
profile.samples.forEach((id, i) => {
  const name = classify(id);
  totals.set(name, (totals.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const busy = [...totals].filter(([k]) => k !== 'idle').reduce((s, [, t]) => s + t, 0);
console.log(`busy ${(busy / 1000).toFixed(0)} ms`);
for (const [name, t] of [...totals].sort((a, b) => b[1] - a[1])) {
  if (name === 'idle') continue;
  console.log(`${((100 * t) / busy).toFixed(1).padStart(5)} %  ${name}`);
}
