/**
 * Binary frame codec. One WebSocket message carries exactly one frame. Layouts are documented in
 * PROTOCOL.md; every multi-byte integer is big-endian. Decoders treat input as hostile: any frame
 * that is truncated, has an unknown version/kind or reserved bits set is rejected with `bad-frame`.
 */
import { BackchannelError, ErrorCode } from './errors.js';

/** Version of the binary framing, carried in the high nibble of every frame's first byte. */
export const WIRE_VERSION = 1;

/** Frame kinds (low nibble of byte 0). */
export const FrameKind = { Control: 1, Data: 2, Ack: 3, Ping: 4, Pong: 5 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Delivery modes of a data session, as written in a data frame's flags. */
export const DataModes = ['reliable-message', 'reliable-bytes', 'unreliable'] as const;
/** A data session's delivery mode. */
export type DataMode = (typeof DataModes)[number];

/** Size in bytes of a data frame's fixed header. */
export const DATA_HEADER_BYTES = 16;
/** Size in bytes of a control frame's fixed header (before the JSON body). */
export const CONTROL_HEADER_BYTES = 1;
/** Size in bytes of an acknowledgement frame. */
export const ACK_FRAME_BYTES = 5;
/** Size in bytes of a heartbeat (ping or pong) frame. */
export const HEARTBEAT_FRAME_BYTES = 1;

const FLAG_MODE_MASK = 0b0000_0011;
const FLAG_FIN = 0b0000_0100;
const FLAG_RESERVED = 0b1111_1000;

/** The fields of a data frame's header. */
export interface DataHeader {
  /** Delivery mode of the session the frame belongs to. */
  mode: DataMode;
  /** Last fragment of a message (always true for a message that fits one frame). */
  fin: boolean;
  /** Stream id, 1–65535. */
  streamId: number;
  /** Server-wide room number (from the join/accept reply). */
  room: number;
  /** Sender's numeric participant handle; 0 in frames a client sends. */
  sender: number;
  /** Per-session message sequence number (u32, wraps), the same for all fragments of one send(). */
  seq: number;
}

/** A decoded data frame; `payload` is a view into the received buffer, not a copy. */
export interface DataFrame extends DataHeader {
  kind: typeof FrameKind.Data;
  payload: Uint8Array;
}

/** A decoded control frame; `body` is the UTF-8 JSON of the message (a view). */
export interface ControlFrame {
  kind: typeof FrameKind.Control;
  body: Uint8Array;
}

/** A decoded acknowledgement frame: the first `ack` sequenced frames have been received. */
export interface AckFrame {
  kind: typeof FrameKind.Ack;
  ack: number;
}

/** A decoded heartbeat frame: a ping (answered at once with a pong) or a pong. */
export interface HeartbeatFrame {
  kind: typeof FrameKind.Ping | typeof FrameKind.Pong;
}

/** Any decoded frame. */
export type Frame = DataFrame | ControlFrame | AckFrame | HeartbeatFrame;

const encoder = new TextEncoder();
const zeroed = (size: number) => new Uint8Array(size);

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

// Byte arithmetic for the per-frame fields: no DataView allocation on the hot path.
function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}
function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function get32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Writes a data header into `target` at `offset` (which must have DATA_HEADER_BYTES free). */
export function writeDataHeader(target: Uint8Array, offset: number, h: DataHeader): void {
  const modeIndex = DataModes.indexOf(h.mode);
  if (modeIndex < 0) throw new BackchannelError(ErrorCode.InvalidArgument, `unknown data mode "${String(h.mode)}"`);
  target[offset] = (WIRE_VERSION << 4) | FrameKind.Data;
  target[offset + 1] = modeIndex | (h.fin ? FLAG_FIN : 0);
  put16(target, offset + 2, h.streamId);
  put32(target, offset + 4, h.room);
  put32(target, offset + 8, h.sender);
  put32(target, offset + 12, h.seq >>> 0);
}

/**
 * Encodes a data frame: header then payload, in one freshly allocated buffer (from `alloc`, which
 * may skip zero-filling, e.g. Node's `Buffer.allocUnsafe`: every byte is written).
 */
export function encodeDataFrame(h: DataHeader, payload: Uint8Array, alloc: (size: number) => Uint8Array = zeroed): Uint8Array {
  const out = alloc(DATA_HEADER_BYTES + payload.byteLength);
  writeDataHeader(out, 0, h);
  out.set(payload, DATA_HEADER_BYTES);
  return out;
}

/**
 * Re-stamps the sender field of an encoded data frame in place. The server uses this to forward
 * one received frame, unchanged otherwise, to every receiver: no re-encoding, no copy.
 */
