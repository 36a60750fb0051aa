/**
 * The client end of the wire: request/reply correlation, control events, data frames in and out,
 * per-connection sequence numbers and acknowledgements.
 */
import {
  BackchannelError,
  Emitter,
  ErrorCode,
  FrameKind,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  encodeDataFrame,
  type DataFrame,
  type DataHeader,
  type ServerEvent,
  type ServerMessage,
} from '@backchannel/protocol';
import type { Transport } from './transport.js';
import { platform } from './platform.js';
import { nextMacrotask } from './util.js';

const decoder = new TextDecoder();


type LinkEvents = {
  event: [ServerEvent];
  data: [DataFrame];
  closed: [code: number, reason: string];
};

interface Pending {
  resolve: (data: unknown) => void;
  reject: (error: BackchannelError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Tunables of a link. */
export interface LinkOptions {
  requestTimeoutMs: number;
  ackEvery: number;
  ackDelayMs: number;
}

/** Unacknowledged sequenced frames the send window can account for (a power of two, minus one). */
const RING_MASK = 0xffff;

export class Link extends Emitter<LinkEvents> {
  readonly transport: Transport;
  #opts: LinkOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #txSeq = 0;
  /** Bytes of sequenced frames sent, in total; `#sentAt[n & RING_MASK]` is the total after frame n. */
  #txBytes = 0;
  readonly #sentAt = new Float64Array(RING_MASK + 1);
  /** Reused for every outgoing data frame when the transport copies on send. */
  #scratch: Uint8Array | undefined;
  #rxSeq = 0;
  #unacked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Highest sequence number the server acknowledged. */
  serverAck = 0;
  /** Called after each acknowledgement from the server (the send window has moved). */
  onack: () => void = () => {};
  closed = false;
  // Frames waiting while a just-delivered reply's awaiting code runs (see #onFrame).
  #backlog: Uint8Array[] = [];
  #held = false;

  constructor(transport: Transport, options: LinkOptions) {
    super();
    this.transport = transport;
    this.#opts = options;
    transport.onframe = (buf) => this.#onFrame(buf);
    transport.onclose = (code, reason) => this.#onClose(code, reason);
  }

  /** Changes the default request timeout (after the handshake). */
  setRequestTimeout(ms: number): void {
    this.#opts = { ...this.#opts, requestTimeoutMs: ms };
  }

  /** Sends a request and resolves with the reply's data (or rejects with the server's error). */
  request<T = unknown>(msg: { t: string } & Record<string, unknown>, timeoutMs = this.#opts.requestTimeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(new BackchannelError(ErrorCode.ConnectionClosed, 'the connection is closed'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BackchannelError(ErrorCode.RequestTimeout, `no reply to "${msg.t}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (d: unknown) => void, reject, timer });
      const frame = encodeControlFrame(JSON.stringify({ ...msg, id }));
      this.#sequenced(frame.byteLength);
      this.transport.send(frame);
    });
  }

  /**
   * Sends one data frame; a reliable one takes the next connection sequence number (data frames do
   * not carry it: the receiver counts). For addressed sessions `target` is the recipient's handle,
   * carried in the header's sender field.
   */
  sendData(header: Omit<DataHeader, 'sender'> & { target?: number }, payload: Uint8Array): number {
    const frame = encodeDataFrame({ mode: header.mode, fin: header.fin, streamId: header.streamId, room: header.room, seq: header.seq, sender: header.target ?? 0 }, payload, this.transport.copiesOnSend ? this.#scratchOf : platform.allocFrame);
    if (header.mode !== 'unreliable') this.#sequenced(frame.byteLength);
    this.transport.send(frame);
    return frame.byteLength;
  }

  readonly #scratchOf = (size: number): Uint8Array => {
    if (!this.#scratch || this.#scratch.byteLength < size) this.#scratch = platform.allocFrame(Math.max(size, 64 * 1024 + 64));
    return this.#scratch.subarray(0, size);
  };

  #sequenced(bytes: number): void {
    this.#txSeq = (this.#txSeq + 1) >>> 0;
    this.#txBytes += bytes;
    this.#sentAt[this.#txSeq & RING_MASK] = this.#txBytes;
  }

  /**
   * Bytes of sequenced frames sent but not yet acknowledged by the server: in the socket buffers
   * of both ends or not yet read by the server. Infinity when more frames than the ring tracks are
   * unacknowledged (the caller then waits for an acknowledgement).
   */
  get unackedBytes(): number {
    const ack = this.serverAck;
    if (((this.#txSeq - ack) >>> 0) > RING_MASK) return Infinity;
    return this.#txBytes - this.#sentAt[ack & RING_MASK]!;
  }

  /** Closes the transport. */
  close(code = 1000, reason = 'client closed'): void {
    if (!this.closed) this.transport.close(code, reason);
  }

  /**
   * A transport may hand over several frames in one macrotask. If a reply is followed by events
   * about what it created, the code awaiting the reply must run first (to attach listeners), so
   * after each reply the remaining frames wait for the next macrotask. Order is preserved.
   */
  #onFrame(buf: Uint8Array): void {
    if (this.#held) {
      this.#backlog.push(buf);
      return;
    }
    if (this.#process(buf)) this.#hold();
  }

  #hold(): void {
    this.#held = true;
    nextMacrotask(() => {
      this.#held = false;
      while (this.#backlog.length > 0) {
        const next = this.#backlog.shift()!;
        if (this.#process(next)) {
          if (this.#backlog.length > 0) this.#hold();
          return;
        }
      }
    });
  }

  /** Handles one frame; returns true if it was a reply. */
  #process(buf: Uint8Array): boolean {
    let frame;
    try {
      frame = decodeFrame(buf);
    } catch {
      return false; // A server never sends malformed frames; ignoring keeps a bad proxy from crashing the app.
    }
    if (frame.kind === FrameKind.Ack) {
      this.serverAck = frame.ack;
      this.onack();
      return false;
    }
    if (frame.kind === FrameKind.Control || frame.mode !== 'unreliable') this.#received();
    if (frame.kind === FrameKind.Data) {
      this.emit('data', frame);
      return false;
    }
    let msg: ServerMessage;
    try {
      msg = JSON.parse(decoder.decode(frame.body)) as ServerMessage;
    } catch {
      return false;
    }
    if (msg.t === 'ok' || msg.t === 'err') {
      const p = this.#pending.get(msg.re);
      if (!p) return false;
      this.#pending.delete(msg.re);
      clearTimeout(p.timer);
      if (msg.t === 'ok') p.resolve(msg.data);
      else p.reject(BackchannelError.fromWire(msg.error));
      return true;
    }
    this.emit('event', msg);
    return false;
  }

  /** Counts a sequenced frame (the transport is ordered, so the count is its number). */
  #received(): void {
    this.#rxSeq++;
    if (++this.#unacked >= this.#opts.ackEvery) this.#sendAck();
    else this.#ackTimer ??= setTimeout(() => this.#sendAck(), this.#opts.ackDelayMs);
  }

  #sendAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#unacked = 0;
    if (!this.closed) this.transport.send(encodeAckFrame(this.#rxSeq));
  }

  #onClose(code: number, reason: string): void {
    if (this.closed) return;
    if (this.#held) {
      // Deliver what is still waiting before reporting the close.
      nextMacrotask(() => this.#onClose(code, reason));
      return;
    }
    this.closed = true;
    clearTimeout(this.#ackTimer);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new BackchannelError(ErrorCode.ConnectionClosed, `the connection closed (${code}${reason ? ` ${reason}` : ''})`));
    }
    this.#pending.clear();
    this.emit('closed', code, reason);
  }
}
