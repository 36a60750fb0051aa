/**
 * A receiving app that reads slowly holds back the server, not its own memory: the SDK's unread
 * queues (a receiver's iterator, a stream reader) are bounded by withholding acknowledgements, so
 * data waits in the server, senders see the backlog, and a receiver that stays behind is detached
 * as `receiver-too-slow`. Partly reassembled messages are bounded per connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client, ErrorCode, type BackchannelError, type StreamReader } from '@backchannel/client';
import { encodeDataFrame } from '@backchannel/protocol';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next } from '../helpers/events.js';
import { rawConnect } from '../helpers/raw.js';

const MiB = 1024 * 1024;
const SLOW_MS = 1500;
let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ maxDataBitrateKbps: 0, slowReceiverTimeoutMs: SLOW_MS });
});
afterAll(async () => {
  await server.stop();
});

let n = 0;
async function pair(optsB = {}) {
  n++;
  const a = await Client.connect(server.url, await server.token(`bp-a${n}`));
  const b = await Client.connect(server.url, await server.token(`bp-b${n}`), optsB);
  const ra = await a.joinConference(`bp-${n}`);
  const rb = await b.joinConference(`bp-${n}`);
  return { a, b, ra, rb, close: () => Promise.all([a.close(), b.close()]) };
}

/** A message of `size` bytes whose first four bytes are `i` (big-endian). */
function numbered(i: number, size: number): Uint8Array {
  const m = new Uint8Array(size);
  new DataView(m.buffer).setUint32(0, i);
  return m;
}

describe('receive backpressure', () => {
  it('a receiver whose app does not read is detached as receiver-too-slow, and its process stays small', async () => {
    n++;
    const room = `bp-proc-${n}`;
    const script = new URL('../helpers/slow-receiver-proc.mjs', import.meta.url).pathname;
    const proc = spawn(process.execPath, ['--expose-gc', script, server.url, await server.token(`bp-rx${n}`), room, '100'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const replies: Record<string, any>[] = [];
    const waiters: (() => void)[] = [];
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      replies.push(JSON.parse(l));
      waiters.splice(0).forEach((w) => w());
    });
    const reply = (i: number) => new Promise<Record<string, any>>((resolve) => (replies.length > i ? resolve(replies[i]!) : waiters.push(() => resolve(replies[i]!))));
    try {
      const ready = await reply(0);
      const a = await Client.connect(server.url, await server.token(`bp-tx${n}`));
      const ra = await a.joinConference(room);
      const tx = await ra.makeSendDataSession(100, 'reliable-message');
      let maxBacklog = 0;
      tx.on('backlog', ({ serverBacklogBytes }) => (maxBacklog = Math.max(maxBacklog, serverBacklogBytes)));
      const detached = next<{ participantId: string; reason: { code: string } }>(tx, 'receiverDetached', 20_000);
      // 32 MiB, ignoring backpressure: far more than the receiving process may hold.
      const chunk = new Uint8Array(64 * 1024);
      for (let i = 0; i < 512; i++) tx.send(chunk);
      expect(await detached).toMatchObject({ participantId: ready.ready, reason: { code: 'receiver-too-slow' } });
      expect(maxBacklog).toBeGreaterThanOrEqual(MiB); // the server saw the backlog, and told the sender
      proc.stdin!.write('report\n');
      const after = await reply(1);
      expect(after.stats.messagesReceived).toBeLessThan(160); // well under the 512 sent (< 10 MiB)
      expect(after.stats.queuedBytes).toBeLessThan(10 * MiB);
      const grown = after.memory.heapUsed + after.memory.arrayBuffers - (ready.memory.heapUsed + ready.memory.arrayBuffers);
      expect(grown).toBeLessThan(16 * MiB);
      await a.close();
    } finally {
      proc.kill();
    }
  }, 40_000);

  it('a receiver that falls behind and catches up loses nothing; the sender sees the server backlog meanwhile', async () => {
    // The default slow-receiver timeout: catching up must not race a short one on a loaded machine.
    const own = await startServerProcess({ maxDataBitrateKbps: 0 });
    const a = await Client.connect(own.url, await own.token('cu-a'));
    const b = await Client.connect(own.url, await own.token('cu-b'));
    const ra = await a.joinConference('catch-up');
    const rb = await b.joinConference('catch-up');
    const close = async () => {
      await Promise.all([a.close(), b.close()]);
      await own.stop();
    };
    const rx = await rb.makeRecvDataSession(200);
    const tx = await ra.makeSendDataSession(200, 'reliable-message');
    const backlog = deferred();
    tx.on('backlog', ({ serverBacklogBytes }) => serverBacklogBytes >= MiB && backlog.resolve());
    const COUNT = 192; // 12 MiB
    const sending = (async () => {
      for (let i = 0; i < COUNT; i++) if (!tx.send(numbered(i, 64 * 1024))) await tx.drained();
    })();
    // The app reads nothing until the backlog has reached the server.
    await backlog.promise;
    const held = rx.stats().queuedBytes;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(8 * MiB);
    let i = 0;
    for await (const { data, seq } of rx) {
      expect(seq).toBe(i);
      expect(new DataView(data.buffer, data.byteOffset).getUint32(0)).toBe(i);
      if (++i === COUNT) break;
    }
    await sending;
    await close();
  }, 30_000);

  it('a stream the app does not read stays bounded; the sender learns the receiver was too slow', async () => {
    const { ra, rb, b, close } = await pair();
    const got = deferred<StreamReader>();
    rb.registerStreamHandler('big', (reader) => got.resolve(reader)); // never read
    const err = await ra.sendBytes('big', new Uint8Array(24 * MiB)).catch((e: BackchannelError) => e);
    expect(err).toMatchObject({
      code: ErrorCode.StreamNotDelivered,
      details: { failed: [{ participantId: b.participantId, reason: { code: 'receiver-too-slow' } }], delivered: [] },
    });
    const reader = await got.promise;
    expect(reader.bytesReceived).toBeGreaterThan(0);
    expect(reader.bytesReceived).toBeLessThan(10 * MiB);
    await expect(reader.readAll()).rejects.toMatchObject({ code: ErrorCode.StreamAborted, details: { reason: 'receiver-too-slow' } });
    await close();
  }, 30_000);
});

