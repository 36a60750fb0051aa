/**
 * Incoming data of one room: reassembly of fragmented reliable messages (whole messages only,
 * within a per-connection memory budget), dispatch to receivers by sender and stream id, and the
 * bounded buffer that holds data whose receiver does not exist yet.
 */
import { BackchannelError, ErrorCode, STREAM_ID_RESERVED_MIN, type DataFrame, type DataMode } from '@backchannel/protocol';
import { itemCost } from './receive-gate.js';
import type { DataInfo, RecvDataSession } from './recv-session.js';

interface Held {
  data: Uint8Array;
  info: DataInfo;
  at: number;
}

/** A `reliable-message` message being reassembled from its fragments. */
interface Partial {
  /** Sequence number of the message: every fragment of one `send()` carries it. */
  seq: number;
  parts: Uint8Array[];
  /** Payload bytes so far. */
  bytes: number;
  /** What it holds against the connection's reassembly budget (payload plus per-fragment overhead). */
  cost: number;
  /** Given up (too large, over the budget, or not the start of a message): later fragments are skipped. */
  dropped: boolean;
}

/** Per sender session: the message in reassembly and the last message that ended. */
interface Assembly {
  partial: Partial | undefined;
  /** Sequence number of the last message whose last fragment arrived. */
  lastSeq: number | undefined;
}

/** Memory all rooms of one connection may hold in partly reassembled messages. */
export interface ReassemblyBudget {
  bytes: number;
  readonly max: number;
}

/** Limits and hooks the inbox needs from its room. */
export interface InboxHost {
  pendingBufferBytes: number;
  pendingBufferMs: number;
  maxMessageBytes: number;
  /** Shared by every room of the connection. */
  reassembly: ReassemblyBudget;
  /** Participant id for a sender handle (0 = the server). */
  participantIdOf(sid: number): string;
  /** Reports lost data (pending overflow/expiry, incomplete or oversize reassembly) as an error event. */
  reportError(error: BackchannelError): void;
  /** Receives messages on reserved stream ids (built-in protocols), with the sender's handle. */
  onReserved(data: Uint8Array, info: DataInfo, senderSid: number): void;
}

const senderKey = (from: string, streamId: number) => `${streamId}:${from}`;

export class Inbox {
  /** Receivers for every sender of a stream id (without `from`). */
  readonly #anySender = new Map<number, RecvDataSession>();
  /** Receivers of one sender's session (`from`), by stream id and participant id. */
  readonly #bySender = new Map<string, RecvDataSession>();
  /** Senders whose flow the app stopped by closing their own receiver. */
  readonly #stopped = new Set<string>();
  readonly refused = new Set<number>();
  readonly #assembly = new Map<number, Assembly>();
  readonly #held = new Map<number, Held[]>();
  #heldBytes = 0;
  /** Per stream id and sender, messages lost before a receiver existed (reported to it when made). */
  readonly #lost = new Map<number, Map<string, number>>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: InboxHost) {}

