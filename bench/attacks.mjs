#!/usr/bin/env node
/**
 * Hostile clients: what one client (or a few acting together) can make a Backchannel server hold,
 * on this checkout's build and on the baseline build (BENCH_BASELINE_DIR, default
 * <tmpdir>/bc-base, made by `node bench/run.mjs --baseline REV`), in one run. For each attack the
 * server's VmRSS is sampled every 100 ms and the server's reaction recorded: whether and when it
 * disconnected the attacker or detached the slow receiver, with the reason it gave.
 *
 *   node bench/attacks.mjs                      # every attack on both builds (≈ 3 min); refreshes RESULTS.md
 *   node bench/attacks.mjs --only 1a,2 --builds current --seconds 5
 *
 * Attacks (each on a fresh server, for --seconds or until the server reacts, whichever first):
 *   1a  requests without reading: a client joins a room, stops reading its socket and fires
 *       `getCall('CA_nonexistent…')` as fast as it can without awaiting the replies;
 *   1b  the same with join/leave: the client (not reading) sends `conf.join` with 4 KB of
 *       metadata and `room.leave` in turn, raw, into a room where 50 other (reading) members
 *       receive every join and leave;
 *   2   empty frames to a slow receiver: a receiver joins and stops reading; a sender sends 0-byte
 *       `reliable-bytes` messages to it as fast as it can, ignoring backpressure;
 *   3   many sessions to one non-reading receiver: 4 senders × 64 `reliable-bytes` sessions send
 *       16 KiB messages round-robin to a receiver that stopped reading, ignoring backpressure.
 *
 * Every client runs in a child process of this script (the non-reading side in one, the reading
 * side in another), each driven with its own build's client SDK, protocol codec and server SDK:
 * the baseline speaks protocol 1, this build protocol 2.
 */
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, freemem, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { listeningUrl } from './lib/procs.mjs';
import { builtAt as builtAtIn, nowMs, parseFlags, sleep, withTimeout } from './lib/util.mjs';

const SELF = fileURLToPath(import.meta.url);
const BENCH_DIR = dirname(SELF);
const REPO_DIR = resolve(BENCH_DIR, '..');

const API_KEY = 'k';
const API_SECRET = 'secret-secret';
/** Server settings: product defaults except the data bitrate limit, off as in the benchmark. */
const SERVER_CONFIG = Object.freeze({ port: 0, logLevel: 'info', apiKeys: { [API_KEY]: API_SECRET }, maxDataBitrateKbps: 0 });
const GRANTS = Object.freeze({ conferences: ['*'], calls: true });
const MiB = 2 ** 20;
/** An attacking process holds back while its own RSS is above this, so the machine is not exhausted. */
const ATTACKER_RSS_GUARD = 3 * 2 ** 30;

// ───────────────────────────── orchestrator ─────────────────────────────

function usage() {
  return `Usage: node bench/attacks.mjs [options]

Runs hostile-client attacks against this checkout's server build and the baseline build, and
reports the server's peak RSS and how it reacted. Build first (npm run build); the baseline
worktree comes from: node bench/run.mjs --baseline 07177e3 --quick --only tp-1k

Options:
  --only IDS       attacks to run, comma-separated: 1a, 1b, 2, 3 (default: all)
  --builds LIST    current, baseline or both (default: current,baseline)
  --seconds N      longest time per attack (default 15)
  --members N      reading members in the room of attack 1b (default 50)
  --rss-cap MiB    end an attack early when the server's RSS passes this (default 6144)
  --write-md       write the section of bench/RESULTS.md even for a partial run
  --no-md          never write bench/RESULTS.md
  --render FILE    print an earlier run's JSON (bench/results/attacks-*.json) again; with
                   --write-md also rewrite the section of RESULTS.md from it
  --help`;
}

/** The attacks: what each side does, and which events end it early. */
const ATTACKS = [
  { id: '1a', title: 'Requests without reading: call.get flood', short: 'call.get flood, not reading' },
  { id: '1b', title: 'Requests without reading: join/leave, 4 KB metadata, room of 50 readers', short: 'join/leave flood, not reading' },
  { id: '2', title: 'Empty frames to a slow receiver', short: '0-byte frames → paused receiver' },
  { id: '3', title: '4 senders × 64 sessions, 16 KiB, to one non-reading receiver', short: '4×64 sessions → paused receiver' },
];

