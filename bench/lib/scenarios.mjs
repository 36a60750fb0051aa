/**
 * The scenarios. Each runs the same application code (lib/clients.mjs) with the same process
 * layout on every system: one server process, and worker processes hosting the participants.
 */
import { isBackchannel } from './clients.mjs';
import { checkErrors, measureWindows, nowNs, median, sleep, summarize } from './util.mjs';
import { procStats, startServer } from './procs.mjs';

/** The systems a run compares by default. */
export const SYSTEMS = ['backchannel', 'socketio', 'ws'];
/**
 * Every system a run can take: the default ones, `backchannel-baseline`, an earlier build of
 * Backchannel for before/after comparisons (only when asked for; see baseline.mjs), and variants
 * of this build: `backchannel-nometrics` (metrics off) and `backchannel-tls` (served over TLS).
 */
export const ALL_SYSTEMS = [...SYSTEMS, 'backchannel-baseline', 'backchannel-nometrics', 'backchannel-tls'];
export const SYSTEM_LABELS = {
  backchannel: 'Backchannel',
  socketio: 'Socket.IO',
  ws: 'ws relay',
  'backchannel-baseline': 'BC baseline',
  'backchannel-nometrics': 'BC metrics off',
  'backchannel-tls': 'BC over TLS',
};

const ROOM = 'bench';
const MiB = 1024 * 1024;

/** Run lengths: the full run, and `--quick` (a smoke run: numbers are indicative only). */
export const DURATIONS = {
  full: { warmupMs: 3000, windowMs: 2000, windows: 3, latencyMs: 3000, latencyWarmupMs: 1000, latencyWarmupMessages: 6000, latencyRuns: 5, latencyRunsLowRate: 11, idle: 1000, scale: 5000, joins: 200, bulkBytes: 64 * MiB, rssSamples: 5, rssEveryMs: 200, resumeCuts: 200, resumeRate: 2000, resumeGapMs: 100, resumeWarmupMs: 1000 },
  quick: { warmupMs: 300, windowMs: 500, windows: 1, latencyMs: 700, latencyWarmupMs: 200, latencyWarmupMessages: 300, latencyRuns: 1, latencyRunsLowRate: 1, idle: 100, scale: 250, joins: 20, bulkBytes: 8 * MiB, rssSamples: 3, rssEveryMs: 100, resumeCuts: 10, resumeRate: 2000, resumeGapMs: 50, resumeWarmupMs: 200 },
};

/**
 * Worker layouts: per worker process, how many participants it hosts and whether they send and/or
 * receive. Every system gets the same layout.
 */
const LAYOUTS = {
  pair: [
    { n: 1, send: true, recv: false },
    { n: 1, send: false, recv: true },
  ],
  fanout: [
    { n: 1, send: true, recv: false },
    { n: 3, send: false, recv: true },
    { n: 3, send: false, recv: true },
    { n: 3, send: false, recv: true },
  ],
  mesh: [
    { n: 2, send: true, recv: true },
    { n: 2, send: true, recv: true },
    { n: 2, send: true, recv: true },
    { n: 2, send: true, recv: true },
    { n: 2, send: true, recv: true },
  ],
};

/**
 * Starts a server and `count` workers, runs `fn`, and always tears everything down. With
 * `nodeFlags`, the server and the workers run with those V8 flags instead of the benchmark's
 * (`[]`: Node's defaults; workers come from a pool of their own).
 */
async function withRig(system, ctx, count, fn, { nodeFlags } = {}) {
  const pool = nodeFlags ? ctx.poolFor(nodeFlags) : ctx.pool;
  const [server, workers] = await Promise.all([startServer(system, { cpuProfDir: ctx.cpuProfDir, nodeFlags }), pool.take(count)]);
  try {
    return await fn(server, workers);
  } finally {
    if (ctx.cpuProfDir) {
      // Profiling: clients leave first, then the server exits gracefully and writes its profile.
      await pool.reset(workers);
      const code = await server.stop();
      if (code !== 0) ctx.log(`  (server exited with ${code}; its CPU profile may be missing)`);
    } else {
      // Otherwise the server is killed first: clients then close at once instead of draining
      // megabytes still queued in socket buffers after a flood.
      await server.kill();
      await pool.reset(workers);
    }
  }
}

