import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AckCounter, ReplayBuffer } from '@backchannel/protocol';

const U32 = 2 ** 32;

/** A frame as the tests push it: its number (as the test counts) and its size. */
interface Item {
  n: number;
  size: number;
}

/**
 * What a receiver may report, relative to the sender's last acknowledgement: a stale count
 * (negative offset), one within what was sent, or one beyond it.
 */
type Op =
  | { op: 'push'; count: number; size: number }
  | { op: 'ack'; offset: number }
  | { op: 'after'; offset: number }
  | { op: 'clear' }
  | { op: 'trim' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('push' as const), count: fc.integer({ min: 1, max: 400 }), size: fc.integer({ min: 0, max: 70_000 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('ack' as const), offset: fc.integer({ min: -5, max: 600 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('after' as const), offset: fc.integer({ min: -5, max: 600 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('trim' as const) }) },
);

/**
 * A plain model of the sender's side in unbounded integers (no wrap): every frame pushed, and the
 * count the receiver has acknowledged.
 */
class Model {
  all: Item[] = [];
  acked = 0;
  get sent(): number {
    return this.all.length;
  }
  get kept(): Item[] {
    return this.all.slice(this.acked);
  }
}

function expectSameState(buf: ReplayBuffer<Item>, model: Model): void {
  expect(buf.sent).toBe(model.sent);
  expect(buf.acked).toBe(model.acked);
  expect(buf.length).toBe(model.sent - model.acked);
  expect(buf.bytes).toBe(model.kept.reduce((sum, item) => sum + item.size, 0));
}

describe('ReplayBuffer', () => {
  it('numbers frames 1, 2, 3… and keeps them, and their bytes, until acknowledged', () => {
    const buf = new ReplayBuffer<string>();
    expect([buf.sent, buf.acked, buf.length, buf.bytes]).toEqual([0, 0, 0, 0]);
    expect(buf.push('a', 10)).toBe(1);
    expect(buf.push('b', 20)).toBe(2);
    expect(buf.push('c', 30)).toBe(3);
    expect([buf.sent, buf.acked, buf.length, buf.bytes]).toEqual([3, 0, 3, 60]);
    expect(buf.ack(2)).toBe(true);
    expect([buf.sent, buf.acked, buf.length, buf.bytes]).toEqual([3, 2, 1, 30]);
    expect(buf.after(2)).toEqual(['c']);
  });

  it('sends again exactly the frames after the count the receiver reports, and drops those before it', () => {
    const buf = new ReplayBuffer<string>();
    for (const s of ['a', 'b', 'c', 'd']) buf.push(s, 1);
    expect(buf.after(0)).toEqual(['a', 'b', 'c', 'd']);
    expect(buf.after(1)).toEqual(['b', 'c', 'd']);
    expect(buf.acked).toBe(1);
    expect(buf.after(4)).toEqual([]);
    expect([buf.length, buf.bytes]).toEqual([0, 0]);
  });

  it('has nothing to resend for a count it no longer holds, or one beyond what was sent', () => {
    const buf = new ReplayBuffer<string>();
    for (const s of ['a', 'b', 'c']) buf.push(s, 5);
    buf.ack(2);
    expect(buf.after(1)).toBeUndefined(); // frame 2 is gone: the receiver cannot be caught up
    expect(buf.after(4)).toBeUndefined();
    // Neither call changed anything.
    expect([buf.acked, buf.length, buf.bytes]).toEqual([2, 1, 5]);
    expect(buf.after(2)).toEqual(['c']);
  });

  it('ignores a stale acknowledgement and refuses one beyond what was sent', () => {
    const buf = new ReplayBuffer<string>();
    for (const s of ['a', 'b', 'c']) buf.push(s, 1);
    expect(buf.ack(2)).toBe(true);
    expect(buf.ack(1)).toBe(true); // an older acknowledgement overtaken by a newer one: harmless
    expect(buf.ack(0)).toBe(true);
    expect(buf.acked).toBe(2);
    expect(buf.ack(4)).toBe(false);
    expect(buf.ack(1000)).toBe(false);
    expect([buf.acked, buf.length]).toEqual([2, 1]);
    expect(buf.ack(3)).toBe(true);
    expect(buf.length).toBe(0);
  });

  it('holds references, never copies', () => {
    const buf = new ReplayBuffer<Uint8Array>();
    const frame = new Uint8Array([1, 2, 3]);
    buf.push(frame, frame.byteLength);
    expect(buf.after(0)![0]).toBe(frame);
  });

  it('clear() forgets every frame; numbering carries on from where it was', () => {
    const buf = new ReplayBuffer<string>();
    for (const s of ['a', 'b', 'c']) buf.push(s, 7);
    buf.clear();
    expect([buf.sent, buf.acked, buf.length, buf.bytes]).toEqual([3, 3, 0, 0]);
    expect(buf.after(3)).toEqual([]);
    expect(buf.after(0)).toBeUndefined();
    expect(buf.push('d', 1)).toBe(4);
    expect(buf.after(3)).toEqual(['d']);
  });

  it('stays correct across many frames acknowledged in small steps (its storage is compacted as it goes)', () => {
    const buf = new ReplayBuffer<number>();
    let sent = 0;
    let acked = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 257; i++) buf.push(++sent, 3);
      while (acked + 13 <= sent - 50) {
        acked += 13;
        expect(buf.ack(acked)).toBe(true);
      }
      const again = buf.after(acked)!;
      expect(again.length).toBe(sent - acked);
      expect(again[0]).toBe(acked + 1);
      expect(again[again.length - 1]).toBe(sent);
      expect(buf.bytes).toBe((sent - acked) * 3);
    }
  });

  it('keeps order when its ring wraps round and when it grows while wrapped', () => {
    const buf = new ReplayBuffer<{ n: number }>();
    const frames = Array.from({ length: 1000 }, (_, i) => ({ n: i + 1 }));
    let sent = 0;
    let acked = 0;
    // 10 in, 8 acknowledged: the next pushes wrap round a 16-slot ring, then it grows (wrapped).
    for (let i = 0; i < 10; i++) buf.push(frames[sent++]!, 1);
    expect(buf.ack((acked = 8))).toBe(true);
    for (let i = 0; i < 30; i++) buf.push(frames[sent++]!, 1);
    expect(buf.after(acked)!.map((f) => f.n)).toEqual(Array.from({ length: sent - acked }, (_, i) => acked + i + 1));
    // Interleaved pushes and acknowledgements in uneven steps across several growths.
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 13 && sent < frames.length; i++) buf.push(frames[sent++]!, 1);
      acked = Math.min(sent, acked + 7 + (round % 5));
      buf.ack(acked);
      expect(buf.length).toBe(sent - acked);
      expect(buf.bytes).toBe(sent - acked);
      expect(buf.after(acked)!.map((f) => f.n)).toEqual(Array.from({ length: sent - acked }, (_, i) => acked + i + 1));
    }
    buf.ack((acked = sent));
    expect(buf.length).toBe(0);
    expect(buf.after(acked)).toEqual([]);
  });

  it('for any pushes and (possibly stale or impossible) acknowledgements, after(count) is exactly the frames after count, in order', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const buf = new ReplayBuffer<Item>();
        const model = new Model();
        for (const step of ops) {
          switch (step.op) {
            case 'push':
              for (let i = 0; i < step.count; i++) {
                const item = { n: model.sent + 1, size: step.size };
                model.all.push(item);
                expect(buf.push(item, item.size)).toBe(item.n);
              }
              break;
            case 'ack': {
              // Counts are u32: a stale count below 0 wraps to just under 2^32, still "older".
              const count = (model.acked + step.offset) >>> 0;
              const beyond = model.acked + step.offset > model.sent;
              expect(buf.ack(count)).toBe(!beyond);
              if (step.offset > 0 && !beyond) model.acked += step.offset;
              break;
            }
            case 'after': {
              const count = (model.acked + step.offset) >>> 0;
              const held = step.offset >= 0 && model.acked + step.offset <= model.sent;
              const again = buf.after(count);
              if (!held) expect(again).toBeUndefined();
              else {
                model.acked += step.offset;
                expect(again).toEqual(model.kept);
                again!.forEach((item, i) => expect(item).toBe(model.kept[i]));
              }
              break;
            }
            case 'clear':
              buf.clear();
              model.acked = model.sent;
              break;
            case 'trim': // only lets an empty ring go: changes nothing observable
              buf.trim();
              break;
          }
          expectSameState(buf, model);
        }
      }),
    );
  });

  it('treats counts modulo 2^32 (counts are u32 on the wire)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.nat(), fc.nat(), (sent, ackSeed, laterSeed) => {
        const a = new ReplayBuffer<number>();
        const b = new ReplayBuffer<number>();
        for (let i = 1; i <= sent; i++) {
          a.push(i, 1);
          b.push(i, 1);
        }
        const acked = ackSeed % (sent + 1);
        const later = acked + (laterSeed % (sent - acked + 1));
        expect(a.ack(acked)).toBe(b.ack(acked + U32));
        expect(a.acked).toBe(b.acked);
        expect(a.after(later)).toEqual(b.after(later + 2 * U32));
        expect([a.acked, a.bytes]).toEqual([b.acked, b.bytes]);
      }),
    );
  });

  it('splits the u32 circle in halves around the last acknowledgement: behind it is stale, ahead of it beyond what was sent is refused', () => {
    // The counter starts at 0 and only a push moves it, so a buffer whose count actually crosses
    // 2^32 cannot be built through the public API (it would take 2^32 pushes). What is reachable is
    // the wrap seen from just above 0: counts near 2^32 are then "just behind" the acknowledgement.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 0xffff_ffff }), (acked, unacked, count) => {
        const buf = new ReplayBuffer<number>();
        for (let i = 1; i <= acked + unacked; i++) buf.push(i, 1);
        buf.ack(acked);
        const ahead = (count - acked) >>> 0; // how far `count` is ahead of the acknowledgement, modulo 2^32
        const accepted = buf.ack(count);
        if (ahead <= unacked) {
          expect(accepted).toBe(true);
          expect(buf.acked).toBe(count);
        } else {
          // Up to half the circle ahead is a count not yet sent (refused); the other half is behind (stale).
          expect(accepted).toBe(ahead > 0x7fff_ffff);
          expect(buf.acked).toBe(acked);
          expect(buf.after(count)).toBeUndefined();
        }
      }),
    );
    const buf = new ReplayBuffer<number>();
    buf.push(1, 1);
    buf.push(2, 1);
    expect(buf.ack(0xffff_ffff)).toBe(true); // one before 0: stale
    expect(buf.ack(0x8000_0001)).toBe(true); // the farthest count behind
    expect(buf.ack(0x8000_0000)).toBe(false); // the farthest count ahead
    expect(buf.ack(3)).toBe(false);
    expect([buf.acked, buf.length]).toEqual([0, 2]);
  });
});