async function main() {
  const { values: args } = parseFlags('attacks', {
    options: {
      only: { type: 'string' },
      builds: { type: 'string' },
      seconds: { type: 'string', default: '15' },
      members: { type: 'string', default: '50' },
      'rss-cap': { type: 'string', default: '6144' },
      'write-md': { type: 'boolean', default: false },
      'no-md': { type: 'boolean', default: false },
      render: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (args.help) {
    console.log(usage());
    return;
  }
  if (args.render) {
    const run = JSON.parse(readFileSync(args.render, 'utf8'));
    printRun(run);
    if (args['write-md']) await writeResultsMd(run);
    return;
  }
  const seconds = Number(args.seconds);
  const members = Number(args.members);
  const rssCap = Number(args['rss-cap']) * MiB;
  if (!(seconds > 0 && seconds <= 120) || !(members >= 1 && members <= 500) || !(rssCap > 0)) throw new Error('bad --seconds, --members or --rss-cap (see --help)');
  const only = args.only ? args.only.split(',').map((s) => s.trim()) : ATTACKS.map((a) => a.id);
  const unknown = only.filter((id) => !ATTACKS.some((a) => a.id === id));
  if (unknown.length) throw new Error(`unknown attack ${unknown.join(', ')} (see --help)`);
  const attacks = ATTACKS.filter((a) => only.includes(a.id));

  const wanted = args.builds ? args.builds.split(',').map((s) => s.trim()) : ['current', 'baseline'];
  const builds = [];
  if (wanted.includes('current')) builds.push(currentBuild());
  if (wanted.includes('baseline')) {
    const b = baselineBuild();
    if (b.missing) {
      console.error(
        `attacks: no baseline build at ${b.dir} (${b.missing}); running this build only.\n` +
          `  Create it with:  node bench/run.mjs --baseline 07177e3 --quick --only tp-1k   (adds a git worktree of 07177e3 there and builds it)\n` +
          `  or set BENCH_BASELINE_DIR to a built worktree.`,
      );
    } else builds.push(b);
  }
  if (builds.length === 0) throw new Error('no build to run');

  const hardLimitMs = (attacks.length * builds.length * (seconds + 60) + 60) * 1000;
  const hardTimer = setTimeout(() => {
    console.error(`attacks: hard time limit (${Math.round(hardLimitMs / 1000)} s) reached; ending every process`);
    killAllChildren();
    process.exit(2);
  }, hardLimitMs);
  hardTimer.unref();

  const started = Date.now();
  const meta = {
    date: new Date().toISOString(),
    command: `node bench/attacks.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: { cpuModel: cpus()[0]?.model.trim() ?? 'unknown', cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), freeMemGiB: Math.round(freemem() / 2 ** 30), os: `${type()} ${release()}`, node: process.version },
    loadStart: loadavg()[0],
    builds: builds.map(({ name, label, commit, modified, dir }) => ({ name, label, commit, modified, dir })),
    serverConfig: { ...SERVER_CONFIG, apiKeys: '(one key)' },
    seconds,
    members,
    attackerRssGuard: ATTACKER_RSS_GUARD,
  };
  const ticks0 = cpuTicks();
  const built0 = builtAt();
  console.error(`attacks: ${machineText(meta.machine)}; load ${meta.loadStart.toFixed(2)}; builds: ${builds.map((b) => `${b.label} (${b.commit})`).join(', ')}`);

  const results = [];
  let order = 0;
  for (const attack of attacks) {
    // Alternate which build goes first, so neither always runs on a fresher machine.
    const sequence = order++ % 2 ? [...builds].reverse() : builds;
    for (const build of sequence) {
      console.error(`attacks: ${attack.id} (${attack.title}) on ${build.label} …`);
      let r;
      try {
        r = await runAttack(attack, build, { seconds, members, rssCap });
      } catch (error) {
        r = { attack: attack.id, build: build.name, error: String(error?.message ?? error) };
        console.error(`attacks: ${attack.id} on ${build.label} failed: ${r.error}`);
      } finally {
        killAllChildren();
      }
      results.push(r);
      if (!r.error) console.error(`attacks:   peak ${mib(r.peakRss)} MiB (before ${mib(r.rssBefore)} MiB); ${outcomeText(r)}`);
    }
  }

  meta.loadEnd = loadavg()[0];
  meta.elapsedSec = (Date.now() - started) / 1000;
  const ticks1 = cpuTicks();
  if (ticks0 && ticks1) {
    const total = ticks1.total - ticks0.total;
    const ours = ticks1.ours - ticks0.ours;
    meta.cpuShare = { ours: ours / total, other: Math.max(0, ticks1.busy - ticks0.busy - ours) / total, steal: (ticks1.steal - ticks0.steal) / total };
  }
  const built1 = builtAt();
  if (built1 !== built0) meta.rebuiltDuringRun = new Date(built1).toISOString();
  const run = { meta, results };
  printRun(run);

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = join(resultsDir, `attacks-${meta.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\nResults: ${jsonFile}`);

  const full = !args.only && !args.builds && builds.length === 2 && seconds === 15 && members === 50;
  if (!args['no-md'] && (args['write-md'] || full)) await writeResultsMd(run);
  clearTimeout(hardTimer);
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

/** The tables of `run` on stdout. */
function printRun(run) {
  const { meta } = run;
  console.log(`\nHostile clients — ${machineText(meta.machine)}`);
  console.log(`${meta.date}  load ${meta.loadStart.toFixed(2)} → ${meta.loadEnd.toFixed(2)}${meta.cpuShare ? `  other processes ${pct(meta.cpuShare.other)} / steal ${pct(meta.cpuShare.steal)} of the CPU` : ''}`);
  for (const b of meta.builds) console.log(`${b.label}: ${b.commit}${b.modified?.length ? ` + ${b.modified.length} uncommitted file(s) in packages/` : ''}${b.dir !== REPO_DIR ? ` (${b.dir})` : ''}`);
  if (meta.rebuiltDuringRun) console.log(`WARNING: the built code under test changed during the run (last at ${meta.rebuiltDuringRun})`);
  console.log('');
  console.log(textTable(...mainTable(run)));
  const ratios = ratioTable(run);
  if (ratios) console.log(`\n${textTable(...ratios, [0])}`);
  console.log('');
  for (const line of detailLines(run)) console.log(line);
}

/** Replaces (or appends) the hostile-clients section of bench/RESULTS.md. */
async function writeResultsMd(run) {
  const file = join(BENCH_DIR, 'RESULTS.md');
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const report = await import('./lib/report.mjs');
  writeFileSync(file, withAttacksSection(old, attacksMarkdown(run, report.ATTACKS_START, report.ATTACKS_END), report.keptAttacks));
  console.log(`Refreshed ${file} (hostile clients section)`);
}

/** This checkout: server CLI, client SDK, protocol and server SDK from packages/<name>/dist. */
function currentBuild() {
  const mods = moduleEntries(REPO_DIR);
  const missing = Object.values(mods).filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`this build is not built (${missing[0]} is missing): run npm run build`);
  let commit = 'unknown';
  let modified = [];
  try {
    commit = git(REPO_DIR, 'rev-parse', '--short=12', 'HEAD');
    modified = git(REPO_DIR, 'status', '--porcelain', '--', 'packages').split('\n').filter(Boolean).map((l) => l.slice(3));
  } catch {
    /* not a git checkout */
  }
  return { name: 'current', label: 'this build', dir: REPO_DIR, cli: join(REPO_DIR, 'packages/cli/bin/backchannel.js'), mods, commit, modified };
}

/** The baseline worktree (see lib/baseline.mjs): its CLI moved from packages/server to packages/cli over time. */
function baselineBuild() {
  const dir = resolve(process.env.BENCH_BASELINE_DIR || join(tmpdir(), 'bc-base'));
  if (!existsSync(dir)) return { dir, missing: 'the directory does not exist' };
  const cli = ['packages/cli/bin/backchannel.js', 'packages/server/dist/cli.js'].map((p) => join(dir, p)).find((p) => existsSync(p) && (!p.endsWith('backchannel.js') || existsSync(join(dir, 'packages/cli/dist/cli.js'))));
  const mods = moduleEntries(dir);
  const absent = [cli, ...Object.values(mods)].find((p) => !p || !existsSync(p));
  if (absent !== undefined) return { dir, missing: `${absent ?? 'a server CLI'} is missing: not built` };
  let commit = 'unknown';
  try {
    commit = git(dir, 'rev-parse', '--short=12', 'HEAD');
  } catch {
    /* not a git checkout */
  }
  return { name: 'baseline', label: `baseline ${commit.slice(0, 7)}`, dir, cli, mods, commit, modified: [] };
}

function moduleEntries(dir) {
  return {
    client: join(dir, 'packages/client/dist/index.node.js'),
    protocol: join(dir, 'packages/protocol/dist/index.js'),
    serverSdk: join(dir, 'packages/server-sdk/dist/index.js'),
  };
}

const git = (cwd, ...args) => execFileSync('git', ['-C', cwd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

// ── child processes: every one is tracked and killed when an attack ends or the run exits ──

const children = new Set();

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Temporary directories (server config files), removed when the run exits however it ends. */
const tempDirs = new Set();

function killAllChildren() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`attacks: ${sig}; ending every process`);
    killAllChildren();
    process.exit(130);
  });
}

async function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await Promise.race([new Promise((r) => child.once('exit', r)), sleep(ms)]);
}

/**
 * Starts `build`'s server CLI with SERVER_CONFIG on a free 127.0.0.1 port and resolves with its URL
 * (from the JSON log line `backchannel server listening`). The server is forked with the
 * benchmark's preloaded hook only so that it exits if this script goes away; the hook adds nothing
 * to its work. Info and warning log lines are kept with the time they arrived.
 */
async function startServer(build) {
  const dir = mkdtempSync(join(tmpdir(), 'bc-attacks-'));
  tempDirs.add(dir);
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(SERVER_CONFIG));
  const hook = pathToFileURL(join(BENCH_DIR, 'lib/server-hook.mjs')).href;
  const child = track(fork(build.cli, ['serve', '--config', file], { execArgv: ['--import', hook], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
  const logs = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 16_384) stderr += d;
  });
  const url = listeningUrl(
    child,
    (entry) => {
      if (entry.msg !== 'server API request' && logs.length < 10_000) logs.push({ at: nowMs(), level: entry.level, msg: entry.msg, code: entry.code, participantId: entry.participantId });
    },
    (code, signal) => `server exited early (${code ?? signal}): ${stderr.slice(0, 2000)}`,
  );
  return {
    pid: child.pid,
    child,
    logs,
    url: await withTimeout(url, 20_000, 'server start'),
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    get stderr() {
      return stderr;
    },
    async kill() {
      if (this.alive) child.kill('SIGKILL');
      await waitExit(child, 5000);
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

/** A client-hosting child process (this script with --role), driven over IPC; it reports events as they happen. */
async function startChild(role, onEvent) {
  const child = track(fork(SELF, ['--role', role], { execArgv: ['--max-old-space-size=6144'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const pending = new Map();
  let nextId = 1;
  child.on('message', (m) => {
    if (m?.t === 'ev') return void onEvent({ ...m, side: role });
    const p = pending.get(m?.re);
    if (!p) return;
    pending.delete(m.re);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`${role} ${p.op}: ${m.error}`));
  });
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${role} process exited (${code ?? signal}) during ${p.op}`));
    pending.clear();
  });
  const call = (op, args = {}, timeoutMs = 60_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`${role} process has exited`));
    const id = nextId++;
    const promise = new Promise((res, rej) => pending.set(id, { resolve: res, reject: rej, op }));
    child.send({ id, op, args });
    return withTimeout(promise, timeoutMs, `${role} ${op}`);
  };
  await call('ping', {}, 20_000);
  return { pid: child.pid, call, child };
}