/** Joins every worker's participants to the room; returns how many joined in all. */
async function joinLayout(system, server, workers, layout) {
  await Promise.all(
    workers.map((w, i) =>
      w.call('join', { system, url: server.url, room: ROOM, names: Array.from({ length: layout[i].n }, (_, k) => `p${i}-${k}`), concurrency: layout[i].n }),
    ),
  );
  return layout.reduce((a, l) => a + l.n, 0);
}

/** CPU time used so far by the sending and by the receiving worker processes, ms. */
function clientCpuMs(workers) {
  let send = 0;
  let recv = 0;
  for (const w of workers) {
    const cpu = procStats(w.pid)?.cpuMs ?? NaN;
    if (w.role === 'recv') recv += cpu;
    else send += cpu;
  }
  return { send, recv };
}

/**
 * Senders flood `size`-byte messages as fast as backpressure lets them; receivers count what is
 * delivered to the application. Measured over `windows` windows after a warm-up; the median
 * window is reported.
 */
async function flood(system, ctx, { size, layout: layoutName }) {
  const layout = LAYOUTS[layoutName];
  const d = ctx.durations;
  return withRig(system, ctx, layout.length, async (server, workers) => {
    const total = await joinLayout(system, server, workers, layout);
    workers.forEach((w, i) => (w.role = layout[i].send ? 'send' : 'recv'));
    const receivers = workers.filter((_, i) => layout[i].recv);
    const senders = workers.filter((_, i) => layout[i].send);
    await Promise.all(receivers.map((w) => w.call('recvCount', { size })));
    await Promise.all(senders.map((w) => w.call('sendFlood', { size, receivers: total - 1, mode: 'reliable-message' })));
    await sleep(d.warmupMs);
    const cpu0 = await server.stats();
    const clientCpu0 = clientCpuMs(workers);
    const { first, last: prev, rates: windows, total: delivered } = await measureWindows(receivers, d);
    const cpu1 = await server.stats();
    const clientCpu1 = clientCpuMs(workers);
    await Promise.all(senders.map((w) => w.call('stop', {}, 30_000)));
    await checkErrors(workers);
    const end = await server.stats();
    const secs = Number(BigInt(prev[0].ns) - BigInt(first[0].ns)) / 1e9;
    const msgsPerSec = median(windows);
    return {
      msgsPerSec,
      mbPerSec: (msgsPerSec * size) / 1e6,
      peakRssMB: end.peakRss / MiB,
      serverCpuPct: ((cpu1.cpuMs - cpu0.cpuMs) / 1000 / secs) * 100,
      senderCpuPct: ((clientCpu1.send - clientCpu0.send) / 1000 / secs) * 100,
      receiverCpuPct: ((clientCpu1.recv - clientCpu0.recv) / 1000 / secs) * 100,
      serverCpuUsPerMsg: ((cpu1.cpuMs - cpu0.cpuMs) * 1000) / delivered,
      serverKernelCpuShare: (cpu1.sysMs - cpu0.sysMs) / (cpu1.cpuMs - cpu0.cpuMs),
      serverWritesPerMsg: (cpu1.syscw - cpu0.syscw) / delivered,
      serverReadsPerMsg: (cpu1.syscr - cpu0.syscr) / delivered,
      windows: windows.map(Math.round),
    };
  });
}

/**
 * One-way latency of 100 B timestamped messages sent at `rate` msg/s, 1:1, in `n` rounds:
 * the orchestrator runs round 1 on every system, then round 2, and so on (so a noisy spell on the
 * machine falls on all of them), each on a fresh server. Reported: the median round of each
 * percentile (one stall of a few tens of milliseconds otherwise decides a round's p99) and the
 * worst round's p99.
 */
async function latency(system, ctx, rate, n, opts) {
  const runs = [];
  for (let i = 0; i < n; i++) runs.push(await latencyRun(system, ctx, rate, opts));
  return combineLatency(runs);
}

/** Combines latency rounds (see {@link latency}). */
function combineLatency(runs) {
  const mid = (key) => median(runs.map((r) => r[key]));
  return {
    targetRate: runs[0].targetRate,
    achievedRate: Math.round(mid('achievedRate')),
    p50Ms: mid('p50Ms'),
    p99Ms: mid('p99Ms'),
    p999Ms: mid('p999Ms'),
    p99WorstMs: Math.max(...runs.map((r) => r.p99Ms)),
    serverCpuPct: mid('serverCpuPct'),
    totalCpuPct: mid('totalCpuPct'),
    receiverCpuUsPerMsg: mid('receiverCpuUsPerMsg'),
    maxMs: Math.max(...runs.map((r) => r.maxMs)),
    samples: runs.reduce((n, r) => n + r.samples, 0),
    backpressureWaits: runs.reduce((n, r) => n + r.backpressureWaits, 0),
    peakRssMB: Math.max(...runs.map((r) => r.peakRssMB)),
    runs,
  };
}

