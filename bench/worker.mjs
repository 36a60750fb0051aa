/**
 * A benchmark worker: one OS process hosting one or more participants of one system, driven by
 * the orchestrator over IPC (`{ id, op, args }` → `{ re, ok, result | error }`). Started with
 * `child_process.fork`; exits when the orchestrator goes away.
 */
import { join, prepare } from './lib/clients.mjs';
import { nowNs, sleep, summarize, yieldLoop } from './lib/util.mjs';

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
   * Join latency: `n` sequential joins (connect + join, each closed before the next), timed from
   * before connecting to the join resolving. Tokens are minted before the clock starts.
   */
  async joinSeq({ system, url, room, n }) {
    const names = Array.from({ length: n }, (_, i) => `seq-${process.pid}-${i}`);
    const prepared = await Promise.all(names.map((nm) => prepare(system, nm)));
    const ms = [];
    for (let i = 0; i < n; i++) {
      const t0 = nowNs();
      const p = await join(system, url, room, names[i], prepared[i]);
      ms.push(Number(nowNs() - t0) / 1e6);
      await p.close();
    }
    return summarize(ms);
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

  latencyResult: () => summarize(latency),

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
    // Close in parallel but bounded, so thousands of sockets do not close at once.
    for (let i = 0; i < list.length; i += 200) {
      await Promise.all(list.slice(i, i + 200).map((p) => p.close().catch(() => undefined)));
      await sleep(0);
    }
    return { closed: list.length };
  },
};

process.on('message', async (msg) => {
  if (!msg || typeof msg !== 'object' || !('op' in msg)) return;
  const fn = ops[msg.op];
  try {
    if (!fn) throw new Error(`unknown op ${msg.op}`);
    const result = await fn(msg.args ?? {});
    process.send({ re: msg.id, ok: true, result });
  } catch (error) {
    process.send({ re: msg.id, ok: false, error: error instanceof Error ? `${error.message}${error.code ? ` (${error.code})` : ''}` : String(error) });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('unhandledRejection', (error) => {
  process.send?.({ t: 'log', text: `unhandled rejection: ${error?.stack ?? error}` });
});
