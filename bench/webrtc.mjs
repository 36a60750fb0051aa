#!/usr/bin/env node
/**
 * WebRTC datagram path against the WebSocket, in one run (docs/webrtc.md, issue 13):
 *
 * 1. Packet loss: a 10-party room where every participant sends 100 B cursor updates at 60 Hz as
 *    `unreliable`, with 0 %, 1 % and 5 % random loss on the link (all parties in a network
 *    namespace joined by a veth pair, nftables dropping UDP and TCP at random where packets arrive,
 *    so each message crosses two lossy hops): one-way p50 / p99 / p99.9 and delivered fraction.
 * 2. Throughput: one sender blasting 100 B `unreliable` messages to one receiver (loopback, no
 *    loss): delivered msg/s and the server's CPU per delivered message.
 * 3. Server memory per peer connection: RSS with 50 clients on the WebSocket only, then with 50 on
 *    WebRTC, each client with one `unreliable` session (a client negotiates its peer connection on
 *    first use of `unreliable`, so one without would have none).
 * 4. Negotiation time: first `unreliable` session → data channel open, and negotiation start →
 *    open (`transportStats.negotiationMs`), over those 50 clients.
 *
 * The server runs as `backchannel serve` (its own process); clients run in worker processes of
 * this script (inside the namespace for 1). Needs root for 1 (skipped, saying why, without).
 *
 *   node bench/webrtc.mjs                 # everything (≈ 2 min); writes the WebRTC section of bench/RESULTS.md
 *   node bench/webrtc.mjs --quick         # shorter runs, nothing written
 *   node bench/webrtc.mjs --no-md         # print only
 *   node bench/webrtc.mjs --only=loss,throughput,memory   # some scenarios (nothing written)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createAccessToken } from '@backchannel/server-sdk';
import { Client } from '@backchannel/client';
import { percentile, sleep } from './lib/util.mjs';
import { WEBRTC_END, WEBRTC_START, keptWebRtc } from './lib/webrtc-section.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'packages/cli/bin/backchannel.js');
const SELF = resolve(import.meta.filename);
const KEY = 'benchkey';
const SECRET = 'bench-secret-0123456789';
const token = (user) => createAccessToken({ apiKey: KEY, apiSecret: SECRET, userId: user, grants: { conferences: ['*'] }, ttl: '1h' });
const now = () => performance.timeOrigin + performance.now();
/** Servers and workers still running; killed if this script exits early. */
const children = new Set();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

// ---------------------------------------------------------------- worker side

async function connect(url, user, webrtc) {
  return Client.connect(url, await token(user), { webrtc, reconnect: false });
}

const pending = (info) => info.webrtc === 'idle' || info.webrtc === 'connecting';

/**
 * Resolves once the client's WebRTC path has settled (open, failed, or off). The path is negotiated
 * when the client first has an `unreliable` session: call this after opening or receiving one.
 */
async function settled(c) {
  if (pending(c.transport)) await new Promise((r) => c.on('transportChanged', (i) => !pending(i) && r()));
  return c.transport;
}

/** The 10-party room: every party sends `hz` updates of `size` bytes for `seconds`, and receives the others'. */
async function workerRoom(o) {
  const parties = [];
  for (let i = 0; i < o.parties; i++) parties.push(await connect(o.url, `p${i}-${o.tag}`, o.webrtc));
  const latencies = [];
  let received = 0;
  const confs = [];
  for (const c of parties) {
    const conf = await c.joinConference(o.room);
    await conf.makeRecvDataSession(30, (d) => {
      received++;
      latencies.push(now() - new DataView(d.buffer, d.byteOffset, d.byteLength).getFloat64(4));
    });
    confs.push(conf);
  }
  const txs = [];
  for (const conf of confs) txs.push(await conf.makeSendDataSession(30, 'unreliable'));
  // The unreliable sessions started the negotiations. On a lossy link one can fail (a lost DTLS
  // handshake packet); the client tries again by itself: wait for that (up to 15 s), so that the
  // WebRTC rows measure WebRTC.
  await Promise.all(parties.map(settled));
  const deadline = performance.now() + 15_000;
  while (o.webrtc && parties.some((c) => c.transport.webrtc !== 'open') && performance.now() < deadline) await sleep(100);
  const paths = parties.map((c) => c.transport.unreliable);
  await sleep(300);
  let sent = 0;
  const interval = 1000 / o.hz;
  const end = performance.now() + o.seconds * 1000;
  await Promise.all(
    txs.map(async (tx, k) => {
      await sleep((interval * k) / txs.length);
      let next = performance.now();
      while (next < end) {
        const m = new Uint8Array(o.size);
        const dv = new DataView(m.buffer);
        dv.setUint32(0, sent);
        dv.setFloat64(4, now());
        tx.send(m);
        sent++;
        next += interval;
        await sleep(Math.max(0, next - performance.now()));
      }
    }),
  );
  await sleep(1500);
  latencies.sort((a, b) => a - b);
  const stats = parties.map((c) => c.transportStats);
  const out = {
    paths,
    sent,
    expected: sent * (o.parties - 1),
    received,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    max: latencies.at(-1) ?? 0,
    datagramsOut: stats.reduce((n, s) => n + s.datagramsOut, 0),
  };
  await Promise.allSettled(parties.map((c) => c.close()));
  return out;
}

