/**
 * Turning a run's results into the stdout table, the targets check and bench/RESULTS.md.
 */
import { SYSTEMS, SYSTEM_LABELS } from './scenarios.mjs';

/** Systems Backchannel is divided by in the ratio columns: the peers, the baseline build and the variants. */
const PEERS = ['socketio', 'ws', 'backchannel-baseline', 'backchannel-nometrics', 'backchannel-tls'];

export function fmt(v, digits = 0) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);
const fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');

/**
 * Rows of the results table: scenario, metric, one column per system, then Backchannel / peer for
 * each peer (and Backchannel / its baseline build). For "lower is better" metrics a ratio below 1
 * favours Backchannel (this build).
 */
export function tableRows(run, systems = SYSTEMS) {
  const rows = [];
  for (const sc of run.scenarios) {
    sc.metrics.forEach((m, i) => {
      const cells = systems.map((s) => {
        const r = sc.results[s];
        if (!r) return '';
        if (r.error) return i === 0 ? 'error' : '';
        return fmt(r[m.key], m.digits);
      });
      const bc = sc.results.backchannel;
      const ratios = systems.includes('backchannel')
        ? PEERS.filter((p) => systems.includes(p)).map((p) => (m.better === 'info' || !bc || bc.error || !sc.results[p] || sc.results[p].error ? '' : fmtRatio(ratio(bc[m.key], sc.results[p][m.key]))))
        : [];
      const arrow = m.better === 'higher' ? ' ↑' : m.better === 'lower' ? ' ↓' : '';
      const unit = m.unit && !m.label.includes(m.unit) ? ` (${m.unit})` : '';
      rows.push([i === 0 ? sc.title : '', `${m.label}${unit}${arrow}`, ...cells, ...ratios]);
    });
  }
  return rows;
}

export function tableHeader(systems = SYSTEMS) {
  const ratios = systems.includes('backchannel') ? PEERS.filter((p) => systems.includes(p)).map((p) => `BC / ${SYSTEM_LABELS[p]}`) : [];
  return ['Scenario', 'Metric', ...systems.map((s) => SYSTEM_LABELS[s]), ...ratios];
}