/**
 * One latency round: 100 B messages stamped with the shared clock, sent at `rate` msg/s by one
 * participant to the others of `layout` (`pair`: 1:1; `fanout`: 1→9, receivers three to a worker
 * process); every delivery is one sample.
 */
async function latencyRun(system, ctx, rate, { layout: layoutName = 'pair', nodeFlags } = {}) {
  const d = ctx.durations;
  const layout = LAYOUTS[layoutName];
  return withRig(
    system,
    ctx,
    layout.length,
    async (server, workers) => {
      const total = await joinLayout(system, server, workers, layout);
      // Warm-up is counted in messages as well as time: V8 compiles the data path after enough
      // messages (not seconds) pass through it, and until then every process spends CPU on it.
      const warmupMs = Math.max(d.latencyWarmupMs, (d.latencyWarmupMessages / rate) * 1000);
      const fromNs = nowNs() + BigInt(Math.round(warmupMs * 1e6));
      workers.forEach((w, i) => (w.role = layout[i].send ? 'send' : 'recv'));
      const receivers = workers.filter((_, i) => layout[i].recv);
      await Promise.all(receivers.map((w) => w.call('recvLatency', { fromNs: fromNs.toString() })));
      const sender = workers[layout.findIndex((l) => l.send)];
      const sending = sender.call('sendRate', { size: 100, rate, durationMs: warmupMs + d.latencyMs, receivers: total - 1, mode: 'reliable-message' }, warmupMs + d.latencyMs + 60_000);
      // CPU is read over the measured part only.
      await sleep(Math.max(0, Number(fromNs - nowNs()) / 1e6));
      const [cpu0, client0, t0] = [await server.stats(), clientCpuMs(workers), nowNs()];
      const sent = await sending;
      const [cpu1, client1, t1] = [await server.stats(), clientCpuMs(workers), nowNs()];
      const wallMs = Number(t1 - t0) / 1e6;
      await sleep(300);
      const lat = summarize((await Promise.all(receivers.map((w) => w.call('latencySamples')))).flat());
      await checkErrors(workers);
      const end = await server.stats();
      const ms = (us) => us / 1000;
      return {
        targetRate: Math.round(rate),
        achievedRate: Math.round(sent.achievedRate),
        p50Ms: ms(lat.p50),
        p99Ms: ms(lat.p99),
        p999Ms: ms(lat.p999),
        maxMs: ms(lat.max),
        samples: lat.count,
        backpressureWaits: sent.backpressureWaits,
        peakRssMB: end.peakRss / MiB,
        // CPU while sending, % of one core: the server, and all processes together (of 200 % here).
        serverCpuPct: ((cpu1.cpuMs - cpu0.cpuMs) / wallMs) * 100,
        totalCpuPct: ((cpu1.cpuMs - cpu0.cpuMs + client1.send - client0.send + client1.recv - client0.recv) / wallMs) * 100,
        // CPU of the receiving processes per message delivered to the application (every sample
        // is one delivery), µs: the client SDK's receive path plus the process's own overhead.
        receiverCpuUsPerMsg: ((client1.recv - client0.recv) * 1000) / lat.count,
      };
    },
    { nodeFlags },
  );
}

/** Transfer of one bulk payload, 1:1, in 64 KiB chunks with backpressure. */
async function bulk(system, ctx) {
  const totalBytes = ctx.durations.bulkBytes;
  return withRig(system, ctx, 2, async (server, workers) => {
    await joinLayout(system, server, workers, LAYOUTS.pair);
    await workers[1].call('recvBulk', { totalBytes });
    const mode = isBackchannel(system) ? 'reliable-bytes' : undefined;
    const s = await workers[0].call('sendBulk', { totalBytes, chunkBytes: 64 * 1024, mode, receivers: 1 }, 180_000);
    const r = await workers[1].call('bulkWait', {}, 180_000);
    await checkErrors(workers);
    const end = await server.stats();
    const secs = Number(BigInt(r.endNs) - BigInt(s.startNs)) / 1e9;
    return { seconds: secs, mbPerSec: totalBytes / 1e6 / secs, peakRssMB: end.peakRss / MiB, bytes: r.bytes };
  });
}

