#!/usr/bin/env node
/**
 * `node bench/fanout-stages.mjs [SYSTEMS] [ROUNDS]`: where the one-way latency of a light fan-out
 * goes, stage by stage, in the `lat-fanout` layout (1 sender, 9 receivers three to a worker
 * process, 100 B at 1,000 msg/s, Node's default flags; 2 s of warm-up, 4 s measured per round;
 * rounds interleaved, reversed every other round). SYSTEMS: `backchannel`, `ws` or both (default).
 * Every process of the run has bench/lib/stage-probe.mjs preloaded, which stamps each stage on the
 * clock all processes share; per system it prints the medians (µs after the sender's timestamp)
 * of: the message handed to the WebSocket library's `send` (the SDK's own path), the sender's
 * socket write, the server's read of it, the server's writes to the 1st, 5th and 9th receiver,
 * and the receivers' delivery to the application. The probes add a little to every stage of every
 * system: compare systems within a run; `fanout-cpu.mjs` and `run.mjs --only lat-fanout` measure
 * without them.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkerPool, startServer } from './lib/procs.mjs';
import { nowNs, sleep, summarize } from './lib/util.mjs';

const PROBE = join(dirname(fileURLToPath(import.meta.url)), 'lib/stage-probe.mjs');
const USAGE = 'usage: node bench/fanout-stages.mjs [SYSTEMS] [ROUNDS]  (SYSTEMS: backchannel, ws or backchannel,ws; ROUNDS default 4)';
if (process.argv.includes('-h') || process.argv.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
const systems = (process.argv[2] ?? 'backchannel,ws').split(',');
const R = Number(process.argv[3] ?? 4);
const bad = systems.find((s) => s !== 'backchannel' && s !== 'ws');
if (bad !== undefined || !Number.isInteger(R) || R < 1) {
  console.error(`fanout-stages: ${bad !== undefined ? `system "${bad}" is not probed` : `ROUNDS must be a positive integer (got ${process.argv[3]})`}\n${USAGE}`);
  process.exit(2);
}
const warmMs = 2000;
const measMs = 4000;
const layout = [1, 3, 3, 3];
const flags = ['--import', PROBE];
const med = (a) => (a.length ? [...a].sort((x, y) => x - y)[a.length >> 1] : NaN);
const stages = ['SDK → ws.send', 'sender write', 'server read', 'write, 1st receiver', 'write, 5th receiver', 'write, 9th receiver', 'delivered (p50 over receivers)'];
const res = Object.fromEntries(systems.map((s) => [s, stages.map(() => [])]));

for (let r = 0; r < R; r++) {
  for (const system of r % 2 ? [...systems].reverse() : systems) {
    const dir = mkdtempSync(join(tmpdir(), 'bc-stages-'));
    process.env.BENCH_STAGE_DIR = dir; // inherited by the processes forked below
    const server = await startServer(system, { nodeFlags: flags });
    const pool = new WorkerPool({ nodeFlags: flags });
    try {
      const workers = await pool.take(layout.length);
      await Promise.all(workers.map((w, i) => w.call('join', { system, url: server.url, room: 'bench', names: Array.from({ length: layout[i] }, (_, k) => `p${i}-${k}`), concurrency: layout[i] })));
      const fromNs = nowNs() + BigInt(warmMs * 1e6);
      await Promise.all(workers.slice(1).map((w) => w.call('recvLatency', { fromNs: fromNs.toString() })));
      await workers[0].call('sendRate', { size: 100, rate: 1000, durationMs: warmMs + measMs, receivers: 9, mode: 'reliable-message' }, 120_000);
      await sleep(200);
      const delivered = summarize((await Promise.all(workers.slice(1).map((w) => w.call('latencySamples')))).flat());
      await sleep(600); // the probes write every 250 ms
      await pool.close();
      const files = readdirSync(dir);
      const sender = files.filter((f) => f.startsWith('worker-')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8'))).find((d) => d.toWrite.length > 0);
      const server_ = files.filter((f) => f.startsWith('server-')).flatMap((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
      // Every message's samples, after the warm-up share of them.
      const tail = (a) => a.slice(Math.floor((a.length * warmMs) / (warmMs + measMs)));
      const full = tail(server_.filter((m) => m.length === 10));
      const round = [
        med(tail(sender?.toSend ?? [])),
        med(tail(sender?.toWrite ?? [])),
        med(full.map((m) => m[0])),
        med(full.map((m) => m[1])),
        med(full.map((m) => m[5])),
        med(full.map((m) => m[9])),
        delivered.p50,
      ];
      round.forEach((v, i) => res[system][i].push(v));
      console.log(`${system.padEnd(12)} round ${r + 1}: ${round.map((v, i) => `${stages[i]} ${Number.isFinite(v) ? v.toFixed(1) : '–'}`).join(', ')} (${full.length} messages seen by the server)`);
    } finally {
      await server.kill();
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
console.log(`\nmedians of ${R} rounds, µs after the sender's timestamp`);
console.log(`  ${'stage'.padEnd(32)}${systems.map((s) => s.padStart(12)).join('')}${systems.length === 2 ? '  difference'.padStart(12) : ''}`);
stages.forEach((name, i) => {
  const v = systems.map((s) => med(res[s][i]));
  const cell = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–').padStart(12);
  console.log(`  ${name.padEnd(32)}${v.map(cell).join('')}${systems.length === 2 ? cell(v[0] - v[1]) : ''}`);
});
process.exit(0);