export function restampDataFrame(frame: Uint8Array, sender: number): void {
  put32(frame, 8, sender);
}

/** UTF-8 length of a string (lone surrogates count as U+FFFD, as TextEncoder writes them). */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

/**
 * Encodes a control frame from an already serialised JSON string, into a buffer of exactly its
 * size (frames may sit in socket buffers; a room's broadcast shares one).
 */
export function encodeControlFrame(json: string): Uint8Array {
  if (json.length > LONG_CONTROL_CHARS) {
    // Long messages (room snapshots, member pages): the native encoder and one copy beat
    // measuring the string in JS first.
    const body = encoder.encode(json);
    const out = new Uint8Array(CONTROL_HEADER_BYTES + body.byteLength);
    out[0] = (WIRE_VERSION << 4) | FrameKind.Control;
    out.set(body, CONTROL_HEADER_BYTES);
    return out;
  }
  const out = new Uint8Array(CONTROL_HEADER_BYTES + utf8Length(json));
  out[0] = (WIRE_VERSION << 4) | FrameKind.Control;
  encoder.encodeInto(json, out.subarray(CONTROL_HEADER_BYTES));
  return out;
}

/** Above this many UTF-16 units a control message is encoded natively and copied behind its header. */
const LONG_CONTROL_CHARS = 1024;

/** Encodes an acknowledgement frame. */
export function encodeAckFrame(ack: number): Uint8Array {
  const out = new Uint8Array(ACK_FRAME_BYTES);
  const dv = view(out);
  dv.setUint8(0, (WIRE_VERSION << 4) | FrameKind.Ack);
  dv.setUint32(1, ack >>> 0);
  return out;
}

/** The ping frame (one byte; immutable, shared). */
export const PING_FRAME: Uint8Array = Uint8Array.of((WIRE_VERSION << 4) | FrameKind.Ping);
/** The pong frame (one byte; immutable, shared). */
export const PONG_FRAME: Uint8Array = Uint8Array.of((WIRE_VERSION << 4) | FrameKind.Pong);

function badFrame(message: string): BackchannelError {
  return new BackchannelError(ErrorCode.BadFrame, message);
}

/**
 * Decodes one frame. Never reads out of bounds; throws `bad-frame` for anything that is not a
 * well-formed frame of this wire version.
 */
export function decodeFrame(buf: Uint8Array): Frame {
  if (!(buf instanceof Uint8Array)) throw badFrame('frame must be binary');
  if (buf.byteLength < 1) throw badFrame('empty frame');
  const first = buf[0]!;
  const version = first >> 4;
  if (version !== WIRE_VERSION) throw badFrame(`unsupported wire version ${version} (expected ${WIRE_VERSION})`);
  const kind = first & 0x0f;
  switch (kind) {
    case FrameKind.Data: {
      if (buf.byteLength < DATA_HEADER_BYTES) throw badFrame(`data frame shorter than its ${DATA_HEADER_BYTES}-byte header`);
      const flags = buf[1]!;
      if (flags & FLAG_RESERVED) throw badFrame('data frame has reserved flag bits set');
      const mode = DataModes[flags & FLAG_MODE_MASK];
      if (mode === undefined) throw badFrame('data frame has an unknown mode');
      const streamId = get16(buf, 2);
      if (streamId === 0) throw badFrame('data frame has stream id 0');
      return {
        kind: FrameKind.Data,
        mode,
        fin: (flags & FLAG_FIN) !== 0,
        streamId,
        room: get32(buf, 4),
        sender: get32(buf, 8),
        seq: get32(buf, 12),
        payload: buf.subarray(DATA_HEADER_BYTES),
      };
    }
    case FrameKind.Control: {
      if (buf.byteLength < CONTROL_HEADER_BYTES + 2) throw badFrame('control frame too short');
      return { kind: FrameKind.Control, body: buf.subarray(CONTROL_HEADER_BYTES) };
    }
    case FrameKind.Ack: {
      if (buf.byteLength !== ACK_FRAME_BYTES) throw badFrame(`ack frame must be ${ACK_FRAME_BYTES} bytes`);
      return { kind: FrameKind.Ack, ack: get32(buf, 1) };
    }
    case FrameKind.Ping:
    case FrameKind.Pong: {
      if (buf.byteLength !== HEARTBEAT_FRAME_BYTES) throw badFrame(`heartbeat frame must be ${HEARTBEAT_FRAME_BYTES} byte`);
      return { kind };
    }
    default:
      throw badFrame(`unknown frame kind ${kind}`);
  }
}