/** VmRSS, VmHWM (bytes), CPU ms and bytes read/written through syscalls of `pid`, from /proc; undefined once it has gone. */
function procStats(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let rchar = NaN;
    let wchar = NaN;
    try {
      const io = readFileSync(`/proc/${pid}/io`, 'utf8');
      rchar = Number(/^rchar: (\d+)/m.exec(io)?.[1]);
      wchar = Number(/^wchar: (\d+)/m.exec(io)?.[1]);
    } catch {
      /* /proc/PID/io unreadable: leave the byte counts unknown */
    }
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / 100, rchar, wchar };
  } catch {
    return undefined;
  }
}

/** Samples the server's VmRSS every 100 ms. */
function rssSampler(pid) {
  const samples = [];
  const take = () => {
    const s = procStats(pid);
    if (s) samples.push({ at: nowMs(), rss: s.rss });
  };
  take();
  const timer = setInterval(take, 100);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
    },
    latest: () => samples[samples.length - 1]?.rss ?? NaN,
  };
}

/**
 * One attack on one build: a fresh server, the two client processes, the set-up, then the flood
 * from t0 until the server reacts (the attacker disconnected, the receiver detached) or the time
 * is up; the server's RSS is sampled throughout and for 1 s after the flood stops.
 */
async function runAttack(attack, build, { seconds, members, rssCap }) {
  const load = loadavg()[0];
  const server = await startServer(build);
  const sampler = rssSampler(server.pid);
  const events = [];
  let wake = () => {};
  const onEvent = (ev) => {
    events.push(ev);
    wake();
  };
  try {
    const [paused, reading] = await Promise.all([startChild('paused', onEvent), startChild('reading', onEvent)]);
    const setup = { url: server.url, mods: build.mods };
    await Promise.all([paused.call('load', setup), reading.call('load', setup)]);

    // Set-up: who is where. The non-reading client joins last (the reading side watches it).
    let attackerId;
    let flood;
    let done;
    if (attack.id === '1a') {
      await reading.call('observer', { room: 'attack' });
      ({ participantId: attackerId } = await paused.call('pausedClient', { room: 'attack' }));
      await reading.call('watch', { participantId: attackerId });
      flood = () => paused.call('floodGetCall');
      done = (evs) => evs.find((e) => e.kind === 'watchedLeft' || e.kind === 'socketClosed');
    } else if (attack.id === '1b') {
      await reading.call('members', { room: 'fan', count: members });
      await reading.call('observer', { room: 'watch' });
      ({ participantId: attackerId } = await paused.call('pausedClient', { room: 'watch', fanRoom: 'fan' }));
      await reading.call('watch', { participantId: attackerId });
      flood = () => paused.call('floodJoinLeave', { room: 'fan' });
      done = (evs) => evs.find((e) => e.kind === 'watchedLeft' || e.kind === 'socketClosed');
    } else if (attack.id === '2') {
      ({ participantId: attackerId } = await paused.call('pausedClient', { room: 'slow' }));
      await reading.call('senders', { room: 'slow', receiverId: attackerId, senders: 1, sessionsEach: 1 });
      flood = () => reading.call('floodSend', { size: 0 });
      done = (evs) => evs.find((e) => e.kind === 'detached' || e.kind === 'watchedLeft' || e.kind === 'socketClosed');
    } else {
      ({ participantId: attackerId } = await paused.call('pausedClient', { room: 'slow' }));
      await reading.call('senders', { room: 'slow', receiverId: attackerId, senders: 4, sessionsEach: 64 });
      flood = () => reading.call('floodSend', { size: 16 * 1024 });
      const total = 4 * 64;
      done = (evs) => {
        const det = evs.filter((e) => e.kind === 'detached');
        return det.length >= total ? det[det.length - 1] : evs.find((e) => e.kind === 'watchedLeft' || e.kind === 'socketClosed');
      };
    }

    await sleep(1000); // let the set-up's traffic settle
    const before = procStats(server.pid);
    const rssBefore = sampler.latest();
    const t0 = nowMs();
    await flood();
    let ended = 'time';
    const deadline = t0 + seconds * 1000;
    for (;;) {
      const reaction = done(events.filter((e) => e.at >= t0));
      if (reaction) {
        ended = 'reaction';
        break;
      }
      if (!server.alive) {
        ended = 'server exited';
        break;
      }
      if (sampler.latest() > rssCap) {
        ended = 'rss cap';
        break;
      }
      const left = deadline - nowMs();
      if (left <= 0) break;
      await new Promise((r) => {
        wake = r;
        setTimeout(r, Math.min(left, 100));
      });
    }
    const tStop = nowMs();
    const [pausedStats, readingStats] = await Promise.all([paused.call('stop', {}, 15_000).catch((e) => ({ error: e.message })), reading.call('stop', {}, 15_000).catch((e) => ({ error: e.message }))]);
    await sleep(1000); // RSS can still rise while the server works off what it read
    sampler.stop();
    const after = procStats(server.pid);
    const window = sampler.samples.filter((s) => s.at >= t0);
    const peak = window.reduce((m, s) => (s.rss > m.rss ? s : m), { rss: rssBefore, at: t0 });
    const rel = (at) => Math.round(at - t0);
    const logs = server.logs.filter((l) => l.at >= t0 - 2000).map((l) => ({ ...l, at: rel(l.at) }));
    const evs = events.filter((e) => e.at >= t0).map(({ t, ...e }) => ({ ...e, at: rel(e.at) }));
    const pre = events.filter((e) => e.at < t0).map(({ t, ...e }) => ({ ...e, at: rel(e.at) }));
    return {
      attack: attack.id,
      build: build.name,
      loadAtStart: load,
      attackerId,
      ended,
      durationMs: Math.round(tStop - t0),
      rssBefore,
      peakRss: peak.rss,
      peakAtMs: rel(peak.at),
      rssAfter: sampler.latest(),
      hwmAtEnd: after?.hwm,
      serverCpuMs: after && before ? after.cpuMs - before.cpuMs : NaN,
      serverReadBytes: after && before ? after.rchar - before.rchar : NaN,
      serverWroteBytes: after && before ? after.wchar - before.wchar : NaN,
      rssSeries: window.map((s) => [rel(s.at), Math.round(s.rss / MiB)]),
      events: evs.slice(0, 2000),
      eventsBefore: pre.slice(0, 200),
      eventCounts: countBy(evs, (e) => e.kind),
      logs: logs.slice(0, 500),
      attacker: pausedStats,
      peers: readingStats,
      serverAliveAtEnd: server.alive,
    };
  } finally {
    sampler.stop();
    killAllChildren();
    await server.kill();
  }
}

