/**
 * The client's receiving side with small fakes: reassembly delivers only whole messages whatever
 * is cut from the stream of fragments (fast-check), and a receiver's unread queue withholds the
 * link's acknowledgements above its high-water mark and releases them, with the full count, below
 * its low-water mark.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, FrameKind, decodeFrame, encodeDataFrame, type BackchannelError, type DataFrame } from '@backchannel/protocol';
import { Inbox } from '../../packages/client/dist/data/inbox.js';
import { ReceiveGate } from '../../packages/client/dist/data/receive-gate.js';
import { RecvDataSession } from '../../packages/client/dist/data/recv-session.js';
import { Link } from '../../packages/client/dist/link.js';
import type { Transport } from '../../packages/client/dist/transport.js';

const frame = (seq: number, fin: boolean, payload: Uint8Array): DataFrame => ({ kind: FrameKind.Data, mode: 'reliable-message', fin, streamId: 100, room: 1, sender: 7, seq, payload });

function inboxWith(maxReassemblyBytes = 1 << 30) {
  const errors: BackchannelError[] = [];
  const got: { seq: number; data: Uint8Array }[] = [];
  const reassembly = { bytes: 0, max: maxReassemblyBytes };
  const inbox = new Inbox({
    pendingBufferBytes: 1 << 20,
    pendingBufferMs: 1000,
    maxMessageBytes: 1 << 30,
    reassembly,
    participantIdOf: () => 'PA_sender',
    reportError: (e) => errors.push(e),
    onReserved: () => {},
  });
  const gate = new ReceiveGate(() => () => {}, 1 << 30, 0);
  inbox.attach(new RecvDataSession(100, (data, info) => got.push({ seq: info.seq, data: data.slice() }), undefined, gate, () => {}));
  return { inbox, errors, got, reassembly };
}

describe('reassembly', () => {
  it('delivers exactly the messages that arrived whole and reports each one cut short, whatever is cut', () => {
    const message = fc.record({ size: fc.integer({ min: 0, max: 40 }), cut: fc.nat({ max: 5 }) });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 30 }), fc.integer({ min: 1, max: 8 }), (messages, chunk) => {
        const { inbox, errors, got, reassembly } = inboxWith();
        const whole: { seq: number; data: Uint8Array }[] = [];
        const incomplete: number[] = [];
        // The last message is always whole, so a cut before it is always noticed.
        [...messages, { size: 3, cut: 0 }].forEach(({ size, cut }, seq) => {
          const data = Uint8Array.from({ length: size }, (_, i) => (seq * 31 + i) & 0xff);
          const parts: Uint8Array[] = [];
          for (let off = 0; off === 0 || off < size; off += chunk) parts.push(data.subarray(off, Math.min(off + chunk, size)));
          const kept = Math.max(0, parts.length - cut); // the tail after `kept` is lost
          parts.slice(0, kept).forEach((p, i) => inbox.onFrame(frame(seq, i === parts.length - 1, p)));
          if (kept === parts.length) whole.push({ seq, data });
          else if (kept > 0) incomplete.push(seq);
        });
        expect(got).toEqual(whole);
        expect(errors.map((e) => [e.code, e.details?.seq])).toEqual(incomplete.map((seq) => [ErrorCode.MessageIncomplete, seq]));
        expect(reassembly.bytes).toBe(0);
      }),
    );
  });

  it('a continuation of a message that already ended is not a message', () => {
    const { inbox, errors, got } = inboxWith();
    const b = (s: string) => new TextEncoder().encode(s);
    inbox.onFrame(frame(0, true, b('whole')));
    inbox.onFrame(frame(0, false, b('tail-')));
    inbox.onFrame(frame(0, true, b('end')));
    inbox.onFrame(frame(1, true, b('next')));
    expect(got.map((g) => new TextDecoder().decode(g.data))).toEqual(['whole', 'next']);
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.MessageIncomplete]);
  });

  it('the reassembly budget is shared, released when messages complete, and empty fragments cost nothing', () => {
    const { inbox, errors, got, reassembly } = inboxWith(1000);
    for (let i = 0; i < 10_000; i++) inbox.onFrame(frame(0, false, new Uint8Array(0)));
    expect(reassembly.bytes).toBe(0);
    inbox.onFrame(frame(0, false, new Uint8Array(600)));
    expect(reassembly.bytes).toBe(600);
    inbox.onFrame(frame(0, false, new Uint8Array(600))); // over the budget: dropped
    expect(reassembly.bytes).toBe(0);
    inbox.onFrame(frame(0, true, new Uint8Array(1)));
    inbox.onFrame(frame(1, false, new Uint8Array(900)));
    inbox.onFrame(frame(1, true, new Uint8Array(1)));
    expect(got.map((g) => [g.seq, g.data.byteLength])).toEqual([[1, 901]]);
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.ReassemblyOverflow]);
    expect(reassembly.bytes).toBe(0);
  });
});

/** A transport that records what the link sends. */
class RecordingTransport implements Transport {
  bufferedAmount = 0;
  readonly sent: Uint8Array[] = [];
  onframe: (frame: Uint8Array) => void = () => {};
  onclose: (code: number, reason: string) => void = () => {};
  send(frame: Uint8Array): void {
    this.sent.push(frame);
  }
  close(): void {}
  /** Acknowledgement counts sent so far. */
  get acks(): number[] {
    return this.sent.map((f) => decodeFrame(f)).flatMap((f) => (f.kind === FrameKind.Ack ? [f.ack] : []));
  }
}

describe('receive backpressure', () => {
  it("a receiver's unread queue withholds acknowledgements above its high-water mark and sends the full count below its low-water mark", async () => {
    const link = new Link({ requestTimeoutMs: 1000, ackEvery: 2, ackEveryBytes: 1 << 30, ackDelayMs: 60_000, pingIntervalMs: 60_000, pingTimeoutMs: 120_000 });
    const transport = new RecordingTransport();
    link.attach(transport, { early: [] });
    await new Promise((r) => setImmediate(r)); // frames handed over with the attach are handled a turn later
    const rx = new RecvDataSession(100, undefined, undefined, new ReceiveGate(() => link.holdAcks(), 3000, 2000), () => {});
    link.on('data', (f) => rx._deliver(f.payload, { from: 'p', seq: f.seq, streamId: 100, mode: 'reliable-message' }));
    const data = (seq: number) => encodeDataFrame({ mode: 'reliable-message', fin: true, streamId: 100, room: 1, sender: 7, seq }, new Uint8Array(1000));
    // One read of the socket: its frames are acknowledged once, after the read.
    const read = async (from: number, to: number) => {
      for (let seq = from; seq < to; seq++) transport.onframe(data(seq));
      await Promise.resolve();
    };
    await read(0, 2);
    expect(transport.acks).toEqual([2]); // below the high-water mark: acknowledged as usual
    await read(2, 4);
    expect(link.holdingAcks).toBe(true);
    expect(transport.acks).toEqual([2]); // the fourth message (4,000 bytes unread) engaged the hold before the read's acknowledgement left
    await read(4, 10);
    expect(transport.acks).toEqual([2]);
    const it = rx[Symbol.asyncIterator]();
    for (let i = 0; i < 7; i++) await it.next(); // 3 left unread: 3,000 bytes
    expect(transport.acks).toEqual([2]);
    await it.next(); // 2 left (2,000 bytes): at the low-water mark
    expect(link.holdingAcks).toBe(false);
    expect(transport.acks).toEqual([2, 10]); // everything received, at once
    link.finish(1000, 'done');
  });
});
