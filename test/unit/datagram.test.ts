/** The datagram codec of the WebRTC path: fragmentation and bounded, whole-message reassembly. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BackchannelError, DATAGRAM_BYTES, ErrorCode, MAX_FRAGMENTS, Reassembler, isFragment, toDatagrams } from '@backchannel/protocol';

const frame = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe('datagram codec', () => {
  it('sends a frame that fits as it is, and cuts a larger one into fragments of at most one datagram', () => {
    const small = frame(DATAGRAM_BYTES);
    expect(toDatagrams(small, 1)).toEqual([small]);
    const parts = toDatagrams(frame(5_000), 2);
    expect(parts.length).toBe(5);
    expect(parts.every((p) => isFragment(p) && p.byteLength <= DATAGRAM_BYTES)).toBe(true);
    expect(() => toDatagrams(frame(DATAGRAM_BYTES * (MAX_FRAGMENTS + 1)), 3)).toThrow(BackchannelError);
  });

  it('puts any fragmented frame back together whatever the order, duplicates included', () => {
    fc.assert(
      fc.property(fc.integer({ min: DATAGRAM_BYTES + 1, max: 40_000 }), fc.integer({ min: 0, max: 0xffff_ffff }), fc.array(fc.nat(), { maxLength: 64 }), (size, id, order) => {
        const original = frame(size, id & 0xff);
        const parts = toDatagrams(original, id);
        // A shuffle of the fragments with some of them repeated.
        const sequence = [...parts.map((_, i) => i), ...order.map((k) => k % parts.length)].sort((a, b) => ((a * 31 + id) % 17) - ((b * 31 + id) % 17));
        const r = new Reassembler();
        const out: Uint8Array[] = [];
        for (const i of sequence) {
          const whole = r.push(parts[i]!, 0);
          if (whole) out.push(whole);
        }
        expect(out.length).toBe(1);
        expect(out[0]).toEqual(original);
        expect(r.dropped).toBe(0);
        expect(r.bytes).toBe(0);
      }),
    );
  });

  it('drops a message missing a fragment whole, counted, when it times out or newer ones push it out', () => {
    const r = new Reassembler({ timeoutMs: 1_000, maxBytes: 10_000 });
    const a = toDatagrams(frame(3_000), 10);
    expect(r.push(a[0]!, 0)).toBeUndefined();
    expect(r.push(a[1]!, 0)).toBeUndefined(); // a[2] never comes
    const b = toDatagrams(frame(3_000), 11);
    for (const p of b.slice(0, -1)) expect(r.push(p, 2_000)).toBeUndefined(); // a expires
    expect(r.dropped).toBe(1);
    expect(r.push(b.at(-1)!, 2_000)).toEqual(frame(3_000));
    // Over the byte bound, the oldest partial messages go first.
    for (let id = 20; id < 30; id++) r.push(toDatagrams(frame(3_000), id)[0]!, 3_000);
    expect(r.bytes).toBeLessThanOrEqual(10_000);
    expect(r.dropped).toBeGreaterThan(1);
  });

  it('refuses malformed fragments with bad-frame', () => {
    const r = new Reassembler();
    const bad = (d: Uint8Array) => {
      try {
        r.push(d);
        return 'accepted';
      } catch (error) {
        return (error as BackchannelError).code;
      }
    };
    const p = toDatagrams(frame(3_000), 5)[0]!;
    expect(bad(p.subarray(0, 8))).toBe(ErrorCode.BadFrame);
    expect(bad(Uint8Array.of(0x16, 3, 2, 0, 0, 0, 0, 1, 9))).toBe(ErrorCode.BadFrame); // index ≥ count
    expect(bad(Uint8Array.of(0x16, 0, 1, 0, 0, 0, 0, 1, 9))).toBe(ErrorCode.BadFrame); // a count of 1
    expect(bad(Uint8Array.of(0x16, 0, 2, 7, 0, 0, 0, 1, 9))).toBe(ErrorCode.BadFrame); // reserved byte
    r.push(Uint8Array.of(0x16, 0, 2, 0, 0, 0, 0, 9, 9));
    expect(bad(Uint8Array.of(0x16, 1, 3, 0, 0, 0, 0, 9, 9))).toBe(ErrorCode.BadFrame); // counts disagree
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const out = bad(bytes);
        expect(['accepted', ErrorCode.BadFrame]).toContain(out);
      }),
    );
  });
});