/**
 * Sequential connect + join, each closed before the next, with one other participant in the room:
 * a warm-up pass of `joins` joins on the fresh server and worker (reported as the cold pass: what
 * the first joins of a process cost, JIT and all), then `joins` more, measured (the warm pass). The
 * same counts for every system.
 */
async function joinLatency(system, ctx) {
  return withRig(system, ctx, 2, async (server, workers) => {
    await workers[0].call('join', { system, url: server.url, room: ROOM, names: ['anchor'], concurrency: 1 });
    const n = ctx.durations.joins;
    const { cold, warm } = await workers[1].call('joinSeq', { system, url: server.url, room: ROOM, n, warmup: n }, 300_000);
    return { p50Ms: warm.p50, p99Ms: warm.p99, maxMs: warm.max, coldP50Ms: cold.p50, coldP99Ms: cold.p99, coldMaxMs: cold.max, joins: warm.count, warmupJoins: cold.count };
  });
}

/**
 * Median of `n` samples `everyMs` apart, bytes: the server's RSS, and its RSS without V8's young
 * generation (read in the same sample). The young generation is sized by how much the process has
 * allocated lately (during a join storm it grows towards its fixed ceiling, 2 × 16 MiB by default,
 * and V8 shrinks it at a later scavenge once allocation is slow), not by what the process holds.
 */
async function settledRss(server, { rssSamples: n, rssEveryMs: everyMs }) {
  const rss = [];
  const held = [];
  const youngs = [];
  for (let i = 0; i < n; i++) {
    const [stats, young] = await Promise.all([server.stats(), server.young()]);
    rss.push(stats.rss);
    held.push(stats.rss - young);
    youngs.push(young);
    if (i < n - 1) await sleep(everyMs);
  }
  return { rss: median(rss), held: median(held), young: median(youngs) };
}

/**
 * `--idle-watch`: keeps reading the idle server's RSS and young generation once a second for `ms`,
 * to see V8 give the young generation back by itself and what RSS does meanwhile. The RSS without
 * the young generation at the end, per participant, shows whether that measure stayed put.
 */
async function watchYoung(server, ms, baseHeld, n) {
  const series = [];
  const t0 = Date.now();
  for (;;) {
    const [stats, young] = await Promise.all([server.stats(), server.young()]);
    series.push({ s: (Date.now() - t0) / 1000, rssMB: stats.rss / MiB, youngMB: young / MiB, heldPerParticipantKB: (stats.rss - young - baseHeld) / n / 1000 });
    if (Date.now() - t0 >= ms) break;
    await sleep(1000);
  }
  const [first, last] = [series[0], series.at(-1)];
  const returned = series.find((x) => x.youngMB <= first.youngMB / 4);
  return {
    watchReturnedS: returned ? returned.s : NaN,
    watchRssDropMB: first.rssMB - last.rssMB,
    watchYoungEndMB: last.youngMB,
    watchHeldPerParticipantKB: last.heldPerParticipantKB,
    watchSeries: series,
  };
}

/** Waits until the server uses under 5 % of a core over 300 ms (joins and their events done). */
async function waitIdle(server, maxMs = 120_000) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const a = await server.stats();
    await sleep(300);
    const b = await server.stats();
    if ((b.cpuMs - a.cpuMs) / 300 < 0.05 || Date.now() > deadline) return;
  }
}

/**
 * `n` idle participants in one room, joined by 4 worker processes (25 joins in flight each). Once
 * the server is idle again: RSS (median of a few samples) minus the empty server's, per
 * participant; the same after forcing GCs; JS heap per participant; join rate; server CPU per join.
 * With `hidden`, Backchannel participants join with the `hidden` grant (not listed, joins not
 * announced) — the peers have no presence at all, so this is the like-for-like case.
 */
