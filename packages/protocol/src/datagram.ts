/**
 * Datagrams of the WebRTC path (docs/webrtc.md, PROTOCOL.md "Datagrams"). `unreliable` data frames
 * travel over an unordered data channel that never retransmits. A frame that fits one datagram is
 * sent as it is; a larger one is cut into fragments that share a message id, and the receiver puts
 * a message back together only when every fragment arrived: one lost fragment drops the whole
 * message (counted), never a part of it. Kept below one network packet, so SCTP itself never
 * fragments (and never holds a half message).
 */
import { BackchannelError, ErrorCode } from './errors.js';
import { WIRE_VERSION } from './frame.js';

/** Kind (low nibble of byte 0) of a fragment datagram; only ever seen on the datagram path. */
export const DATAGRAM_FRAGMENT_KIND = 6;
/** Bytes of a fragment's header: kind, index, count, reserved, message id (u32). */
export const FRAGMENT_HEADER_BYTES = 8;
/**
 * Largest datagram either side sends, bytes: one SCTP chunk within a 1 280-byte path MTU (IPv6's
 * minimum) after the IP, UDP, DTLS and SCTP headers.
 */
export const DATAGRAM_BYTES = 1_150;
/** Most fragments one message may have (so a message is at most ~290 KB). */
export const MAX_FRAGMENTS = 255;

const FRAGMENT_FIRST = (WIRE_VERSION << 4) | DATAGRAM_FRAGMENT_KIND;

/**
 * Cuts `frame` (an encoded data frame) into datagrams of at most `max` bytes: the frame itself if it
 * fits, else fragments tagged with `messageId`. Throws `message-too-large` past {@link MAX_FRAGMENTS}.
 */
export function toDatagrams(frame: Uint8Array, messageId: number, max = DATAGRAM_BYTES): Uint8Array[] {
  if (frame.byteLength <= max) return [frame];
  const room = max - FRAGMENT_HEADER_BYTES;
  const count = Math.ceil(frame.byteLength / room);
  if (count > MAX_FRAGMENTS) throw new BackchannelError(ErrorCode.MessageTooLarge, `a ${frame.byteLength}-byte frame needs more than ${MAX_FRAGMENTS} datagrams`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const part = frame.subarray(i * room, Math.min(frame.byteLength, (i + 1) * room));
    const d = new Uint8Array(FRAGMENT_HEADER_BYTES + part.byteLength);
    d[0] = FRAGMENT_FIRST;
    d[1] = i;
    d[2] = count;
    d[4] = messageId >>> 24;
    d[5] = messageId >>> 16;
    d[6] = messageId >>> 8;
    d[7] = messageId;
    d.set(part, FRAGMENT_HEADER_BYTES);
    out.push(d);
  }
  return out;
}

/** Whether `datagram` is a fragment (else it should be a whole frame, for `decodeFrame`). */
export function isFragment(datagram: Uint8Array): boolean {
  return datagram.byteLength > 0 && datagram[0] === FRAGMENT_FIRST;
}

interface PartialMessage {
  parts: (Uint8Array | undefined)[];
  have: number;
  bytes: number;
  at: number;
}

/** Bounds of a {@link Reassembler}. */
export interface ReassemblerOptions {
  /** Bytes all partial messages may hold together; the oldest are dropped beyond it. Default 512 KiB. */
  maxBytes?: number;
  /** A partial message older than this is dropped, ms. Default 1 000. */
  timeoutMs?: number;
}

/**
 * Puts fragmented messages back together, within bounds: a message with a missing fragment is
 * dropped whole when it times out or is pushed out by newer ones, and counted in `dropped`.
 * Fragments are copied out of the datagram, so the caller may reuse its buffers.
 */
export class Reassembler {
  readonly #pending = new Map<number, PartialMessage>();
  /** Ids of the last messages completed, so that a late duplicate fragment starts nothing new. */
  readonly #completed = new Set<number>();
  readonly #maxBytes: number;
  readonly #timeoutMs: number;
  #bytes = 0;
  /** Messages dropped because a fragment never came (or they did not fit the bounds). */
  dropped = 0;

  constructor(options: ReassemblerOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 512 * 1024;
    this.#timeoutMs = options.timeoutMs ?? 1_000;
  }

  /** Bytes held by partial messages. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Takes one fragment; returns the whole frame once its last missing fragment arrived. Throws
   * `bad-frame` for a malformed fragment (the caller counts it like any malformed frame).
   */
  push(datagram: Uint8Array, now = Date.now()): Uint8Array | undefined {
    if (datagram.byteLength <= FRAGMENT_HEADER_BYTES || datagram[0] !== FRAGMENT_FIRST || datagram[3] !== 0) {
      throw new BackchannelError(ErrorCode.BadFrame, 'malformed datagram fragment');
    }
    const index = datagram[1]!;
    const count = datagram[2]!;
    if (count < 2 || index >= count) throw new BackchannelError(ErrorCode.BadFrame, `datagram fragment ${index} of ${count}`);
    const id = ((datagram[4]! << 24) | (datagram[5]! << 16) | (datagram[6]! << 8) | datagram[7]!) >>> 0;
    this.#expire(now);
    if (this.#completed.has(id)) return undefined; // a late duplicate
    let p = this.#pending.get(id);
    if (!p) {
      p = { parts: new Array<Uint8Array | undefined>(count), have: 0, bytes: 0, at: now };
      this.#pending.set(id, p);
    } else if (p.parts.length !== count) {
      this.#drop(id, p);
      throw new BackchannelError(ErrorCode.BadFrame, `datagram fragments of message ${id} disagree on their count`);
    }
    if (p.parts[index]) return undefined; // a duplicate
    const part = datagram.slice(FRAGMENT_HEADER_BYTES);
    p.parts[index] = part;
    p.have++;
    p.bytes += part.byteLength;
    this.#bytes += part.byteLength;
    if (p.have === count) {
      this.#pending.delete(id);
      this.#completed.add(id);
      if (this.#completed.size > 256) this.#completed.delete(this.#completed.values().next().value!);
      this.#bytes -= p.bytes;
      const out = new Uint8Array(p.bytes);
      let off = 0;
      for (const q of p.parts) {
        out.set(q!, off);
        off += q!.byteLength;
      }
      return out;
    }
    // Over the byte bound: the oldest partial messages go first (Map keeps insertion order).
    for (const [oid, op] of this.#pending) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#drop(oid, op);
    }
    return undefined;
  }

  /** Drops partial messages older than the timeout. */
  #expire(now: number): void {
    for (const [id, p] of this.#pending) {
      if (now - p.at < this.#timeoutMs) break; // insertion order is age order
      this.#drop(id, p);
    }
  }

  #drop(id: number, p: PartialMessage): void {
    this.#pending.delete(id);
    this.#bytes -= p.bytes;
    this.dropped++;
  }

  /** Forgets every partial message (without counting them). */
  clear(): void {
    this.#pending.clear();
    this.#completed.clear();
    this.#bytes = 0;
  }
}
