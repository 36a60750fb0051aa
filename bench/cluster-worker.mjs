/**
 * A worker of bench/cluster.mjs for what bench/worker.mjs does not do: Backchannel members that
 * watch their conference end (a node's failure), and the two candidate inter-node paths measured
 * bare — a Redis pub/sub channel (ioredis) and a direct WebSocket (`ws`) between two processes.
 * Started by procs.mjs startWorker (`script`); same IPC as worker.mjs (`{ id, op, args }` →
 * `{ re, ok, result | error }`); exits when the orchestrator goes away.
 */
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HIGH_WATER_BYTES, LOW_WATER_BYTES, prepare, wsDrained } from './lib/clients.mjs';
import { nowNs, serveOps, sleep, yieldLoop } from './lib/util.mjs';

/** Members of conferences, each with when its conference ended and why. */
let members = [];
/** Wakes `endedWait` on each `ended`. */
let onEnded = () => {};
/** Receive side of a bare path: message count, latency samples (µs) and what went wrong. */
let rx = newRx();
/** Ends the receive side (subscriber connection or WebSocket server). */
let closeRx = async () => {};
/** Ends the send side. */
let closeTx = async () => {};

function newRx() {
  return { msgs: 0, fromNs: -1n, latency: [], errors: [] };
}

/** Counts a received message and, if stamped at or after `fromNs`, takes its one-way latency. */
function received(data) {
  rx.msgs++;
  if (rx.fromNs < 0n) return;
  const stamp = data.readBigUInt64BE(0);
  if (stamp >= rx.fromNs) rx.latency.push(Number(nowNs() - stamp) / 1000);
}

/**
 * Sends for `durationMs` through `tx` (`send(bytes) → boolean`, `drained() → Promise`): as fast
 * as its backpressure lets it (`rate` 0, about 64 KiB per turn of the event loop), or at `rate`
 * msg/s in 1 ms ticks. Every message is a fresh buffer stamped with the shared clock.
 */
async function sendFor(tx, { size, rate = 0, durationMs }) {
  const start = nowNs();
  const end = start + BigInt(Math.round(durationMs * 1e6));
  const batch = Math.max(1, Math.floor(65536 / size));
  let sent = 0;
  let waits = 0;
  const one = async () => {
    const msg = Buffer.allocUnsafe(size).fill(0x61);
    msg.writeBigUInt64BE(nowNs(), 0);
    sent++;
    if (!tx.send(msg)) {
      waits++;
      await tx.drained();
    }
  };
  while (nowNs() < end) {
    if (rate > 0) {
      const due = Math.floor((Number(nowNs() - start) / 1e9) * rate) + 1 - sent;
      for (let i = 0; i < due; i++) await one();
      await sleep(1);
    } else {
      for (let i = 0; i < batch; i++) await one();
      await yieldLoop();
    }
  }
  return { sent, achievedRate: sent / (Number(nowNs() - start) / 1e9), backpressureWaits: waits };
}

