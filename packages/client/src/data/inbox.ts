/**
 * Incoming data of one room: reassembly of fragmented reliable messages, dispatch to receivers by
 * stream id, and the bounded buffer that holds data whose receiver does not exist yet.
 */
import { BackchannelError, ErrorCode, STREAM_ID_RESERVED_MIN, type DataFrame, type DataMode } from '@backchannel/protocol';
import { RecvDataSession, type DataInfo } from './recv-session.js';

interface Held {
  data: Uint8Array;
  info: DataInfo;
  at: number;
}

/** Limits and hooks the inbox needs from its room. */
export interface InboxHost {
  pendingBufferBytes: number;
  pendingBufferMs: number;
  maxMessageBytes: number;
  /** Participant id for a sender handle (0 = the server). */
  participantIdOf(sid: number): string;
  /** Reports lost data (pending overflow/expiry, oversize reassembly) as an error event. */
  reportError(error: BackchannelError): void;
  /** Receives messages on reserved stream ids (built-in protocols), with the sender's handle. */
  onReserved(data: Uint8Array, info: DataInfo, senderSid: number): void;
}

export class Inbox {
  readonly receivers = new Map<number, RecvDataSession>();
  readonly refused = new Set<number>();
  readonly #partial = new Map<string, { parts: Uint8Array[]; bytes: number; dropped: boolean }>();
  readonly #held = new Map<number, Held[]>();
  #heldBytes = 0;
  /** Per stream id, messages lost before a receiver existed (reported to it when made). */
  readonly #lost = new Map<number, number>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: InboxHost) {}

  /** Handles one data frame of this room. */
  onFrame(frame: DataFrame): void {
    if (this.refused.has(frame.streamId)) return;
    let data = frame.payload;
    if (frame.mode === 'reliable-message') {
      const key = `${frame.sender}:${frame.streamId}`;
      const partial = this.#partial.get(key);
      if (!frame.fin || partial) {
        const p = partial ?? { parts: [], bytes: 0, dropped: false };
        if (!partial) this.#partial.set(key, p);
        p.bytes += data.byteLength;
        if (p.bytes > this.host.maxMessageBytes && !p.dropped) {
          p.dropped = true;
          p.parts = [];
          this.host.reportError(new BackchannelError(ErrorCode.MessageTooLarge, `incoming message on stream ${frame.streamId} exceeds ${this.host.maxMessageBytes} bytes; dropped`));
        }
        if (!p.dropped) p.parts.push(data.slice()); // copy: the frame buffer is not ours to keep
        if (!frame.fin) return;
        this.#partial.delete(key);
        if (p.dropped) return;
        data = concat(p.parts, p.bytes);
      }
    }
    const info = { from: this.host.participantIdOf(frame.sender), seq: frame.seq, streamId: frame.streamId, mode: frame.mode };
    if (frame.streamId >= STREAM_ID_RESERVED_MIN) this.host.onReserved(data, info, frame.sender);
    else this.deliver(data, info);
  }

  /** Delivers to the receiver of `info.streamId`, or holds it until one is made. */
  deliver(data: Uint8Array, info: DataInfo): void {
    const rx = this.receivers.get(info.streamId);
    if (rx) return rx._deliver(data, info);
    if (this.#heldBytes + data.byteLength > this.host.pendingBufferBytes) {
      this.#lose(info.streamId, info.mode, info.from, 1, `the pending buffer (${this.host.pendingBufferBytes} bytes) is full`);
      return;
    }
    let list = this.#held.get(info.streamId);
    if (!list) this.#held.set(info.streamId, (list = []));
    list.push({ data: data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice(), info, at: Date.now() });
    this.#heldBytes += data.byteLength;
    this.#expiryTimer ??= setTimeout(() => this.#expire(), this.host.pendingBufferMs);
  }

  /** Registers a receiver and hands it everything held for its stream id, in order. */
  attach(rx: RecvDataSession): void {
    if (this.receivers.has(rx.streamId)) throw new BackchannelError(ErrorCode.ReceiverExists, `a receiver for stream ${rx.streamId} already exists`);
    this.receivers.set(rx.streamId, rx);
    this.refused.delete(rx.streamId);
    const lost = this.#lost.get(rx.streamId);
    if (lost) rx._countDropped(0, lost);
    this.#lost.delete(rx.streamId);
    const held = this.#held.get(rx.streamId);
    if (!held) return;
    this.#held.delete(rx.streamId);
    for (const h of held) {
      this.#heldBytes -= h.data.byteLength;
      rx._deliver(h.data, h.info);
    }
  }

  /** Forgets a half-reassembled message of a sender session that closed. */
  dropPartial(senderSid: number, streamId: number): void {
    this.#partial.delete(`${senderSid}:${streamId}`);
  }

  /** Drops held data of a refused stream id. */
  refuse(streamId: number): void {
    this.refused.add(streamId);
    for (const h of this.#held.get(streamId) ?? []) this.#heldBytes -= h.data.byteLength;
    this.#held.delete(streamId);
  }

  /** Ends every receiver (room gone). */
  close(): void {
    clearTimeout(this.#expiryTimer);
    for (const rx of this.receivers.values()) rx._end();
    this.receivers.clear();
    this.#held.clear();
    this.#heldBytes = 0;
  }

  #expire(): void {
    this.#expiryTimer = undefined;
    const cutoff = Date.now() - this.host.pendingBufferMs;
    for (const [streamId, list] of this.#held) {
      let n = 0;
      while (n < list.length && list[n]!.at <= cutoff) n++;
      if (n === 0) continue;
      const gone = list.splice(0, n);
      for (const h of gone) this.#heldBytes -= h.data.byteLength;
      if (list.length === 0) this.#held.delete(streamId);
      this.#lose(streamId, gone[0]!.info.mode, gone[0]!.info.from, n, `no receiver was made within ${this.host.pendingBufferMs} ms`);
    }
    if (this.#held.size > 0) this.#expiryTimer = setTimeout(() => this.#expire(), Math.max(10, this.host.pendingBufferMs / 4));
  }

  #lose(streamId: number, mode: DataMode, from: string, count: number, why: string): void {
    this.#lost.set(streamId, (this.#lost.get(streamId) ?? 0) + count);
    if (mode === 'unreliable') return; // Unreliable data may be dropped; it is counted, not an error.
    this.host.reportError(
      new BackchannelError(ErrorCode.ReceiverBufferOverflow, `${count} message(s) on stream ${streamId} from ${from} were dropped: ${why}; make the receiver sooner`, {
        details: { streamId, from, count },
      }),
    );
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
