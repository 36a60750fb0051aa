/**
 * Large room: N participants (default 10,000) in one room on one server process, joined by a few
 * worker processes, every process with default Node flags.
 *
 *   node bench/large-room.mjs [--n 10000] [--workers 4] [--observers 10] [--broadcasts 5]
 *                             [--systems backchannel,ws] [--quick]
 *
 * Backchannel: every participant is visible (not hidden). `--observers` of them (the first to join)
 * follow presence (`presence: 'full'`: the whole member list and every change); the others join
 * with `presence: 'none'`. The bare `ws` relay (bench/peers/ws-relay.mjs) has no presence at all.
 *
 * Measured, per system:
 * - joins in three phases (to 10 %, 50 % and 100 % of N): aggregate join rate and server CPU per
 *   join in each phase — whether the cost of a join grows with the room;
 * - once idle: server RSS per participant (RSS minus the empty server's, ÷ N);
 * - Backchannel: every observer's member list is checked to be exact (N − 1 others);
 * - a broadcast of one 1 KiB message per second (`--broadcasts` of them) from one participant to
 *   all others: per message, the time until the last receiver has it, and p50/p99 over receivers.
 *
 * Writes a section to bench/RESULTS.md (between markers) and prints it.
 */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LARGE_ROOM_END, LARGE_ROOM_START, withSection } from './lib/kept-sections.mjs';
import { listeningUrl } from './lib/procs.mjs';
import { parseFlags, summarize } from './lib/util.mjs';

const HERE = import.meta.dirname;
const REPO = resolve(HERE, '..');
const API_KEY = 'benchkey';
const API_SECRET = 'bench-secret-0123456789abcdef';
const STREAM = 100;
const ROOM = 'large';
const PAYLOAD = 1024;
/** Clock shared by every process on this machine (CLOCK_MONOTONIC), ms. */
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

if (process.argv[2] === '--worker') await worker();
else await main();

// ───────────────────────────────────────── orchestrator ─────────────────────────────────────────

