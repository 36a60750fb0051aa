import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BackchannelError,
  CONTROL_HEADER_BYTES,
  DATA_HEADER_BYTES,
  DataModes,
  ErrorCode,
  FrameKind,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  encodeDataFrame,
  restampDataFrame,
  parseControlBody,
  validateClientMessage,
} from '@backchannel/protocol';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const header = fc.record({
  mode: fc.constantFrom(...DataModes),
  fin: fc.boolean(),
  streamId: fc.integer({ min: 1, max: 65535 }),
  room: u32,
  sender: u32,
  seq: u32,
});

describe('frame codec', () => {
  it('data frames round-trip every header field and the payload', () => {
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 2048 }), (h, payload) => {
        const frame = encodeDataFrame(h, payload);
        expect(frame.byteLength).toBe(DATA_HEADER_BYTES + payload.byteLength);
        const d = decodeFrame(frame);
        expect(d).toEqual({ kind: FrameKind.Data, ...h, payload });
      }),
    );
  });

  it('restamping the sender changes nothing else', () => {
    fc.assert(
      fc.property(header, u32, fc.uint8Array({ maxLength: 64 }), (h, sender, payload) => {
        const frame = encodeDataFrame(h, payload);
        restampDataFrame(frame, sender);
        expect(decodeFrame(frame)).toEqual({ kind: FrameKind.Data, ...h, sender, payload });
      }),
    );
  });

  it('decoded payloads are views into the input, not copies', () => {
    const frame = encodeDataFrame({ mode: 'unreliable', fin: true, streamId: 7, room: 1, sender: 2, seq: 3 }, new Uint8Array([1, 2, 3]));
    const d = decodeFrame(frame);
    if (d.kind !== FrameKind.Data) throw new Error('expected data');
    expect(d.payload.buffer).toBe(frame.buffer);
  });

  it('control and ack frames round-trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: 'binary' }), (value, text) => {
        const json = JSON.stringify({ t: 'x', v: value, text });
        const frame = encodeControlFrame(json);
        expect(frame.byteLength).toBe(CONTROL_HEADER_BYTES + new TextEncoder().encode(json).byteLength);
        const d = decodeFrame(frame);
        expect(d.kind).toBe(FrameKind.Control);
        if (d.kind !== FrameKind.Control) return;
        expect(parseControlBody(d.body)).toEqual(JSON.parse(json));
      }),
    );
    fc.assert(
      fc.property(u32, (ack) => {
        expect(decodeFrame(encodeAckFrame(ack))).toEqual({ kind: FrameKind.Ack, ack });
      }),
    );
  });

  it('rejects every truncation of a valid frame with bad-frame (never throws anything else)', () => {
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 64 }), (h, payload) => {
        const frame = encodeDataFrame(h, payload);
        for (let len = 0; len < DATA_HEADER_BYTES; len++) {
          expect(() => decodeFrame(frame.subarray(0, len))).toThrow(expect.objectContaining({ code: ErrorCode.BadFrame }));
        }
      }),
    );
    expect(() => decodeFrame(encodeAckFrame(5).subarray(0, 4))).toThrow(expect.objectContaining({ code: ErrorCode.BadFrame }));
  });

  it('garbage either decodes to a well-formed frame or throws bad-frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const f = decodeFrame(bytes);
          expect([FrameKind.Control, FrameKind.Data, FrameKind.Ack, FrameKind.Ping, FrameKind.Pong]).toContain(f.kind);
        } catch (e) {
          expect(e).toBeInstanceOf(BackchannelError);
          expect((e as BackchannelError).code).toBe(ErrorCode.BadFrame);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects other wire versions, reserved flags and stream id 0', () => {
    const good = encodeDataFrame({ mode: 'reliable-bytes', fin: true, streamId: 9, room: 1, sender: 0, seq: 0 }, new Uint8Array(1));
    const v2 = good.slice();
    v2[0] = (2 << 4) | FrameKind.Data;
    expect(() => decodeFrame(v2)).toThrow(/wire version 2/);
    const flags = good.slice();
    flags[1] = 0x80;
    expect(() => decodeFrame(flags)).toThrow(/reserved/);
    const zero = good.slice();
    zero[2] = 0;
    zero[3] = 0;
    expect(() => decodeFrame(zero)).toThrow(/stream id 0/);
  });
});

describe('control message validation', () => {
  it('accepts well-formed requests and names the offending field otherwise', () => {
    expect(validateClientMessage({ t: 'conf.join', id: 1, name: 'room' })).toMatchObject({ t: 'conf.join' });
    const bad = () => validateClientMessage({ t: 'ds.open', id: 4, room: 1, streamId: 70000, mode: 'reliable-message', destination: 'broadcast', priority: 'normal' });
    expect(bad).toThrow(expect.objectContaining({ code: ErrorCode.BadMessage, details: { id: 4 } }));
    expect(bad).toThrow(/streamId/);
    expect(() => validateClientMessage({ t: 'conf.join', id: 1, name: 'room', extra: true })).toThrow(expect.objectContaining({ code: ErrorCode.BadMessage }));
    expect(() => validateClientMessage({ t: 'nope' })).toThrow(/unknown message type/);
  });

  it('never throws anything but bad-message for arbitrary JSON objects', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        try {
          validateClientMessage(obj);
        } catch (e) {
          expect((e as BackchannelError).code).toBe(ErrorCode.BadMessage);
        }
      }),
    );
  });

  it('parseControlBody rejects non-JSON, non-UTF-8 and non-objects with bad-frame', () => {
    expect(() => parseControlBody(new TextEncoder().encode('{nope'))).toThrow(expect.objectContaining({ code: ErrorCode.BadFrame }));
    expect(() => parseControlBody(new Uint8Array([0xc3, 0x28]))).toThrow(expect.objectContaining({ code: ErrorCode.BadFrame }));
    expect(() => parseControlBody(new TextEncoder().encode('[1]'))).toThrow(/JSON object/);
  });
});