async function idle(system, ctx, n, { hidden = false, watch: watching = false } = {}) {
  const W = 4;
  return withRig(system, ctx, W, async (server, workers) => {
    await waitIdle(server);
    const { rss: base, held: baseHeld, young: baseYoung } = await settledRss(server, ctx.durations);
    const baseGc = await server.gc();
    const cpu0 = await server.stats();
    const t0 = nowNs();
    await Promise.all(
      workers.map((w, i) => {
        const k = Math.floor(n / W) + (i < n % W ? 1 : 0);
        const names = Array.from({ length: k }, (_, j) => `idle-${i}-${j}`);
        return w.call('join', { system, url: server.url, room: ROOM, names, concurrency: 25, hidden }, 900_000);
      }),
    );
    const joinSecs = Number(nowNs() - t0) / 1e9;
    await waitIdle(server);
    const cpu1 = await server.stats();
    const { rss, held, young } = await settledRss(server, ctx.durations);
    // Watched before the forced GCs below, so that what V8 gives back it gives back by itself.
    const watch = watching && ctx.durations.idleWatchMs > 0 ? await watchYoung(server, ctx.durations.idleWatchMs, baseHeld, n) : undefined;
    const gc = await server.gc();
    await checkErrors(workers);
    return {
      ...watch,
      participants: n,
      joinRatePerSec: n / joinSecs,
      serverCpuMsPerJoin: (cpu1.cpuMs - cpu0.cpuMs) / n,
      baseRssMB: base / MiB,
      rssMB: rss / MiB,
      rssPerParticipantKB: (rss - base) / n / 1000,
      heldPerParticipantKB: (held - baseHeld) / n / 1000,
      youngMB: young / MiB,
      baseYoungMB: baseYoung / MiB,
      gcRssPerParticipantKB: (gc.rss - baseGc.rss) / n / 1000,
      gcHeapPerParticipantKB: (gc.heapUsed - baseGc.heapUsed) / n / 1000,
      // What the JS heap holds from the OS (used or not) and memory outside it, to tell where
      // RSS that is not live JS objects sits.
      gcHeapTotalPerParticipantKB: (gc.heapTotal - baseGc.heapTotal) / n / 1000,
      gcExternalPerParticipantKB: (gc.external - baseGc.external) / n / 1000,
      gcArrayBuffersPerParticipantKB: (gc.arrayBuffers - baseGc.arrayBuffers) / n / 1000,
    };
  });
}

/**
 * Resume after a cut connection. The sender and the receiver each connect through a cut proxy
 * (lib/cut-proxy.mjs, in a third worker process); while the sender streams numbered 1 KiB
 * `reliable-message` messages at a moderate rate, the proxy cuts one of the two connections at a
 * time (sender and receiver in turn), `resumeCuts` times, 1–2 × `resumeGapMs` apart. Measured per
 * cut, on the shared clock: from the cut (read in the proxy just before it) to the client's
 * `reconnected` event, and to its `reconnecting` event (the loss noticed). Client and server run
 * with their defaults: the first reconnect attempt is immediate. Afterwards every message must
 * have arrived exactly once, in order and intact, and every reconnect must have resumed the
 * session; otherwise the scenario fails.
 */
