/**
 * Flow control over real sockets: backpressure that includes the server's backlog, slow-receiver
 * detachment, unreliable drops under congestion, priority, pacing and the bitrate limit.
 * A "paused" client stops reading its socket, which is how a slow receiver looks to the server.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Client, type ClientOptions } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next, until, within } from '../helpers/events.js';
import { connectPausable, spawnReceiver } from '../helpers/clients.js';

const servers: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});
// Flow control of the WebSocket path, so the server offers no WebRTC: a client's negotiation (its
// DTLS handshake) would only compete for the CPU with the timing these tests measure, and
// unreliable data would pass beside a paused socket over datagrams (webrtc.test.ts covers those).
async function server(config: Record<string, unknown>) {
  const s = await startServerProcess({ maxDataBitrateKbps: 0, socketHighWaterBytes: 16 * 1024, backlogReportMs: 20, webrtc: false, ...config });
  servers.push(s);
  return s;
}

const KiB = 1024;
const MiB = 1024 * 1024;

/** A payload whose every byte tells which message it is. */
const payload = (size: number, i: number) => new Uint8Array(size).fill(i & 0xff);

/**
 * Sends `count` messages of `size`, awaiting drained() whenever send() says the queue is full,
 * and yielding to the event loop now and then as a real producer does (feedback from the server
 * can only be processed when the app yields).
 */
async function sendAll(tx: { send(d: Uint8Array): boolean; drained(): Promise<void> }, count: number, size: number, onBlocked?: () => void) {
  for (let i = 0; i < count; i++) {
    if (!tx.send(payload(size, i))) {
      onBlocked?.();
      await tx.drained();
    } else if (i % 16 === 15) await new Promise((r) => setImmediate(r));
  }
}

/** Counts messages on stream `id`, checking order and integrity, resolving after `count`. */
async function counter(room: Awaited<ReturnType<Client['joinConference']>>, id: number, count: number, size: number) {
  let n = 0;
  const done = deferred<number>();
  const rx = await room.makeRecvDataSession(id, (d, info) => {
    expect(info.seq).toBe(n);
    expect(d.byteLength).toBe(size);
    expect([d[0], d[size - 1]]).toEqual([n & 0xff, n & 0xff]);
    if (++n === count) done.resolve(n);
  });
  return { rx, done: done.promise, get n() {
    return n;
  } };
}

describe('backpressure', () => {
  it('counts what the server holds for a paused receiver, fires queueTooLong only on changes, and drains after it resumes', async () => {
    const s = await server({ slowReceiverTimeoutMs: 0, receiverQueueMaxBytes: 256 * MiB });
    const a = await Client.connect(s.url, await s.token('bp-a'), { highWaterMarkBytes: 512 * KiB, lowWaterMarkBytes: 128 * KiB });
    const b = await connectPausable(s, 'bp-b');
    const ra = await a.joinConference('bp');
    const rb = await b.client.joinConference('bp');
    const N = 2500;
    const SIZE = 16 * KiB;
    const atB = await counter(rb, 100, N, SIZE);
    const tx = await ra.makeSendDataSession(100);
    const transitions: boolean[] = [];
    tx.on('queueTooLong', (e) => transitions.push(e.triggered));
    b.pause();
    // Eventually the app is held back by what the server holds for the paused receiver.
    const sending = sendAll(tx, N, SIZE);
    // The stats as the report that crossed the mark left them: the backlog moves (a report of the
    // same read may follow with less, as the paused receiver's socket buffers take some in).
    let held = tx.stats();
    await until(tx, 'backlog', () => (held = tx.stats()).serverBacklogBytes > 512 * KiB, 30_000);
    expect(held.queuedBytes).toBe(held.localQueuedBytes + held.serverBacklogBytes);
    expect(held.queuedBytes).toBeGreaterThan(512 * KiB); // over the high-water mark: send() says false
    expect(atB.n).toBe(0);
    expect(transitions[0]).toBe(true);
    b.resume();
    await sending;
    await atB.done;
    await tx.drained();
    expect(transitions.at(-1)).toBe(false);
    // Each event is a change of state: true, false, true, false, …
    transitions.forEach((t, i) => expect(t).toBe(i % 2 === 0));
    await Promise.all([a.close(), b.client.close()]);
  }, 60_000);
});

