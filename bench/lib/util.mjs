/**
 * Small helpers shared by the orchestrator and the workers: the shared clock, sleeping, and
 * summary statistics.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * Nanoseconds on CLOCK_MONOTONIC (libuv's uv_hrtime). On Linux and macOS this clock is system-wide,
 * so values taken in different processes on one machine are directly comparable: a timestamp
 * written into a payload by the sender can be subtracted from the receiver's clock.
 */
export const nowNs = () => process.hrtime.bigint();

/** Milliseconds on the same clock, as a float. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * `parseArgs` from node:util for a benchmark script: an unknown flag or a flag without its value
 * ends the script with one line (`<script>: …`, exit code 2) instead of a stack trace.
 */
export function parseFlags(script, config) {
  try {
    return parseArgs(config);
  } catch (error) {
    console.error(`${script}: ${String(error.message).split('\n')[0]} (see --help)`);
    process.exit(2);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Yields to the event loop (after I/O callbacks): lets sockets drain and timers fire. */
export const yieldLoop = () => new Promise((resolve) => setImmediate(resolve));

/** Percentile (0–100) of an ascending-sorted numeric array, nearest-rank. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values) {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** p50/p90/p99/p99.9/max of a list of samples (any unit), plus the count. */
export function summarize(samples) {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** A promise that rejects after `ms` with `what` in the message. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The newest modification time (ms) of the built code of the checkout at `repoDir` — every file
 * under packages/<name>/dist — or 0. Compared at the end of a run: in a working tree that is
 * rebuilt while a run goes on, later servers and workers would load other code than earlier ones.
 */
export function builtAt(repoDir) {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const pkg of readdirSync(join(repoDir, 'packages'))) {
    const dist = join(repoDir, 'packages', pkg, 'dist');
    if (existsSync(dist)) walk(dist);
  }
  return newest;
}

/**
 * Messages delivered between two samples of every receiving worker (`{ ns, msgs[] }` each, read on
 * its own clock), and the sum of their rates, msg/s.
 */
export function deliveredRate(prev, cur) {
  let rate = 0;
  let total = 0;
  for (let w = 0; w < cur.length; w++) {
    const secs = Number(BigInt(cur[w].ns) - BigInt(prev[w].ns)) / 1e9;
    let d = 0;
    for (let i = 0; i < cur[w].msgs.length; i++) d += cur[w].msgs[i] - prev[w].msgs[i];
    total += d;
    rate += d / secs;
  }
  return { rate, total };
}

/**
 * Runs a worker process's side of the IPC protocol of procs.mjs: each `{ op, id, args }` message
 * calls `ops[op](args)` and is answered `{ re: id, ok, result | error }`; the process exits when its
 * parent goes away, and reports unhandled rejections as log lines.
 */
export function serveOps(ops) {
  process.on('message', async (msg) => {
    if (!msg || typeof msg !== 'object' || !('op' in msg)) return;
    const fn = ops[msg.op];
    try {
      if (!fn) throw new Error(`unknown op ${msg.op}`);
      const result = await fn(msg.args ?? {});
      process.send({ re: msg.id, ok: true, result });
    } catch (error) {
      process.send({ re: msg.id, ok: false, error: error instanceof Error ? `${error.message}${error.code ? ` (${error.code})` : ''}` : String(error) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.on('unhandledRejection', (error) => {
    process.send?.({ t: 'log', text: `unhandled rejection: ${error?.stack ?? error}` });
  });
}

/**
 * Samples every receiving worker (`sample` op), then again after each of `windows` windows of
 * `windowMs`: the delivered msg/s of each window, and the messages delivered over all of them.
 */
export async function measureWindows(receivers, { windows, windowMs }) {
  const first = await Promise.all(receivers.map((w) => w.call('sample')));
  let last = first;
  const rates = [];
  for (let k = 0; k < windows; k++) {
    await sleep(windowMs);
    const cur = await Promise.all(receivers.map((w) => w.call('sample')));
    rates.push(deliveredRate(last, cur).rate);
    last = cur;
  }
  return { first, last, rates, total: deliveredRate(first, last).total };
}

/** Gathers data-path errors from the workers (`errors` op); throws if there were any. */
export async function checkErrors(workers) {
  const all = await Promise.all(workers.map((w) => w.call('errors')));
  const errors = all.flatMap((e) => e.errors);
  const badSize = all.reduce((a, e) => a + e.badSize, 0);
  if (badSize > 0) errors.push(`${badSize} messages had the wrong size`);
  if (errors.length > 0) throw new Error(`data-path errors: ${[...new Set(errors)].slice(0, 5).join('; ')}`);
}
