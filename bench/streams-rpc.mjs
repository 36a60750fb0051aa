// Data streams and RPC on a real server, every party in its own process over 127.0.0.1:
//   1. 1:1 sendFile of a file (100 MiB; 16 MiB with --quick): MB/s and peak RSS of sender,
//      receiver and server.
//   2. RPC round trip (echo of 100 bytes), sequential: p50 / p99 / p99.9 over N calls.
// Usage: node bench/streams-rpc.mjs [--quick]        (after `npm run build`)
import { spawn, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages/cli/dist/cli.js');
const KEY = 'benchkey';
const SECRET = 'bench-secret-0123456789';
const MiB = 1024 * 1024;


async function token(userId) {
  const { createAccessToken } = await import('@backchannel/server-sdk');
  return createAccessToken({ apiKey: KEY, apiSecret: SECRET, userId, grants: { conferences: ['*'] } });
}

/** Code run in the child processes; reports one JSON message to the parent. */
async function child(role, [url, room, arg]) {
  const { Client } = await import('@backchannel/client');
  const client = await Client.connect(url, await token(role.slice(7)));
  const conf = await client.joinConference(room);
  const report = (m) => process.send(m);
  const peak = () => process.resourceUsage().maxRSS * 1024;
  if (role === '--role-receiver') {
    conf.registerStreamHandler('files', async (reader) => {
      const t0 = performance.now();
      const h = createHash('sha256');
      let bytes = 0;
      for await (const chunk of reader) {
        h.update(chunk);
        bytes += chunk.byteLength;
      }
      report({ done: true, bytes, seconds: (performance.now() - t0) / 1000, sha256: h.digest('hex'), peakRss: peak() });
      await client.close();
      process.exit(0);
    });
    report({ ready: true });
  } else if (role === '--role-sender') {
    if (conf.participants.size === 0) await new Promise((r) => conf.once('participantJoined', r));
    const t0 = performance.now();
    const { bytes } = await conf.sendFile('files', arg);
    report({ done: true, bytes, seconds: (performance.now() - t0) / 1000, peakRss: peak() });
    await client.close();
    process.exit(0);
  } else if (role === '--role-callee') {
    conf.registerRpcMethod('echo', ({ payload }) => payload);
    report({ ready: true, participantId: client.participantId });
    process.on('message', async (m) => {
      if (m === 'exit') {
        await client.close();
        process.exit(0);
      }
    });
  } else {
    const [destination, calls] = arg.split(',');
    const payload = 'x'.repeat(100);
    for (let i = 0; i < 200; i++) await conf.performRpc({ destination, method: 'echo', payload }); // warm-up
    const rtt = [];
    for (let i = 0; i < Number(calls); i++) {
      const t0 = performance.now();
      await conf.performRpc({ destination, method: 'echo', payload });
      rtt.push(performance.now() - t0);
    }
    report({ done: true, rtt });
    await client.close();
    process.exit(0);
  }
}

function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'bc-bench-'));
  const config = join(dir, 'server.json');
  writeFileSync(config, JSON.stringify({ port: 0, logLevel: 'warn', apiKeys: { [KEY]: SECRET }, maxDataBitrateKbps: 0 }));
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', config, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (l) => {
      try {
        const e = JSON.parse(l);
        if (e.msg === 'backchannel server listening') resolve({ proc, url: e.url, dir });
      } catch {}
    });
    proc.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
}

function spawnRole(role, args) {
  const p = fork(fileURLToPath(import.meta.url), [role, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const messages = [];
  const waiters = [];
  p.on('message', (m) => {
    messages.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  const until = (key) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = messages.find((x) => key in x);
        if (m) resolve(m);
        else waiters.push(check);
      };
      p.once('exit', (c) => c !== 0 && reject(new Error(`${role} exited with ${c}`)));
      check();
    });
  return { p, until };
}

/** Peak RSS of a process from /proc (Linux), bytes. */
function peakRssOf(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main(quick) {
  const size = (quick ? 16 : 100) * MiB;
  const calls = quick ? 300 : 5000;
  const server = await startServer();
  const kill = () => server.proc.kill('SIGKILL');
  process.once('exit', kill);
  try {
    // 1. File transfer.
    const path = join(server.dir, 'file.bin');
    const fd = openSync(path, 'w');
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < size / MiB; i++) writeSync(fd, block.fill(i & 0xff));
    closeSync(fd);
    const rx = spawnRole('--role-receiver', [server.url, 'file']);
    await rx.until('ready');
    const tx = spawnRole('--role-sender', [server.url, 'file', path]);
    const [sent, received] = await Promise.all([tx.until('done'), rx.until('done')]);
    if (received.bytes !== size) throw new Error(`received ${received.bytes} of ${size} bytes`);
    const serverPeak = peakRssOf(server.proc.pid);
    // 2. RPC round trip.
    const callee = spawnRole('--role-callee', [server.url, 'rpc']);
    const { participantId } = await callee.until('ready');
    const caller = spawnRole('--role-caller', [server.url, 'rpc', `${participantId},${calls}`]);
    const { rtt } = await caller.until('done');
    callee.p.send('exit');
    rtt.sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      quick,
      file: {
        bytes: size,
        seconds: Number(sent.seconds.toFixed(3)),
        mbPerSec: Number((size / 1e6 / received.seconds).toFixed(1)),
        mibPerSec: Number((size / MiB / received.seconds).toFixed(1)),
        peakRssMiB: { sender: Math.round(sent.peakRss / MiB), receiver: Math.round(received.peakRss / MiB), server: Math.round(serverPeak / MiB) },
      },
      rpc: { calls, payloadBytes: 100, p50Ms: +pct(rtt, 50).toFixed(3), p99Ms: +pct(rtt, 99).toFixed(3), p999Ms: +pct(rtt, 99.9).toFixed(3), maxMs: +rtt.at(-1).toFixed(3) },
    };
    console.log(`sendFile 1:1, ${size / MiB} MiB: ${result.file.mbPerSec} MB/s (${result.file.mibPerSec} MiB/s); peak RSS sender ${result.file.peakRssMiB.sender} MiB, receiver ${result.file.peakRssMiB.receiver} MiB, server ${result.file.peakRssMiB.server} MiB`);
    console.log(`RPC round trip (${calls} sequential calls, 100 B): p50 ${result.rpc.p50Ms} ms, p99 ${result.rpc.p99Ms} ms, p99.9 ${result.rpc.p999Ms} ms`);
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, `bench/results/streams-rpc-${Date.now()}.json`), JSON.stringify(result, null, 2));
  } finally {
    kill();
    rmSync(server.dir, { recursive: true, force: true });
  }
}

const role = process.argv[2];
if (role === '--role-receiver' || role === '--role-sender' || role === '--role-callee' || role === '--role-caller') {
  await child(role, process.argv.slice(3));
} else {
  await main(process.argv.includes('--quick'));
}
