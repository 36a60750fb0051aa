/**
 * A benchmark worker: one OS process hosting one or more participants of one system, driven by
 * the orchestrator over IPC (`{ id, op, args }` → `{ re, ok, result | error }`). Started with
 * `child_process.fork`; exits when the orchestrator goes away.
 */
import { join, prepare } from './lib/clients.mjs';
import { startCutProxy } from './lib/cut-proxy.mjs';
import { nowNs, serveOps, sleep, summarize, yieldLoop } from './lib/util.mjs';

/** Participants hosted here, in join order. */
let parts = [];
/** Per-participant received message and byte counters (index = participant). */
let recvMsgs = [];
let recvBytes = [];
let badSize = 0;
/** Flood senders: their loops and the stop signal. */
let floods = [];
let stopFlood;
let stopped = Promise.resolve();
/** Latency samples (µs) taken by the receivers here. */
let latency = [];
/** Bulk receive progress. */
let bulk;
/** Cut proxies hosted here (resume scenario). */
let proxies = [];
/** Per participant: its `reconnecting` and `reconnected` events with the time they fired. */
let conn = [];
/** Wakes `waitReconnected` on each `reconnected` event. */
let onReconnected = () => {};
/** Sequence check of the numbered stream received here (resume scenario). */
let seq;
/** Wakes `seqWait` on each message of the numbered stream. */
let onSeq = () => {};

