/** Prints the cost section (bench/cost.ts) as text for the terminal and as Markdown for BENCHMARKS.md. */
import type { CostResult } from './cost.js';
import { type CostLine, framesFor } from './cost-model.js';
import { PRICE_LIST_DATE, PRICES, type Price, PUSHER_PLANS } from './cost-prices.js';

const n = (x: number, digits = 0) =>
  x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
/** A share as a percentage, with a decimal below 1 %. */
const pct = (share: number) => n(share * 100, share > 0 && share < 0.01 ? 1 : 0);
const usd = (x: number | null) =>
  x === null ? 'not priced' : `$${x < 0.01 && x > 0 ? x.toFixed(4) : n(x, 2)}`;

function rows(
  r: CostResult,
): { title: string; headers: string[]; rows: string[][]; after: string[] }[] {
  const p = r.report;
  const w = p.workload;
  const line = (l: CostLine) => [l.item, n(l.quantity), l.unit, usd(l.usd), l.basis];
  const measured = r.measured
    ? Object.entries(r.measured.ops).map(([name, m]) => [
        name,
        n(m?.commands ?? 0, 2),
        n(m?.round_trips ?? 0, 1),
        n(m?.cpu_ms ?? 0, 3),
        n(m?.wall_ms ?? 0, 3),
        n(m?.runs ?? 0),
      ])
    : [];
  return [
    {
      title: `Cost per 1 M deliveries: ${w.name} (price list of ${PRICE_LIST_DATE}, us-east-1)`,
      headers: ['item', 'quantity', 'unit', 'cost', 'basis'],
      rows: [...p.lines.map(line), ['**total**', '', '', `**${usd(p.totalPer1M)}**`, '']],
      after: [
        `workload: ${n(w.connections)} connections of ${n(w.sessionMinutes)} min, ${n(w.publishesPerMinute)} publishes/min, sizes ${w.sizes.map((s) => `${n(s.bytes)} B × ${pct(s.share)} %`).join(', ')}; audiences ${w.audiences.map((a) => `${a.kind} of ${n(a.recipients)} × ${pct(a.share)} %`).join(', ')}; acked ${pct(w.ackedShare)} % (timeouts fire for ${pct(w.ackTimeoutShare)} %), delta ${pct(w.deltaShare)} %, ${w.messagesPerFrame} message(s) per frame; ping every ${w.pingIntervalSeconds} s, ${w.subscribesPerConnection} subscribes per connection`,
        `= ${n(p.deliveriesPerMinute)} deliveries a minute: 1 M deliveries are ${n(p.minutesPer1M, 1)} minutes of this app; per 1 M deliveries ${n(p.posts)} management API posts and ${n(p.redisCommands)} Redis commands`,
        `a month (${w.monthDays} days): ${n(p.monthly.deliveries)} deliveries, ${usd(p.monthly.usage)} usage + ${usd(p.monthly.fixed)} fixed (${p.monthly.fixedHow}) = **${usd(p.monthly.total)}**`,
      ],
    },
    {
      title: 'Lambda per function, per 1 M deliveries',
      headers: ['function', 'requests', 'GB-s', 'billed ms per invocation', 'basis'],
      rows: p.lambda.map((l) => [
        l.fn,
        n(l.requests),
        n(l.gbSeconds, 1),
        n(l.msPerInvocation, 1),
        l.basis,
      ]),
      after: [
        `billed ms = CPU ms measured on this machine × ${n(p.inputs.cpuStretch.value, 2)} (Lambda's share of a vCPU at ${p.inputs.lambdaMemoryMb.value} MB) + Redis round trips × ${p.inputs.redisRttMs.value} ms + post waves (${p.inputs.fanoutConcurrency.value} in flight) × ${p.inputs.postLatencyMs.value} ms, rounded up to 1 ms`,
      ],
    },
    {
      title: 'The same workload elsewhere (list prices)',
      headers: ['service', 'per 1 M deliveries', 'per month', 'how'],
      rows: [
        [
          '**pushwire**',
          `**${usd(p.totalPer1M)}**`,
          `**${usd(p.monthly.total)}**`,
          'the table above',
        ],
        ...p.competitors.map((c) => [c.name, usd(c.per1M), usd(c.monthly), c.how]),
      ],
      after: p.competitors.flatMap((c) => c.caveats.map((x) => `${c.name}: ${x}`)),
    },
    {
      title: `1 M acknowledged messages (issue 18): what they add, ${p.acked.note}`,
      headers: ['item', 'quantity', 'unit', 'cost', 'basis'],
      rows: [
        ...p.acked.lines.map(line),
        ['**total**', '', '', `**${usd(p.acked.totalPer1M)}**`, ''],
      ],
      after: [],
    },
    {
      title: 'Measured per operation (real code paths in-process, private redis-server)',
      headers: [
        'operation',
        'Redis commands',
        'round trips',
        'CPU ms (mean)',
        'wall ms on loopback (median)',
        'runs',
      ],
      rows: measured,
      after: r.measured
        ? [
            `frame overhead: ${r.measured.frame_overhead_bytes} bytes around the data (measured from messageFrame); 1-minute load average ${r.measured.loadavg[0]} before, ${r.measured.loadavg[1]} after (CPU ms rise with other work on this shared 2-core machine)`,
            `commands: ${Object.entries(r.measured.command_mix)
              .map(
                ([op, mix]) =>
                  `${op}: ${Object.entries(mix)
                    .map(([c, k]) => `${c} ${k}`)
                    .join(', ')}`,
              )
              .join('; ')}`,
          ]
        : [
            'nothing measured: REDIS_URL is not a private redis-server (INFO commandstats would count others)',
          ],
    },
    {
      title:
        'Large messages: parts from the real splitter (partFrames, lib/delivery/parts.ts) on catalogue JSON, and what the model makes of the same size',
      headers: [
        'data bytes',
        'parts',
        'bytes posted',
        '32 KB units',
        'model: parts',
        'model: units',
        'model: bytes',
      ],
      rows: (r.measured?.parts ?? []).map((x) => {
        const m = framesFor(x.data_bytes, p.inputs);
        return [
          n(x.data_bytes),
          n(x.parts),
          n(x.bytes_posted),
          n(x.units),
          n(m.posts),
          n(m.units),
          n(m.bytes),
        ];
      }),
      after: r.measured?.parts
        ? [
            `a full part carries ${n(p.inputs.largePartBytes.value)} bytes of the frame's text in ${n(p.inputs.largePartBytes.value + p.inputs.largePartOverheadBytes.value)} bytes (its quotes escaped inside the part's JSON string): the model's largePartBytes and largePartOverheadBytes`,
          ]
        : [],
    },
    {
      title: 'Other measured inputs',
      headers: [],
      rows: [],
      after: Object.entries(p.inputs)
        .filter(
          ([name, f]) =>
            name !== 'ops' &&
            typeof f === 'object' &&
            (f as { source?: string }).source === 'measured',
        )
        .map(([name, f]) => {
          const x = f as { value: number; note: string };
          return `${name} = ${x.value} (${x.note})`;
        }),
    },
  ];
}