describe('AckCounter', () => {
  it('asks for an acknowledgement after `every` frames', () => {
    const acks = new AckCounter(3, 1_000_000);
    expect(acks.pending).toBe(false);
    expect(acks.count(10)).toBe(false);
    expect(acks.pending).toBe(true);
    expect(acks.count(10)).toBe(false);
    expect(acks.count(10)).toBe(true);
    expect(acks.take()).toBe(3);
    expect(acks.pending).toBe(false);
    expect(acks.count(10)).toBe(false);
    expect(acks.received).toBe(4);
  });

  it('asks for an acknowledgement after `everyBytes` bytes, whichever comes first', () => {
    const acks = new AckCounter(100, 1000);
    expect(acks.count(600)).toBe(false);
    expect(acks.count(400)).toBe(true);
    expect(acks.take()).toBe(2);
    expect(acks.count(5000)).toBe(true); // one big frame is due at once
  });

  it('acknowledges after a lower byte count once capped, and never raises it', () => {
    const acks = new AckCounter(100, 1000);
    acks.capBytes(5000); // above the option: ignored
    expect(acks.count(600)).toBe(false);
    expect(acks.count(400)).toBe(true);
    acks.take();
    acks.capBytes(250.5);
    expect(acks.count(200)).toBe(false);
    expect(acks.count(50)).toBe(true);
    acks.capBytes(0); // nonsense: ignored
    acks.take();
    expect(acks.count(249)).toBe(false);
    expect(acks.count(1)).toBe(true);
  });

  it('acknowledges after fewer frames once capped by frames, and never raises the count', () => {
    const acks = new AckCounter(64, 1_000_000);
    acks.capFrames(1000); // above the option: ignored
    for (let i = 1; i < 64; i++) expect(acks.count(1)).toBe(false);
    expect(acks.count(1)).toBe(true);
    acks.take();
    acks.capFrames(16.75); // a quarter of a window of 67 frames
    for (let i = 1; i < 16; i++) expect(acks.count(1)).toBe(false);
    expect(acks.count(1)).toBe(true);
    acks.capFrames(0); // nonsense: ignored
    acks.capFrames(Number.NaN);
    acks.take();
    for (let i = 1; i < 16; i++) expect(acks.count(1)).toBe(false);
    expect(acks.count(1)).toBe(true);
  });

  it('keeps asking until the acknowledgement is taken', () => {
    const acks = new AckCounter(2, 1_000_000);
    acks.count(1);
    expect(acks.count(1)).toBe(true);
    expect(acks.count(1)).toBe(true);
    expect(acks.take()).toBe(3);
    expect(acks.take()).toBe(3);
    expect(acks.pending).toBe(false);
  });

  it('for any frame sizes and takes, is due exactly when `every` frames or `everyBytes` bytes arrived since the last take', () => {
    const step = fc.oneof(fc.record({ bytes: fc.integer({ min: 0, max: 5000 }) }), fc.constant('take' as const));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 20_000 }), fc.array(step, { maxLength: 60 }), (every, everyBytes, steps) => {
        const acks = new AckCounter(every, everyBytes);
        let received = 0;
        let frames = 0;
        let bytes = 0;
        for (const s of steps) {
          if (s === 'take') {
            expect(acks.take()).toBe(received);
            frames = 0;
            bytes = 0;
          } else {
            received++;
            frames++;
            bytes += s.bytes;
            expect(acks.count(s.bytes)).toBe(frames >= every || bytes >= everyBytes);
          }
          expect(acks.received).toBe(received);
          expect(acks.pending).toBe(frames > 0);
        }
      }),
    );
  });
});