  /** Every receiver, of every stream id. */
  get receivers(): RecvDataSession[] {
    return [...this.#anySender.values(), ...this.#bySender.values()];
  }

  /** The receiver that gets `from`'s data on `streamId`, if any. */
  receiverFor(streamId: number, from: string): RecvDataSession | undefined {
    const key = senderKey(from, streamId);
    return this.#bySender.get(key) ?? (this.#stopped.has(key) ? undefined : this.#anySender.get(streamId));
  }

  /** Handles one data frame of this room. */
  onFrame(frame: DataFrame): void {
    if (this.refused.has(frame.streamId)) return;
    let data: Uint8Array | undefined = frame.payload;
    if (frame.mode === 'reliable-message') {
      data = this.#reassemble(frame);
      if (!data) return;
    }
    const info = { from: this.host.participantIdOf(frame.sender), seq: frame.seq, streamId: frame.streamId, mode: frame.mode };
    if (frame.streamId >= STREAM_ID_RESERVED_MIN) this.host.onReserved(data, info, frame.sender);
    else this.deliver(data, info);
  }

  /**
   * Adds a fragment to its message; returns the whole message once its last fragment is in. A
   * receiver only ever gets whole messages: a fragment of another message while one is in
   * reassembly, or a continuation of a message that already ended, means a message arrived
   * incomplete; it is dropped and reported (`message-incomplete`), never delivered in part.
   */
  #reassemble(frame: DataFrame): Uint8Array | undefined {
    const key = frame.sender * 65536 + frame.streamId;
    let a = this.#assembly.get(key);
    if (!a) this.#assembly.set(key, (a = { partial: undefined, lastSeq: undefined }));
    let p = a.partial;
    if (p && p.seq !== frame.seq) {
      // The message in reassembly lost its tail: its last fragment never came.
      this.#release(p);
      if (!p.dropped) this.#incomplete(frame, p.seq, `message ${p.seq} on stream ${frame.streamId} was followed by message ${frame.seq} before its last fragment`);
      a.partial = p = undefined;
    }
    if (!p) {
      if (a.lastSeq === frame.seq) {
        // A fragment of a message whose last fragment already came: a continuation without a start.
        this.#incomplete(frame, frame.seq, `a fragment of message ${frame.seq} on stream ${frame.streamId} arrived after its last fragment`);
        if (!frame.fin) a.partial = { seq: frame.seq, parts: [], bytes: 0, cost: 0, dropped: true };
        return undefined;
      }
      if (frame.fin) {
        a.lastSeq = frame.seq;
        return frame.payload; // a whole message in one frame: no copy, no reassembly
      }
      a.partial = p = { seq: frame.seq, parts: [], bytes: 0, cost: 0, dropped: false };
    }
    const data = frame.payload;
    if (!p.dropped) {
      p.bytes += data.byteLength;
      const limit = this.host.maxMessageBytes;
      const budget = this.host.reassembly;
      const cost = data.byteLength === 0 ? 0 : itemCost(data.byteLength);
      if (p.bytes > limit) {
        this.#release(p);
        p.dropped = true;
        this.host.reportError(
          new BackchannelError(ErrorCode.MessageTooLarge, `incoming message on stream ${frame.streamId} exceeds ${limit} bytes; dropped`, {
            details: { streamId: frame.streamId, from: this.host.participantIdOf(frame.sender), seq: frame.seq, limit },
          }),
        );
      } else if (budget.bytes + cost > budget.max) {
        this.#release(p);
        p.dropped = true;
        this.host.reportError(
          new BackchannelError(
            ErrorCode.ReassemblyOverflow,
            `a message on stream ${frame.streamId} from ${this.host.participantIdOf(frame.sender)} was dropped: messages in reassembly would exceed maxReassemblyBytes (${budget.max})`,
            { details: { streamId: frame.streamId, from: this.host.participantIdOf(frame.sender), seq: frame.seq, limit: budget.max } },
          ),
        );
      } else if (cost > 0) {
        p.parts.push(data.slice()); // copy: the frame buffer is not ours to keep
        p.cost += cost;
        budget.bytes += cost;
      }
    }
    if (!frame.fin) return undefined;
    a.partial = undefined;
    a.lastSeq = frame.seq;
    if (p.dropped) return undefined;
    const whole = concat(p.parts, p.bytes);
    this.#release(p);
    return whole;
  }