function countBy(list, key) {
  const out = {};
  for (const x of list) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

// ── reporting ──

const mib = (b) => (Number.isFinite(b) ? Math.round(b / MiB).toLocaleString('en-US') : '–');
const pct = (x) => `${Math.round(x * 100)} %`;
const sec = (ms) => `${(ms / 1000).toFixed(1)} s`;
const num = (n) => (Number.isFinite(n) ? (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e4 ? `${Math.round(n / 1e3)} k` : String(n)) : '–');
const mb = (b) => (Number.isFinite(b) ? `${(b / 1e6).toLocaleString('en-US', { maximumFractionDigits: b >= 1e8 ? 0 : 1 })} MB` : '–');
const machineText = (m) => `${m.cpuModel} × ${m.cpus} logical CPUs, ${m.memGiB} GiB RAM, ${m.os}; Node ${m.node}`;
const reasonOf = (e) => e?.reason?.code ?? e?.code ?? e?.reason ?? '?';

/** One line: what the server did about the attacker (or that it did nothing within the time). */
function outcomeText(r) {
  if (r.error) return `failed: ${r.error}`;
  // Events up to the stop are the server's reaction; the 1 s after it is reported as such.
  const when = (at) => `${sec(at)}${at > r.durationMs + 50 ? ' (after the stop)' : ''}`;
  const first = (kind) => r.events.find((e) => e.kind === kind);
  const noPing = r.logs.find((l) => /ping/.test(l.msg ?? '') && l.at >= 0);
  const overflow = r.logs.find((l) => /overflow/.test(l.msg ?? '') && l.at >= 0);
  const parts = [];
  const who = r.attack === '2' || r.attack === '3' ? 'receiver' : 'attacker';
  if (who === 'receiver') {
    const det = r.events.filter((e) => e.kind === 'detached');
    const total = r.attack === '3' ? 256 : 1;
    if (det.length) {
      const reasons = [...new Set(det.map(reasonOf))].join(', ');
      parts.push(
        total > 1
          ? `receiver detached from ${det.length}/${total} sessions, first at ${when(det[0].at)}, last at ${when(det[det.length - 1].at)} (${reasons})`
          : `receiver detached at ${when(det[0].at)} (${reasons})`,
      );
    }
  }
  const left = first('watchedLeft');
  if (left) parts.push(`${who} removed from the room at ${when(left.at)} (${reasonOf(left)})`);
  const closed = first('socketClosed');
  if (closed) parts.push(`${who}'s connection closed by the server at ${when(closed.at)}${noPing && Math.abs(noPing.at - closed.at) < 500 ? ' (it answered no ping)' : ''}`);
  else if (noPing) parts.push(`server dropped a connection that answered no ping at ${when(noPing.at)}`);
  if (overflow && !left) parts.push(`server logged "${overflow.msg}" at ${when(overflow.at)}`);
  if (parts.length === 0) parts.push(`${who} not ${who === 'receiver' ? 'detached' : 'disconnected'} within ${sec(r.durationMs)}`);
  const gone = r.events.filter((e) => e.kind === 'memberDisconnected');
  if (gone.length) parts.push(`${gone.length} reading member(s) disconnected too (${[...new Set(gone.map(reasonOf))].join(', ')})`);
  if (r.ended === 'rss cap') parts.push('stopped early: server RSS passed the cap');
  if (r.ended === 'server exited' || !r.serverAliveAtEnd) parts.push('SERVER EXITED');
  return parts.join('; ');
}

/** What the attacking side put on the wire. */
function volumeText(r) {
  if (r.error) return '';
  if (r.attack === '1a') return `${num(r.attacker?.sent)} requests, ${mb(r.attacker?.wroteBytes)}`;
  if (r.attack === '1b') return `${num(r.attacker?.sent)} requests, ${mb(r.attacker?.wroteBytes)}`;
  // A 0-byte data frame is 16 bytes of header plus 6 of WebSocket framing (client frames are masked).
  if (r.attack === '2') return `${mb(r.peers?.wroteBytes)} ≈ ${num(Math.round(r.peers?.wroteBytes / 22))} frames`;
  return mb(r.peers?.wroteBytes);
}

function mainTable(run) {
  const label = (name) => run.meta.builds.find((b) => b.name === name)?.label ?? name;
  const header = ['Attack', 'Build', 'RSS before (MiB)', 'Peak RSS (MiB)', 'Peak at', 'Server read', 'Attacking side wrote', 'Server reaction'];
  const rows = run.results.map((r) => {
    const a = ATTACKS.find((x) => x.id === r.attack);
    return r.error
      ? [`${a.id} ${a.short}`, label(r.build), '', '', '', '', '', `failed: ${r.error}`]
      : [`${a.id} ${a.short}`, label(r.build), mib(r.rssBefore), mib(r.peakRss), sec(r.peakAtMs), mb(r.serverReadBytes), volumeText(r), outcomeText(r)];
  });
  return [header, rows];
}

function ratioTable(run) {
  const rows = [];
  for (const a of ATTACKS) {
    const cur = run.results.find((r) => r.attack === a.id && r.build === 'current' && !r.error);
    const base = run.results.find((r) => r.attack === a.id && r.build === 'baseline' && !r.error);
    if (!cur || !base) continue;
    const growth = (r) => Math.max(0, r.peakRss - r.rssBefore);
    const ratio = (x, y) => (y > 0 ? `${(x / y).toFixed(2)}×` : '–');
    rows.push([`${a.id} ${a.short}`, `${mib(cur.peakRss)} / ${mib(base.peakRss)}`, ratio(cur.peakRss, base.peakRss), `${mib(growth(cur))} / ${mib(growth(base))}`, ratio(growth(cur), growth(base))]);
  }
  return rows.length ? [['Attack', 'Peak RSS MiB (this / baseline)', 'Peak ratio', 'Growth over idle MiB (this / baseline)', 'Growth ratio'], rows] : undefined;
}

/** Server log lines and details worth knowing per run (stdout only; the JSON has them all). */
function detailLines(run) {
  const out = [];
  for (const r of run.results) {
    if (r.error) continue;
    const label = run.meta.builds.find((b) => b.name === r.build)?.label ?? r.build;
    const msgs = countBy(r.logs.filter((l) => l.at >= 0), (l) => l.msg);
    const guard = (r.attacker?.guardMs ?? 0) + (r.peers?.guardMs ?? 0);
    const bits = [
      `server CPU ${sec(r.serverCpuMs)} over ${sec(r.durationMs + 1000)}`,
      `wrote ${mb(r.serverWroteBytes)}`,
      `RSS 1 s after the flood ${mib(r.rssAfter)} MiB`,
      Object.keys(msgs).length ? `server log: ${Object.entries(msgs).map(([m, n]) => `"${m}" ×${n}`).join(', ')}` : 'server log: nothing at info level or above',
    ];
    if (guard > 0) bits.push(`attacking process held back ${sec(guard)} by its own memory guard`);
    if (r.attack === '1b') bits.push(`members received ${num(r.peers?.joinEvents)} join events`);
    out.push(`${r.attack} on ${label}: ${bits.join('; ')}`);
  }
  return out;
}

/** `markdown` with its hostile-clients section replaced by `section` (appended when it has none). */
function withAttacksSection(markdown, section, keptAttacks) {
  const old = keptAttacks(markdown);
  if (old) return markdown.replace(old, () => section);
  return `${markdown.trimEnd()}\n\n${section}\n`;
}

/** The section of RESULTS.md (between the markers that run.mjs keeps, from lib/report.mjs). */
function attacksMarkdown(run, ATTACKS_START, ATTACKS_END) {
  const { meta } = run;
  const cur = meta.builds.find((b) => b.name === 'current');
  const base = meta.builds.find((b) => b.name === 'baseline');
  const [header, rows] = mainTable(run);
  const ratios = ratioTable(run);
  const share = meta.cpuShare ? `; during the run other processes used ${pct(meta.cpuShare.other)} of the machine's CPU, hypervisor steal ${pct(meta.cpuShare.steal)}` : '';
  return `${ATTACKS_START}
## Hostile clients: peak server RSS before/after

What one hostile client (or a few acting together) makes the server hold: the attacks of issue 12,
items 1–3, each on a fresh server of this build and of the baseline, driven with each build's own
client SDK, protocol codec and server SDK ([attacks.mjs](attacks.mjs)). The server's VmRSS is
sampled every 100 ms from the start of the flood until 1 s after it stops; an attack stops after
${meta.seconds} s or as soon as the server disconnects the attacker or detaches the receiver.

- **Date:** ${meta.date}
- **This build:** ${cur ? `commit \`${cur.commit}\`${cur.modified?.length ? ` plus uncommitted changes in ${cur.modified.map((f) => `\`${f}\``).join(', ')}` : ''}` : 'not run'}
- **Baseline:** ${base ? `commit \`${base.commit}\` (built in a git worktree)` : 'not run'}
- **Command:** \`${meta.command}\`
- **Machine:** ${machineText(meta.machine)}
- **Load average (1 min) at start / end:** ${meta.loadStart.toFixed(2)} / ${meta.loadEnd.toFixed(2)}${share}. The machine is shared with other work: how much of a flood a server takes in — and so how far an unbounded server grows, and when a time limit fires — depends on the CPU it gets, so compare the builds within one run
- **Server:** \`backchannel serve --config …\` with \`${JSON.stringify({ ...SERVER_CONFIG, apiKeys: { k: '…' } })}\` (everything else the product default), plain \`node\` without flags
- **Run time:** ${Math.round(meta.elapsedSec)} s${meta.rebuiltDuringRun ? `\n- **Warning:** the built code under test changed during the run (last at ${meta.rebuiltDuringRun})` : ''}

${markdownTable(header, rows)}
${ratios ? `\nThis build ÷ baseline (growth = peak minus the RSS right before the flood):\n\n${markdownTable(...ratios, [0])}\n` : ''}
Per run (server CPU and bytes written from \`/proc\`, from the start of the flood to 1 s after it):

${detailLines(run)
  .map((l) => `- ${l}`)
  .join('\n')}

The attacks (all clients on 127.0.0.1, in two processes apart from the server: the non-reading
client in one, the reading clients in the other):

- **1a** — a client joins a room, stops reading its socket (\`ws._socket.pause()\`) and calls
  \`getCall('CA_nonexistent…')\` without awaiting, yielding every 1,000 calls; a reading client in
  the room sees whether and when the server removes it.
- **1b** — a client in a watched room stops reading and sends, raw, \`conf.join\` (4 KB of
  metadata) and \`room.leave\` in turn into a room of ${meta.members} reading members, each join and leave
  announced to all of them.
- **2** — a receiver joins and stops reading; a sender sends 0-byte \`reliable-bytes\` messages to it
  with \`send()\`, ignoring its return value, yielding every 1,000.
- **3** — a receiver joins and stops reading; 4 senders open 64 \`reliable-bytes\` sessions each
  (stream ids 100–163) to it and send 16 KiB messages round-robin, ignoring backpressure.

"RSS before" is the server's RSS right before the flood (everyone joined, sessions open); "Peak
at" is when the highest sample was taken, from the start of the flood. "Server read" is what the
server process read through system calls during the flood and the second after it (\`/proc/PID/io\`
rchar): how much of the attack it took in. "Attacking side wrote" is what the attacking process
wrote to its sockets (the same counter): the requests it made, or for 2 and 3 what the senders' SDK
put on the wire (\`send()\` itself only queues). Each attacking process holds back while its own
RSS is above ${((meta.attackerRssGuard ?? ATTACKER_RSS_GUARD) / 2 ** 30).toFixed(1)} GiB, so that the machine is not exhausted (the per-run lines say when it did).
\`bench/results/attacks-*.json\` has every RSS sample, event and server log line.
${
  run.results.some((r) => !r.error && r.events.some((e) => e.kind === 'socketClosed') && !r.events.some((e) => e.kind === 'watchedLeft'))
    ? `
"Connection closed by the server" without "removed from the room": the server ended the TCP
connection, and the participant then waits for a resume like after any lost connection
(\`resumeWindowMs\`), so within the attack the other members did not see it leave.
`
    : ''
}${ATTACKS_END}`;
}

/** A Markdown table; the columns in `textColumns` are left-aligned, the others right-aligned. */
function markdownTable(header, rows, textColumns = [0, 1, header.length - 1]) {
  const esc = (v) => String(v ?? '').replaceAll('|', '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `|${header.map((_, c) => (textColumns.includes(c) ? ' --- ' : ' ---: ')).join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function textTable(header, rows, textColumns = [0, 1, header.length - 1]) {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const right = (c) => !textColumns.includes(c);
  const line = (r) => r.map((v, c) => (right(c) ? String(v ?? '').padStart(widths[c]) : String(v ?? '').padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** CPU ticks of the whole machine and of this process plus its reaped children (see run.mjs). */
function cpuTicks() {
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal, ours: f[11] + f[12] + f[13] + f[14] };
  } catch {
    return undefined;
  }
}

/** Newest modification time of this checkout's built code, to notice a build during the run. */
function builtAt() {
  return builtAtIn(REPO_DIR);
}

// ───────────────────────────── client processes ─────────────────────────────

/**
 * A child process hosting clients of one build. Role `paused`: the client that stops reading its
 * socket (the attacker of 1a/1b, the slow receiver of 2/3). Role `reading`: every other client
 * (observers, members, senders). Commands come over IPC; events go back as they happen, stamped
 * with CLOCK_MONOTONIC (shared by all processes of the machine).
 */
async function childMain() {
  const role = process.argv[3];
  let m; // the build's modules
  let url;
  let stopped = false;
  const stats = { sent: 0, bytes: 0, guardMs: 0, joinEvents: 0, errors: 0 };
  // Bytes this process wrote through system calls (its sockets; IPC adds a few hundred bytes).
  const wchar = () => {
    try {
      return Number(/^wchar: (\d+)/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
    } catch {
      return NaN;
    }
  };
  let wcharAtFlood = NaN;
  const emit = (kind, data = {}) => process.send?.({ t: 'ev', kind, at: nowMs(), ...data });
  const reasonWire = (r) => (r ? { code: r.code, message: String(r.message ?? '').slice(0, 200) } : undefined);
  const token = (userId) => m.serverSdk.createAccessToken({ apiKey: API_KEY, apiSecret: API_SECRET, userId, grants: GRANTS });
  const clients = [];
  const readOptions = { reconnect: false };
  // The non-reading client must not give up on its own: no heartbeat timeout, no reconnect, no request timeouts.
  const pausedOptions = { reconnect: false, pingIntervalMs: 1_000_000, pingTimeoutMs: 2_000_000, requestTimeoutMs: 1_000_000 };
  let paused; // { client, ws, room, fanRoomNum }
  let watched;
  const sendSessions = [];

  /** Holds the attacking loop back while this process's own RSS is above the guard. */
  const guard = async () => {
    while (!stopped && process.memoryUsage.rss() > ATTACKER_RSS_GUARD) {
      await sleep(20);
      stats.guardMs += 20;
    }
  };
  const yieldLoop = () => new Promise((r) => setImmediate(r));

  const ops = {
    ping: () => ({ role }),

    async load({ mods, url: u }) {
      url = u;
      m = {
        client: await import(pathToFileURL(mods.client).href),
        protocol: await import(pathToFileURL(mods.protocol).href),
        serverSdk: await import(pathToFileURL(mods.serverSdk).href),
        WebSocket: createRequire(mods.client)('ws'),
      };
      return {};
    },

    /** The client that stops reading: joins `room` (and, for 1b, learns `fanRoom`'s number), then pauses its socket. */
    async pausedClient({ room, fanRoom }) {
      let ws;
      const Base = m.WebSocket;
      class Pausable extends Base {
        constructor(u) {
          super(u, { perMessageDeflate: false });
          ws = this;
        }
      }
      const client = await m.client.Client.connect(url, await token('attacker'), { ...pausedOptions, WebSocket: Pausable });
      clients.push(client);
      const conf = await client.joinConference(room);
      let fanRoomNum;
      if (fanRoom) {
        const fan = await client.joinConference(fanRoom);
        fanRoomNum = fan.roomNum;
        await fan.leave();
      }
      client.on('disconnected', (reason) => emit('clientDisconnected', { reason: reasonWire(reason) }));
      const socket = ws._socket;
      socket.on('error', (e) => emit('socketError', { code: e.code }));
      socket.on('close', () => emit('socketClosed'));
      socket.pause();
      paused = { client, ws, conf, fanRoomNum };
      return { participantId: client.participantId, fanRoomNum };
    },

    /** 1a: getCall for calls that do not exist, never awaited, yielding every 1,000. */
    floodGetCall() {
      wcharAtFlood = wchar();
      const { client, ws } = paused;
      const ignore = () => {};
      (async () => {
        let n = 0;
        while (!stopped && !ws._socket.destroyed) {
          // Corked: the 1,000 requests leave in one write, as a client bent on flooding would send them.
          ws._socket.cork();
          for (let i = 0; i < 1000; i++) {
            try {
              client.getCall(`CA_nonexistent${(n++).toString(36).padStart(8, '0')}`).catch(ignore);
            } catch {
              stats.errors++;
            }
          }
          ws._socket.uncork();
          stats.sent += 1000;
          await yieldLoop();
          await guard();
        }
      })();
      return {};
    },

    /** 1b: raw conf.join (4 KB metadata) and room.leave in turn, never awaited, yielding every 1,000. */
    floodJoinLeave({ room }) {
      wcharAtFlood = wchar();
      const { ws, fanRoomNum } = paused;
      const metadata = JSON.stringify({ note: 'x'.repeat(3_950) });
      let id = 1_000_000;
      (async () => {
        while (!stopped && !ws._socket.destroyed) {
          ws._socket.cork();
          for (let i = 0; i < 500; i++) {
            ws.send(m.protocol.encodeControlFrame(`{"t":"conf.join","id":${id++},"name":${JSON.stringify(room)},"metadata":${metadata}}`));
            ws.send(m.protocol.encodeControlFrame(`{"t":"room.leave","id":${id++},"room":${fanRoomNum}}`));
          }
          ws._socket.uncork();
          stats.sent += 1000;
          await yieldLoop();
          await guard();
        }
      })();
      return {};
    },

    /** A reading client in `room` that reports when the watched participant leaves it, and why. */
    async observer({ room }) {
      const client = await m.client.Client.connect(url, await token('observer'), readOptions);
      clients.push(client);
      const conf = await client.joinConference(room);
      conf.on('participantLeft', (p, reason) => {
        if (p.id === watched) emit('watchedLeft', { reason: reasonWire(reason) });
      });
      return {};
    },

    watch({ participantId }) {
      watched = participantId;
      return {};
    },

    /** `count` reading members of `room` (1b): each announcement of the attacker's joins reaches all of them. */
    async members({ room, count }) {
      for (let i = 0; i < count; i++) {
        const client = await m.client.Client.connect(url, await token(`member-${i}`), readOptions);
        clients.push(client);
        client.on('disconnected', (reason) => emit('memberDisconnected', { reason: reasonWire(reason) }));
        const conf = await client.joinConference(room);
        conf.on('participantJoined', () => stats.joinEvents++);
      }
      return {};
    },

    /** `senders` clients in `room`, each with `sessionsEach` reliable-bytes sessions (stream ids 100, 101, …) to `receiverId`. */
    async senders({ room, receiverId, senders, sessionsEach }) {
      for (let s = 0; s < senders; s++) {
        const client = await m.client.Client.connect(url, await token(`sender-${s}`), readOptions);
        clients.push(client);
        const conf = await client.joinConference(room);
        if (s === 0) {
          watched = receiverId;
          conf.on('participantLeft', (p, reason) => {
            if (p.id === watched) emit('watchedLeft', { reason: reasonWire(reason) });
          });
        }
        for (let i = 0; i < sessionsEach; i++) {
          const session = await conf.makeSendDataSession(100 + i, 'reliable-bytes', { destination: receiverId });
          session.on('receiverDetached', ({ participantId, reason }) => emit('detached', { sender: s, streamId: 100 + i, participantId, reason: reasonWire(reason) }));
          session.on('closed', ({ reason }) => emit('sessionClosed', { sender: s, streamId: 100 + i, reason: reasonWire(reason) }));
          sendSessions.push(session);
        }
      }
      return { sessions: sendSessions.length };
    },

    /** 2 and 3: send(`size` bytes) round-robin over every session, ignoring the return value, yielding every 1,000. */
    floodSend({ size }) {
      wcharAtFlood = wchar();
      const payload = new Uint8Array(size).fill(7);
      (async () => {
        let live = sendSessions.slice();
        let k = 0;
        while (!stopped && live.length > 0) {
          for (let i = 0; i < 1000; i++) {
            const session = live[k++ % live.length];
            try {
              session.send(payload);
              stats.sent++;
              stats.bytes += size;
            } catch {
              stats.errors++;
              live = live.filter((x) => x !== session);
              if (live.length === 0) break;
            }
          }
          await yieldLoop();
          await guard();
        }
      })();
      return {};
    },

    /** Ends the flood and reports what was sent. */
    stop() {
      stopped = true;
      const sock = paused?.ws?._socket;
      return {
        ...stats,
        wroteBytes: wchar() - wcharAtFlood,
        socket: sock ? { destroyed: sock.destroyed, bytesWritten: sock.bytesWritten, bufferedAmount: paused.ws.bufferedAmount } : undefined,
        rss: process.memoryUsage.rss(),
      };
    },
  };

  process.on('message', async (msg) => {
    if (!msg || typeof msg.op !== 'string') return;
    try {
      const op = ops[msg.op];
      if (!op) throw new Error(`unknown op ${msg.op}`);
      const result = await op(msg.args ?? {});
      process.send?.({ re: msg.id, ok: true, result });
    } catch (error) {
      process.send?.({ re: msg.id, ok: false, error: String(error?.stack ?? error) });
    }
  });
  // Ends with the run: when the orchestrator goes away, so does this process.
  process.on('disconnect', () => process.exit(0));
  process.on('unhandledRejection', (e) => emit('unhandled', { error: String(e?.message ?? e).slice(0, 300) }));
}

// Last, so that every declaration above is initialised before either entry runs.
if (process.argv[2] === '--role') await childMain();
else await main();