/** One sender blasting `seconds` of 100 B unreliable messages at one receiver; reports what arrived. */
async function workerBlast(o) {
  const tx = await connect(o.url, `blast-tx-${o.tag}`, o.webrtc);
  const rx = await connect(o.url, `blast-rx-${o.tag}`, o.webrtc);
  const rconf = await rx.joinConference(o.room);
  let received = 0;
  await rconf.makeRecvDataSession(31, () => void received++);
  const sconf = await tx.joinConference(o.room);
  const s = await sconf.makeSendDataSession(31, 'unreliable');
  await Promise.all([settled(tx), settled(rx)]);
  await sleep(300);
  process.stdout.write(`${JSON.stringify({ go: true })}\n`);
  await new Promise((r) => process.stdin.once('data', r));
  const payload = new Uint8Array(o.size);
  let sent = 0;
  const end = performance.now() + o.seconds * 1000;
  const r0 = received;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < o.batch; i++) s.send(payload);
    sent += o.batch;
    await new Promise((r) => setImmediate(r));
  }
  const t1 = performance.now();
  const r1 = received;
  await sleep(500);
  const out = { sent, received: r1 - r0, seconds: (t1 - t0) / 1000, paths: [tx.transport.unreliable, rx.transport.unreliable] };
  await Promise.allSettled([tx.close(), rx.close()]);
  return out;
}

/**
 * `n` idle clients, one after another: each connects, joins a room of its own and opens one
 * `unreliable` session (which negotiates its peer connection); reports negotiation times, then
 * waits for stdin to close.
 */
async function workerIdle(o) {
  const clients = [];
  const sessionToOpen = [];
  const offerToOpen = [];
  for (let i = 0; i < o.n; i++) {
    const client = await connect(o.url, `idle${i}-${o.tag}`, o.webrtc);
    clients.push(client);
    const conf = await client.joinConference(`idle${i}-${o.tag}`);
    const t0 = performance.now();
    await conf.makeSendDataSession(1, 'unreliable');
    await settled(client);
    if (client.transport.webrtc === 'open') {
      sessionToOpen.push(performance.now() - t0);
      offerToOpen.push(client.transportStats.negotiationMs);
    }
  }
  process.stdout.write(`${JSON.stringify({ ready: true, open: sessionToOpen.length, sessionToOpen, offerToOpen })}\n`);
  await new Promise((r) => process.stdin.on('end', r).resume());
  await Promise.allSettled(clients.map((c) => c.close()));
  return { done: true };
}