async function resume(system, ctx) {
  const d = ctx.durations;
  const size = 1024;
  return withRig(system, ctx, 3, async (server, workers) => {
    const [sender, receiver, proxyHost] = workers;
    sender.role = 'send';
    receiver.role = 'recv';
    proxyHost.role = 'proxy';
    const { urls } = await proxyHost.call('proxyStart', { targetUrl: server.url, count: 2 });
    await sender.call('join', { system, url: urls[0], room: ROOM, names: ['resume-tx'] });
    await receiver.call('join', { system, url: urls[1], room: ROOM, names: ['resume-rx'] });
    await Promise.all([sender.call('watchReconnects'), receiver.call('watchReconnects')]);
    await receiver.call('recvSeq', { size });
    await sender.call('sendSeq', { size, rate: d.resumeRate, receivers: 1, mode: 'reliable-message' });
    await sleep(d.resumeWarmupMs);
    const sides = [
      { name: 'sender', worker: sender, reconnects: 0 },
      { name: 'receiver', worker: receiver, reconnects: 0 },
    ];
    const cuts = [];
    for (let i = 0; i < d.resumeCuts; i++) {
      const side = sides[i % 2];
      const { ns, cut } = await proxyHost.call('proxyCut', { index: i % 2 });
      if (cut !== 1) throw new Error(`cut ${i + 1}: the ${side.name}'s proxy had ${cut} connections, not 1`);
      side.reconnects++;
      const ev = await side.worker.call('waitReconnected', { n: side.reconnects, timeoutMs: 30_000 }, 35_000);
      const ms = (at) => (at === undefined ? NaN : Number(BigInt(at) - BigInt(ns)) / 1e6);
      cuts.push({ side: side.name, ms: ms(ev.ns), noticedMs: ms(ev.noticedNs), resumed: ev.resumed, attempts: ev.attempts, firstDelayMs: ev.firstDelayMs, reason: ev.reason });
      await sleep(d.resumeGapMs * (1 + Math.random()));
    }
    const { sent } = await sender.call('stop', {}, 30_000);
    const rx = await receiver.call('seqWait', { count: sent, timeoutMs: 20_000 }, 30_000);
    const notResumed = cuts.filter((c) => !c.resumed).length;
    const delay = cuts.find((c) => c.firstDelayMs !== 0);
    const problems = [];
    if (notResumed > 0) problems.push(`${notResumed} of ${cuts.length} reconnects did not resume the session`);
    if (delay) problems.push(`a first reconnect attempt waited ${delay.firstDelayMs} ms`);
    if (rx.duplicates || rx.missing || rx.badSize || rx.badContent || rx.next !== sent || rx.inOrder !== sent) {
      problems.push(`delivery not exactly-once in order: sent ${sent}, in order ${rx.inOrder}, duplicate or late ${rx.duplicates}, missing ${rx.missing + Math.max(0, sent - rx.next)}, wrong size ${rx.badSize}, wrong content ${rx.badContent}${rx.first ? ` (first: ${rx.first})` : ''}`);
    }
    if (problems.length > 0) throw new Error(problems.join('; '));
    await checkErrors(workers);
    const all = summarize(cuts.map((c) => c.ms));
    const bySide = (name) => summarize(cuts.filter((c) => c.side === name).map((c) => c.ms));
    const noticed = summarize(cuts.map((c) => c.noticedMs));
    return {
      cuts: cuts.length,
      resumed: cuts.length - notResumed,
      p50Ms: all.p50,
      p99Ms: all.p99,
      maxMs: all.max,
      firstMs: cuts[0]?.ms,
      senderP50Ms: bySide('sender').p50,
      receiverP50Ms: bySide('receiver').p50,
      noticedP50Ms: noticed.p50,
      retried: cuts.filter((c) => c.attempts > 1).length,
      rate: d.resumeRate,
      sent,
      delivered: rx.inOrder,
      duplicates: rx.duplicates,
      missing: rx.missing,
      cutsDetail: cuts,
    };
  });
}

/**
 * Combines rounds of a scenario that has no rounds of its own (`--rounds N`): the median round of
 * each number, and the lowest and highest round of the first metric; every round is kept.
 */
export function combineRounds(runs, metrics) {
  const out = {};
  for (const key of Object.keys(runs[0])) {
    if (typeof runs[0][key] === 'number') out[key] = median(runs.map((r) => r[key]));
  }
  const first = metrics[0].key;
  out.roundsLow = Math.min(...runs.map((r) => r[first]));
  out.roundsHigh = Math.max(...runs.map((r) => r[first]));
  out.rounds = runs;
  return out;
}