describe('acknowledgements', () => {
  it('a client acknowledges within the send window its server announces, however long its own acknowledgement delay', async () => {
    // 16 frames of 16 KiB fill this window: the SDK's own thresholds (64 frames, 1 MiB) would never
    // be reached, only its timer, and the server would wait for it at every window.
    const s = await server({ sendWindowBytes: 256 * KiB });
    const a = await Client.connect(s.url, await s.token('ack-a'));
    const b = await Client.connect(s.url, await s.token('ack-b'), { ackDelayMs: 600_000 });
    expect(b.limits.sendWindowBytes).toBe(256 * KiB);
    const ra = await a.joinConference('acks');
    const rb = await b.joinConference('acks');
    const got = await counter(rb, 7, 256, 16 * KiB);
    const tx = await ra.makeSendDataSession(7);
    await sendAll(tx, 256, 16 * KiB);
    expect(await within(got.done, 'all 256 messages (4 MiB through a 256 KiB window)', 20_000)).toBe(256);
    await Promise.all([a.close(), b.close()]);
  });

  it('a client acknowledges within the window in frames its server announces, however many frames its own ackEvery allows', async () => {
    // 32 frames fill this window, a few KiB: neither the byte window nor the SDK's ackEvery (set
    // here far above it) would ever call for an acknowledgement, only the 10-minute timer.
    const s = await server({ sendWindowFrames: 32 });
    const a = await Client.connect(s.url, await s.token('ackf-a'));
    const b = await Client.connect(s.url, await s.token('ackf-b'), { ackDelayMs: 600_000, ackEvery: 100_000 });
    expect(b.limits.sendWindowFrames).toBe(32);
    const ra = await a.joinConference('ackf');
    const rb = await b.joinConference('ackf');
    const got = await counter(rb, 7, 3000, 100);
    const tx = await ra.makeSendDataSession(7);
    await sendAll(tx, 3000, 100);
    expect(await within(got.done, 'all 3,000 messages through a window of 32 frames', 20_000)).toBe(3000);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('slow receivers', () => {
  it('a stalled receiver is detached as receiver-too-slow on both ends; the others get everything', async () => {
    // Long enough that a fast receiver stalled by a loaded machine is not taken for a slow one.
    const s = await server({ slowReceiverTimeoutMs: 2_000, receiverQueueMaxBytes: 256 * MiB });
    const a = await Client.connect(s.url, await s.token('sr-a'));
    const ra = await a.joinConference('slow');
    const N = 2000;
    const SIZE = 16 * KiB;
    const fast = await Promise.all(['sr-b', 'sr-c'].map((u) => spawnReceiver(s, u, 'slow', 100, N, SIZE)));
    const d = await connectPausable(s, 'sr-d');
    const rd = await d.client.joinConference('slow');
    const rxD = await rd.makeRecvDataSession(100, () => undefined);
    const tx = await ra.makeSendDataSession(100);
    const detached = next<{ participantId: string; reason: { code: string } }>(tx, 'receiverDetached', 30_000);
    const closedAtD = next<{ reason: { code: string }; from: string }>(rxD, 'closed', 30_000);
    d.pause();
    await sendAll(tx, N, SIZE);
    const det = await detached;
    expect(det).toMatchObject({ participantId: d.client.participantId, reason: { code: 'receiver-too-slow' } });
    expect(await Promise.all(fast.map((f) => f.done))).toEqual([N, N]);
    d.resume();
    expect(await closedAtD).toMatchObject({ from: a.participantId, reason: { code: 'receiver-too-slow' } });
    await Promise.all([a.close(), d.client.close()]);
  }, 60_000);

  it('a receiver over the hard queue limit is detached at once, even if the sender ignores backpressure', async () => {
    const s = await server({ slowReceiverTimeoutMs: 0, receiverQueueMaxBytes: 1 * MiB });
    const a = await Client.connect(s.url, await s.token('hc-a'), { highWaterMarkBytes: 64 * MiB, lowWaterMarkBytes: MiB });
    const c = await connectPausable(s, 'hc-c');
    const ra = await a.joinConference('cap');
    await c.client.joinConference('cap');
    const N = 1500;
    const SIZE = 16 * KiB;
    const b = await spawnReceiver(s, 'hc-b', 'cap', 100, N, SIZE);
    const tx = await ra.makeSendDataSession(100);
    const detached = next<{ participantId: string; reason: { code: string } }>(tx, 'receiverDetached', 30_000);
    c.pause();
    // send() never says no (a 64 MiB high-water mark), so nothing holds the sender back for c. It
    // keeps within 16 messages of what b has handled, so that b is never a slow receiver too: a
    // sender that also ran ahead of b could make b pass the same 1 MiB limit.
    for (let i = 0; i < N; i++) {
      expect(tx.send(payload(SIZE, i))).toBe(true);
      if (i % 16 === 15) await b.handled(i - 15);
    }
    expect(await detached).toMatchObject({ participantId: c.client.participantId, reason: { code: 'receiver-too-slow' } });
    expect(await b.done).toBe(N);
    c.resume();
    await Promise.all([a.close(), c.client.close()]);
  }, 60_000);
});

describe('unreliable', () => {
  it('drops the oldest data under congestion, counts it on both sides, and never blocks reliable data', async () => {
    const s = await server({ unreliableQueueMaxBytes: 64 * KiB, slowReceiverTimeoutMs: 0, receiverQueueMaxBytes: 256 * MiB });
    const a = await Client.connect(s.url, await s.token('ur-a'));
    const b = await connectPausable(s, 'ur-b');
    const ra = await a.joinConference('unrel');
    const rb = await b.client.joinConference('unrel');
    const seqs: number[] = [];
    const N = 12_000;
    const lastArrived = deferred();
    const rxU = await rb.makeRecvDataSession(200, (_d, info) => {
      seqs.push(info.seq);
      if (info.seq === N - 1) lastArrived.resolve();
    });
    const M = 100;
    const atB = await counter(rb, 201, M, 1 * KiB);
    const unrel = await ra.makeSendDataSession(200, 'unreliable');
    const rel = await ra.makeSendDataSession(201, 'reliable-message');
    b.pause();
    for (let i = 0; i < N; i++) {
      if (!unrel.send(payload(2 * KiB, i))) await unrel.drained();
      else if (i % 16 === 15) await new Promise((r) => setImmediate(r)); // a producer yields now and then
      if (i % (N / M) === 0) rel.send(payload(KiB, i / (N / M)));
    }
    await until(unrel, 'backlog', () => unrel.stats().droppedServer > 0, 20_000);
    const receiverDrops = next<{ count: number }>(rxU, 'dropped', 20_000);
    b.resume();
    await atB.done; // every reliable message arrives despite the congestion
    await lastArrived.promise; // the newest unreliable data survives; the oldest was dropped
    expect((await receiverDrops).count).toBeGreaterThan(0);
    expect(seqs.length).toBeLessThan(N);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
    expect(unrel.stats().droppedServer + unrel.stats().droppedLocal).toBeGreaterThan(0);
    await Promise.all([a.close(), b.client.close()]);
  }, 60_000);
});

describe('priority and pacing', () => {
  it('high-priority data queued after low-priority data is delivered first', async () => {
    // A paused receiver makes the server queue data for it; once resumed, the queue drains by priority.
    const s = await server({ slowReceiverTimeoutMs: 0, receiverQueueMaxBytes: 256 * MiB });
    const a = await Client.connect(s.url, await s.token('pr-a'), { highWaterMarkBytes: 256 * MiB });
    const b = await connectPausable(s, 'pr-b');
    const ra = await a.joinConference('prio');
    const rb = await b.client.joinConference('prio');
    const LOWS = 1000;
    const HIGHS = 20;
    const order: string[] = [];
    const done = deferred();
    const record = (tag: string) => (_d: Uint8Array, info: { seq: number }) => {
      order.push(`${tag}${info.seq}`);
      if (order.length === LOWS + HIGHS) done.resolve();
    };
    await rb.makeRecvDataSession(1, record('L'));
    await rb.makeRecvDataSession(2, record('H'));
    const low = await ra.makeSendDataSession(1, 'reliable-message', { priority: 'low' });
    const high = await ra.makeSendDataSession(2, 'reliable-message', { priority: 'high' });
    b.pause();
    await sendAll(low, LOWS, 16 * KiB);
    // Wait until the server holds low-priority data for b beyond what the sockets buffer.
    await until(low, 'backlog', () => low.stats().serverBacklogBytes > 2 * MiB, 30_000);
    for (let i = 0; i < HIGHS; i++) high.send(payload(KiB, i));
    // Resume only once the server holds the high-priority data too (it reports that backlog).
    await until(high, 'backlog', () => high.stats().serverBacklogBytes >= HIGHS * KiB, 30_000);
    b.resume();
    await done.promise;
    const lastHigh = order.indexOf(`H${HIGHS - 1}`);
    const lowsAfterLastHigh = order.slice(lastHigh).filter((t) => t.startsWith('L')).length;
    // Every low message the server still held when the highs arrived was overtaken by them.
    expect(lowsAfterLastHigh).toBeGreaterThan((2 * MiB) / (16 * KiB) - 1);
    expect(order.filter((t) => t.startsWith('H'))).toEqual(Array.from({ length: HIGHS }, (_, i) => `H${i}`));
    expect(order.filter((t) => t.startsWith('L'))).toEqual(Array.from({ length: LOWS }, (_, i) => `L${i}`));
    await Promise.all([a.close(), b.client.close()]);
  }, 60_000);

  /**
   * a sends `lows` low-priority messages of `size` bytes at once, then one high-priority message;
   * b records the order they arrive in. Returns that order, and what a's SDK still held once the
   * low ones were handed to it.
   */
  async function lowsThenHigh(s: ServerProcess, room: string, options: ClientOptions, lows: number, size: number) {
    const a = await Client.connect(s.url, await s.token(`${room}-a`), { socketHighWaterBytes: 64 * MiB, highWaterMarkBytes: 64 * MiB, ...options });
    const b = await Client.connect(s.url, await s.token(`${room}-b`));
    const ra = await a.joinConference(room);
    const rb = await b.joinConference(room);
    const order: string[] = [];
    const done = deferred();
    const record = (tag: string) => (_d: Uint8Array, info: { seq: number }) => {
      order.push(`${tag}${info.seq}`);
      if (order.length === lows + 1) done.resolve();
    };
    await rb.makeRecvDataSession(1, record('L'));
    await rb.makeRecvDataSession(2, record('H'));
    const low = await ra.makeSendDataSession(1, 'reliable-message', { priority: 'low' });
    const high = await ra.makeSendDataSession(2, 'reliable-message', { priority: 'high' });
    for (let i = 0; i < lows; i++) low.send(payload(size, i));
    const heldBySdk = low.stats().localQueuedBytes;
    high.send(payload(Math.min(size, KiB), 0));
    await within(done.promise, `all ${lows + 1} messages`, 30_000);
    expect(order.filter((t) => t.startsWith('L'))).toEqual(Array.from({ length: lows }, (_, i) => `L${i}`));
    await Promise.all([a.close(), b.close()]);
    return { lowsBeforeHigh: order.indexOf('H0'), heldBySdk };
  }

  it('the send window keeps bulk data in the SDK while the server reads slowly, so high-priority data overtakes it', async () => {
    // The bitrate limit makes the server read a's socket slowly (2 MB/s), and a's socket buffer
    // limit is set out of the way. Without a send window all the low-priority data would go into
    // the socket at once, ahead of anything sent later; with it, at most a window of it is ahead
    // of the high-priority message and the rest waits in the SDK's priority queue.
    const s = await server({ maxDataBitrateKbps: 16_000 });
    const WINDOW = 128 * KiB;
    const LOWS = 64; // 4 MiB
    const { lowsBeforeHigh, heldBySdk } = await lowsThenHigh(s, 'window', { sendWindowBytes: WINDOW }, LOWS, 64 * KiB);
    // What the window holds back waits in the SDK, where send() and stats() see it.
    expect(heldBySdk).toBeGreaterThanOrEqual(LOWS * 64 * KiB - WINDOW - 64 * KiB);
    // Ahead of it: at most a window of low data (plus one chunk in the server's hands).
    expect(lowsBeforeHigh).toBeLessThanOrEqual(WINDOW / (64 * KiB) + 2);
  }, 60_000);

  it('the send window in frames keeps a flood of small messages in the SDK while the server reads slowly, so high-priority data overtakes it', async () => {
    // The frame-rate limit makes the server read a's socket slowly (1,000 frames/s); the byte window
    // and the socket buffer limit are set out of the way, so only the window in frames holds back.
    const s = await server({ maxDataFramesPerSecond: 1_000, ackEvery: 4 }); // acknowledged well within the window
    const WINDOW = 8;
    const LOWS = 400;
    const { lowsBeforeHigh, heldBySdk } = await lowsThenHigh(s, 'window-frames', { sendWindowFrames: WINDOW, sendWindowBytes: 64 * MiB }, LOWS, 100);
    expect(heldBySdk).toBeGreaterThanOrEqual((LOWS - WINDOW) * 100);
    // Ahead of it: the window's frames (and, at most, a few the SDK wrote as acknowledgements came).
    expect(lowsBeforeHigh).toBeLessThanOrEqual(2 * WINDOW);
  }, 60_000);

  it('maxBitrateKbps paces sending', async () => {
    const s = await server({});
    const a = await Client.connect(s.url, await s.token('pace-a'));
    const b = await Client.connect(s.url, await s.token('pace-b'));
    const ra = await a.joinConference('pace');
    const rb = await b.joinConference('pace');
    const N = 50;
    const atB = await counter(rb, 100, N, KiB);
    const tx = await ra.makeSendDataSession(100, 'reliable-message', { maxBitrateKbps: 400 }); // 50 kB/s
    const start = performance.now();
    for (let i = 0; i < N; i++) tx.send(payload(KiB, i));
    await atB.done;
    const seconds = (performance.now() - start) / 1000;
    // 50 KiB at 50 kB/s is ~1 s; a slow machine can only make it longer.
    expect(seconds).toBeGreaterThan(0.8);
    await Promise.all([a.close(), b.close()]);
  });

  it('the per-participant bitrate limit slows a sender down without losing anything', async () => {
    const s = await server({ maxDataBitrateKbps: 1600 }); // 200 kB/s, 64 KiB burst
    const a = await Client.connect(s.url, await s.token('br-a'));
    const b = await Client.connect(s.url, await s.token('br-b'));
    const ra = await a.joinConference('bitrate');
    const rb = await b.joinConference('bitrate');
    const N = 32;
    const atB = await counter(rb, 100, N, 16 * KiB);
    const tx = await ra.makeSendDataSession(100);
    const start = performance.now();
    for (let i = 0; i < N; i++) tx.send(payload(16 * KiB, i));
    await atB.done;
    // 512 KiB at 200 kB/s, less the burst and up to two socket reads (128 KiB) that pass while
    // reading is paused: at least 1.6 s. A slow machine can only make it longer.
    expect((performance.now() - start) / 1000).toBeGreaterThan(1.6);
    await Promise.all([a.close(), b.close()]);
  });
});
