#!/usr/bin/env node
/**
 * Cluster mode (docs/cluster.md) against one server, in one run: a real redis-server
 * (/usr/bin/redis-server on 127.0.0.1, a free port, a temporary directory, no persistence) and
 * three `backchannel serve` processes (nodes A, B, C) with the benchmark's settings and the
 * cluster's default heartbeat and TTL (1,000 / 3,000 ms), against one `backchannel serve` without
 * Redis. Clients run in worker processes (bench/worker.mjs, bench/cluster-worker.mjs); every
 * process runs with Node's default flags. Rounds alternate cluster and single server.
 *
 * The cluster places a new conference on its least loaded node, whichever node the first member
 * connected to; so each scenario first creates its conference with a probe member, reads the
 * host's number from the room number (`roomNum >>> 20`), and connects its clients relative to the
 * host: A below is the host, B and C the other two nodes.
 *
 * 1. 1:1 throughput, 1 KiB: sender connected to A (the host), receiver to B; then receiver on A,
 *    sender on B — against both on one server. Delivered msg/s, server CPU per delivered message.
 * 2. 1:1 latency, 100 B at 1,000 msg/s: sender on A, receiver on B; p50 / p99.
 * 3. Fan-out 1→9, 1 KiB: sender on A, receivers 3 on each of A, B and C — against 1→9 on one
 *    server. Delivered msg/s; server CPU per delivered message, per node and in total.
 * 4. Join latency: the probe holds the conference on A; another client connects and joins through
 *    B, one join after another (connect + join, closed before the next): a warm-up pass, not
 *    counted, then the measured pass; p50 / p99.
 * 5. Failure: one member on A and two each on B and C; A is killed (SIGKILL). Time from the kill to
 *    the members on B and C seeing the conference end (`node-lost`), and to the `conference.ended`
 *    webhook (a receiver in this process); A is restarted before each repeat. With the default
 *    heartbeat / TTL (1,000 / 3,000 ms) and with 200 / 1,000 ms.
 * 6. The inter-node path: 1 KiB messages between two processes through a Redis pub/sub channel
 *    (ioredis) against a direct WebSocket (`ws`): the most delivered per second, and p50 / p99 at
 *    1,000 msg/s.
 *
 *   node bench/cluster.mjs            # everything (≈ 8 min); writes the cluster section of bench/RESULTS.md
 *   node bench/cluster.mjs --quick    # shorter, one round (nothing written)
 *   node bench/cluster.mjs --no-md    # print only
 *   node bench/cluster.mjs --only=throughput,latency,fanout,join,failover,path   # some (nothing written)
 *   node bench/cluster.mjs --only=throughput --rounds 5   # more rounds of each (nothing written)
 *   node bench/cluster.mjs --help
 *
 * Build first (`npm run build`): the run copies every package's dist directory at its start and runs
 * that copy, so a rebuild of the working tree meanwhile changes nothing under test.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createConnection, createServer as createTcpServer } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { CLUSTER_END, CLUSTER_START, withSection } from './lib/kept-sections.mjs';
import { builtAt, checkErrors, measureWindows, median, nowNs, parseFlags, sleep, summarize, withTimeout } from './lib/util.mjs';

const HERE = import.meta.dirname;
const REPO = resolve(HERE, '..');

/**
 * A copy of the build (every package's dist directory) taken at the start, so that a rebuild of the working tree
 * during the run changes nothing under test: laid out like a checkout, with node_modules linking to
 * this checkout's dependencies and to the copied packages. It runs through the benchmark's
 * `backchannel-baseline` system (servers' CLI and clients' SDK from BENCH_BASELINE_DIR, see
 * lib/baseline.mjs), so BENCH_BASELINE_DIR is set before procs.mjs is loaded.
 */
function snapshotBuild() {
  const dir = mkdtempSync(join(tmpdir(), 'bc-cluster-build-'));
  for (const pkg of readdirSync(join(REPO, 'packages'))) {
    const src = join(REPO, 'packages', pkg);
    if (!existsSync(join(src, 'dist'))) continue;
    cpSync(join(src, 'dist'), join(dir, 'packages', pkg, 'dist'), { recursive: true });
    cpSync(join(src, 'package.json'), join(dir, 'packages', pkg, 'package.json'));
  }
  const modules = join(REPO, 'node_modules');
  mkdirSync(join(dir, 'node_modules', '@backchannel'), { recursive: true });
  for (const e of readdirSync(modules)) if (e !== '@backchannel') symlinkSync(join(modules, e), join(dir, 'node_modules', e));
  for (const e of readdirSync(join(modules, '@backchannel'))) {
    const copied = join(dir, relative(REPO, realpathSync(join(modules, '@backchannel', e))));
    symlinkSync(existsSync(copied) ? copied : realpathSync(join(modules, '@backchannel', e)), join(dir, 'node_modules', '@backchannel', e));
  }
  return dir;
}