// ---------------------------------------------------------------- orchestrator side

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** A namespace linked by a veth pair (see test/helpers/netns.ts for the same, with why the drops are on input). */
function makeNetns() {
  const id = String(process.pid % 100000);
  const ns = `bcbench${id}`;
  const host = `bhb${id}`;
  const peer = `bnb${id}`;
  const n = 200 + (process.pid % 50);
  const hostAddress = `10.214.${n}.1`;
  const table = `bcbench${id}`;
  const cleanup = () => {
    sh('ip', ['netns', 'del', ns]);
    sh('ip', ['link', 'del', host]);
    sh('nft', ['delete', 'table', 'inet', table]);
  };
  const steps = [
    ['ip', ['netns', 'add', ns]],
    ['ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]],
    ['ip', ['link', 'set', peer, 'netns', ns]],
    ['ip', ['addr', 'add', `${hostAddress}/30`, 'dev', host]],
    ['ip', ['link', 'set', host, 'up']],
    ['ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `10.214.${n}.2/30`, 'dev', peer]],
    ['ip', ['netns', 'exec', ns, 'ip', 'link', 'set', peer, 'up']],
    ['ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']],
  ];
  for (const [c, a] of steps) {
    const r = sh(c, a);
    if (!r.ok) {
      cleanup();
      return { error: `${c} ${a.join(' ')}: ${r.out.trim()}` };
    }
  }
  const setLoss = (pct) => {
    sh('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'bcloss']);
    sh('nft', ['delete', 'table', 'inet', table]);
    if (pct <= 0) return;
    const drop = (iif) => `${iif}meta l4proto udp numgen random mod 100 < ${pct} drop\n ${iif}meta l4proto tcp numgen random mod 100 < ${pct} drop`;
    const a = sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], `table inet bcloss {\n chain in {\n type filter hook input priority 0; policy accept;\n ${drop('')}\n }\n}\n`);
    const b = sh('nft', ['-f', '-'], `table inet ${table} {\n chain in {\n type filter hook input priority 0; policy accept;\n ${drop(`iifname "${host}" `)}\n }\n}\n`);
    if (!a.ok || !b.ok) throw new Error(`nft failed: ${a.out}${b.out}`);
  };
  return { ns, hostAddress, setLoss, cleanup };
}

async function startServer(host, extra = {}) {
  const dir = mkdtempSync(join(os.tmpdir(), 'bc-webrtc-bench-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ host, port: 0, logLevel: 'info', apiKeys: { [KEY]: SECRET }, maxDataBitrateKbps: 0, maxDataFramesPerSecond: 0, drainTimeoutMs: 0, controlRateLimit: 0, maxConnectionsPerAddress: 100000, ...extra }));
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const url = await new Promise((res, rej) => {
    createInterface({ input: proc.stdout }).on('line', (l) => {
      try {
        const e = JSON.parse(l);
        if (e.msg === 'backchannel server listening') res(e.url);
      } catch {
        /* not JSON */
      }
    });
    proc.once('exit', (c) => rej(new Error(`server exited with ${c}`)));
  });
  return { url, proc, stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.once('exit', r), proc.kill('SIGTERM')))) };
}

const CLOCK_TICKS = Number(sh('getconf', ['CLK_TCK']).out.trim()) || 100;

/** CPU time (user + system) of process `pid`, seconds. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Runs a worker of this script (in namespace `ns` if given); `onLine` sees its JSON lines; resolves with its last. */
function worker(mode, opts, ns, onLine) {
  const args = [SELF, '--worker', mode, JSON.stringify(opts)];
  const proc = ns ? spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  let last;
  createInterface({ input: proc.stdout }).on('line', (l) => {
    last = JSON.parse(l);
    onLine?.(last, proc);
  });
  const done = new Promise((res, rej) => proc.once('exit', (c) => (c === 0 ? res(last) : rej(new Error(`worker ${mode} exited with ${c}`)))));
  return { proc, done };
}

const f1 = (x) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
const pctText = (x) => `${(x * 100).toFixed(2)} %`;

async function lossScenario(quick) {
  const net = makeNetns();
  if (net.error) return { skipped: `network namespaces or nftables unavailable (${net.error}); run as root with iproute2 and nftables` };
  const rows = [];
  try {
    const server = await startServer(net.hostAddress);
    try {
      for (const loss of [0, 1, 5]) {
        net.setLoss(loss);
        for (const webrtc of [true, false]) {
          const r = await worker('room', { url: server.url, parties: 10, hz: 60, size: 100, seconds: quick ? 3 : 10, room: `loss-${loss}-${webrtc}`, tag: `${loss}${webrtc}`, webrtc }, net.ns).done;
          rows.push({ loss, path: webrtc ? 'WebRTC' : 'WebSocket', ...r, delivered: r.received / r.expected });
          console.log(`loss ${loss} % ${webrtc ? 'WebRTC   ' : 'WebSocket'}: delivered ${pctText(r.received / r.expected)}, p50 ${f1(r.p50)} ms, p99 ${f1(r.p99)} ms, p99.9 ${f1(r.p999)} ms, max ${f1(r.max)} ms (paths ${[...new Set(r.paths)].join('/')})`);
        }
      }
      net.setLoss(0);
    } finally {
      await server.stop();
    }
  } finally {
    net.cleanup();
  }
  return { rows };
}