const M = (key, label, unit, better, digits) => ({ key, label, unit, better, digits });
const TP_METRICS = [
  M('msgsPerSec', 'delivered msg/s', 'msg/s', 'higher', 0),
  M('mbPerSec', 'delivered MB/s', 'MB/s', 'higher', 1),
  M('peakRssMB', 'server peak RSS', 'MiB', 'lower', 0),
  M('serverCpuPct', 'server CPU', '%', 'lower', 0),
  M('senderCpuPct', 'sending processes CPU', '%', 'info', 0),
  M('receiverCpuPct', 'receiving-only processes CPU', '%', 'info', 0),
  M('serverCpuUsPerMsg', 'server CPU per delivered msg', 'µs', 'lower', 2),
  M('serverWritesPerMsg', 'server write syscalls per delivered msg', '', 'lower', 3),
];
const IDLE_METRICS = [
  M('heldPerParticipantKB', 'server RSS per participant, V8 young generation excluded', 'KB', 'lower', 1),
  M('rssPerParticipantKB', 'server RSS per participant', 'KB', 'lower', 1),
  M('baseYoungMB', 'V8 young generation, resident before the joins', 'MiB', 'info', 1),
  M('youngMB', 'V8 young generation, resident after the joins', 'MiB', 'info', 1),
  M('gcRssPerParticipantKB', 'server RSS per participant, after GC', 'KB', 'lower', 1),
  M('gcHeapPerParticipantKB', 'JS heap per participant, after GC', 'KB', 'lower', 1),
  M('joinRatePerSec', 'join rate (100 in flight)', 'joins/s', 'higher', 0),
  M('serverCpuMsPerJoin', 'server CPU per join', 'ms', 'lower', 2),
];
const WATCH_METRICS = [
  M('watchReturnedS', 'young generation down to a quarter, seconds after the measurement (--idle-watch)', 's', 'info', 0),
  M('watchYoungEndMB', 'V8 young generation, resident at the end of the watch', 'MiB', 'info', 1),
  M('watchRssDropMB', 'server RSS given back during the watch', 'MiB', 'info', 1),
  M('watchHeldPerParticipantKB', 'server RSS per participant, young generation excluded, at the end of the watch', 'KB', 'info', 1),
];
const LAT_METRICS = [
  M('achievedRate', 'rate sent', 'msg/s', 'info', 0),
  M('p50Ms', 'p50 (median run)', 'ms', 'lower', 3),
  M('p99Ms', 'p99 (median run)', 'ms', 'lower', 3),
  M('p999Ms', 'p99.9 (median run)', 'ms', 'lower', 3),
  M('p99WorstMs', 'p99 (worst run)', 'ms', 'lower', 3),
  M('serverCpuPct', 'server CPU while sending', '%', 'info', 0),
  M('totalCpuPct', 'server + sender + receiver CPU (of 200 %)', '%', 'info', 0),
  M('receiverCpuUsPerMsg', 'receiving processes CPU per delivered msg', 'µs', 'info', 1),
];

/**
 * A latency scenario at the rate `rateOf(system, ctx)`: `rounds` runs interleaved across systems by
 * the orchestrator (`round` each, then `combine`); `run` does all rounds of one system.
 */
function rounds(rateOf, runs = (ctx) => ctx.durations.latencyRuns, opts = {}) {
  return {
    rounds: runs,
    round: async (s, c) => latencyRun(s, c, await rateOf(s, c), opts),
    combine: combineLatency,
    run: async (s, c) => latency(s, c, await rateOf(s, c), runs(c), opts),
  };
}

const RESUME_METRICS = [
  M('cuts', 'cuts (sender and receiver in turn)', '', 'info', 0),
  M('resumed', 'reconnects that resumed the session', '', 'info', 0),
  M('p50Ms', 'cut → reconnected, p50', 'ms', 'lower', 2),
  M('p99Ms', 'cut → reconnected, p99', 'ms', 'lower', 2),
  M('maxMs', 'cut → reconnected, max', 'ms', 'lower', 2),
  M('firstMs', 'cut → reconnected, first cut', 'ms', 'lower', 2),
  M('senderP50Ms', 'cut → reconnected, p50, sender cut', 'ms', 'lower', 2),
  M('receiverP50Ms', 'cut → reconnected, p50, receiver cut', 'ms', 'lower', 2),
  M('noticedP50Ms', 'cut → loss noticed (reconnecting), p50', 'ms', 'lower', 2),
  M('retried', 'reconnects needing more than one attempt', '', 'info', 0),
  M('sent', 'messages sent (1 KiB, reliable)', '', 'info', 0),
  M('delivered', 'delivered exactly once, in order', '', 'info', 0),
];

/**
 * With `--rounds N` (N > 1) a scenario without rounds of its own runs N rounds interleaved across
 * systems like the latency scenarios; the table then also shows the lowest and highest round of
 * its first metric (for information: no ratio is taken of them).
 */
const withRoundRange = (metrics) => (c) => {
  if (!(c.rounds > 1)) return metrics;
  const [m] = metrics;
  const range = (key, which) => M(key, `${m.label}, ${which} of ${c.rounds} rounds`, m.unit, 'info', m.digits);
  return [m, range('roundsLow', 'lowest'), range('roundsHigh', 'highest'), ...metrics.slice(1)];
};