const BUILT_AT_COPY = builtAt(REPO);
const SNAPSHOT = process.argv.includes('--help') || process.argv.includes('-h') ? undefined : snapshotBuild();
if (SNAPSHOT) process.env.BENCH_BASELINE_DIR = SNAPSHOT;
process.once('exit', () => SNAPSHOT && rmSync(SNAPSHOT, { recursive: true, force: true }));
/** The system the servers and clients run as: this build, from the copy. */
const SYSTEM = 'backchannel-baseline';
const { WorkerPool, killAll, procStats, startServer, startWorker, trackChild } = await import('./lib/procs.mjs');
const { machineLine } = await import('./lib/report.mjs');
const { baselineEntries } = await import('./lib/baseline.mjs');
if (SNAPSHOT && !baselineEntries()?.cli.startsWith(SNAPSHOT)) throw new Error(`the copy of the build at ${SNAPSHOT} has no server CLI (build first: npm run build)`);

const REDIS_SERVER = '/usr/bin/redis-server';
/** Node's default flags for every process: the servers and the clients of both systems. */
const NODE_FLAGS = [];
/** The cluster's defaults (docs/configuration.md), passed explicitly. */
const DEFAULT_TIMINGS = { clusterHeartbeatMs: 1000, clusterNodeTtlMs: 3000 };
const FAST_TIMINGS = { clusterHeartbeatMs: 200, clusterNodeTtlMs: 1000 };

const DURATIONS = {
  full: { rounds: 3, warmupMs: 3000, windowMs: 2000, windows: 3, latencyWarmupMessages: 6000, latencyMs: 3000, joins: 200, failovers: 5, pathMs: 4000, pathWarmupMs: 1000 },
  quick: { rounds: 1, warmupMs: 500, windowMs: 700, windows: 1, latencyWarmupMessages: 500, latencyMs: 1000, joins: 20, failovers: 2, pathMs: 1000, pathWarmupMs: 300 },
};
const SCENARIOS = ['throughput', 'latency', 'fanout', 'join', 'failover', 'path'];

// ───────────────────────────────────────── processes ─────────────────────────────────────────

/** A TCP port free on 127.0.0.1 right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on `port` answers PING. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** Starts a redis-server of its own (empty, no persistence); resolves once it answers PING. */
async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'bc-cluster-bench-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'];
  const proc = trackChild(spawn(REDIS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => proc.once('exit', r));
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s: ${stderr}`);
    await sleep(20);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid,
    async stop() {
      proc.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts one `backchannel serve` node of the cluster on `redis`; resolves once it has joined the
 * cluster, with its node number (`no`) and when it logged seeing each other node (`seen`: node
 * number → ns of the last 'a node joined the cluster' for it).
 */
async function startNode(redis, config) {
  const seen = new Map();
  let no = 0;
  const waiters = new Set();
  const onLog = (entry) => {
    if (entry.msg === 'joined the cluster') no = entry.no;
    else if (entry.msg === 'a node joined the cluster') seen.set(entry.no, nowNs());
    for (const w of waiters) w();
  };
  const server = await startServer(SYSTEM, { nodeFlags: NODE_FLAGS, config: { ...config, redis: redis.url }, onLog });
  const node = {
    server,
    get no() {
      return no;
    },
    seen,
    url: server.url,
    pid: server.pid,
    /** Resolves once `pred()` holds (checked on every log line), or rejects after `timeoutMs`. */
    until(pred, what, timeoutMs = 15_000) {
      if (pred()) return Promise.resolve();
      let check;
      return withTimeout(
        new Promise((resolve) => {
          check = () => pred() && resolve();
          waiters.add(check);
        }),
        timeoutMs,
        what,
      ).finally(() => waiters.delete(check));
    },
  };
  await node.until(() => no > 0, 'a node joining the cluster');
  return node;
}

/** Waits until every node of `nodes` has seen every other (since `sinceNs`, ns). */
async function allSeen(nodes, sinceNs = 0n) {
  await Promise.all(nodes.map((n) => n.until(() => nodes.every((m) => m === n || (n.seen.get(m.no) ?? -1n) >= sinceNs), `node ${n.no} seeing the other nodes`)));
}

/**
 * The systems compared: a cluster of `n` nodes on a Redis of its own, or one server without Redis.
 * `urls[i]` is where a client of "node i" connects (every one the same server for `single`);
 * `servers` are the server processes, for their CPU time.
 */
async function startRig(kind, { n = 3, config = {} } = {}) {
  if (kind === 'single') {
    const server = await startServer(SYSTEM, { nodeFlags: NODE_FLAGS, config });
    return { kind, urls: Array(n).fill(server.url), servers: [server], nodes: [], stop: () => server.kill() };
  }
  const redis = await startRedis();
  const nodes = [];
  const nodeConfig = { ...DEFAULT_TIMINGS, ...config };
  try {
    // One after another: each takes the next free node number.
    for (let i = 0; i < n; i++) nodes.push(await startNode(redis, nodeConfig));
    await allSeen(nodes);
  } catch (error) {
    await Promise.all(nodes.map((s) => s.server.kill()));
    await redis.stop();
    throw error;
  }
  return {
    kind,
    redis,
    nodes,
    nodeConfig,
    get urls() {
      return nodes.map((s) => s.url);
    },
    get servers() {
      return nodes.map((s) => s.server);
    },
    async stop() {
      await Promise.all(nodes.map((s) => s.server.kill()));
      await redis.stop();
    },
  };
}

const cpuMs = (pid) => procStats(pid)?.cpuMs ?? NaN;

// ───────────────────────────────────────── scenarios ─────────────────────────────────────────

/**
 * Creates conference `room` with one member (the probe) joined through node 0 and finds which node
 * hosts it: the cluster places a new conference on its least loaded node, not necessarily the one
 * the first member connected to. Scenarios then connect their clients relative to the host (`at(k)`:
 * the URL of the k-th node counting from the host). `leave()` takes the probe out of the room.
 */
async function placeRoom(rig, probe, room) {
  const { indexes, roomNums } = await probe.call('joinWatch', { system: SYSTEM, url: rig.urls[0], room, names: [`${room}-probe`], watch: false, reconnect: false });
  const no = roomNums[0] >>> 20;
  const host = rig.kind === 'single' ? 0 : rig.nodes.findIndex((n) => n.no === no);
  if (host < 0) throw new Error(`conference ${room} is hosted on node ${no}, which is none of this cluster's (${rig.nodes.map((n) => n.no).join(', ')})`);
  const n = rig.urls.length;
  return {
    host,
    roomNum: roomNums[0],
    /** The index (in rig.urls, rig.servers) of the k-th node counting from the host. */
    nth: (k) => (host + k) % n,
    at: (k) => rig.urls[(host + k) % n],
    leave: () => probe.call('leave', { index: indexes[0] }),
  };
}

