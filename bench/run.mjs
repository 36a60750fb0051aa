#!/usr/bin/env node
/**
 * `npm run bench [-- options]`: runs the benchmark scenarios on Backchannel and its peers, prints
 * a table, writes bench/results/<timestamp>.json and (for a full run) refreshes bench/RESULTS.md.
 * See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { BASELINE_DIR, baselineInfo, prepareBaseline } from './lib/baseline.mjs';
import { summarizeProfile } from './lib/cpuprofile.mjs';
import { BACKCHANNEL_BENCH_CONFIG, BENCH_DIR, NODE_FLAGS, REPO_DIR, WorkerPool, killAll, startWorker } from './lib/procs.mjs';
import { checkTargets, comparisonMarkdown, fmt, keptAttacks, keptSection, keptVariants, machineLine, pairedText, resultsMarkdown, tableHeader, tableRows, targetsText, textTable, variantsMarkdown, withSection, withVariants } from './lib/report.mjs';
import { ALL_SYSTEMS, DURATIONS, SYSTEMS, SYSTEM_LABELS, combineRounds, scenarios } from './lib/scenarios.mjs';
import { benchTls } from './lib/tls.mjs';
import { builtAt as builtAtIn, nowNs, parseFlags } from './lib/util.mjs';
import { keptWebRtc } from './lib/webrtc-section.mjs';
import { CLUSTER_END, CLUSTER_START, ISSUE17_END, ISSUE17_START, LARGE_ROOM_END, LARGE_ROOM_START, keptBetween } from './lib/kept-sections.mjs';

const USAGE = `Usage: npm run bench -- [options]

  --quick              short smoke run (about a minute; numbers are indicative only)
  --only LIST          scenarios to run, by group or id, comma-separated:
                         throughput (tp-100, tp-1k, tp-16k), fanout (fanout-1k, mesh-1k),
                         latency (lat-1000, lat-fanout, lat-50pct, lat-same), bulk, join, scale (idle, scale),
                         resume (Backchannel only)
  --systems LIST       systems to run: backchannel, socketio, ws (default: all three), and
                       backchannel-baseline (an earlier build, see --baseline; skipped when
                       it has not been built)
  --baseline REV       before/after: build REV in a git worktree at ${BASELINE_DIR}
                       (BENCH_BASELINE_DIR; reused when it is already there) and run it as
                       backchannel-baseline against this checkout's build. Without --only or
                       --systems: tp-1k, fanout-1k, tp-16k, lat-1000 and idle on backchannel and
                       backchannel-baseline, 5 rounds each (ratios: this build ÷ baseline)
  --variants           this build's costs, in one run: metrics on (the default) vs off
                       (backchannel-nometrics) and plain vs TLS (backchannel-tls), on tp-1k,
                       tp-16k, fanout-1k (3 rounds) and lat-1000; with --write-md it rewrites
                       the "Metrics and TLS" section of RESULTS.md
  --rounds N           run scenarios that have no rounds of their own (throughput, fan-out,
                       bulk, join, idle, scale) N times, interleaved across systems; the median
                       round is reported (default 1; 5 with --baseline)
  --cuts N             connection cuts of the "resume" scenario (default 200; quick 10)
  --idle N             participants of the "idle" scenario (default 1000; quick 100)
  --scale N            participants of the "scale" scenario (default 5000; quick 250)
  --idle-watch S       after the "idle" measurement (before its forced GCs), keep reading the
                       server's RSS and V8 young generation once a second for S seconds
                       (0–120; default 0: no watch)
  --profile            run the servers under --cpu-prof and print their top self-time functions
                       (default: scenarios tp-1k and fanout-1k, Backchannel only)
  --render FILE        print the table of an earlier results JSON (with --write-md: also
                       rewrite bench/RESULTS.md from it) and run nothing
  --write-md           refresh bench/RESULTS.md even for a quick or partial run
  --no-md              do not refresh bench/RESULTS.md
  -h, --help           this text

A full run (no --quick, --only, --systems, --profile, --baseline or --rounds) refreshes
bench/RESULTS.md.`;

const { values: args } = parseFlags('bench', {
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    systems: { type: 'string' },
    profile: { type: 'boolean', default: false },
    idle: { type: 'string' },
    scale: { type: 'string' },
    'idle-watch': { type: 'string' },
    cuts: { type: 'string' },
    baseline: { type: 'string' },
    variants: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    render: { type: 'string' },
    'write-md': { type: 'boolean', default: false },
    'no-md': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

if (args.render) {
  const run = JSON.parse(readFileSync(args.render, 'utf8'));
  printRun(run);
  if (args['write-md']) refreshResultsMd(run);
  process.exit(0);
}

/**
 * Writes bench/RESULTS.md from `run`: a run with the baseline build replaces only the before/after
 * section; any other run rewrites the rest and keeps that section, the variants section and the
 * hostile-clients section (bench/attacks.mjs) and the WebRTC section (bench/webrtc.mjs) as they are.
 */