/** Every scenario, in run order. `group` is what `--only` selects on (an id works too). */
export function scenarios() {
  return [
    { id: 'tp-100', group: 'throughput', title: '1:1 throughput, 100 B', metrics: withRoundRange(TP_METRICS), run: (s, c) => flood(s, c, { size: 100, layout: 'pair' }) },
    { id: 'tp-1k', group: 'throughput', title: '1:1 throughput, 1 KiB', metrics: withRoundRange(TP_METRICS), run: (s, c) => flood(s, c, { size: 1024, layout: 'pair' }) },
    { id: 'tp-16k', group: 'throughput', title: '1:1 throughput, 16 KiB', metrics: withRoundRange(TP_METRICS), run: (s, c) => flood(s, c, { size: 16384, layout: 'pair' }) },
    { id: 'fanout-1k', group: 'fanout', title: 'Fan-out 1→9 (10 in room), 1 KiB', metrics: withRoundRange(TP_METRICS), run: (s, c) => flood(s, c, { size: 1024, layout: 'fanout' }) },
    { id: 'mesh-1k', group: 'fanout', title: 'Mesh 10×9 (all 10 send), 1 KiB', metrics: withRoundRange(TP_METRICS), run: (s, c) => flood(s, c, { size: 1024, layout: 'mesh' }) },
    { id: 'lat-1000', group: 'latency', title: 'Latency 100 B @ 1,000 msg/s', metrics: LAT_METRICS, ...rounds(async () => 1000, (ctx) => ctx.durations.latencyRunsLowRate) },
    {
      // Issue 17: the light-load case a user meets first, every process with Node's default flags.
      id: 'lat-fanout',
      group: 'latency',
      title: 'Latency 100 B @ 1,000 msg/s, fan-out 1→9, default Node flags',
      metrics: LAT_METRICS,
      ...rounds(async () => 1000, (ctx) => ctx.durations.latencyRunsLowRate, { layout: 'fanout', nodeFlags: [] }),
    },
    {
      id: 'lat-50pct',
      group: 'latency',
      title: 'Latency 100 B @ 50 % of own max',
      metrics: LAT_METRICS,
      ...rounds(async (s, c) => 0.5 * (await c.maxRate100(s))),
    },
    {
      id: 'lat-same',
      group: 'latency',
      title: "Latency 100 B @ 50 % of the ws relay's max (same rate for all)",
      metrics: LAT_METRICS,
      ...rounds(async (s, c) => 0.5 * (await c.maxRate100('ws'))),
    },
    {
      id: 'bulk',
      group: 'bulk',
      title: (c) => `Bulk ${c.durations.bulkBytes / MiB} MiB 1:1 (64 KiB chunks)`,
      metrics: [M('seconds', 'transfer time', 's', 'lower', 3), M('mbPerSec', 'throughput', 'MB/s', 'higher', 1), M('peakRssMB', 'server peak RSS', 'MiB', 'lower', 0)],
      run: bulk,
    },
    {
      id: 'join',
      group: 'join',
      title: (c) => `Join latency, ${c.durations.joins} sequential connect→joined after ${c.durations.joins} uncounted (cold)`,
      metrics: [
        M('p50Ms', 'p50', 'ms', 'lower', 2),
        M('p99Ms', 'p99', 'ms', 'lower', 2),
        M('maxMs', 'max', 'ms', 'lower', 2),
        M('coldP50Ms', 'p50 of the first (cold) joins', 'ms', 'lower', 2),
        M('coldP99Ms', 'p99 of the first (cold) joins', 'ms', 'lower', 2),
      ],
      run: joinLatency,
    },
    {
      id: 'idle',
      group: 'scale',
      title: (c) => `${c.durations.idle.toLocaleString('en-US')} idle participants in one room`,
      metrics: (c) => [...withRoundRange(IDLE_METRICS)(c), ...(c.durations.idleWatchMs > 0 ? WATCH_METRICS : [])],
      run: (s, c) => idle(s, c, c.durations.idle, { watch: true }),
    },
    {
      id: 'scale',
      group: 'scale',
      title: (c) => `${c.durations.scale.toLocaleString('en-US')} idle participants in one room, no presence (BC: hidden)`,
      metrics: withRoundRange(IDLE_METRICS),
      run: (s, c) => idle(s, c, c.durations.scale, { hidden: true }),
    },
    {
      id: 'resume',
      group: 'resume',
      title: (c) => `Resume after a cut connection, ${c.durations.resumeCuts} cuts, 1 KiB stream @ ${c.durations.resumeRate.toLocaleString('en-US')} msg/s`,
      metrics: RESUME_METRICS,
      // Only this checkout's Backchannel resumes sessions; one run of many cuts (no rounds).
      systems: ['backchannel'],
      single: true,
      run: resume,
    },
  ];
}