  #release(p: Partial): void {
    this.host.reassembly.bytes -= p.cost;
    p.cost = 0;
    p.parts = [];
  }

  #incomplete(frame: DataFrame, seq: number, why: string): void {
    const from = this.host.participantIdOf(frame.sender);
    this.host.reportError(
      new BackchannelError(ErrorCode.MessageIncomplete, `${why} (from ${from}); the incomplete message was dropped`, {
        details: { streamId: frame.streamId, from, seq },
      }),
    );
  }

  /** Delivers to the receiver of `info.from` on `info.streamId`, or holds it until one is made. */
  deliver(data: Uint8Array, info: DataInfo): void {
    // Per-sender receivers and stopped senders are rare: no key is built for each message without them.
    if (this.#bySender.size > 0 || this.#stopped.size > 0) {
      const key = senderKey(info.from, info.streamId);
      const own = this.#bySender.get(key);
      if (own) return own._deliver(data, info);
      if (this.#stopped.has(key)) return; // the app stopped this sender's flow
    }
    const rx = this.#anySender.get(info.streamId);
    if (rx) return rx._deliver(data, info);
    const cost = itemCost(data.byteLength);
    if (this.#heldBytes + cost > this.host.pendingBufferBytes) {
      this.#lose(info.streamId, info.mode, info.from, 1, `the pending buffer (${this.host.pendingBufferBytes} bytes) is full`);
      return;
    }
    let list = this.#held.get(info.streamId);
    if (!list) this.#held.set(info.streamId, (list = []));
    list.push({ data: data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice(), info, at: Date.now() });
    this.#heldBytes += cost;
    this.#expiryTimer ??= setTimeout(() => this.#expire(), this.host.pendingBufferMs);
  }

  /** Registers a receiver and hands it everything held for it, in order. */
  attach(rx: RecvDataSession): void {
    const from = rx.from;
    if (from === undefined) {
      if (this.#anySender.has(rx.streamId)) throw new BackchannelError(ErrorCode.ReceiverExists, `a receiver for stream ${rx.streamId} already exists`);
      this.#anySender.set(rx.streamId, rx);
    } else {
      const key = senderKey(from, rx.streamId);
      if (this.#bySender.has(key)) throw new BackchannelError(ErrorCode.ReceiverExists, `a receiver for stream ${rx.streamId} from ${from} already exists`);
      this.#bySender.set(key, rx);
      this.#stopped.delete(key);
    }
    this.refused.delete(rx.streamId);
    const lost = this.#lost.get(rx.streamId);
    if (lost) {
      let n = 0;
      for (const [sender, count] of lost) {
        if (from !== undefined && sender !== from) continue;
        n += count;
        lost.delete(sender);
      }
      if (lost.size === 0) this.#lost.delete(rx.streamId);
      if (n) rx._countDropped(0, n);
    }
    const held = this.#held.get(rx.streamId);
    if (!held) return;
    const mine = from === undefined ? held : held.filter((h) => h.info.from === from);
    const rest = from === undefined ? [] : held.filter((h) => h.info.from !== from);
    if (rest.length > 0) this.#held.set(rx.streamId, rest);
    else this.#held.delete(rx.streamId);
    for (const h of mine) {
      this.#heldBytes -= itemCost(h.data.byteLength);
      rx._deliver(h.data, h.info);
    }
  }

  /** Unregisters a receiver that the app closed. */
  detach(rx: RecvDataSession): void {
    if (rx.from === undefined) {
      if (this.#anySender.get(rx.streamId) === rx) this.#anySender.delete(rx.streamId);
      return;
    }
    const key = senderKey(rx.from, rx.streamId);
    if (this.#bySender.get(key) !== rx) return;
    this.#bySender.delete(key);
    this.#stopped.add(key);
  }

  /**
   * A sender's session closed: forgets its half-reassembled message (reported: it cannot complete)
   * and its message numbering (a new session on the stream id starts again at 0).
   */
  sessionClosed(senderSid: number, streamId: number): void {
    const key = senderSid * 65536 + streamId;
    const a = this.#assembly.get(key);
    if (!a) return;
    this.#assembly.delete(key);
    if (a.partial) this.#release(a.partial);
  }

  /** A sender left the room: its flows are over. */
  senderLeft(from: string): void {
    for (const key of this.#stopped) if (key.endsWith(`:${from}`)) this.#stopped.delete(key);
  }

  /** Refuses a stream id: its receivers end, its held data and partial messages are dropped. */
  refuse(streamId: number): void {
    this.refused.add(streamId);
    const rx = this.#anySender.get(streamId);
    this.#anySender.delete(streamId);
    rx?._end();
    const prefix = `${streamId}:`;
    for (const [key, r] of this.#bySender) {
      if (!key.startsWith(prefix)) continue;
      this.#bySender.delete(key);
      r._end();
    }
    for (const key of this.#stopped) if (key.startsWith(prefix)) this.#stopped.delete(key);
    for (const h of this.#held.get(streamId) ?? []) this.#heldBytes -= itemCost(h.data.byteLength);
    this.#held.delete(streamId);
    for (const [key, a] of this.#assembly) {
      if (key % 65536 !== streamId) continue;
      if (a.partial) this.#release(a.partial);
      a.partial = undefined;
    }
  }

  /** Ends every receiver (room gone) and releases what reassembly held. */
  close(): void {
    clearTimeout(this.#expiryTimer);
    for (const rx of this.receivers) rx._end();
    this.#anySender.clear();
    this.#bySender.clear();
    this.#held.clear();
    this.#heldBytes = 0;
    for (const a of this.#assembly.values()) if (a.partial) this.#release(a.partial);
    this.#assembly.clear();
  }

  #expire(): void {
    this.#expiryTimer = undefined;
    const cutoff = Date.now() - this.host.pendingBufferMs;
    for (const [streamId, list] of this.#held) {
      let n = 0;
      while (n < list.length && list[n]!.at <= cutoff) n++;
      if (n === 0) continue;
      const gone = list.splice(0, n);
      for (const h of gone) this.#heldBytes -= itemCost(h.data.byteLength);
      if (list.length === 0) this.#held.delete(streamId);
      const bySender = new Map<string, Held[]>();
      for (const h of gone) bySender.set(h.info.from, [...(bySender.get(h.info.from) ?? []), h]);
      for (const [from, hs] of bySender) this.#lose(streamId, hs[0]!.info.mode, from, hs.length, `no receiver was made within ${this.host.pendingBufferMs} ms`);
    }
    if (this.#held.size > 0) this.#expiryTimer = setTimeout(() => this.#expire(), Math.max(10, this.host.pendingBufferMs / 4));
  }

  #lose(streamId: number, mode: DataMode, from: string, count: number, why: string): void {
    let lost = this.#lost.get(streamId);
    if (!lost) this.#lost.set(streamId, (lost = new Map()));
    lost.set(from, (lost.get(from) ?? 0) + count);
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