async function main() {
  const { values: args } = parseFlags('large-room', {
    options: {
      n: { type: 'string' },
      workers: { type: 'string', default: '4' },
      observers: { type: 'string', default: '10' },
      broadcasts: { type: 'string' },
      systems: { type: 'string', default: 'backchannel,ws' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (args.help) {
    console.log(readFileSync(import.meta.filename, 'utf8').split('*/')[0].replace(/^\/\*\*\n/, '').replace(/^ \* ?/gm, ''));
    return;
  }
  const n = Number(args.n ?? (args.quick ? 1000 : 10_000));
  const W = Number(args.workers);
  const observers = Math.min(Number(args.observers), n);
  const broadcasts = Number(args.broadcasts ?? (args.quick ? 2 : 5));
  const systems = args.systems.split(',');
  const results = {};
  for (const system of systems) {
    console.log(`▷ ${system}: ${n.toLocaleString('en-US')} participants, ${W} workers`);
    results[system] = await runSystem(system, { n, W, observers, broadcasts });
    console.log(JSON.stringify(results[system], null, 1));
  }
  const section = report(results, { n, W, observers, broadcasts });
  console.log(`\n${section}`);
  writeSection(section);
}

async function runSystem(system, { n, W, observers, broadcasts }) {
  const server = await startServer(system);
  const workers = await Promise.all(Array.from({ length: W }, () => startWorker()));
  try {
    const empty = await settledRss(server.pid);
    // Who joins in which phase: phases end at 10 %, 50 % and 100 % of n; participants are dealt
    // to workers round-robin, the first `observers` (all in worker 0's first joins) follow presence.
    const bounds = [Math.round(n / 10), Math.round(n / 2), n];
    const phases = [];
    let joined = 0;
    const ids = [];
    for (const bound of bounds) {
      const perWorker = Array.from({ length: W }, () => []);
      for (let i = joined; i < bound; i++) perWorker[i % W].push(i);
      // Tokens are minted before the clock starts.
      await Promise.all(workers.map((w, k) => w.call({ cmd: 'prepare', system, indexes: perWorker[k] })));
      const cpu0 = cpuMs(server.pid);
      const t0 = nowMs();
      const replies = await Promise.all(
        workers.map((w, k) => w.call({ cmd: 'join', system, url: server.url, indexes: perWorker[k], observers, concurrency: 25 })),
      );
      const secs = (nowMs() - t0) / 1000;
      await waitIdle(server.pid);
      const cpu = cpuMs(server.pid) - cpu0;
      for (const r of replies) ids.push(...r.ids);
      phases.push({ members: bound, joins: bound - joined, secs, joinsPerSec: (bound - joined) / secs, serverCpuMsPerJoin: cpu / (bound - joined), p50JoinMs: median(replies.map((r) => r.p50)) });
      joined = bound;
    }
    const rss = await settledRss(server.pid);
    const out = { phases, joinsPerSec: n / phases.reduce((t, p) => t + p.secs, 0), rssPerParticipantKB: (rss - empty) / n / 1000, serverRssMB: rss / 2 ** 20 };
    if (system === 'backchannel') {
      const sizes = (await Promise.all(workers.map((w) => w.call({ cmd: 'lists' })))).flatMap((r) => r.sizes);
      out.observerLists = { observers: sizes.length, exact: sizes.every((s) => s === n - 1), sizes: [...new Set(sizes)] };
    }
    // Broadcasts: worker 0's first participant sends; every other participant receives.
    await Promise.all(workers.map((w) => w.call({ cmd: 'receive' })));
    const perMessage = [];
    for (let b = 0; b < broadcasts; b++) {
      const started = nowMs();
      await Promise.all([workers[0].call({ cmd: 'send', seq: b }), ...workers.map((w) => w.call({ cmd: 'await', seq: b, count: w.hosted - (w === workers[0] ? 1 : 0) }))]).then(async (r) => {
        const delays = r.slice(1).flatMap((x) => x.delays);
        const s = summarize(delays);
        perMessage.push({ receivers: delays.length, lastMs: s.max, p50Ms: s.p50, p99Ms: s.p99 });
      });
      const wait = 1000 - (nowMs() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    out.broadcast = {
      messages: perMessage.length,
      receivers: perMessage[0]?.receivers,
      lastMs: median(perMessage.map((m) => m.lastMs)),
      p50Ms: median(perMessage.map((m) => m.p50Ms)),
      p99Ms: median(perMessage.map((m) => m.p99Ms)),
      worstLastMs: Math.max(...perMessage.map((m) => m.lastMs)),
    };
    return out;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await server.stop();
  }
}

function median(values) {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
}

/** Server CPU time (user + system) of process `pid`, ms. */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}

/** Waits until the server has used < 5 % CPU over 200 ms (done with what it was sent). */
async function waitIdle(pid) {
  for (let i = 0; i < 300; i++) {
    const c0 = cpuMs(pid);
    await new Promise((r) => setTimeout(r, 200));
    if (cpuMs(pid) - c0 < 10) return;
  }
}

/** Median of 5 RSS samples 200 ms apart, once idle. */
async function settledRss(pid) {
  await waitIdle(pid);
  const samples = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssBytes(pid));
    await new Promise((r) => setTimeout(r, 200));
  }
  return median(samples);
}

async function startServer(system) {
  const dir = mkdtempSync(join(tmpdir(), 'bc-large-room-'));
  let proc;
  if (system === 'backchannel') {
    const config = join(dir, 'config.json');
    // Limits raised for one very large room from one address; WebRTC off (no datagrams here).
    writeFileSync(config, JSON.stringify({ port: 0, host: '127.0.0.1', logLevel: 'info', apiKeys: { [API_KEY]: API_SECRET }, maxParticipantsPerRoom: 100_000, maxConnectionsPerAddress: 100_000, webrtc: false, drainTimeoutMs: 0 }));
    proc = spawn(process.execPath, [...PROF_FLAGS('server'), join(REPO, 'packages/cli/bin/backchannel.js'), 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  } else if (system === 'ws') {
    proc = fork(join(HERE, 'peers/ws-relay.mjs'), [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  } else throw new Error(`unknown system ${system} (backchannel or ws)`);
  const url = await (system === 'backchannel'
    ? listeningUrl(proc)
    : new Promise((res, rej) => {
        proc.stdout.resume();
        proc.on('message', (m) => m?.t === 'listening' && res(m.url));
        proc.on('exit', (code) => rej(new Error(`${system} server exited with ${code}`)));
      }));
  return {
    url,
    pid: proc.pid,
    stop: () =>
      new Promise((res) => {
        proc.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          res();
        });
        proc.kill(process.env.PROF_DIR ? 'SIGINT' : 'SIGKILL');
      }),
  };
}

/** With PROF_DIR set, every process writes a CPU profile there (and exits gracefully to do so). */
function PROF_FLAGS(who) {
  return process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.PROF_DIR, who)}`] : [];
}

async function startWorker() {
  const proc = fork(import.meta.filename, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: PROF_FLAGS('workers') });
  const pending = new Map();
  let re = 0;
  const w = {
    hosted: 0,
    call(msg) {
      return new Promise((res, rej) => {
        const id = ++re;
        pending.set(id, (m) => (m.error ? rej(new Error(m.error)) : res(m)));
        proc.send({ ...msg, re: id });
      }).then((m) => {
        if (msg.cmd === 'join') w.hosted += m.ids.length;
        return m;
      });
    },
    stop: () => new Promise((res) => {
      proc.once('exit', res);
      if (process.env.PROF_DIR) proc.send({ cmd: 'exit' });
      else proc.kill('SIGKILL');
    }),
  };
  await new Promise((res) =>
    proc.on('message', (m) => {
      if (m.ready) return res();
      pending.get(m.re)?.(m);
      pending.delete(m.re);
    }),
  );
  return w;
}

function report(results, { n, W, observers, broadcasts }) {
  const bc = results.backchannel;
  const ws = results.ws;
  const f = (v, d = 1) => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
  const lines = [
    `### Large room: ${n.toLocaleString('en-US')} participants in one room (\`node bench/large-room.mjs\`)`,
    '',
    `${W} worker processes, 25 joins in flight each; every process with default Node flags. Backchannel: every participant visible, ` +
      `the first ${observers} with \`presence: 'full'\` (the whole list and every change), the rest \`presence: 'none'\`; the bare relay has no presence. ` +
      `Broadcast: ${broadcasts} messages of 1 KiB, one per second, from one participant to all others (time from send to receipt on the shared clock).`,
    '',
    `| | ${Object.keys(results).map((s) => (s === 'ws' ? 'bare ws relay' : 'Backchannel')).join(' | ')} |`,
    `|---|${Object.keys(results).map(() => '---:').join('|')}|`,
  ];
  const row = (label, get) => lines.push(`| ${label} | ${Object.values(results).map((r) => get(r)).join(' | ')} |`);
  const phases = (bc ?? ws).phases;
  for (const [i, p] of phases.entries()) {
    row(`joins/s, members ${i === 0 ? 0 : phases[i - 1].members.toLocaleString('en-US')}→${p.members.toLocaleString('en-US')}`, (r) => f(r.phases[i].joinsPerSec, 0));
  }
  row(`joins/s, the whole fill (0→${n.toLocaleString('en-US')})`, (r) => f(r.joinsPerSec, 0));
  for (const [i, p] of phases.entries()) row(`server CPU per join, ms, up to ${p.members.toLocaleString('en-US')}`, (r) => f(r.phases[i].serverCpuMsPerJoin, 3));
  for (const [i, p] of phases.entries()) row(`connect → joined p50, ms, up to ${p.members.toLocaleString('en-US')}`, (r) => f(r.phases[i].p50JoinMs, 2));
  row('server RSS per idle participant, KB', (r) => f(r.rssPerParticipantKB, 1));
  row('server RSS, MiB', (r) => f(r.serverRssMB, 0));
  row('broadcast: last receiver has it, ms (median of messages)', (r) => f(r.broadcast.lastMs, 1));
  row('broadcast: p50 / p99 over receivers, ms', (r) => `${f(r.broadcast.p50Ms, 1)} / ${f(r.broadcast.p99Ms, 1)}`);
  row('broadcast: worst last receiver, ms', (r) => f(r.broadcast.worstLastMs, 1));
  if (bc?.observerLists) lines.push('', `Presence check: ${bc.observerLists.observers} observers, member lists ${bc.observerLists.exact ? `exact (${(n - 1).toLocaleString('en-US')} others each)` : `NOT exact: sizes ${bc.observerLists.sizes.join(', ')}`}.`);
  if (ws) lines.push('', `Ratios (Backchannel ÷ relay): join rate ${f(bc.joinsPerSec / ws.joinsPerSec, 2)}×, RSS per participant ${f(bc.rssPerParticipantKB / ws.rssPerParticipantKB, 2)}×, broadcast last receiver ${f(bc.broadcast.lastMs / ws.broadcast.lastMs, 2)}×.`);
  return lines.join('\n');
}

function writeSection(section) {
  const file = join(HERE, 'RESULTS.md');
  const body = `${section}\n\n_${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}_`;
  writeFileSync(file, withSection(readFileSync(file, 'utf8'), LARGE_ROOM_START, LARGE_ROOM_END, body));
}

// ──────────────────────────────────────────── worker ────────────────────────────────────────────

async function worker() {
  /** @type {{ id: string, index: number, client?: any, conf?: any, ws?: any, send?: (b: Uint8Array) => void }[]} */
  const parts = [];
  /** Receive times by message number. */
  const received = new Map();
  const waiters = new Map();
  const onMessage = (bytes) => {
    const seq = bytes[0] | (bytes[1] << 8);
    const sentAt = new DataView(bytes.buffer, bytes.byteOffset + 2, 8).getFloat64(0, true);
    let list = received.get(seq);
    if (!list) received.set(seq, (list = []));
    list.push(nowMs() - sentAt);
    const w = waiters.get(seq);
    if (w && list.length >= w.count) {
      waiters.delete(seq);
      w.resolve(list);
    }
  };
  let bc;
  let createAccessToken;
  let WebSocket;

  const tokens = new Map();

  async function joinOne(system, url, index, observers) {
    const t0 = nowMs();
    if (system === 'backchannel') {
      const token = tokens.get(index);
      tokens.delete(index);
      const start = nowMs();
      // One round trip: the join travels right behind the hello.
      const { client, conference: conf } = await bc.Client.connectAndJoin(url, token, ROOM, { presence: index < observers ? 'full' : 'none' }, { webrtc: false });
      return { p: { id: client.participantId, index, client, conf }, ms: nowMs() - start };
    }
    const ws = new WebSocket(`${url}/?room=${ROOM}`, { perMessageDeflate: false });
    await new Promise((res, rej) => {
      ws.once('message', () => res());
      ws.once('error', rej);
    });
    ws.binaryType = 'nodebuffer';
    return { p: { id: String(index), index, ws }, ms: nowMs() - t0 };
  }

  const commands = {
    /** Loads the client library and mints the tokens of the next joins. */
    async prepare({ system, indexes }) {
      if (system === 'backchannel' && !bc) {
        bc = await import('@backchannel/client');
        ({ createAccessToken } = await import('@backchannel/server-sdk'));
      }
      if (system === 'ws' && !WebSocket) ({ WebSocket } = await import('ws'));
      if (system === 'backchannel') {
        for (const i of indexes) tokens.set(i, await createAccessToken({ apiKey: API_KEY, apiSecret: API_SECRET, userId: `u${i}`, grants: { conferences: ['*'] }, ttl: '2h' }));
      }
      return {};
    },
    async join({ system, url, indexes, observers, concurrency }) {
      const out = new Array(indexes.length);
      const times = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, indexes.length) }, async () => {
          while (next < indexes.length) {
            const i = next++;
            const { p, ms } = await joinOne(system, url, indexes[i], observers);
            out[i] = p;
            times.push(ms);
          }
        }),
      );
      parts.push(...out);
      times.sort((a, b) => a - b);
      return { ids: out.map((p) => p.id), p50: times[times.length >> 1] };
    },
    lists() {
      return { sizes: parts.filter((p) => p.conf?.presence === 'full').map((p) => p.conf.participants.size) };
    },
    async receive() {
      for (const p of parts) {
        if (p.conf) await p.conf.makeRecvDataSession(STREAM, (data) => onMessage(data));
        else p.ws.on('message', (data, isBinary) => isBinary && onMessage(data));
      }
      const sender = parts.find((p) => p.index === 0);
      if (sender?.conf) {
        const tx = await sender.conf.makeSendDataSession(STREAM, 'reliable-message');
        sender.send = (b) => tx.send(b);
      } else if (sender?.ws) sender.send = (b) => sender.ws.send(b);
      return {};
    },
    send({ seq }) {
      const bytes = new Uint8Array(PAYLOAD);
      bytes[0] = seq & 0xff;
      bytes[1] = seq >> 8;
      new DataView(bytes.buffer, 2, 8).setFloat64(0, nowMs(), true);
      parts.find((p) => p.index === 0).send(bytes);
      return {};
    },
    async await({ seq, count }) {
      const have = received.get(seq) ?? [];
      const delays = have.length >= count ? have : await new Promise((resolve) => waiters.set(seq, { count, resolve }));
      return { delays };
    },
  };

  process.on('message', async (msg) => {
    if (msg.cmd === 'exit') process.exit(0);
    try {
      process.send({ re: msg.re, ...(await commands[msg.cmd](msg)) });
    } catch (error) {
      process.send({ re: msg.re, error: String(error?.stack ?? error) });
    }
  });
  process.send({ ready: true });
}