const ops = {
  ready: () => ({ pid: process.pid }),

  /**
   * Connects and joins conference `room` through `url` once per name, one after another, with the
   * client SDK of `system` ('backchannel', or 'backchannel-baseline': from BENCH_BASELINE_DIR); records
   * each member's `ended` event. `reconnect: false` for members whose node is to be killed;
   * `watch: false` for members `endedWait` does not wait for. Returns the members' indexes and the
   * room number each sees (its node number is `roomNum >>> 20`).
   */
  async joinWatch({ system, url, room, names, reconnect = true, watch = true }) {
    const { Client } = await (system === 'backchannel-baseline' ? import(pathToFileURL(join(process.env.BENCH_BASELINE_DIR ?? '', 'packages/client/dist/index.node.js')).href) : import('@backchannel/client'));
    const roomNums = [];
    const indexes = [];
    for (const name of names) {
      const token = await prepare(system, name);
      const { client, conference } = await Client.connectAndJoin(url, token, room, { displayName: name }, { reconnect });
      const m = { client, conference, watch, endedNs: 0n, reason: undefined, errors: [] };
      client.on('error', (e) => m.errors.push(`client error: ${e.code} ${e.message}`));
      conference.on('ended', ({ reason }) => {
        m.endedNs = nowNs();
        m.reason = reason?.code;
        onEnded();
      });
      indexes.push(members.length);
      members.push(m);
      roomNums.push(conference.roomNum);
    }
    return { indexes, roomNums };
  },

  /** Closes member `index` (it leaves; the others stay). */
  async leave({ index }) {
    const m = members[index];
    m.watch = false;
    await m.client.close();
    return {};
  },

  /**
   * Waits (up to `timeoutMs`) until every watched member has seen its conference end; when each
   * did (ns, 0 if not) and why.
   */
  async endedWait({ timeoutMs }) {
    const watched = members.filter((m) => m.watch);
    const done = () => watched.every((m) => m.endedNs > 0n);
    if (!done()) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        onEnded = () => {
          if (!done()) return;
          clearTimeout(timer);
          resolve();
        };
      });
      onEnded = () => {};
    }
    return { ended: watched.map((m) => ({ ns: m.endedNs.toString(), reason: m.reason })), errors: watched.flatMap((m) => m.errors) };
  },

  /** Subscribes to `channel` on Redis at `redisUrl`; counts (and times) what arrives. */
  async subStart({ redisUrl, channel }) {
    const { Redis } = await import('ioredis');
    rx = newRx();
    const sub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    sub.on('error', (e) => rx.errors.push(`subscriber: ${e.message}`));
    sub.on('end', () => rx.errors.push('subscriber connection ended'));
    await sub.connect();
    sub.on('messageBuffer', (_channel, data) => received(data));
    await sub.subscribe(channel);
    closeRx = async () => {
      sub.removeAllListeners('end');
      sub.disconnect();
    };
    return {};
  },

  /**
   * Publishes `size`-byte messages to `channel` for `durationMs` (at `rate` msg/s, or as fast as
   * it may: at most 1 MiB of PUBLISH commands unanswered, resuming under 256 KiB — the water marks
   * every other sender of the benchmark has).
   */
  async pubSend({ redisUrl, channel, size, rate, durationMs }) {
    const { Redis } = await import('ioredis');
    const pub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    const errors = [];
    pub.on('error', (e) => errors.push(`publisher: ${e.message}`));
    await pub.connect();
    closeTx = async () => pub.disconnect();
    let inFlight = 0;
    let waiter;
    const answered = () => {
      inFlight -= size;
      if (waiter && inFlight <= LOW_WATER_BYTES) {
        const w = waiter;
        waiter = undefined;
        w();
      }
    };
    const tx = {
      send(msg) {
        inFlight += size;
        pub.publish(channel, msg).then(answered, (e) => {
          errors.push(`publish: ${e.message}`);
          answered();
        });
        return inFlight < HIGH_WATER_BYTES;
      },
      drained: () => (inFlight <= LOW_WATER_BYTES ? Promise.resolve() : new Promise((r) => (waiter = r))),
    };
    const out = await sendFor(tx, { size, rate, durationMs });
    while (inFlight > 0) await sleep(5);
    pub.disconnect();
    return { ...out, errors };
  },

  /** Listens for one WebSocket on 127.0.0.1 (any port); counts (and times) what arrives. */
  async wsListen() {
    const { WebSocketServer } = await import('ws');
    rx = newRx();
    const http = createServer();
    const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
    wss.on('connection', (ws) => {
      ws.on('message', (data) => received(data));
      ws.on('error', (e) => rx.errors.push(`receiver socket: ${e.message}`));
    });
    await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
    closeRx = async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise((resolve) => http.close(resolve));
    };
    return { url: `ws://127.0.0.1:${http.address().port}` };
  },

  /**
   * Sends `size`-byte messages over one WebSocket to `url` for `durationMs` (at `rate` msg/s, or as
   * fast as 1 MiB / 256 KiB water marks on its buffered amount let it).
   */
  async wsSend({ url, size, rate, durationMs }) {
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const errors = [];
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.on('error', (e) => errors.push(`sender socket: ${e.message}`));
    closeTx = async () => ws.terminate();
    const tx = {
      send(msg) {
        ws.send(msg);
        return ws.bufferedAmount < HIGH_WATER_BYTES;
      },
      drained: () => wsDrained(ws),
    };
    const out = await sendFor(tx, { size, rate, durationMs });
    await tx.drained();
    ws.close(1000);
    return { ...out, errors };
  },

  /** Takes latency samples of messages stamped at or after `fromNs` from now on. */
  rxLatency: ({ fromNs }) => {
    rx.fromNs = BigInt(fromNs);
    rx.latency = [];
    return {};
  },

  /** Received so far, with the clock. */
  rxSample: () => ({ ns: nowNs().toString(), msgs: rx.msgs }),

  /** Latency samples (µs) and errors of the receive side. */
  rxResult: () => ({ latency: rx.latency, errors: rx.errors }),

  /** Closes every member and both sides of a bare path (the worker can be reused). */
  async closeAll() {
    onEnded = () => {};
    const list = members;
    members = [];
    await Promise.all(list.map((m) => m.client.close().catch(() => undefined)));
    await closeTx().catch(() => undefined);
    await closeRx().catch(() => undefined);
    closeTx = async () => {};
    closeRx = async () => {};
    rx = newRx();
    return { closed: list.length };
  },
};

serveOps(ops);