async function throughputScenario(quick) {
  const rows = [];
  for (const webrtc of [true, false]) {
    const server = await startServer('127.0.0.1');
    try {
      const w = worker('blast', { url: server.url, room: 'blast', tag: String(webrtc), webrtc, size: 100, seconds: quick ? 2 : 5, batch: 50 }, undefined, (m, proc) => {
        if (m.go) {
          w.cpu0 = cpuSeconds(server.proc.pid);
          proc.stdin.write('go\n');
        }
      });
      const r = await w.done;
      const cpu = cpuSeconds(server.proc.pid) - w.cpu0;
      rows.push({ path: webrtc ? 'WebRTC' : 'WebSocket', rate: r.received / r.seconds, sentRate: r.sent / r.seconds, cpuUsPerMsg: (cpu * 1e6) / Math.max(1, r.received), paths: r.paths });
      console.log(`throughput ${webrtc ? 'WebRTC   ' : 'WebSocket'}: delivered ${Math.round(r.received / r.seconds)} msg/s of ${Math.round(r.sent / r.seconds)} sent/s, server CPU ${((cpu * 1e6) / Math.max(1, r.received)).toFixed(2)} µs per delivered message (paths ${r.paths.join('/')})`);
    } finally {
      await server.stop();
    }
  }
  return { rows };
}

async function memoryAndNegotiation(quick) {
  const n = quick ? 20 : 50;
  /** A fresh server, its RSS before and with `n` clients connected (on WebRTC or not). */
  const measure = async (webrtc) => {
    const server = await startServer('127.0.0.1');
    try {
      await sleep(1000);
      const before = rssBytes(server.proc.pid);
      let ready;
      const w = worker('idle', { url: server.url, n, tag: `m${webrtc}`, webrtc }, undefined, (m) => m.ready && ready?.(m));
      const info = await new Promise((r) => (ready = r));
      await sleep(2000);
      const rss = rssBytes(server.proc.pid);
      w.proc.stdin.end();
      await w.done;
      return { before, rss, info };
    } finally {
      await server.stop();
    }
  };
  const ws = await measure(false);
  const rtc = await measure(true);
  const perClientWs = (ws.rss - ws.before) / n;
  const perClientRtc = (rtc.rss - rtc.before) / n;
  const sorted = (a) => [...a].sort((x, y) => x - y);
  const s2o = sorted(rtc.info.sessionToOpen);
  const o2o = sorted(rtc.info.offerToOpen);
  const out = {
    n,
    perClientWs,
    perClientRtc,
    perPeerConnection: perClientRtc - perClientWs,
    open: rtc.info.open,
    sessionToOpen: { p50: percentile(s2o, 50), p99: percentile(s2o, 99) },
    offerToOpen: { p50: percentile(o2o, 50), p99: percentile(o2o, 99) },
  };
  console.log(`memory: server RSS grows ${(perClientWs / 1024).toFixed(0)} KiB per WebSocket-only client, ${(perClientRtc / 1024).toFixed(0)} KiB per WebRTC client (${n} each, fresh servers): ${(out.perPeerConnection / 1024).toFixed(0)} KiB per peer connection`);
  console.log(`negotiation (${rtc.info.open}/${n} opened): first unreliable session → open p50 ${f1(out.sessionToOpen.p50)} ms, p99 ${f1(out.sessionToOpen.p99)} ms; negotiation start → open p50 ${f1(out.offerToOpen.p50)} ms, p99 ${f1(out.offerToOpen.p99)} ms`);
  return out;
}

