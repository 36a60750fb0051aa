/**
 * Child processes of a run: the servers and the workers. Every child is registered here and killed
 * when the run ends, fails, or is interrupted (SIGINT/SIGTERM), so nothing outlives the run.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { baselineEntries } from './baseline.mjs';
import { BENCH_API_KEY, BENCH_API_SECRET, isBackchannel } from './clients.mjs';
import { benchTls } from './tls.mjs';
import { sleep, withTimeout } from './util.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const BENCH_DIR = resolve(HERE, '..');
export const REPO_DIR = resolve(BENCH_DIR, '..');
const WORKER = join(BENCH_DIR, 'worker.mjs');
const HOOK = pathToFileURL(join(HERE, 'server-hook.mjs')).href;
const CLI = join(REPO_DIR, 'packages/cli/dist/cli.js');
const PEERS = { socketio: join(BENCH_DIR, 'peers/socketio-server.mjs'), ws: join(BENCH_DIR, 'peers/ws-relay.mjs') };

/**
 * Backchannel server settings for the benchmark; everything else is the product default.
 * - maxDataBitrateKbps 0: the per-participant data bitrate limit (default 200 Mbit/s) is off, so
 *   the benchmark measures the server, not the limit.
 * - maxParticipantsPerRoom: raised from 1,000 for the 5,000-participant scenario.
 */
export const BACKCHANNEL_BENCH_CONFIG = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  logLevel: 'info',
  apiKeys: { [BENCH_API_KEY]: BENCH_API_SECRET },
  maxDataBitrateKbps: 0,
  maxParticipantsPerRoom: 10_000,
});

/**
 * V8 flags of every process the benchmark starts, servers and clients of all three systems alike:
 * an initial old-generation limit of 128 MiB. Without it, a process that moves bulk data but makes
 * little JavaScript garbage (the Backchannel server and SDK) ends up with a full-GC limit of a few
 * tens of MiB, which socket read buffers awaiting collection alone exceed, and then runs a full
 * collection every few tens of milliseconds (see docs/configuration.md, "Node flags"). The
 * environment variable BENCH_NODE_FLAGS replaces them (space-separated; empty for none).
 */
export const NODE_FLAGS = Object.freeze(process.env.BENCH_NODE_FLAGS === undefined ? ['--initial-old-space-size=128'] : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean));

const children = new Set();

/** Registers a child process of the run: it is killed with the others (see {@link killAll}). */
export function trackChild(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills every child still running: SIGTERM, then SIGKILL after `graceMs`. */
export async function killAll(graceMs = 3000) {
  const list = [...children];
  for (const c of list) c.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  for (const c of children) c.kill('SIGKILL');
}

process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** `BENCH_PROFILE_INTERVAL_US`: the profiler's sampling interval (Node's default is 1,000 µs). */
const PROF_INTERVAL = process.env.BENCH_PROFILE_INTERVAL_US ? [`--cpu-prof-interval=${Number(process.env.BENCH_PROFILE_INTERVAL_US)}`] : [];

/**
 * A worker process with a request/response channel; `nodeFlags` replaces {@link NODE_FLAGS};
 * `script` replaces bench/worker.mjs (it must answer the same `{ id, op, args }` messages, `ready`
 * and `closeAll` included).
 */
export async function startWorker(label = 'worker', { cpuProfDir, nodeFlags = NODE_FLAGS, script = WORKER } = {}) {
  const execArgv = [...nodeFlags, '--max-old-space-size=6144'];
  if (cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, ...PROF_INTERVAL);
  const child = trackChild(fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv }));
  const pending = new Map();
  let nextId = 1;
  let exited = false;
  child.on('message', (m) => {
    if (m && m.t === 'log') return void console.error(`[${label} ${child.pid}] ${m.text}`);
    const p = m && pending.get(m.re);
    if (!p) return;
    pending.delete(m.re);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`${label} ${p.op}: ${m.error}`));
  });
  child.once('exit', (code, signal) => {
    exited = true;
    for (const p of pending.values()) p.reject(new Error(`${label} exited (${code ?? signal}) during ${p.op}`));
    pending.clear();
  });
  const call = (op, args = {}, timeoutMs = 60_000) => {
    if (exited) return Promise.reject(new Error(`${label} has exited`));
    const id = nextId++;
    const promise = new Promise((resolve, reject) => pending.set(id, { resolve, reject, op }));
    child.send({ id, op, args });
    return withTimeout(promise, timeoutMs, `${label} ${op}`);
  };
  await call('ready', {}, 30_000);
  return {
    pid: child.pid,
    call,
    get alive() {
      return !exited;
    },
    /** Closes the participants (bounded), then ends the process. */
    async close() {
      if (!exited) await call('closeAll', {}, 60_000).catch(() => undefined);
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        child.disconnect();
        await Promise.race([gone, sleep(3000)]);
        if (!exited) child.kill('SIGKILL');
      }
    },
  };
}