function refreshResultsMd(run) {
  const file = join(BENCH_DIR, 'RESULTS.md');
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (run.meta.variants) writeFileSync(file, withVariants(old, variantsMarkdown(run)));
  else if (run.meta.baseline) writeFileSync(file, withSection(old, comparisonMarkdown(run)));
  else {
    const kept = [keptSection(old), keptVariants(old), keptAttacks(old), keptWebRtc(old), keptBetween(old, LARGE_ROOM_START, LARGE_ROOM_END), keptBetween(old, CLUSTER_START, CLUSTER_END), keptBetween(old, ISSUE17_START, ISSUE17_END)].filter(Boolean).join('\n\n');
    writeFileSync(file, kept ? `${resultsMarkdown(run).trimEnd()}\n\n${kept}\n` : resultsMarkdown(run));
  }
  console.log(`Refreshed ${file}${run.meta.variants ? ' (metrics and TLS section)' : run.meta.baseline ? ' (before/after section)' : ''}`);
}

/** Prints the results table and the targets of `run`. */
function printRun(run) {
  const { meta } = run;
  console.log(`\n${meta.systems.map((s) => SYSTEM_LABELS[s]).join(' vs ')} — ${machineLine(meta)}`);
  if (meta.baseline) console.log(`BC baseline = commit ${meta.baseline.commit.slice(0, 12)} (built in ${meta.baseline.dir})`);
  const code = meta.code ? `  code ${meta.code.commit}${meta.code.modified.length ? ` + ${meta.code.modified.length} uncommitted file(s) in packages/` : ''}` : '';
  const share = meta.cpuShare ? `  other processes ${(meta.cpuShare.other * 100).toFixed(0)} % / steal ${(meta.cpuShare.steal * 100).toFixed(0)} % of the CPU` : '';
  console.log(`${meta.date}  load ${meta.loadStart.toFixed(2)} → ${meta.loadEnd.toFixed(2)}${share}${code}${meta.quick ? '  (QUICK run: indicative only)' : ''}`);
  if (meta.rebuiltDuringRun) console.log(`WARNING: the built code changed during the run (last at ${meta.rebuiltDuringRun}); rerun on a tree nobody builds meanwhile`);
  console.log('');
  console.log(textTable(tableHeader(meta.systems), tableRows(run, meta.systems)));
  const paired = meta.baseline ? pairedText(run) : '';
  if (paired) console.log(`\nRound against round, this build ÷ baseline (95 % interval of the median from the pairs alone)\n${paired}`);
  console.log(`\nTargets\n${targetsText(checkTargets(run))}`);
}

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const BASELINE_SCENARIOS = ['tp-1k', 'fanout-1k', 'tp-16k', 'lat-1000', 'idle'];
const VARIANT_SCENARIOS = ['tp-1k', 'tp-16k', 'fanout-1k', 'lat-1000'];
let systems = args.systems ? list(args.systems) : args.variants ? ['backchannel', 'backchannel-nometrics', 'backchannel-tls'] : args.baseline ? ['backchannel', 'backchannel-baseline'] : args.profile ? ['backchannel'] : SYSTEMS;
for (const s of systems) if (!ALL_SYSTEMS.includes(s)) fail(`unknown system "${s}" (one of ${ALL_SYSTEMS.join(', ')})`);
if (args.baseline && !systems.includes('backchannel-baseline')) systems.push('backchannel-baseline');
/** The baseline build run as backchannel-baseline: { dir, commit } (see lib/baseline.mjs). */
let baseline;
if (systems.includes('backchannel-baseline')) {
  if (args.baseline) {
    try {
      baseline = prepareBaseline(REPO_DIR, args.baseline, (m) => process.stderr.write(`${m}\n`));
    } catch (error) {
      fail(`--baseline ${args.baseline}: ${error instanceof Error ? error.message : error}`);
    }
  } else {
    const info = baselineInfo();
    if (info?.built) baseline = info;
    else {
      process.stderr.write(`bench: skipping backchannel-baseline: no baseline build at ${BASELINE_DIR} (create it with --baseline REV, e.g. --baseline HEAD~1)\n`);
      systems = systems.filter((s) => s !== 'backchannel-baseline');
      if (systems.length === 0) fail('no system left to run');
    }
  }
}
const all = scenarios();
if (systems.includes('backchannel-tls')) {
  // Before any worker is forked: they trust the run's CA through NODE_EXTRA_CA_CERTS.
  try {
    benchTls();
  } catch (error) {
    fail(`backchannel-tls needs openssl to make its certificate: ${error instanceof Error ? error.message : error}`);
  }
}
const only = args.only ? list(args.only) : args.variants ? VARIANT_SCENARIOS : args.baseline && !args.systems ? BASELINE_SCENARIOS : args.profile ? ['tp-1k', 'fanout-1k'] : undefined;
if (only) for (const o of only) if (!all.some((s) => s.id === o || s.group === o)) fail(`unknown scenario "${o}"\n\n${USAGE}`);
const selected = only ? all.filter((s) => only.includes(s.id) || only.includes(s.group)) : all;
const rounds = args.rounds !== undefined ? Number(args.rounds) : args.baseline ? 5 : args.variants ? 3 : 1;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) fail('--rounds takes a count from 1 to 50');
const partial = Boolean(args.quick || only || args.systems || args.profile || args.idle || args.scale || Number(args['idle-watch']) > 0 || args.cuts || args.baseline || args.rounds || args.variants);
const writeMd = !args['no-md'] && (args['write-md'] || !partial);