/**
 * A flood of 1 KiB messages: `layout` lists, per worker, the node its participants connect to
 * (0: the room's host, 1 and 2: the next nodes), how many, and whether they send. Delivered msg/s
 * is the median of the windows after the warm-up; server CPU per delivered message is over all
 * windows, per node (host first, then the next nodes) and in total.
 */
async function flood(rig, pool, probe, d, layout, room) {
  const workers = await pool.take(layout.length);
  try {
    const place = await placeRoom(rig, probe, room);
    for (const [i, l] of layout.entries()) {
      await workers[i].call('join', { system: SYSTEM, url: place.at(l.node), room, names: Array.from({ length: l.n }, (_, k) => `${room}-w${i}-${k}`), concurrency: 1 });
    }
    await place.leave();
    const total = layout.reduce((a, l) => a + l.n, 0);
    const receivers = workers.filter((_, i) => !layout[i].send);
    const senders = workers.filter((_, i) => layout[i].send);
    await Promise.all(receivers.map((w) => w.call('recvCount', { size: 1024 })));
    await Promise.all(senders.map((w) => w.call('sendFlood', { size: 1024, receivers: total - 1, mode: 'reliable-message' })));
    await sleep(d.warmupMs);
    const servers = rig.kind === 'single' ? rig.servers : [0, 1, 2].map((k) => rig.servers[place.nth(k)]);
    const cpu0 = servers.map((s) => cpuMs(s.pid));
    const { first, last: prev, rates: windows, total: msgs } = await measureWindows(receivers, d);
    const cpu1 = servers.map((s) => cpuMs(s.pid));
    await Promise.all(senders.map((w) => w.call('stop', {}, 30_000)));
    await checkErrors(workers);
    const secs = Number(BigInt(prev[0].ns) - BigInt(first[0].ns)) / 1e9;
    const perNode = cpu1.map((c, i) => ((c - cpu0[i]) * 1000) / msgs);
    return {
      msgsPerSec: median(windows),
      windows: windows.map(Math.round),
      cpuUsPerMsg: perNode,
      cpuUsPerMsgTotal: perNode.reduce((a, b) => a + b, 0),
      serverCpuPct: cpu1.map((c, i) => ((c - cpu0[i]) / 1000 / secs) * 100),
    };
  } finally {
    await Promise.all([pool.reset(workers), probe.call('closeAll')]);
  }
}

/** 1:1 latency of 100 B messages at 1,000 msg/s, sender on the room's host, receiver on the next node. */
async function latencyRun(rig, pool, probe, d, room) {
  const workers = await pool.take(2);
  try {
    const place = await placeRoom(rig, probe, room);
    await workers[0].call('join', { system: SYSTEM, url: place.at(0), room, names: [`${room}-tx`], concurrency: 1 });
    await workers[1].call('join', { system: SYSTEM, url: place.at(1), room, names: [`${room}-rx`], concurrency: 1 });
    await place.leave();
    const rate = 1000;
    const warmupMs = (d.latencyWarmupMessages / rate) * 1000;
    const fromNs = nowNs() + BigInt(Math.round(warmupMs * 1e6));
    await workers[1].call('recvLatency', { fromNs: fromNs.toString() });
    const sent = await workers[0].call('sendRate', { size: 100, rate, durationMs: warmupMs + d.latencyMs, receivers: 1, mode: 'reliable-message' }, warmupMs + d.latencyMs + 60_000);
    await sleep(300);
    const lat = summarize(await workers[1].call('latencySamples'));
    await checkErrors(workers);
    return { p50Ms: lat.p50 / 1000, p99Ms: lat.p99 / 1000, maxMs: lat.max / 1000, samples: lat.count, achievedRate: sent.achievedRate };
  } finally {
    await Promise.all([pool.reset(workers), probe.call('closeAll')]);
  }
}

/**
 * Join latency through a node that does not host the conference: the probe member holds it on its
 * host, another client joins through the next node (see the header).
 */
