#!/usr/bin/env node
/**
 * `node bench/join-ab.mjs [N] [SYSTEMS]`: join latency of several systems measured in turn, one
 * join each round robin (the order reversed every other round), so that a busy spell on the machine
 * falls on all of them alike — steadier than the `join` scenario's rounds for telling two builds
 * apart. Each system has its own server with one member already in the room, joined from a worker
 * process (as in the `join` scenario); the joins run in this process (`lib/clients.mjs`, Backchannel:
 * `Client.connectAndJoin`). SYSTEMS: comma-separated (default
 * `backchannel,backchannel-baseline,ws`; the baseline build comes from BENCH_BASELINE_DIR, see
 * run.mjs --baseline). Prints, per system: p50 of the first 100 joins (cold), p50/p90/p99 of the
 * second half, and the server's CPU (user + system) per join, close included. Build first.
 */
import { join, prepare } from './lib/clients.mjs';
import { WorkerPool, startServer } from './lib/procs.mjs';
import { nowNs } from './lib/util.mjs';

const N = Number(process.argv[2] ?? 1000);
const systems = (process.argv[3] ?? 'backchannel,backchannel-baseline,ws').split(',');
const pool = new WorkerPool();
const rigs = [];
for (const system of systems) {
  const server = await startServer(system);
  const workers = await pool.take(rigs.length + 1);
  await workers.at(-1).call('join', { system, url: server.url, room: 'bench', names: ['anchor'], concurrency: 1 });
  const tokens = await Promise.all(Array.from({ length: N }, (_, i) => prepare(system, `j-${i}`)));
  rigs.push({ system, server, tokens, ms: [], cpu0: (await server.stats()).cpuMs });
}
for (let i = 0; i < N; i++) {
  for (const r of i % 2 ? [...rigs].reverse() : rigs) {
    const t0 = nowNs();
    const p = await join(r.system, r.server.url, 'bench', `j-${i}`, r.tokens[i]);
    r.ms.push(Number(nowNs() - t0) / 1e6);
    await p.close();
  }
}
const q = (a, f) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(f * s.length))].toFixed(3);
};
console.log(`${N} joins per system, round robin; ms`);
for (const r of rigs) {
  const cold = r.ms.slice(0, 100);
  const warm = r.ms.slice(N / 2);
  const cpuUs = (((await r.server.stats()).cpuMs - r.cpu0) * 1000) / N;
  console.log(`  ${r.system.padEnd(22)} cold p50 ${q(cold, 0.5)}  warm p50 ${q(warm, 0.5)}  p90 ${q(warm, 0.9)}  p99 ${q(warm, 0.99)}  server CPU per join ${cpuUs.toFixed(0)} µs`);
  await r.server.kill();
}
await pool.close(new Map());
process.exit(0);
