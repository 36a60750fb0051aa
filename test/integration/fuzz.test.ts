/**
 * Protocol fuzzing against a real server process: several connections send seeded random and
 * mutated frames (garbage, data frames with random headers, requests with wrong fields, random
 * acknowledgements, heartbeats) while a well-behaved pair exchanges reliable messages in the same
 * room. The pair must lose nothing, the server must stay up and its memory bounded.
 *
 * Bounded to a few seconds by default; `FUZZ_FRAMES=1000000 npx vitest run test/integration/fuzz.test.ts`
 * runs a million frames (and `FUZZ_SEED=n` replays a run).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Client } from '@backchannel/client';
import { ClientMessageSchemas, DataModes, FrameKind, decodeFrame, encodeAckFrame, encodeControlFrame, encodeDataFrame } from '@backchannel/protocol';
import { startServerProcess } from '../helpers/server.js';

const FRAMES = Number(process.env.FUZZ_FRAMES ?? 20_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261129);
const FUZZERS = 4;

/** A small seeded PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  return { next, int, pick, bytes };
}
type Rng = ReturnType<typeof prng>;

const TYPES = Object.keys(ClientMessageSchemas);
function randomValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 5 : 8)) {
    case 0: return r.int(70_000) - 10;
    case 1: return r.pick(['', 'x', 'broadcast', 'addressed', 'reliable-message', 'unreliable', 'high', 'PA_x', 'CA_y', '\u0000', 'é'.repeat(r.int(300))]);
    case 2: return r.next() < 0.5;
    case 3: return null;
    case 4: return r.next() * 1e12;
    case 5: return Array.from({ length: r.int(6) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) o[r.pick(['t', 'id', 'room', 'streamId', 'mode', 'destination', 'priority', 'name', 'metadata', 'callId', 'token', 'x'])] = randomValue(r, depth + 1);
      return o;
    }
  }
}

/** One hostile frame. `room` is the fuzzer's real room number, so many frames reach the data path. */
function hostileFrame(r: Rng, room: number): Uint8Array {
  switch (r.int(8)) {
    case 0:
      return r.bytes(r.int(64));
    case 1:
    case 2: {
      const h = { mode: r.pick(DataModes), fin: r.next() < 0.7, streamId: r.pick([100, 101, 65000, 65001, 1 + r.int(65535)]), room: r.next() < 0.8 ? room : r.int(2 ** 32), sender: r.int(2 ** 32), seq: r.int(2 ** 32) };
      const frame = encodeDataFrame(h, r.bytes(r.int(2048)));
      if (r.next() < 0.1) frame[1] = r.int(256); // reserved bits, unknown modes
      return frame;
    }
    case 3: {
      const msg: Record<string, unknown> = { t: r.pick(TYPES), id: r.int(1 << 20), room };
      for (let i = r.int(6); i > 0; i--) msg[r.pick(['streamId', 'mode', 'destination', 'priority', 'name', 'metadata', 'callId', 'callee', 'token', 'reason', 'x'])] = randomValue(r);
      return encodeControlFrame(JSON.stringify(msg));
    }
    case 4:
      return encodeControlFrame(r.next() < 0.5 ? JSON.stringify(randomValue(r)) : new TextDecoder().decode(r.bytes(r.int(40))));
    case 5:
      return encodeAckFrame(r.int(2 ** 32));
    case 6:
      return Uint8Array.of(0x10 | r.pick([FrameKind.Ping, FrameKind.Pong]));
    default: {
      const whole = encodeDataFrame({ mode: 'reliable-message', fin: true, streamId: 100, room, sender: 0, seq: r.int(100) }, r.bytes(64));
      return whole.subarray(0, r.int(whole.length));
    }
  }
}