const ops = {
  ready: () => ({ pid: process.pid }),

  /** For the clock check: this process's CLOCK_MONOTONIC reading, ns (as a string). */
  clock: () => ({ ns: nowNs().toString() }),

  /** Joins `names` (at most `concurrency` joins in flight); returns ids and timing. */
  async join({ system, url, room, names, concurrency = 1, hidden = false }) {
    const prepared = await Promise.all(names.map((n) => prepare(system, n, { hidden })));
    const startNs = nowNs();
    const joined = new Array(names.length);
    let next = 0;
    const lane = async () => {
      while (next < names.length) {
        const i = next++;
        joined[i] = await join(system, url, room, names[i], prepared[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, lane));
    const endNs = nowNs();
    const first = parts.length;
    parts.push(...joined);
    return { ids: joined.map((p) => p.id), first, startNs: startNs.toString(), endNs: endNs.toString() };
  },

  /**
   * Join latency: `warmup` sequential joins, then `n` more (connect + join, each closed before the
   * next), each timed from before connecting to the join resolving. Tokens are minted before the
   * clock starts. Returns the summaries of both passes: `cold` (the first joins of the process
   * and of the server, uncounted in `warm`) and `warm`.
   */
  async joinSeq({ system, url, room, n, warmup = 0 }) {
    const names = Array.from({ length: warmup + n }, (_, i) => `seq-${process.pid}-${i}`);
    const prepared = await Promise.all(names.map((nm) => prepare(system, nm)));
    const ms = [];
    for (let i = 0; i < names.length; i++) {
      const t0 = nowNs();
      const p = await join(system, url, room, names[i], prepared[i]);
      ms.push(Number(nowNs() - t0) / 1e6);
      await p.close();
    }
    return { cold: warmup > 0 ? summarize(ms.slice(0, warmup)) : undefined, warm: summarize(ms.slice(warmup)) };
  },

  /** Counts what each participant (or those in `which`) receives. */
  async recvCount({ which, size }) {
    const list = which ?? parts.map((_, i) => i);
    recvMsgs = parts.map(() => 0);
    recvBytes = parts.map(() => 0);
    await Promise.all(
      list.map((i) =>
        parts[i].receive((data) => {
          recvMsgs[i]++;
          recvBytes[i] += data.byteLength;
          if (size && data.byteLength !== size) badSize++;
        }),
      ),
    );
    return {};
  },

  /** Counters now, read together with the clock. */
  sample: () => ({ ns: nowNs().toString(), msgs: [...recvMsgs], bytes: [...recvBytes] }),

  /** Records one-way latency of timestamped messages stamped at or after `fromNs`. */
  async recvLatency({ fromNs }) {
    const from = BigInt(fromNs);
    latency = [];
    await Promise.all(
      parts.map((p) =>
        p.receive((data) => {
          const now = nowNs();
          const stamp = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(0);
          if (stamp >= from) latency.push(Number(now - stamp) / 1000);
        }),
      ),
    );
    return {};
  },

  /** Every latency sample taken here, µs (to combine receivers of several workers). */
  latencySamples: () => latency,

  /** Floods from every participant (or those in `which`) until `stopFlood`. */
  async sendFlood({ which, size, receivers, mode }) {
    const list = which ?? parts.map((_, i) => i);
    const payload = new Uint8Array(size).fill(0x61);
    let stop = false;
    let wake;
    const stopSignal = new Promise((resolve) => (wake = resolve));
    stopFlood = () => {
      stop = true;
      wake();
    };
    const senders = await Promise.all(list.map((i) => parts[i].openSender({ mode, receivers })));
    // Yield to the event loop after about 64 KiB so incoming events and socket writes are handled.
    const batch = Math.max(1, Math.floor(65536 / size));
    floods = senders.map(async (tx) => {
      let sent = 0;
      while (!stop) {
        for (let i = 0; i < batch && !stop; i++) {
          sent++;
          if (!tx.send(payload)) await Promise.race([tx.drained(), stopSignal]);
        }
        await yieldLoop();
      }
      return sent;
    });
    stopped = Promise.all(floods);
    return {};
  },

  async stop() {
    stopFlood?.();
    const sent = await stopped;
    return { sent };
  },

  /**
   * Sends `size`-byte messages stamped with the shared clock at `rate` msg/s for `durationMs`,
   * from the first participant. Backpressure is honoured (so the achieved rate may be lower).
   */
  async sendRate({ size, rate, durationMs, receivers, mode }) {
    const tx = await parts[0].openSender({ mode, receivers });
    const start = nowNs();
    const end = start + BigInt(Math.round(durationMs * 1e6));
    let sent = 0;
    let waited = 0;
    for (;;) {
      const now = nowNs();
      if (now >= end) break;
      const due = Math.floor((Number(now - start) / 1e9) * rate) + 1 - sent;
      for (let i = 0; i < due; i++) {
        const msg = new Uint8Array(size);
        new DataView(msg.buffer).setBigUint64(0, nowNs());
        sent++;
        if (!tx.send(msg)) {
          waited++;
          await tx.drained();
        }
      }
      await sleep(1);
    }
    return { sent, achievedRate: sent / (Number(nowNs() - start) / 1e9), backpressureWaits: waited };
  },

  /** Receives `totalBytes`, then records when the last byte arrived. */
  async recvBulk({ totalBytes }) {
    let got = 0;
    let resolveDone;
    bulk = { done: new Promise((r) => (resolveDone = r)), endNs: 0n, got: 0, chunks: 0 };
    await parts[0].receive((data) => {
      got += data.byteLength;
      bulk.got = got;
      bulk.chunks++;
      if (got >= totalBytes && !bulk.endNs) {
        bulk.endNs = nowNs();
        resolveDone();
      }
    });
    return {};
  },

  async bulkWait() {
    await bulk.done;
    return { endNs: bulk.endNs.toString(), bytes: bulk.got, chunks: bulk.chunks };
  },

  /** Sends `totalBytes` in `chunkBytes` pieces from the first participant, with backpressure. */
  async sendBulk({ totalBytes, chunkBytes, mode, receivers }) {
    const tx = await parts[0].openSender({ mode, receivers });
    const data = new Uint8Array(totalBytes);
    for (let off = 0; off < totalBytes; off += chunkBytes) data.fill((off / chunkBytes) & 0xff, off, Math.min(totalBytes, off + chunkBytes));
    const startNs = nowNs();
    for (let off = 0; off < totalBytes; off += chunkBytes) {
      if (!tx.send(data.subarray(off, Math.min(totalBytes, off + chunkBytes)))) await tx.drained();
    }
    return { startNs: startNs.toString(), queuedNs: nowNs().toString() };
  },

  /** Starts `count` cut proxies to the server at `targetUrl`; returns their ws:// URLs. */
  async proxyStart({ targetUrl, count }) {
    const { port } = new URL(targetUrl);
    for (let i = 0; i < count; i++) proxies.push(await startCutProxy(Number(port)));
    return { urls: proxies.map((p) => p.url) };
  },

  /** Cuts every connection through proxy `index`; returns when (ns, as a string) and how many. */
  proxyCut({ index }) {
    const { ns, cut } = proxies[index].cutAll();
    return { ns: ns.toString(), cut };
  },

  /** Records the connection events (`reconnecting`, `reconnected`) of every participant here. */
  watchReconnects() {
    conn = parts.map((p, i) => {
      const c = { reconnecting: [], reconnected: [] };
      p.client.on('reconnecting', ({ attempt, delayMs, reason }) => c.reconnecting.push({ ns: nowNs(), attempt, delayMs, reason: reason?.code }));
      p.client.on('reconnected', ({ resumed }) => {
        c.reconnected.push({ ns: nowNs(), resumed, reconnecting: c.reconnecting.length });
        onReconnected(i);
      });
      return c;
    });
    return {};
  },

  /**
   * Waits for the `n`th `reconnected` event of participant `which`; returns when it fired (ns),
   * whether the session was resumed, when the loss was noticed (the first `reconnecting` event
   * since the previous reconnect) and how many attempts it took.
   */
  async waitReconnected({ which = 0, n, timeoutMs }) {
    const c = conn[which];
    if (c.reconnected.length < n) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reconnect #${n} within ${timeoutMs} ms (state ${parts[which].client.connectionState})`)), timeoutMs);
        onReconnected = (i) => {
          if (i === which && c.reconnected.length >= n) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      onReconnected = () => {};
    }
    const ev = c.reconnected[n - 1];
    const from = n > 1 ? c.reconnected[n - 2].reconnecting : 0;
    const attempts = c.reconnecting.slice(from, ev.reconnecting);
    return {
      ns: ev.ns.toString(),
      resumed: ev.resumed,
      noticedNs: attempts[0]?.ns.toString(),
      attempts: attempts.length,
      firstDelayMs: attempts[0]?.delayMs,
      reason: attempts[0]?.reason,
    };
  },

  /**
   * Receives a numbered stream (see `sendSeq`) on the first participant and checks that every
   * message arrives exactly once and in order, intact.
   */
  async recvSeq({ size }) {
    seq = { next: 0, inOrder: 0, duplicates: 0, missing: 0, badSize: 0, badContent: 0, first: undefined };
    const anomaly = (what) => {
      seq.first ??= what;
    };
    await parts[0].receive((data) => {
      const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
      if (data.byteLength !== size) {
        seq.badSize++;
        anomaly(`message ${n}: ${data.byteLength} bytes, not ${size}`);
      } else if (data[size - 1] !== (n & 0xff) || data[size >> 1] !== ((n >> 8) & 0xff)) {
        seq.badContent++;
        anomaly(`message ${n}: content does not match its number`);
      }
      if (n === seq.next) {
        seq.inOrder++;
        seq.next++;
      } else if (n < seq.next) {
        seq.duplicates++;
        anomaly(`message ${n} again (or late) after ${seq.next - 1}`);
      } else {
        seq.missing += n - seq.next;
        anomaly(`message ${n} after ${seq.next - 1}: ${n - seq.next} missing`);
        seq.next = n + 1;
      }
      onSeq();
    });
    return {};
  },

  /** Waits until the numbered stream has reached message `count` (or `timeoutMs`); its counters. */
  async seqWait({ count, timeoutMs }) {
    if (seq.next < count) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        onSeq = () => {
          if (seq.next >= count) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      onSeq = () => {};
    }
    return { ...seq };
  },

  /**
   * Sends a numbered stream of `size`-byte messages at `rate` msg/s (1 ms ticks) from the first
   * participant until `stop`: message n carries n (u32) in its first bytes and n's low bytes in
   * the middle and last byte. Backpressure is honoured. A fresh buffer per message: the SDK keeps
   * a view of the payload until the server has acknowledged it.
   */
  async sendSeq({ size, rate, receivers, mode }) {
    const tx = await parts[0].openSender({ mode, receivers });
    let stop = false;
    let wake;
    const stopSignal = new Promise((resolve) => (wake = resolve));
    stopFlood = () => {
      stop = true;
      wake();
    };
    stopped = (async () => {
      const start = nowNs();
      let sent = 0;
      while (!stop) {
        const due = Math.floor((Number(nowNs() - start) / 1e9) * rate) + 1 - sent;
        for (let i = 0; i < due && !stop; i++) {
          const msg = new Uint8Array(size);
          new DataView(msg.buffer).setUint32(0, sent);
          msg[size >> 1] = (sent >> 8) & 0xff;
          msg[size - 1] = sent & 0xff;
          sent++;
          if (!tx.send(msg)) await Promise.race([tx.drained(), stopSignal]);
        }
        await sleep(1);
      }
      return sent;
    })();
    return {};
  },

  /** Data-path errors seen so far, and messages of an unexpected size. */
  errors: () => ({ errors: parts.flatMap((p) => p.errors), badSize }),

  /** Closes every participant and forgets the scenario's state (the worker can be reused). */
  async closeAll() {
    stopFlood?.();
    await stopped;
    const list = parts;
    parts = [];
    recvMsgs = [];
    recvBytes = [];
    badSize = 0;
    floods = [];
    stopFlood = undefined;
    stopped = Promise.resolve();
    latency = [];
    bulk = undefined;
    conn = [];
    onReconnected = () => {};
    seq = undefined;
    onSeq = () => {};
    const proxyList = proxies;
    proxies = [];
    // Close in parallel but bounded, so thousands of sockets do not close at once.
    for (let i = 0; i < list.length; i += 200) {
      await Promise.all(list.slice(i, i + 200).map((p) => p.close().catch(() => undefined)));
      await sleep(0);
    }
    await Promise.all(proxyList.map((p) => p.close()));
    return { closed: list.length };
  },
};

serveOps(ops);