if (!existsSync(join(REPO_DIR, 'packages/cli/dist/cli.js')) || !existsSync(join(REPO_DIR, 'packages/client/dist/index.node.js'))) {
  fail('the packages are not built: run `npm run build` first');
}

const durations = { ...DURATIONS[args.quick ? 'quick' : 'full'] };
for (const key of ['idle', 'scale']) {
  if (args[key] === undefined) continue;
  durations[key] = Number(args[key]);
  if (!Number.isInteger(durations[key]) || durations[key] < 1 || durations[key] > 10_000) fail(`--${key} takes a participant count from 1 to 10000`);
}
if (args['idle-watch'] !== undefined) {
  const secs = Number(args['idle-watch']);
  if (!Number.isInteger(secs) || secs < 0 || secs > 120) fail('--idle-watch takes seconds from 0 to 120');
  durations.idleWatchMs = secs * 1000;
}
if (args.cuts !== undefined) {
  durations.resumeCuts = Number(args.cuts);
  if (!Number.isInteger(durations.resumeCuts) || durations.resumeCuts < 2 || durations.resumeCuts > 2000) fail('--cuts takes a count from 2 to 2000');
}
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = join(BENCH_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
const log = (msg) => process.stderr.write(`${msg}\n`);

// A hard limit on the whole run, and cleanup of every child on any way out.
// (--idle-watch adds its watch to each round of each system, at most four systems.)
const hardLimitMs = (args.quick ? 180_000 : 60 * 60_000) + (durations.idleWatchMs ?? 0) * rounds * 4;
const watchdog = setTimeout(() => {
  log(`bench: run exceeded ${hardLimitMs / 1000} s; stopping`);
  void killAll(1000).then(() => process.exit(1));
}, hardLimitMs);
watchdog.unref();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`bench: ${sig}, stopping children`);
    void killAll(2000).then(() => process.exit(130));
  });
}

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

