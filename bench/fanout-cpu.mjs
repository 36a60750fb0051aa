#!/usr/bin/env node
/**
 * `node bench/fanout-cpu.mjs [SYSTEMS] [ROUNDS]`: the `lat-fanout` layout (1 sender, 9 receivers
 * three to a worker process, 100 B at 1,000 msg/s, every process with Node's default flags), with
 * where the CPU goes: per delivered message, the receiving processes' and the server's CPU (and
 * the server's system share, write and read system calls), per sent message the sender's; and
 * the one-way p50/p99. 4 s of warm-up, 4 s measured, per round; rounds interleaved across systems
 * (reversed every other round); medians printed at the end. SYSTEMS as in join-ab.mjs (default
 * `backchannel,ws`). CPU is read from /proc (10 ms ticks: compare medians of several rounds).
 */
import { WorkerPool, procStats, startServer } from './lib/procs.mjs';
import { nowNs, sleep, summarize } from './lib/util.mjs';

const systems = (process.argv[2] ?? 'backchannel,ws').split(',');
const R = Number(process.argv[3] ?? 5);
const warmMs = 4000;
const measMs = 4000;
const layout = [1, 3, 3, 3];
const pool = new WorkerPool({ nodeFlags: [] });
const res = Object.fromEntries(systems.map((s) => [s, []]));
const f = (x, d = 2) => x.toFixed(d);
for (let r = 0; r < R; r++) {
  for (const system of r % 2 ? [...systems].reverse() : systems) {
    const server = await startServer(system, { nodeFlags: [] });
    const workers = await pool.take(layout.length);
    try {
      await Promise.all(workers.map((w, i) => w.call('join', { system, url: server.url, room: 'bench', names: Array.from({ length: layout[i] }, (_, k) => `p${i}-${k}`), concurrency: layout[i] })));
      const fromNs = nowNs() + BigInt(warmMs * 1e6);
      await Promise.all(workers.slice(1).map((w) => w.call('recvLatency', { fromNs: fromNs.toString() })));
      const sending = workers[0].call('sendRate', { size: 100, rate: 1000, durationMs: warmMs + measMs, receivers: 9, mode: 'reliable-message' }, 120_000);
      await sleep(warmMs);
      const clients = () => ({ tx: procStats(workers[0].pid).cpuMs, rx: workers.slice(1).reduce((a, w) => a + procStats(w.pid).cpuMs, 0) });
      const [s0, c0] = [await server.stats(), clients()];
      await sending;
      const [s1, c1] = [await server.stats(), clients()];
      await sleep(200);
      const lat = summarize((await Promise.all(workers.slice(1).map((w) => w.call('latencySamples')))).flat());
      const n = lat.count;
      const x = {
        p50: lat.p50,
        p99: lat.p99,
        rx: ((c1.rx - c0.rx) * 1000) / n,
        tx: ((c1.tx - c0.tx) * 1000) / (n / 9),
        srv: ((s1.cpuMs - s0.cpuMs) * 1000) / n,
        srvSys: ((s1.sysMs - s0.sysMs) * 1000) / n,
        writes: (s1.syscw - s0.syscw) / n,
        reads: (s1.syscr - s0.syscr) / n,
      };
      res[system].push(x);
      console.log(`${system.padEnd(22)} round ${r + 1}: p50 ${f(x.p50, 0)} µs, p99 ${f(x.p99, 0)} µs; receivers ${f(x.rx)} µs/delivered, sender ${f(x.tx)} µs/sent, server ${f(x.srv)} µs/delivered (system ${f(x.srvSys)}, writes ${f(x.writes, 3)}, reads ${f(x.reads, 3)})`);
    } finally {
      await server.kill();
      await pool.reset(workers);
    }
  }
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
console.log(`\nmedians of ${R} rounds`);
for (const s of systems) {
  const m = (k) => med(res[s].map((x) => x[k]));
  console.log(`  ${s.padEnd(22)} p50 ${f(m('p50'), 0)} µs  p99 ${f(m('p99'), 0)} µs  receivers ${f(m('rx'))}  sender ${f(m('tx'))}  server ${f(m('srv'))} (system ${f(m('srvSys'))}, writes ${f(m('writes'), 3)})`);
}
await pool.close(new Map());
process.exit(0);