function markdown(meta, loss, tput, mem) {
  const lossTable = loss.skipped
    ? `Skipped: ${loss.skipped}.`
    : [
        '| loss | path | delivered | p50 ms | p99 ms | p99.9 ms | max ms |',
        '|---|---|---|---|---|---|---|',
        ...loss.rows.map((r) => `| ${r.loss} % | ${r.path} | ${pctText(r.delivered)} | ${f1(r.p50)} | ${f1(r.p99)} | ${f1(r.p999)} | ${f1(r.max)} |`),
      ].join('\n');
  const tputTable = ['| path | delivered msg/s | sent msg/s | server CPU µs / delivered msg |', '|---|---|---|---|', ...tput.rows.map((r) => `| ${r.path} | ${Math.round(r.rate)} | ${Math.round(r.sentRate)} | ${r.cpuUsPerMsg.toFixed(2)} |`)].join('\n');
  return `${WEBRTC_START}
## WebRTC under packet loss

The datagram path for \`unreliable\` data ([docs/webrtc.md](../docs/webrtc.md)) against the
WebSocket, from [webrtc.mjs](webrtc.mjs) (\`${meta.command}\`), ${meta.date}, on ${meta.machine}; load
average ${meta.load.toFixed(2)} at the start (the machine is shared: absolute numbers are noisy,
compare rows of one run).

**Loss.** A 10-party room, every party sending 100 B cursor updates at 60 Hz as \`unreliable\`
(${loss.rows?.[0] ? `${loss.rows[0].sent} messages per configuration, each to 9 receivers` : '—'}); all
parties in one network namespace joined to the server's by a veth pair, nftables dropping UDP and TCP
packets at random where they arrive, so every message crosses two lossy hops. One-way times from
send to receive (one clock):

${lossTable}

Over WebRTC a lost datagram stays lost — the delivered fraction is about (1 − loss)², two lossy
hops — and nothing waits for it, so the tail does not grow with loss. Over the WebSocket everything
arrives, but a lost TCP segment holds back every update behind it until it is retransmitted, which
is the p99 growing with loss.

**Throughput.** One sender blasting 100 B \`unreliable\` messages at one receiver over loopback (no
loss); the server's CPU (user + system) per delivered message:

${tputTable}

A datagram costs the server more than a WebSocket frame: each is its own SCTP message, DTLS record
and UDP packet (through the native library's threads), where the WebSocket path writes a turn's
frames to a connection in one system call. What the sender offers beyond what the path takes is
dropped (counted), as \`unreliable\` allows.

**Memory and negotiation.** ${mem.n} idle clients connected to a fresh server, each in a room of
its own with one \`unreliable\` session (a client negotiates its peer connection on first use of
\`unreliable\`; one that never uses it has none): the server's RSS grows
${(mem.perClientWs / 1024).toFixed(0)} KiB per client on the WebSocket only and ${(mem.perClientRtc / 1024).toFixed(0)} KiB per client
on WebRTC: **${(mem.perPeerConnection / 1024).toFixed(0)} KiB per peer connection**. Negotiation (${mem.open}/${mem.n}
opened, one after another): first \`unreliable\` session → data channel open p50 ${f1(mem.sessionToOpen.p50)} ms, p99
${f1(mem.sessionToOpen.p99)} ms; negotiation start → open p50 ${f1(mem.offerToOpen.p50)} ms, p99 ${f1(mem.offerToOpen.p99)} ms.
${WEBRTC_END}`;
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    const [, mode, json] = argv;
    const o = JSON.parse(json);
    const fn = { room: workerRoom, blast: workerBlast, idle: workerIdle }[mode];
    const out = await fn(o);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  }
  const quick = argv.includes('--quick');
  const writeMd = !quick && !argv.includes('--no-md');
  const meta = {
    command: `node bench/webrtc.mjs${argv.length ? ` ${argv.join(' ')}` : ''}`,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`,
    load: os.loadavg()[0],
  };
  const only = argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const want = (name) => !only || only.includes(name);
  const loss = want('loss') ? await lossScenario(quick) : { skipped: 'not run (--only)' };
  if (loss.skipped) console.log(`loss scenario skipped: ${loss.skipped}`);
  const tput = want('throughput') ? await throughputScenario(quick) : { rows: [] };
  const mem = want('memory') ? await memoryAndNegotiation(quick) : undefined;
  if (writeMd && !only) {
    const file = join(import.meta.dirname, 'RESULTS.md');
    const old = readFileSync(file, 'utf8');
    const section = markdown(meta, loss, tput, mem);
    const prev = keptWebRtc(old);
    writeFileSync(file, prev ? old.replace(prev, () => section) : `${old.trimEnd()}\n\n${section}\n`);
    console.log(`Refreshed ${file} (WebRTC section)`);
  }
}

await main();