function version(pkg) {
  try {
    return JSON.parse(readFileSync(join(REPO_DIR, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

/**
 * The code under test: the git commit and the files under packages/ that differ from it (read-only
 * git queries); outside a git checkout, BENCH_CODE_VERSION if set.
 */
function codeVersion() {
  try {
    const git = (...a) => execFileSync('git', ['-C', REPO_DIR, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const commit = git('rev-parse', '--short=12', 'HEAD').trim();
    // Porcelain lines are "XY path": not trimmed, or the first line loses its leading status blank.
    const modified = git('status', '--porcelain', '--', 'packages').split('\n').filter(Boolean).map((l) => l.slice(3));
    return { commit, modified };
  } catch {
    return { commit: process.env.BENCH_CODE_VERSION ?? 'unknown', modified: [] };
  }
}


/**
 * CPU ticks of the whole machine (busy, steal, total) and of this process plus its reaped children,
 * from /proc; undefined elsewhere. The difference over a run tells how much other work shared it.
 */
function cpuTicks() {
  try {
    const all = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = all;
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal, ours: f[11] + f[12] + f[13] + f[14] };
  } catch {
    return undefined;
  }
}

/** Measures how far a worker's clock reading is from ours (expected ≈ 0: one shared clock). */
async function clockCheck() {
  const w = await startWorker('clock');
  try {
    let best = { rtt: Infinity, offset: 0 };
    for (let i = 0; i < 30; i++) {
      const t0 = nowNs();
      const { ns } = await w.call('clock');
      const t1 = nowNs();
      const rtt = Number(t1 - t0);
      if (rtt < best.rtt) best = { rtt, offset: Number(BigInt(ns) - (t0 + t1) / 2n) };
    }
    return { offsetUs: best.offset / 1000, boundUs: best.rtt / 2000 };
  } finally {
    await w.close();
  }
}

/**
 * Runs one scenario step with its progress line; returns its result, or `{ error }` if it threw
 * (after stopping whatever it left running).
 */
async function step(label, fn) {
  const t0 = Date.now();
  process.stderr.write(`▶ ${label} … `);
  try {
    const result = await fn();
    process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return result;
  } catch (error) {
    const failed = { error: error instanceof Error ? error.message : String(error) };
    process.stderr.write(`FAILED (${failed.error})\n`);
    await killAll(1000);
    return failed;
  }
}

async function main() {
  const started = Date.now();
  const cpuInfo = cpus();
  const meta = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    quick: args.quick,
    systems,
    rounds,
    baseline: baseline && { commit: baseline.commit, dir: baseline.dir },
    variants: args.variants,
    machine: {
      cpuModel: cpuInfo[0]?.model.trim() ?? 'unknown',
      cpus: cpuInfo.length,
      memGiB: Math.round(totalmem() / 2 ** 30),
      freeMemGiB: Math.round(freemem() / 2 ** 30),
      os: `${type()} ${release()}`,
      node: process.version,
    },
    code: codeVersion(),
    versions: { socketio: version('socket.io'), socketioClient: version('socket.io-client'), ws: version('ws') },
    backchannelConfig: BACKCHANNEL_BENCH_CONFIG,
    nodeFlags: NODE_FLAGS,
    durations,
    loadStart: loadavg()[0],
  };
  const ticks0 = cpuTicks();
  const built0 = builtAt();
  log(`bench: ${machineLine(meta)}; load ${meta.loadStart.toFixed(2)}`);
  meta.clock = await clockCheck();
  log(`bench: clock offset worker↔orchestrator ${fmt(meta.clock.offsetUs, 1)} µs (±${fmt(meta.clock.boundUs, 1)} µs)`);

  const run = { meta, scenarios: [] };
  const profDir = args.profile ? join(resultsDir, `profiles-${stamp}`) : undefined;
  const profiles = [];
  const results = {};
  const probed = {};
  const pool = new WorkerPool({ cpuProfDir: profDir && join(profDir, 'workers') });
  /** Worker pools of scenarios that run with other V8 flags, by flags. */
  const pools = new Map();
  const ctx = {
    pool,
    poolFor(nodeFlags) {
      const key = nodeFlags.join(' ');
      if (!pools.has(key)) pools.set(key, new WorkerPool({ cpuProfDir: profDir && join(profDir, 'workers'), nodeFlags }));
      return pools.get(key);
    },
    durations,
    log,
    results,
    rounds,
    cpuProfDir: undefined,
    /** Max 1:1 100 B msg/s of `system`: from this run's tp-100, else a short probe (once). */
    async maxRate100(system) {
      const known = results['tp-100']?.[system];
      if (known && !known.error) return known.msgsPerSec;
      if (probed[system] === undefined) {
        log(`  (probing ${SYSTEM_LABELS[system]} 100 B max rate for the 50 % point)`);
        const probe = all.find((s) => s.id === 'tp-100');
        probed[system] = (await probe.run(system, { ...ctx, cpuProfDir: undefined, durations: { ...durations, windows: 1 } })).msgsPerSec;
      }
      return probed[system];
    },
  };
  for (const sc of selected) {
    const title = typeof sc.title === 'function' ? sc.title(ctx) : sc.title;
    const metrics = typeof sc.metrics === 'function' ? sc.metrics(ctx) : sc.metrics;
    const entry = { id: sc.id, title, metrics, results: {} };
    const scSystems = systems.filter((s) => !sc.systems || sc.systems.includes(s));
    if (scSystems.length === 0) {
      log(`▷ ${title}: skipped (runs on ${sc.systems.map((s) => SYSTEM_LABELS[s]).join(', ')} only)`);
      continue;
    }
    run.scenarios.push(entry);
    results[sc.id] = entry.results;
    // Rounds interleaved across systems: round 1 on each system, then round 2, …, every other
    // round in reverse order, so that neither drift on the machine nor going first favours one.
    const own = sc.rounds && !profDir;
    const repeated = !sc.rounds && !sc.single && rounds > 1 && !profDir;
    if (own || repeated) {
      const n = own ? sc.rounds(ctx) : rounds;
      const round = own ? sc.round : sc.run;
      const combine = own ? sc.combine : (r) => combineRounds(r, metrics);
      const runs = Object.fromEntries(scSystems.map((s) => [s, []]));
      for (let r = 1; r <= n; r++) {
        for (const system of r % 2 ? scSystems : [...scSystems].reverse()) {
          if (entry.results[system]?.error) continue;
          const result = await step(`${title} — ${SYSTEM_LABELS[system]}, round ${r}/${n}`, () => round(system, ctx));
          if (result.error) entry.results[system] = result;
          else runs[system].push(result);
        }
      }
      for (const system of scSystems) if (!entry.results[system]?.error) entry.results[system] = combine(runs[system]);
      continue;
    }
    for (const system of scSystems) {
      const dir = profDir ? join(profDir, `${sc.id}-${system}`) : undefined;
      entry.results[system] = await step(`${title} — ${SYSTEM_LABELS[system]}`, () => sc.run(system, { ...ctx, cpuProfDir: dir }));
      if (dir && existsSync(dir)) {
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        if (file) profiles.push({ scenario: sc.id, system, title, file: join(dir, file), summary: summarizeProfile(join(dir, file)) });
      }
    }
  }
  // Systems that no scenario of this run applied to (e.g. the peers with --only resume) are left out.
  meta.systems = systems.filter((s) => run.scenarios.some((sc) => sc.results[s]));
  const roles = new Map();
  await pool.close(roles);
  for (const p of pools.values()) await p.close(roles);
  meta.loadEnd = loadavg()[0];
  const ticks1 = cpuTicks();
  if (ticks0 && ticks1) {
    const total = ticks1.total - ticks0.total;
    const busy = ticks1.busy - ticks0.busy;
    const ours = ticks1.ours - ticks0.ours;
    // Shares of the machine's total CPU capacity during the run.
    meta.cpuShare = { benchmark: ours / total, other: Math.max(0, busy - ours) / total, steal: (ticks1.steal - ticks0.steal) / total };
  }
  const workerDir = profDir && join(profDir, 'workers');
  if (workerDir && existsSync(workerDir)) {
    for (const f of readdirSync(workerDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(f)?.[1]);
      const role = roles.get(pid) ?? 'idle';
      profiles.push({ scenario: 'all', system: 'worker', title: `worker ${pid} (last role: ${role}, whole run)`, file: join(workerDir, f), summary: summarizeProfile(join(workerDir, f)) });
    }
  }
  meta.elapsedSec = (Date.now() - started) / 1000;
  const built1 = builtAt();
  if (built1 !== built0) {
    meta.rebuiltDuringRun = new Date(built1).toISOString();
    log(`bench: WARNING: packages/*/dist changed during the run (last at ${meta.rebuiltDuringRun}): later scenarios may have run other code than earlier ones`);
  }

  run.targets = checkTargets(run);
  printRun(run);

  if (profiles.length > 0) {
    run.profiles = profiles.map((p) => ({ scenario: p.scenario, system: p.system, file: p.file, ...p.summary }));
    for (const p of profiles) {
      const s = p.summary;
      console.log(`\nCPU profile, ${p.system === 'worker' ? 'client' : `${SYSTEM_LABELS[p.system]} server`} — ${p.title}: ${fmt(s.busyMs, 0)} ms busy of ${fmt(s.totalMs, 0)} ms (${p.file})`);
      console.log(textTable(['Function', 'Where', 'Self %', 'Self ms'], s.functions.map((f) => [f.name, f.where, fmt(f.pct, 1), fmt(f.selfMs, 0)])));
      console.log(`\nBy file:\n${textTable(['File', '', 'Self %', 'Self ms'], s.files.slice(0, 12).map((f) => [f.name, '', fmt(f.pct, 1), fmt(f.selfMs, 0)]))}`);
    }
  }

  const file = join(resultsDir, `${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\nResults: ${file}`);
  if (writeMd) refreshResultsMd(run);
  const failed = run.scenarios.flatMap((s) => Object.entries(s.results).filter(([, r]) => r.error));
  await killAll(1000);
  process.exit(failed.length > 0 ? 1 : 0);
}

main().catch(async (error) => {
  console.error(`bench: ${error?.stack ?? error}`);
  await killAll(1000);
  process.exit(1);
});

/** Newest modification time of this checkout's built code (see builtAt in lib/util.mjs). */
function builtAt() {
  return builtAtIn(REPO_DIR);
}