async function joinRun(rig, pool, probe, d, room) {
  const workers = await pool.take(1);
  try {
    const place = await placeRoom(rig, probe, room);
    const cpu0 = rig.servers.map((s) => cpuMs(s.pid));
    const { cold, warm } = await workers[0].call('joinSeq', { system: SYSTEM, url: place.at(1), room, n: d.joins, warmup: d.joins }, 300_000);
    const cpu1 = rig.servers.map((s) => cpuMs(s.pid));
    const cpuPerJoin = cpu1.reduce((a, c, i) => a + c - cpu0[i], 0) / (2 * d.joins);
    return { p50Ms: warm.p50, p99Ms: warm.p99, maxMs: warm.max, coldP50Ms: cold.p50, coldP99Ms: cold.p99, joins: warm.count, cpuMsPerJoin: cpuPerJoin };
  } finally {
    await Promise.all([pool.reset(workers), probe.call('closeAll')]);
  }
}

/** Webhook deliveries received by this process: event, and when it arrived (ns, shared clock). */
async function startWebhookReceiver() {
  const events = [];
  const waiters = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const ns = nowNs();
      res.writeHead(204).end();
      try {
        events.push({ ns, event: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      } catch {
        return;
      }
      for (const w of waiters) w();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    /** The first delivery for which `pred(event)` holds (waiting up to `timeoutMs`), or undefined. */
    async first(pred, timeoutMs) {
      const find = () => events.find((e) => pred(e.event));
      if (find()) return find();
      let check;
      await withTimeout(new Promise((resolve) => waiters.add((check = () => find() && resolve()))), timeoutMs, 'webhook').catch(() => undefined);
      waiters.delete(check);
      return find();
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Kills the node hosting a conference `d.failovers` times (see the header) with `timings`; returns
 * each repeat's times from the kill, ms. The killed node is restarted (it takes a new number) and
 * seen by the others before the next repeat.
 */
async function failover(d, watcher, timings, log) {
  const hooks = await startWebhookReceiver();
  const rig = await startRig('cluster', { config: { ...timings, webhookUrls: [hooks.url] } });
  const repeats = [];
  try {
    for (let i = 0; i < d.failovers; i++) {
      const room = `failover-${timings.clusterHeartbeatMs}-${i}`;
      const place = await placeRoom(rig, watcher, room);
      const host = rig.nodes[place.host];
      const nums = [
        ...(await watcher.call('joinWatch', { system: SYSTEM, url: place.at(0), room, names: [`${room}-host`], reconnect: false, watch: false })).roomNums,
        ...(await watcher.call('joinWatch', { system: SYSTEM, url: place.at(1), room, names: [`${room}-b0`, `${room}-b1`] })).roomNums,
        ...(await watcher.call('joinWatch', { system: SYSTEM, url: place.at(2), room, names: [`${room}-c0`, `${room}-c1`] })).roomNums,
      ];
      if (nums.some((r) => r !== place.roomNum)) throw new Error(`members of ${room} see different rooms: ${place.roomNum} / ${nums.join(', ')}`);
      await place.leave();
      await hooks.first((e) => e.type === 'conference.started' && e.room.name === room, 5000);
      await sleep(200);
      const killedNs = nowNs();
      await host.server.kill();
      const ms = (ns) => Number(BigInt(ns) - killedNs) / 1e6;
      const limitMs = timings.clusterNodeTtlMs + 15_000;
      const ended = await watcher.call('endedWait', { timeoutMs: limitMs }, limitMs + 5000);
      const hook = await hooks.first((e) => e.type === 'conference.ended' && e.room.name === room, limitMs);
      const endedMs = ended.ended.map((e) => (e.ns === '0' ? NaN : ms(e.ns)));
      const r = {
        hostNo: host.no,
        membersEndedMs: endedMs,
        lastMemberMs: endedMs.some(Number.isNaN) ? NaN : Math.max(...endedMs),
        reasons: [...new Set(ended.ended.map((e) => e.reason ?? 'none'))],
        webhookMs: hook ? Number(hook.ns - killedNs) / 1e6 : NaN,
        webhookReason: hook?.event.reason?.code ?? 'none',
        errors: ended.errors,
      };
      repeats.push(r);
      log(`  failover ${timings.clusterHeartbeatMs}/${timings.clusterNodeTtlMs} #${i + 1} (host node ${host.no}): members on the other nodes saw the end after ${endedMs.map((x) => x.toFixed(0)).join(', ')} ms (${r.reasons.join('/')}), webhook after ${r.webhookMs.toFixed(0)} ms (${r.webhookReason})`);
      if (endedMs.some(Number.isNaN) || !hook) throw new Error(`after killing node ${host.no} (host of ${room}): ${endedMs.filter(Number.isNaN).length} of ${endedMs.length} members never saw the conference end${hook ? '' : ', and no conference.ended webhook came'} within ${limitMs} ms`);
      await watcher.call('closeAll');
      const restartNs = nowNs();
      rig.nodes[place.host] = await startNode(rig.redis, rig.nodeConfig);
      const fresh = rig.nodes[place.host];
      await Promise.all(rig.nodes.filter((n) => n !== fresh).map((n) => n.until(() => (n.seen.get(fresh.no) ?? -1n) >= restartNs, `node ${n.no} seeing the restarted node`)));
      await allSeen(rig.nodes);
    }
  } finally {
    await watcher.call('closeAll').catch(() => undefined);
    await rig.stop();
    await hooks.close();
  }
  return repeats;
}

/**
 * The bare inter-node paths: `path` 'redis' (publisher → Redis → subscriber) or 'ws' (a direct
 * WebSocket); as fast as backpressure allows (`rate` 0) — delivered msg/s over the measured part —
 * or at `rate` msg/s — p50 / p99.
 */
async function pathRun([tx, rx], redis, d, path, rate) {
  try {
    const size = 1024;
    const durationMs = d.pathWarmupMs + d.pathMs;
    let send;
    if (path === 'redis') {
      const channel = `bench-${Math.random().toString(36).slice(2)}`;
      await rx.call('subStart', { redisUrl: redis.url, channel });
      send = tx.call('pubSend', { redisUrl: redis.url, channel, size, rate, durationMs }, durationMs + 60_000);
    } else {
      const { url } = await rx.call('wsListen');
      send = tx.call('wsSend', { url, size, rate, durationMs }, durationMs + 60_000);
    }
    const fromNs = nowNs() + BigInt(d.pathWarmupMs * 1e6);
    await rx.call('rxLatency', { fromNs: fromNs.toString() });
    await sleep(d.pathWarmupMs);
    const s0 = await rx.call('rxSample');
    const redisCpu0 = cpuMs(redis.pid);
    await sleep(d.pathMs - 200);
    const s1 = await rx.call('rxSample');
    const redisCpu1 = cpuMs(redis.pid);
    const sent = await send;
    await sleep(300);
    const { latency, errors } = await rx.call('rxResult');
    const all = [...errors, ...sent.errors];
    if (all.length) throw new Error(`${path}: ${[...new Set(all)].slice(0, 3).join('; ')}`);
    const secs = Number(BigInt(s1.ns) - BigInt(s0.ns)) / 1e9;
    const lat = summarize(latency);
    return { msgsPerSec: (s1.msgs - s0.msgs) / secs, sentRate: sent.achievedRate, p50Ms: lat.p50 / 1000, p99Ms: lat.p99 / 1000, redisCpuPct: path === 'redis' ? ((redisCpu1 - redisCpu0) / 1000 / secs) * 100 : 0 };
  } finally {
    await Promise.all([tx.call('closeAll'), rx.call('closeAll')]);
  }
}

// ───────────────────────────────────────── report ─────────────────────────────────────────

const f = (v, digits = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : '—');
const mid = (runs, key) => median(runs.map((r) => r[key]));

/** A paragraph on the rounds of `result` (see compare) that failed and were left out, or nothing. */
function failedRounds(label, result) {
  if (!result?.failed?.length) return [];
  const byKind = (kind) => result.failed.filter((x) => x.kind === kind);
  const parts = ['cluster', 'single']
    .filter((kind) => byKind(kind).length)
    .map((kind) => `${byKind(kind).length} of ${byKind(kind).length + result[kind].length} ${kind === 'cluster' ? 'cluster' : 'one-server'} rounds failed (${[...new Set(byKind(kind).map((x) => x.error))].join('; ')})`);
  return ['', `${label}: ${parts.join('; ')}; left out of the medians.`];
}

/** The commit checked out, and the files under packages/ that differ from it. */
function codeVersion() {
  try {
    const git = (...a) => execFileSync('git', ['-C', REPO, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return { commit: git('rev-parse', '--short=12', 'HEAD').trim(), modified: git('status', '--porcelain', '--', 'packages').split('\n').filter(Boolean).map((l) => l.slice(3)) };
  } catch {
    return { commit: 'unknown', modified: [] };
  }
}

function markdown(meta, res) {
  const lines = [
    '## Cluster: three nodes against one server',
    '',
    `From [cluster.mjs](cluster.mjs) (\`${meta.command}\`), ${meta.date}, on ${meta.machine}; load average ${meta.load.toFixed(2)} at the start. Code: the build of commit ${meta.code.commit}${meta.code.modified.length ? ` with uncommitted changes to ${meta.code.modified.join(', ')}` : ''}, copied at the start of the run${meta.builtAtStart === meta.builtAtEnd ? '' : ' (the working tree was rebuilt during the run; the copy was not)'}.`,
    `A real redis-server ${meta.redisVersion} and three \`backchannel serve\` nodes (A, B, C: heartbeat ${DEFAULT_TIMINGS.clusterHeartbeatMs} ms, TTL ${DEFAULT_TIMINGS.clusterNodeTtlMs} ms, the defaults) against one \`backchannel serve\` without Redis; the benchmark's server settings otherwise, every process with Node's default flags, clients in worker processes. All of it shares the machine's ${meta.cpus} CPUs, so the cluster's nodes compete with each other and with the clients; ${meta.rounds} round(s) per scenario, cluster and single server alternating, medians reported.`,
    '',
  ];
  const rowsOf = (label, c, s, fmt) => `| ${label} | ${fmt(c)} | ${fmt(s)} | ${ratio(c, s)} |`;
  if (res.throughput) {
    const t = res.throughput;
    lines.push(
      '**Throughput**, 1 KiB `reliable-message`, flood with backpressure. The cluster places a new conference on its least loaded node; the benchmark finds where (`roomNum >>> 20`) and connects clients relative to it: **A is the node hosting the room**, B and C the others. Server CPU per delivered message over the measured windows, per node (A + B + C) and in all.',
      '',
      '| scenario | cluster msg/s | one server msg/s | cluster ÷ one server | server CPU µs / delivered msg, cluster: all (A + B + C) | one server |',
      '|---|---:|---:|---:|---|---:|',
    );
    const row = (label, key) => {
      if (!t[key]) return;
      const c = t[key].cluster;
      const s = t[key].single;
      const per = [0, 1, 2].map((i) => median(c.map((r) => r.cpuUsPerMsg[i])));
      lines.push(`| ${label} | ${f(mid(c, 'msgsPerSec'))} | ${f(mid(s, 'msgsPerSec'))} | ${ratio(mid(c, 'msgsPerSec'), mid(s, 'msgsPerSec'))} | ${f(mid(c, 'cpuUsPerMsgTotal'), 1)} (${per.map((x) => f(x, 1)).join(' + ')}) | ${f(mid(s, 'cpuUsPerMsgTotal'), 1)} |`);
    };
    row('1:1, sender on A (the host) → receiver on B', 'pairHostSender');
    row('1:1, sender on B → receiver on A (the host)', 'pairHostReceiver');
    row('fan-out 1→9, sender on A, receivers 3 on each of A, B, C', 'fanout');
    const notes = [
      ...failedRounds('1:1, sender on A → receiver on B', t.pairHostSender),
      ...failedRounds('1:1, sender on B → receiver on A', t.pairHostReceiver),
      ...failedRounds('Fan-out', t.fanout),
    ];
    lines.push(...notes);
    if (t.fanout) {
      const r = mid(t.fanout.cluster, 'msgsPerSec') / mid(t.fanout.single, 'msgsPerSec');
      lines.push('', `Fan-out goal (≥ 0.7× one server's delivered msg/s): ${r >= 0.7 ? 'met' : 'not met'} (${r.toFixed(2)}×).`);
    }
    lines.push('');
  }
  if (res.latency) {
    const c = res.latency.cluster;
    const s = res.latency.single;
    lines.push(
      `**Latency** 1:1, 100 B at 1,000 msg/s (sender on A, the host; receiver on B), send to receive on one clock, after ${f(meta.latencyWarmupMessages)} messages of warm-up:`,
      '',
      '| | cluster | one server | ratio |',
      '|---|---:|---:|---:|',
      rowsOf('p50, ms', mid(c, 'p50Ms'), mid(s, 'p50Ms'), (x) => f(x, 2)),
      rowsOf('p99, ms', mid(c, 'p99Ms'), mid(s, 'p99Ms'), (x) => f(x, 2)),
      rowsOf('worst round\'s p99, ms', Math.max(...c.map((r) => r.p99Ms)), Math.max(...s.map((r) => r.p99Ms)), (x) => f(x, 2)),
      ...failedRounds('Latency', res.latency),
      '',
    );
  }
  if (res.join) {
    const c = res.join.cluster;
    const s = res.join.single;
    lines.push(
      `**Join** through a node that does not host the conference: a member holds it on A, a client connects to B and joins (\`Client.connectAndJoin\`), closed before the next; ${c[0]?.joins ?? '—'} joins after as many of warm-up, per round:`,
      '',
      '| | cluster (through B, room on A) | one server | ratio |',
      '|---|---:|---:|---:|',
      rowsOf('p50, ms', mid(c, 'p50Ms'), mid(s, 'p50Ms'), (x) => f(x, 2)),
      rowsOf('p99, ms', mid(c, 'p99Ms'), mid(s, 'p99Ms'), (x) => f(x, 2)),
      rowsOf('warm-up pass p50, ms', mid(c, 'coldP50Ms'), mid(s, 'coldP50Ms'), (x) => f(x, 2)),
      rowsOf('server CPU per join (all nodes), ms', mid(c, 'cpuMsPerJoin'), mid(s, 'cpuMsPerJoin'), (x) => f(x, 3)),
      ...failedRounds('Join', res.join),
      '',
    );
  }
  if (res.failover) {
    lines.push(
      '**A node dies**: `kill -9` of A, the node hosting the conference, with one member on A and two on each of B and C. Time from the kill to the last member on B and C seeing the conference end (the SDK\'s `ended` event), and to the `conference.ended` webhook (sent by a surviving node to a receiver in the benchmark process); A restarted, and seen by the others, before each repeat.',
      '',
      '| heartbeat / TTL, ms | repeats | members see `ended`: median / max, ms | reason | webhook: median / max, ms | reason |',
      '|---|---:|---|---|---|---|',
    );
    for (const [t, reps] of res.failover) {
      const last = reps.map((r) => r.lastMemberMs);
      const hook = reps.map((r) => r.webhookMs);
      lines.push(`| ${t.clusterHeartbeatMs} / ${t.clusterNodeTtlMs} | ${reps.length} | ${f(median(last))} / ${f(Math.max(...last))} | ${[...new Set(reps.flatMap((r) => r.reasons))].join(', ')} | ${f(median(hook))} / ${f(Math.max(...hook))} | ${[...new Set(reps.map((r) => r.webhookReason))].join(', ')} |`);
    }
    lines.push(
      '',
      "The members' nodes see their link to A close as soon as A's process dies (the kernel closes a killed process's sockets) and end its rooms at once; the webhook comes from the surviving node that ends A's rooms once A's registration has expired, up to the TTL after A's last heartbeat. A node that stops without closing its sockets (a frozen process, a network partition) is noticed through the TTL and the link probe instead, so there the members too would wait up to the TTL.",
      '',
    );
  }
  if (res.path) {
    const r = res.path.redis;
    const w = res.path.ws;
    lines.push(
      '**The inter-node path**: 1 KiB messages from one process to another, through a Redis pub/sub channel (ioredis; publisher → redis-server → subscriber, at most 1 MiB of PUBLISH unanswered) or over one direct WebSocket (`ws`, 1 MiB / 256 KiB water marks) — what a node link could be built on:',
      '',
      '| | Redis pub/sub | direct WebSocket | pub/sub ÷ WebSocket |',
      '|---|---:|---:|---:|',
      rowsOf('delivered msg/s, as fast as it goes', mid(r.max, 'msgsPerSec'), mid(w.max, 'msgsPerSec'), (x) => f(x)),
      rowsOf('p50 at 1,000 msg/s, ms', mid(r.rate, 'p50Ms'), mid(w.rate, 'p50Ms'), (x) => f(x, 3)),
      rowsOf('p99 at 1,000 msg/s, ms', mid(r.rate, 'p99Ms'), mid(w.rate, 'p99Ms'), (x) => f(x, 3)),
      '',
      `redis-server itself used ${f(mid(r.max, 'redisCpuPct'))} % of a CPU at full rate: a third process on every message's way, and one more copy.`,
      '',
    );
  }
  if (res.failures.length) lines.push(`Failed: ${res.failures.map((x) => `${x.scenario} (${x.error})`).join('; ')}.`, '');
  return lines.join('\n').trimEnd();
}

// ───────────────────────────────────────── main ─────────────────────────────────────────

async function main() {
  const { values: args } = parseFlags('cluster', {
    options: {
      quick: { type: 'boolean', default: false },
      'no-md': { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (args.help) {
    console.log(readFileSync(import.meta.filename, 'utf8').split('*/')[0].replace(/^#!.*\n\/\*\*\n/, '').replace(/^ \* ?/gm, ''));
    return;
  }
  const only = args.only?.split(',');
  const unknown = only?.filter((s) => !SCENARIOS.includes(s)) ?? [];
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')} (of ${SCENARIOS.join(', ')})`);
  const want = (s) => !only || only.includes(s);
  const d = { ...(args.quick ? DURATIONS.quick : DURATIONS.full) };
  if (args.rounds !== undefined) {
    d.rounds = Number(args.rounds);
    if (!Number.isInteger(d.rounds) || d.rounds < 1 || d.rounds > 20) throw new Error(`--rounds must be an integer from 1 to 20 (got ${args.rounds})`);
  }
  const writeMd = !args.quick && !args['no-md'] && !only && args.rounds === undefined;
  const log = (s) => console.error(s);
  const cpuInfo = cpus();
  const meta = {
    command: `node bench/cluster.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    date: `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    machine: machineLine({ machine: { cpuModel: cpuInfo[0]?.model.trim() ?? 'unknown', cpus: cpuInfo.length, memGiB: Math.round(totalmem() / 2 ** 30), os: `${type()} ${release()}`, node: process.version } }),
    cpus: cpuInfo.length,
    load: loadavg()[0],
    rounds: d.rounds,
    latencyWarmupMessages: d.latencyWarmupMessages,
    code: codeVersion(),
    redisVersion: /v=(\S+)/.exec(String(spawnSync(REDIS_SERVER, ['--version']).stdout))?.[1] ?? '',
  };
  meta.builtAtStart = BUILT_AT_COPY;
  const pool = new WorkerPool({ nodeFlags: NODE_FLAGS });
  // Two workers of bench/cluster-worker.mjs: the probe member (placeRoom) and failure watcher, and
  // both ends of the bare paths.
  const script = join(HERE, 'cluster-worker.mjs');
  const cw = await Promise.all([0, 1].map((i) => startWorker(`cluster worker ${i}`, { nodeFlags: NODE_FLAGS, script })));
  const probe = cw[0];
  const res = { failures: [] };
  /** Runs `fn` for one scenario; a failure is reported and the run goes on. */
  const attempt = async (scenario, fn) => {
    try {
      return await fn();
    } catch (error) {
      log(`${scenario} failed: ${error.stack ?? error}`);
      res.failures.push({ scenario, error: String(error.message ?? error).slice(0, 300) });
      return undefined;
    }
  };
  /**
   * Rounds of `run(rig, room)` on a fresh cluster and a fresh single server each, alternating. A
   * round that fails is reported (`failed`) and left out; the scenario fails if every round of
   * either system did.
   */
  const compare = async (name, run) => {
    const out = { cluster: [], single: [], failed: [] };
    for (let r = 0; r < d.rounds; r++) {
      for (const kind of r % 2 ? ['single', 'cluster'] : ['cluster', 'single']) {
        const rig = await startRig(kind);
        try {
          const x = await run(rig, `${name}-${kind}-${r}`);
          out[kind].push(x);
          log(`  ${name} ${kind} round ${r + 1}: ${JSON.stringify(x, (k, v) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
        } catch (error) {
          out.failed.push({ kind, round: r + 1, error: String(error.message ?? error).slice(0, 400) });
          log(`  ${name} ${kind} round ${r + 1} failed: ${error.stack ?? error}`);
        } finally {
          await rig.stop();
        }
      }
    }
    if (!out.cluster.length || !out.single.length) throw new Error(`every ${out.cluster.length ? 'single-server' : 'cluster'} round failed: ${out.failed.at(-1)?.error}`);
    return out;
  };
  try {
    if (want('throughput') || want('fanout')) res.throughput = {};
    if (want('throughput')) {
      log('▷ throughput 1:1, 1 KiB');
      // node: 0 is the room's host, 1 and 2 the next nodes (one server: all the same).
      const pairHostSender = [{ node: 0, n: 1, send: true }, { node: 1, n: 1 }];
      const pairHostReceiver = [{ node: 1, n: 1, send: true }, { node: 0, n: 1 }];
      res.throughput.pairHostSender = await attempt('throughput (room on the sender\'s node)', () => compare('tp-host-sender', (rig, room) => flood(rig, pool, probe, d, pairHostSender, room)));
      res.throughput.pairHostReceiver = await attempt('throughput (room on the receiver\'s node)', () => compare('tp-host-receiver', (rig, room) => flood(rig, pool, probe, d, pairHostReceiver, room)));
    }
    if (want('fanout')) {
      log('▷ fan-out 1→9, 1 KiB');
      const layout = [{ node: 0, n: 1, send: true }, { node: 0, n: 3 }, { node: 1, n: 3 }, { node: 2, n: 3 }];
      res.throughput.fanout = await attempt('fan-out', () => compare('fanout', (rig, room) => flood(rig, pool, probe, d, layout, room)));
    }
    if (want('latency')) {
      log('▷ latency 1:1, 100 B at 1,000 msg/s');
      res.latency = await attempt('latency', () => compare('latency', (rig, room) => latencyRun(rig, pool, probe, d, room)));
    }
    if (want('join')) {
      log('▷ join through a node that does not host the conference');
      res.join = await attempt('join', () => compare('join', (rig, room) => joinRun(rig, pool, probe, d, room)));
    }
    if (want('failover')) {
      log('▷ a node hosting a conference is killed');
      res.failover = [];
      for (const timings of [DEFAULT_TIMINGS, FAST_TIMINGS]) {
        const reps = await attempt(`failover ${timings.clusterHeartbeatMs}/${timings.clusterNodeTtlMs}`, () => failover(d, probe, timings, log));
        if (reps) res.failover.push([timings, reps]);
      }
    }
    if (want('path')) {
      log('▷ inter-node path: Redis pub/sub against a direct WebSocket');
      res.path = await attempt('path', async () => {
        const redis = await startRedis();
        try {
          const out = { redis: { max: [], rate: [] }, ws: { max: [], rate: [] } };
          for (let r = 0; r < d.rounds; r++) {
            for (const path of r % 2 ? ['ws', 'redis'] : ['redis', 'ws']) {
              for (const [key, rate] of [['max', 0], ['rate', 1000]]) {
                const x = await pathRun(cw, redis, d, path, rate);
                out[path][key].push(x);
                log(`  path ${path} ${key} round ${r + 1}: ${JSON.stringify(x, (k, v) => (typeof v === 'number' ? Math.round(v * 1000) / 1000 : v))}`);
              }
            }
          }
          return out;
        } finally {
          await redis.stop();
        }
      });
    }
  } finally {
    await Promise.all([pool.close(), ...cw.map((w) => w.close())]);
  }
  meta.builtAtEnd = builtAt(REPO);
  for (const k of Object.keys(res.throughput ?? {})) if (!res.throughput[k]) delete res.throughput[k];
  const section = markdown(meta, res);
  console.log(`\n${section}\n`);
  if (writeMd) {
    const file = join(HERE, 'RESULTS.md');
    writeFileSync(file, withSection(readFileSync(file, 'utf8'), CLUSTER_START, CLUSTER_END, section));
    log(`Refreshed ${file} (cluster section)`);
  }
  const failedRound = [res.throughput?.pairHostSender, res.throughput?.pairHostReceiver, res.throughput?.fanout, res.latency, res.join].some((x) => x?.failed.length);
  return res.failures.length || failedRound ? 1 : 0;
}

// A hard limit on the whole run, and cleanup of every child on any way out.
const watchdog = setTimeout(() => {
  console.error('cluster bench: run exceeded 30 min; stopping');
  void killAll(1000).then(() => process.exit(1));
}, 30 * 60_000);
watchdog.unref();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`cluster bench: ${sig}, stopping children`);
    void killAll(2000).then(() => process.exit(130));
  });
}
try {
  process.exitCode = await main();
} catch (error) {
  console.error(error.stack ?? error);
  process.exitCode = 2;
}
await killAll(2000);