describe('reassembly memory', () => {
  it('messages in reassembly are bounded per connection: the one that does not fit is dropped and reported, the rest arrive', async () => {
    n++;
    const b = await Client.connect(server.url, await server.token(`ra-b${n}`), { maxReassemblyBytes: 2 * MiB });
    const rb = await b.joinConference(`ra-${n}`);
    const raw = await rawConnect(server.url);
    await raw.hello(await server.token(`ra-raw${n}`));
    raw.send({ t: 'conf.join', id: 2, name: `ra-${n}` });
    const joined = (await raw.waitFor((m) => 're' in m && m.re === 2)) as { data: { room: number } };
    const room = joined.data.room;
    const got: { streamId: number; seq: number; size: number }[] = [];
    const errors: BackchannelError[] = [];
    rb.on('dataSessionError', (e) => errors.push(e));
    const ends = deferred();
    const onData = (data: Uint8Array, info: { streamId: number; seq: number }) => {
      got.push({ streamId: info.streamId, seq: info.seq, size: data.byteLength });
      if (got.filter((g) => g.seq === 1).length === 3) ends.resolve();
    };
    for (const streamId of [300, 301, 302]) await rb.makeRecvDataSession(streamId, onData);
    for (const [i, streamId] of [300, 301, 302].entries()) {
      raw.send({ t: 'ds.open', id: 10 + i, room, streamId, mode: 'reliable-message', destination: 'broadcast', priority: 'normal' });
      await raw.waitFor((m) => 're' in m && m.re === 10 + i);
    }
    const frame = (streamId: number, fin: boolean, size: number, seq = 0) => encodeDataFrame({ mode: 'reliable-message', fin, streamId, room, sender: 0, seq }, new Uint8Array(size));
    // Three unfinished 900 KiB messages at once: the third does not fit in 2 MiB.
    for (let k = 0; k < 18; k++) for (const streamId of [300, 301, 302]) raw.sendBytes(frame(streamId, false, 50 * 1024));
    // Empty fragments hold no memory and count toward nothing.
    for (let k = 0; k < 5_000; k++) raw.sendBytes(frame(300, false, 0));
    for (const streamId of [300, 301, 302]) raw.sendBytes(frame(streamId, true, 1));
    // Then one small message on each: every session goes on normally.
    for (const streamId of [300, 301, 302]) raw.sendBytes(frame(streamId, true, 1, 1));
    await ends.promise;
    // The server interleaves the three sessions: whichever came third is the one dropped.
    const whole = got.filter((g) => g.seq === 0);
    expect(whole.map((g) => g.size)).toEqual([18 * 50 * 1024 + 1, 18 * 50 * 1024 + 1]);
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.ReassemblyOverflow]);
    const dropped = errors[0]!.details?.streamId;
    expect(new Set([...whole.map((g) => g.streamId), dropped])).toEqual(new Set([300, 301, 302]));
    raw.ws.close();
    await b.close();
  }, 30_000);
});