/** A price as people read it: "$0.25 per million", "$29", "not found", or "—" (not a price). */
function priceText(p: Price): string {
  if (p.usd === null)
    return p.quote.startsWith('not found') || ('note' in p && p.note?.includes('not found'))
      ? 'not found (left out)'
      : '(see the note)';
  const small = p.usd < 0.001;
  return `$${Number((small ? p.usd * 1e6 : p.usd).toPrecision(6))}${small ? ' per million' : ''}`;
}

export function costText(r: CostResult): string {
  const out: string[] = [];
  for (const s of rows(r)) {
    if (s.rows.length === 0 && s.after.length === 0) continue;
    out.push(s.title.replaceAll('**', ''));
    const widths = s.headers.map((h, i) =>
      Math.max(h.length, ...s.rows.map((row) => (row[i] ?? '').replaceAll('**', '').length)),
    );
    for (const row of s.rows.length > 0 ? [s.headers, ...s.rows] : [])
      out.push(
        `  ${row
          .map((c, i) => {
            const text = c.replaceAll('**', '');
            return i === 0 ? text.padEnd(widths[i] ?? 0) : text.padStart(widths[i] ?? 0);
          })
          .join('  ')}`,
      );
    for (const a of s.after) out.push(`  ${a.replaceAll('**', '')}`);
    out.push('');
  }
  out.push(`Prices (read ${PRICE_LIST_DATE}; sources in bench/cost-prices.ts and BENCHMARKS.md):`);
  for (const [name, p] of Object.entries(PRICES))
    out.push(`  ${name}: ${priceText(p)} — ${p.unit}`);
  out.push('');
  out.push('Assumed (not measured here; pass --inputs=<file> with measured figures):');
  for (const a of r.report.assumed) out.push(`  - ${a}`);
  return out.join('\n');
}

export function costMarkdown(r: CostResult, date: string): string {
  const out: string[] = [
    `Generated by \`npm run bench -- --only=cost\` on ${date}; prices read ${PRICE_LIST_DATE} (sources below).`,
    '',
  ];
  for (const s of rows(r)) {
    if (s.rows.length === 0 && s.after.length === 0) continue;
    out.push(`#### ${s.title}`, '');
    if (s.rows.length > 0) {
      out.push(`| ${s.headers.join(' | ')} |`);
      // Numbers (and $ amounts) right-aligned, words left.
      const numeric = (i: number) =>
        i > 0 && s.rows.every((row) => /^(\*\*)?[$\d-]|^$/.test(row[i] ?? ''));
      out.push(`|${s.headers.map((_, i) => (numeric(i) ? ' ---: ' : ' --- ')).join('|')}|`);
      for (const row of s.rows) out.push(`| ${row.join(' | ')} |`);
      out.push('');
    }
    for (const a of s.after) out.push(`- ${a}`);
    if (s.after.length > 0) out.push('');
  }
  out.push('#### Assumed figures (not measured on this branch)', '');
  for (const a of r.report.assumed) out.push(`- ${a}`);
  out.push('', '#### Price list', '');
  out.push('| price | $ | unit | source | quoted | read |');
  out.push('| --- | ---: | --- | --- | --- | --- |');
  for (const [name, p] of Object.entries(PRICES)) {
    out.push(
      `| ${name} | ${priceText(p)} | ${p.unit} | ${p.source} (${p.hand}) | ${p.quote.replaceAll('|', '\\|')}${'note' in p && p.note ? ` — ${p.note.replaceAll('|', '\\|')}` : ''} | ${p.read} |`,
    );
  }
  out.push(
    '',
    `Pusher Channels plans used (${PRICES.pusherPlans.source}, ${PRICES.pusherPlans.hand}):`,
    '',
  );
  out.push('| plan | $ a month | messages a day | concurrent connections |');
  out.push('| --- | ---: | ---: | ---: |');
  for (const plan of PUSHER_PLANS)
    out.push(
      `| ${plan.name} | ${n(plan.usdMonth)} | ${n(plan.messagesPerDay)} | ${n(plan.connections)} |`,
    );
  return out.join('\n');
}