/** Server settings of the variants of this build (see VARIANTS in clients.mjs). */
function variantConfig(system) {
  if (system === 'backchannel-nometrics') return { metrics: false };
  if (system === 'backchannel-tls') {
    const { cert, key } = benchTls();
    return { tlsCertFile: cert, tlsKeyFile: key };
  }
  return {};
}

/**
 * Starts the server of `system` ('backchannel' | 'backchannel-baseline' | 'backchannel-nometrics' |
 * 'backchannel-tls' | 'socketio' | 'ws') on a
 * free 127.0.0.1 port; the baseline runs the server CLI of the baseline worktree (baseline.mjs).
 * Every server runs with `--expose-gc` and the same preloaded hook (see server-hook.mjs); with
 * `cpuProfDir`, also with `--cpu-prof` (the profile is written when it exits). `nodeFlags` replaces
 * {@link NODE_FLAGS} (`[]`: Node's defaults, as a user runs it). `onLog` sees every log line of a
 * Backchannel server (parsed) but the one saying it listens.
 */
export async function startServer(system, { cpuProfDir, config = {}, nodeFlags = NODE_FLAGS, onLog } = {}) {
  const execArgv = [...nodeFlags, '--expose-gc', '--import', HOOK];
  if (cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, ...PROF_INTERVAL);
  let child;
  let dir;
  let url;
  const logs = [];
  if (isBackchannel(system)) {
    const cli = system === 'backchannel-baseline' ? baselineEntries()?.cli : CLI;
    if (!cli) throw new Error('the baseline build is missing (see --baseline)');
    dir = mkdtempSync(join(tmpdir(), 'bc-bench-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ ...BACKCHANNEL_BENCH_CONFIG, ...variantConfig(system), ...config }));
    child = trackChild(fork(cli, ['serve', '--config', file], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
    url = listeningUrl(child, (entry) => {
      onLog?.(entry);
      if (entry.level >= 40) logs.push(entry);
    });
  } else {
    child = trackChild(fork(PEERS[system], [], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
    child.stdout.resume();
    url = new Promise((resolvePromise, reject) => {
      child.on('message', (m) => m?.t === 'listening' && resolvePromise(m.url));
      child.once('exit', (code) => reject(new Error(`${system} server exited early (${code})`)));
    });
  }
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  const pid = child.pid;
  const rpc = (t) =>
    withTimeout(
      new Promise((resolvePromise) => {
        const id = Math.random();
        const on = (m) => {
          if (m?.t === t && m.id === id) {
            child.off('message', on);
            resolvePromise(m);
          }
        };
        child.on('message', on);
        child.send({ t, id });
      }),
      30_000,
      `${system} server ${t}`,
    );
  return {
    system,
    pid,
    url: await withTimeout(url, 20_000, `${system} server start`),
    /** Warnings and errors the server logged (Backchannel). */
    logs,
    get stderr() {
      return stderr;
    },
    /** Resident set size and its peak so far, bytes; CPU time used, ms; read/write syscalls so far. */
    async stats() {
      const proc = procStats(pid);
      if (proc) return proc;
      const { mem, cpu } = await rpc('bench:mem');
      return { rss: mem.rss, peakRss: NaN, cpuMs: (cpu.user + cpu.system) / 1000, userMs: cpu.user / 1000, sysMs: cpu.system / 1000, syscw: NaN, syscr: NaN };
    },
    /** Resident bytes of V8's young generation in the server (see server-hook.mjs). */
    async young() {
      return (await rpc('bench:young')).bytes;
    },
    /** Forces two full GCs in the server; resolves with its memoryUsage() after them. */
    async gc() {
      return (await rpc('bench:gc')).mem;
    },
    /** SIGKILL: the fastest way to end a run (no profile is written). */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    /** SIGTERM (graceful: Backchannel says goodbye to clients, and --cpu-prof is written), then SIGKILL. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout')]);
      if (code === 'timeout') child.kill('SIGKILL');
      if (dir) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

const CLK_TCK = 100; // Linux USER_HZ

/**
 * Resolves with the URL a `backchannel serve` child process logs once it listens (its JSON log on
 * stdout); every other log line goes to `onLog`. Rejects if the process exits first, with
 * `describeExit(code, signal)` as the message.
 */
export function listeningUrl(child, onLog = () => {}, describeExit = (code) => `backchannel server exited early (${code})`) {
  return new Promise((resolveUrl, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'backchannel server listening') resolveUrl(entry.url);
      else onLog(entry);
    });
    child.once('exit', (code, signal) => reject(new Error(describeExit(code, signal))));
  });
}

/** RSS, peak RSS (VmHWM), CPU time and read/write syscall counts of `pid` from /proc; undefined where /proc is missing. */
export function procStats(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const userMs = (Number(fields[11]) * 1000) / CLK_TCK; // utime
    const sysMs = (Number(fields[12]) * 1000) / CLK_TCK; // stime
    let syscw = NaN;
    let syscr = NaN;
    try {
      const io = readFileSync(`/proc/${pid}/io`, 'utf8');
      syscw = Number(/^syscw: (\d+)/m.exec(io)?.[1]);
      syscr = Number(/^syscr: (\d+)/m.exec(io)?.[1]);
    } catch {
      /* /proc/PID/io needs the same user; leave the syscall counts unknown */
    }
    return { rss: kb('VmRSS'), peakRss: kb('VmHWM'), cpuMs: userMs + sysMs, userMs, sysMs, syscw, syscr };
  } catch {
    return undefined;
  }
}

/**
 * Worker processes reused from one scenario to the next (a worker hosts whichever system's
 * participants it is told to join; `closeAll` resets it). Saves process start-up per scenario.
 */
export class WorkerPool {
  #workers = [];
  #cpuProfDir;
  #nodeFlags;

  /**
   * With `cpuProfDir`, workers run under --cpu-prof and write their profiles there on exit;
   * `nodeFlags` replaces {@link NODE_FLAGS} for its workers.
   */
  constructor({ cpuProfDir, nodeFlags = NODE_FLAGS } = {}) {
    this.#cpuProfDir = cpuProfDir;
    this.#nodeFlags = nodeFlags;
  }

  /** `n` live workers (starting more as needed). */
  async take(n) {
    this.#workers = this.#workers.filter((w) => w.alive);
    const missing = n - this.#workers.length;
    if (missing > 0) {
      const started = await Promise.allSettled(Array.from({ length: missing }, (_, i) => startWorker(`worker ${this.#workers.length + i}`, { cpuProfDir: this.#cpuProfDir, nodeFlags: this.#nodeFlags })));
      for (const s of started) if (s.status === 'fulfilled') this.#workers.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    }
    return this.#workers.slice(0, n);
  }

  /** Resets workers after a scenario; one that does not answer is ended and replaced next time. */
  async reset(workers) {
    await Promise.all(
      workers.map(async (w) => {
        try {
          await w.call('closeAll', {}, 60_000);
        } catch {
          this.#workers = this.#workers.filter((x) => x !== w);
          await w.close();
        }
      }),
    );
  }

  /** Ends every worker; fills `roles` (pid → role in the last throughput scenario) if given. */
  async close(roles) {
    const list = this.#workers;
    this.#workers = [];
    for (const w of list) roles?.set(w.pid, w.role ?? 'idle');
    await Promise.all(list.map((w) => w.close()));
  }
}