/** A fuzzing connection: says hello and joins `name`, then sends what it is given. Never reads replies beyond the handshake. */
async function fuzzer(url: string, token: string, name: string): Promise<{ ws: WebSocket; room: number }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const replies: unknown[] = [];
  const waitReply = (id: number) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const onMessage = (data: Buffer) => {
        const f = decodeFrame(new Uint8Array(data));
        if (f.kind !== FrameKind.Control) return;
        const m = JSON.parse(new TextDecoder().decode(f.body)) as Record<string, unknown>;
        replies.push(m);
        if (m.re === id) {
          ws.off('message', onMessage);
          resolve(m);
        }
      };
      ws.on('message', onMessage);
    });
  ws.send(encodeControlFrame(JSON.stringify({ t: 'hello', id: 1, token, protocol: 3, capabilities: { protocol: 3, dataSession: true } })));
  await waitReply(1);
  ws.send(encodeControlFrame(JSON.stringify({ t: 'conf.join', id: 2, name })));
  const joined = (await waitReply(2)) as { data: { room: number } };
  ws.on('error', () => undefined);
  return { ws, room: joined.data.room };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

describe('protocol fuzzing', () => {
  it(`${FRAMES.toLocaleString('en-US')} hostile frames: the server stays up, bounded, and a well-behaved pair loses nothing`, async () => {
    const server = await startServerProcess({ maxBadFrames: 1_000_000, maxDataBitrateKbps: 0 });
    try {
      const r = prng(SEED);
      const a = await Client.connect(server.url, await server.token('fz-a'));
      const b = await Client.connect(server.url, await server.token('fz-b'));
      const ra = await a.joinConference('fuzz');
      const rb = await b.joinConference('fuzz');
      const got: number[] = [];
      const problems: string[] = [];
      await rb.makeRecvDataSession(300, (d, info) => {
        if (info.from !== a.participantId) return problems.push(`data from ${info.from}`);
        const n = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0);
        if (n !== got.length) problems.push(`got #${n}, expected #${got.length}`);
        got.push(n);
      });
      const tx = await ra.makeSendDataSession(300, 'reliable-message');
      let sent = 0;
      let fuzzing = true;
      const steady = (async () => {
        while (fuzzing) {
          const m = new Uint8Array(256);
          new DataView(m.buffer).setUint32(0, sent++);
          if (!tx.send(m)) await tx.drained();
          if (sent % 20 === 0) await new Promise((res) => setTimeout(res, 1));
        }
      })();

      let peak = rssMiB(server.proc.pid!);
      let frames = 0;
      let connections = 0;
      while (frames < FRAMES) {
        const fz = await Promise.all(Array.from({ length: FUZZERS }, async (_, i) => fuzzer(server.url, await server.token(`fz-${connections + i}`), 'fuzz')));
        connections += FUZZERS;
        // Each batch of connections sends a share of the frames, then is replaced (some were closed by the server anyway).
        const share = Math.min(FRAMES - frames, 5_000 * FUZZERS);
        for (let i = 0; i < share; i++) {
          const f = fz[i % FUZZERS]!;
          if (f.ws.readyState === WebSocket.OPEN) f.ws.send(hostileFrame(r, f.room));
          if (i % 2_000 === 1_999) {
            await new Promise((res) => setImmediate(res));
            peak = Math.max(peak, rssMiB(server.proc.pid!));
          }
        }
        frames += share;
        for (const f of fz) f.ws.terminate();
        peak = Math.max(peak, rssMiB(server.proc.pid!));
      }
      fuzzing = false;
      await steady;
      const deadline = Date.now() + 20_000;
      while (got.length < sent && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      const health = await fetch(`${server.httpUrl}/healthz`);
      console.log(`fuzz: seed ${SEED}, ${frames} hostile frames over ${connections} connections; pair delivered ${got.length}/${sent}; server peak RSS ${peak.toFixed(0)} MiB`);
      expect(health.status).toBe(200);
      expect(problems).toEqual([]);
      expect(got.length).toBe(sent);
      expect(peak).toBeLessThan(512);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await server.stop();
    }
  }, 600_000);
});