/** A plain-text table (first two columns left-aligned, the rest right-aligned). */
export function textTable(header, rows) {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (r) => r.map((v, c) => (c < 2 ? String(v ?? '').padEnd(widths[c]) : String(v ?? '').padStart(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function markdownTable(header, rows) {
  const esc = (v) => String(v ?? '').replaceAll('|', '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, c) => (c < 2 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** What the before/after comparison checks: scenario, metric, which way is better. */
const BASELINE_CHECKS = [
  ['tp-1k', 'msgsPerSec', 'higher'],
  ['fanout-1k', 'msgsPerSec', 'higher'],
  ['tp-16k', 'msgsPerSec', 'higher'],
  ['lat-1000', 'p99Ms', 'lower'],
  ['idle', 'heldPerParticipantKB', 'lower'],
  ['idle', 'rssPerParticipantKB', 'lower'],
  ['idle', 'gcRssPerParticipantKB', 'lower'],
];

/** The product's targets, checked against this run (only where all needed numbers exist). */
export function checkTargets(run) {
  const out = [];
  const get = (id) => run.scenarios.find((s) => s.id === id);
  const ok = (r) => r && !r.error;
  for (const id of ['tp-100', 'tp-1k', 'tp-16k', 'fanout-1k', 'mesh-1k']) {
    const sc = get(id);
    if (!sc || !ok(sc.results.backchannel)) continue;
    const bc = sc.results.backchannel.msgsPerSec;
    if (ok(sc.results.ws)) {
      const r = bc / sc.results.ws.msgsPerSec;
      out.push({ target: `${sc.title}: delivered msg/s ≥ 0.8× ws relay`, value: fmtRatio(r), met: r >= 0.8 });
    }
    if (ok(sc.results.socketio)) {
      const r = bc / sc.results.socketio.msgsPerSec;
      out.push({ target: `${sc.title}: delivered msg/s ≥ 2× Socket.IO`, value: fmtRatio(r), met: r >= 2 });
    }
  }
  // Latency is compared at equal offered load: at 1,000 msg/s and at 50 % of the relay's max for
  // all. `lat-50pct` (50 % of each system's own max) loads each system differently and has no target.
  for (const id of ['lat-1000', 'lat-fanout', 'lat-same']) {
    const sc = get(id);
    if (!sc || !ok(sc.results.backchannel) || !ok(sc.results.ws)) continue;
    const bc = sc.results.backchannel.p99Ms;
    const limit = sc.results.ws.p99Ms + 0.3;
    out.push({ target: `${sc.title}: p99 ≤ ws relay p99 + 0.3 ms`, value: `${fmt(bc, 3)} ms (limit ${fmt(limit, 3)} ms)`, met: bc <= limit });
    if (id === 'lat-fanout') {
      // Issue 17 also bounds the median at light fan-out load.
      const p50 = sc.results.backchannel.p50Ms;
      const p50Limit = sc.results.ws.p50Ms + 0.05;
      out.push({ target: `${sc.title}: p50 ≤ ws relay p50 + 0.05 ms`, value: `${fmt(p50, 3)} ms (limit ${fmt(p50Limit, 3)} ms)`, met: p50 <= p50Limit });
    }
  }
  for (const id of ['idle', 'scale']) {
    const sc = get(id);
    if (!sc || !ok(sc.results.backchannel)) continue;
    const r = sc.results.backchannel;
    // Judged without V8's young generation: a fixed-ceiling cost of the process that tracks its
    // recent allocation (the join storm), not the participants it holds (bench/PROFILE.md).
    if (r.heldPerParticipantKB === undefined) out.push({ target: `${sc.title}: server RSS per idle participant ≤ 50 KB`, value: `${fmt(r.rssPerParticipantKB, 1)} KB`, met: r.rssPerParticipantKB <= 50 });
    else out.push({ target: `${sc.title}: server RSS per idle participant, V8 young generation excluded ≤ 50 KB`, value: `${fmt(r.heldPerParticipantKB, 1)} KB`, met: r.heldPerParticipantKB <= 50 });
  }
  // Before/after: this build within 5 % of the baseline build.
  const base = 'backchannel-baseline';
  for (const [id, key, better] of BASELINE_CHECKS) {
    const sc = get(id);
    if (!sc || !ok(sc.results.backchannel) || !ok(sc.results[base])) continue;
    const r = sc.results.backchannel[key] / sc.results[base][key];
    const m = sc.metrics.find((x) => x.key === key);
    // Results saved before a metric existed have neither the number nor its row.
    if (!m || !Number.isFinite(r)) continue;
    const limit = better === 'higher' ? 0.95 : 1.05;
    out.push({ target: `${sc.title}: ${m.label} ${better === 'higher' ? '≥ 0.95' : '≤ 1.05'}× baseline`, value: fmtRatio(r), met: better === 'higher' ? r >= limit : r <= limit });
  }
  return out;
}

export function targetsText(targets) {
  if (targets.length === 0) return '(no targets apply to the scenarios run)';
  return textTable(
    ['Target', 'Backchannel', 'Met'],
    targets.map((t) => [t.target, t.value, t.met ? 'yes' : 'NO']),
  );
}

export function machineLine(meta) {
  const m = meta.machine;
  return `${m.cpuModel} × ${m.cpus} logical CPUs, ${m.memGiB} GiB RAM, ${m.os}; Node ${m.node}`;
}

/** The content of bench/RESULTS.md for `run`. */
export function resultsMarkdown(run) {
  const { meta } = run;
  const systems = meta.systems;
  const targets = checkTargets(run);
  const bcConfig = Object.entries(meta.backchannelConfig)
    .filter(([k]) => !['host', 'port', 'apiKeys', 'logLevel'].includes(k))
    .map(([k, v]) => `\`${k}: ${v}\``)
    .join(', ');
  return `# Benchmark results

Backchannel \`reliable-message\` data sessions against the peers a user would pick instead —
Socket.IO (\`socket.io\` ${meta.versions.socketio}) and a bare \`ws\` relay (\`ws\` ${meta.versions.ws}) — in one run on one
machine. How each scenario is measured and the fairness rules are in [README.md](README.md).
Profiles of the Backchannel server's hot path are in [PROFILE.md](PROFILE.md).

- **Date:** ${meta.date}
- **Code:** commit \`${meta.code?.commit ?? 'unknown'}\`${meta.code?.modified?.length ? ` plus uncommitted changes in ${meta.code.modified.map((f) => `\`${f}\``).join(', ')}` : ''}
- **Command:** \`${meta.command}\`${meta.quick ? ' (quick smoke run: short windows, numbers are indicative only)' : ''}
- **Machine:** ${machineLine(meta)}
- **Load average (1 min) at start / end:** ${meta.loadStart.toFixed(2)} / ${meta.loadEnd.toFixed(2)}${
    meta.cpuShare
      ? `; during the run the benchmark's processes used ${fmt(meta.cpuShare.benchmark * 100, 0)} % of the machine's CPU, other processes ${fmt(meta.cpuShare.other * 100, 0)} %, hypervisor steal ${fmt(meta.cpuShare.steal * 100, 0)} %`
      : ''
  }
- **Clock check:** timestamps use CLOCK_MONOTONIC, shared by all processes; measured worker-vs-orchestrator offset ${fmt(meta.clock.offsetUs, 1)} µs (bound ±${fmt(meta.clock.boundUs, 1)} µs, half the best IPC round trip)
- **Backchannel server settings beyond the defaults:** ${bcConfig}
- **Node flags of every process (servers and clients of all three systems):** ${(meta.nodeFlags ?? []).map((f) => `\`${f}\``).join(' ') || 'none'}
- **Run time:** ${fmt(meta.elapsedSec, 0)} s${meta.rebuiltDuringRun ? `
- **Warning:** the built code under test changed during the run (last at ${meta.rebuiltDuringRun}); later scenarios may have run other code than earlier ones` : ''}

Ratios are Backchannel ÷ peer. ↑ = higher is better, ↓ = lower is better.

${markdownTable(tableHeader(systems), tableRows(run, systems))}

Notes:
- On this machine delivered rates vary by about ±20 % from run to run (the systems run one after
  the other, so ratios within one run are steadier); the per-message CPU rows vary less.
- Every scenario runs the same client code on each system with the same processes (one server,
  worker processes for the participants), all on this machine over 127.0.0.1: the clients compete
  with the server for the same cores, so delivered rates measure server + client SDK together.
  "server CPU" is the share of one core the server process used; the sending and receiving
  processes' CPU is in the JSON results.
- Throughput: senders send as fast as each system's backpressure allows (Backchannel: \`send()\`
  returns false → \`await drained()\`; ws relay: \`bufferedAmount\` and the relay pauses reading from a
  sender whose receiver is behind; Socket.IO has none, so senders keep at most 1 MiB unacknowledged,
  returned as credits by the receivers). Median of ${meta.durations.windows} windows of ${meta.durations.windowMs / 1000} s after a ${meta.durations.warmupMs / 1000} s warm-up.
- Latency: one-way, from the sender's \`send()\` call to the receiver's callback, on the shared
  monotonic clock; ${meta.durations.latencyMs / 1000} s measured after a warm-up of ${meta.durations.latencyWarmupMs / 1000} s or
  ${(meta.durations.latencyWarmupMessages ?? 0).toLocaleString('en-US')} messages, whichever is longer (${Math.max(meta.durations.latencyWarmupMs, meta.durations.latencyWarmupMessages ?? 0) / 1000} s at 1,000 msg/s; V8 compiles the data path by message count). "50 % of own max" uses each system's
  own 1:1 100 B maximum from this run, so the rates differ (see "rate sent").
- Bulk: Backchannel uses a \`reliable-bytes\` session, one \`send()\` per 64 KiB chunk (the peers send
  the same 64 KiB chunks as binary messages).
- Idle participants: with presence (the product default) every join is announced to everyone
  already in the room, so N joins cost N²/2 events; the peers have no presence. The "no presence"
  row has Backchannel participants join with the \`hidden\` grant (not listed, joins not announced),
  the like-for-like case.

## Targets

${targets.length === 0 ? '(no targets apply to the scenarios run)' : markdownTable(['Target', 'Backchannel', 'Met'], targets.map((t) => [t.target, t.value, t.met ? 'yes' : '**no**']))}
${
  run.scenarios.some((s) => Object.values(s.results).some((r) => r.error))
    ? `\n## Errors\n\n${run.scenarios
        .flatMap((s) => Object.entries(s.results).filter(([, r]) => r.error).map(([sys, r]) => `- ${s.title}, ${SYSTEM_LABELS[sys]}: ${r.error}`))
        .join('\n')}\n`
    : ''
}`;
}

/** Markers around the before/after section of RESULTS.md, which a full run keeps as it is. */
const SECTION_START = '<!-- before-after: written by `node bench/run.mjs --baseline REV --write-md`; a full run keeps this section -->';
const SECTION_END = '<!-- before-after: end -->';

/** The before/after section of a RESULTS.md text (markers included), or ''. */
export function keptSection(markdown) {
  const a = markdown.indexOf(SECTION_START);
  const b = markdown.indexOf(SECTION_END);
  return a >= 0 && b > a ? markdown.slice(a, b + SECTION_END.length) : '';
}

/** `markdown` with its before/after section replaced by `section` (appended when it has none). */
export function withSection(markdown, section) {
  const old = keptSection(markdown);
  if (old) return markdown.replace(old, section);
  return `${markdown.trimEnd()}\n\n${section}\n`;
}

/** Metrics whose round-against-round ratios the before/after section lists. */
const PAIRED_KEYS = ['msgsPerSec', 'serverCpuUsPerMsg', 'peakRssMB', 'p50Ms', 'p99Ms', 'heldPerParticipantKB', 'rssPerParticipantKB', 'gcRssPerParticipantKB'];

/**
 * Per-round ratios this build ÷ baseline of `key` (see {@link roundRatios}), or undefined.
 */
function pairedRatios(sc, key) {
  return roundRatios(sc, 'backchannel', 'backchannel-baseline', key);
}

/**
 * The round-against-round ratios of a run with the baseline build, as a text table for the
 * console: per scenario and metric, the pairs' lowest, median, the 95 % interval of the median
 * and highest. '' when no scenario has pairs.
 */
export function pairedText(run) {
  const rows = pairedRows(run).map(([sc, m, p]) => [sc.title, m.label, String(p.n), fmtRatio(p.min), fmtRatio(p.median), fmtInterval(p), fmtRatio(p.max)]);
  return rows.length ? textTable(['Scenario', 'Metric', 'Pairs', 'Lowest', 'Median', '95 % interval', 'Highest'], rows) : '';
}

/** [scenario, metric, paired ratios] for every listed metric of `run` that has pairs. */
function pairedRows(run) {
  return run.scenarios.flatMap((sc) =>
    sc.metrics
      .filter((m) => PAIRED_KEYS.includes(m.key))
      .map((m) => [sc, m, pairedRatios(sc, m.key)])
      .filter(([, , p]) => p),
  );
}

const fmtInterval = (p) => (p.low === undefined ? '–' : `${fmtRatio(p.low)}–${fmtRatio(p.high)}`);

/**
 * The rank k (1-based) of the distribution-free 95 % confidence interval of a median from n
 * samples, [x(k), x(n−k+1)] of the sorted samples: the largest k with P(Binomial(n, ½) < k) ≤
 * 2.5 %. Undefined below 6 samples, where no such interval exists.
 */
export function medianRank(n) {
  let below = 0; // P(Binomial(n, ½) < k) for the k being tried
  let k = 0;
  let choose = 1; // C(n, k)
  for (;;) {
    const next = below + choose / 2 ** n;
    if (next > 0.025) break;
    below = next;
    k++;
    choose = (choose * (n - k + 1)) / k;
  }
  return k === 0 ? undefined : k;
}

/**
 * The before/after section of RESULTS.md for a run with the baseline build (`--baseline`): this
 * build against the baseline, ratios, the paired-round spread and the 5 % checks.
 */
export function comparisonMarkdown(run) {
  const { meta } = run;
  const systems = meta.systems.filter((s) => s === 'backchannel' || s === 'backchannel-baseline');
  const targets = checkTargets(run).filter((t) => t.target.includes('baseline'));
  const code = `\`${meta.code?.commit ?? 'unknown'}\`${meta.code?.modified?.length ? ` plus uncommitted changes in ${meta.code.modified.map((f) => `\`${f}\``).join(', ')}` : ''}`;
  const paired = pairedRows(run).map(([sc, m, p], i, rows) => `| ${i === 0 || rows[i - 1][0] !== sc ? sc.title : ''} | ${m.label} | ${p.n} | ${fmtRatio(p.min)} | ${fmtRatio(p.median)} | ${fmtInterval(p)} | ${fmtRatio(p.max)} |`);
  const failed = run.scenarios.flatMap((s) => Object.entries(s.results).filter(([, r]) => r.error).map(([sys, r]) => `- ${s.title}, ${SYSTEM_LABELS[sys]}: ${r.error}`));
  return `${SECTION_START}
## Before/after: this build against ${meta.baseline ? `\`${meta.baseline.commit.slice(0, 7)}\`` : 'the baseline'}

"Backchannel" is this build, "BC baseline" the baseline commit built in a git worktree; both run
in the same run with the same benchmark code, processes and Node flags, scenario by scenario,
rounds interleaved (every other round in reverse order). Ratios are this build ÷ baseline.

- **Date:** ${meta.date}
- **This build:** commit ${code}
- **Baseline:** commit \`${meta.baseline?.commit ?? 'unknown'}\`
- **Command:** \`${meta.command}\`${meta.quick ? ' (quick smoke run: numbers are indicative only)' : ''}
- **Machine:** ${machineLine(meta)}
- **Load average (1 min) at start / end:** ${meta.loadStart.toFixed(2)} / ${meta.loadEnd.toFixed(2)}${
    meta.cpuShare ? `; other processes ${fmt(meta.cpuShare.other * 100, 0)} % of the machine's CPU, hypervisor steal ${fmt(meta.cpuShare.steal * 100, 0)} %` : ''
  }
- **Node flags of every process:** ${(meta.nodeFlags ?? []).map((f) => `\`${f}\``).join(' ') || 'none'}
- **Rounds:** ${meta.rounds} per system for throughput, fan-out and idle (median round shown, with the lowest and highest); ${meta.durations.latencyRunsLowRate} for latency at 1,000 msg/s (median round of each percentile)
- **Run time:** ${fmt(meta.elapsedSec, 0)} s${meta.rebuiltDuringRun ? `
- **Warning:** the built code under test changed during the run (last at ${meta.rebuiltDuringRun}); later scenarios may have run other code than earlier ones` : ''}

${markdownTable(tableHeader(systems), tableRows(run, systems))}
${
  paired.length
    ? `
Round against round (round *i* of this build ÷ round *i* of the baseline, which ran next to it).
The 95 % interval is where the median of such ratios lies, from the pairs alone (order
statistics of the sorted ratios; needs at least 6 pairs):

| Scenario | Metric | Pairs | Lowest | Median | 95 % interval of the median | Highest |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
${paired.join('\n')}
`
    : ''
}
${targets.length ? `${markdownTable(['Check', 'This build ÷ baseline', 'Met'], targets.map((t) => [t.target, t.value, t.met ? 'yes' : '**no**']))}\n` : ''}${failed.length ? `\nErrors:\n${failed.join('\n')}\n` : ''}${SECTION_END}`;
}

/** Markers around the variants section of RESULTS.md (metrics off, TLS), which other runs keep. */
const VARIANTS_START = '<!-- variants: written by `npm run bench -- --variants --write-md`; other runs keep this section -->';
const VARIANTS_END = '<!-- variants: end -->';

/** The variants section of a RESULTS.md text (markers included), or ''. */
export function keptVariants(markdown) {
  const a = markdown.indexOf(VARIANTS_START);
  const b = markdown.indexOf(VARIANTS_END);
  return a >= 0 && b > a ? markdown.slice(a, b + VARIANTS_END.length) : '';
}

/** `markdown` with its variants section replaced by `section` (appended when it has none). */
export function withVariants(markdown, section) {
  const old = keptVariants(markdown);
  if (old) return markdown.replace(old, section);
  return `${markdown.trimEnd()}\n\n${section}\n`;
}

/**
 * Markers around the hostile-clients section of RESULTS.md, written by bench/attacks.mjs; every
 * run of run.mjs keeps it as it is.
 */
export const ATTACKS_START = '<!-- attacks: written by `node bench/attacks.mjs`; other runs keep this section -->';
export const ATTACKS_END = '<!-- attacks: end -->';

/** The hostile-clients section of a RESULTS.md text (markers included), or ''. */
export function keptAttacks(markdown) {
  const a = markdown.indexOf(ATTACKS_START);
  const b = markdown.indexOf(ATTACKS_END);
  return a >= 0 && b > a ? markdown.slice(a, b + ATTACKS_END.length) : '';
}

/**
 * Round-by-round ratios a ÷ b of `key` (rounds interleaved, so a pair ran close together):
 * { min, median, max, n, low, high }, `low`–`high` the 95 % interval of the median (from 6 rounds).
 */
function roundRatios(sc, a, b, key) {
  const rounds = (r) => r?.rounds ?? r?.runs;
  const x = rounds(sc.results[a]);
  const y = rounds(sc.results[b]);
  if (!x || !y) return undefined;
  const ratios = x.slice(0, y.length).map((r, i) => r[key] / y[i][key]).filter(Number.isFinite).sort((p, q) => p - q);
  if (ratios.length < 2) return undefined;
  const mid = ratios.length >> 1;
  const k = medianRank(ratios.length);
  return {
    min: ratios[0],
    median: ratios.length % 2 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2,
    max: ratios[ratios.length - 1],
    n: ratios.length,
    // The interval that holds the median of the pairs' ratio with at least 95 % confidence.
    low: k === undefined ? undefined : ratios[k - 1],
    high: k === undefined ? undefined : ratios[ratios.length - k],
  };
}

/**
 * The variants section of RESULTS.md (`--variants`): this build with metrics on (the default)
 * against metrics off, and over TLS against plain WebSocket, in one run.
 */
export function variantsMarkdown(run) {
  const { meta } = run;
  const systems = meta.systems;
  const line = (sc, other, key, label) => {
    const bc = sc.results.backchannel;
    const o = sc.results[other];
    if (!bc || !o || bc.error || o.error || !Number.isFinite(bc[key]) || !Number.isFinite(o[key])) return undefined;
    const r = roundRatios(sc, other, 'backchannel', key);
    const spread = r ? ` (round by round ${r.min.toFixed(2)}–${r.max.toFixed(2)}×, median ${r.median.toFixed(2)}×, ${r.n} rounds)` : '';
    return `- ${sc.title}: ${label} ${(o[key] / bc[key]).toFixed(2)}×${spread}`;
  };
  const lines = (other, label) =>
    run.scenarios
      .flatMap((sc) => [
        line(sc, other, 'msgsPerSec', `${label}, delivered msg/s`),
        line(sc, other, 'serverCpuUsPerMsg', `${label}, server CPU per delivered msg`),
        line(sc, other, 'p99Ms', `${label}, p99`),
      ])
      .filter(Boolean)
      .join('\n');
  return `${VARIANTS_START}
## Metrics and TLS

What counting for \`/metrics\` and serving TLS cost, measured in one run of \`${meta.command}\` on
${machineLine(meta)} (${meta.date}, code \`${meta.code?.commit ?? 'unknown'}\`${meta.code?.modified?.length ? ' plus uncommitted changes' : ''}; load ${meta.loadStart.toFixed(2)} → ${meta.loadEnd.toFixed(2)}${
    meta.cpuShare ? `, other processes ${fmt(meta.cpuShare.other * 100, 0)} % of the CPU` : ''
  }). "Backchannel" is the default build with metrics on (its counters are read at scrape time;
nothing scrapes during the run), "BC metrics off" the same build with \`metrics: false\`, "BC over
TLS" the default build serving \`wss://\` (\`tlsCertFile\`/\`tlsKeyFile\`, an ECDSA P-256
certificate; the clients trust its CA). Throughput scenarios ran ${meta.rounds} interleaved rounds
(median reported), latency its own rounds.${
    meta.cpuShare && meta.cpuShare.other > 0.2
      ? `\n\n**This run shared the machine with other work** (${fmt(meta.cpuShare.other * 100, 0)} % of its CPU went to other processes): delivered rates and\nlatencies moved with that load from round to round; the server's CPU per delivered message is the steadier\ncomparison.`
      : ''
  }

${markdownTable(tableHeader(systems), tableRows(run, systems))}

<a id="metrics"></a>Metrics off ÷ metrics on (1.00 = counting costs nothing measurable):

${lines('backchannel-nometrics', 'off ÷ on') || '(not run)'}

<a id="tls"></a>TLS ÷ plain (below 1 for msg/s: TLS is slower; above 1 for p99: TLS is slower):

${lines('backchannel-tls', 'TLS ÷ plain') || '(not run)'}
${VARIANTS_END}`;
}
