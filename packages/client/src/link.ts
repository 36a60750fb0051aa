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

export class Link extends Emitter<LinkEvents> {
  readonly transport: Transport;
  #opts: LinkOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #txSeq = 0;
  #rxSeq = 0;
  #unacked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Highest sequence number the server acknowledged. */
  serverAck = 0;
  closed = false;

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
      this.transport.send(encodeControlFrame(++this.#txSeq, JSON.stringify({ ...msg, id })));
    });
  }

  /** Sends one data frame (unreliable frames carry no connection sequence number). */
  sendData(header: Omit<DataHeader, 'connSeq' | 'sender'>, payload: Uint8Array): number {
    const frame = encodeDataFrame({ ...header, sender: 0, connSeq: header.mode === 'unreliable' ? 0 : ++this.#txSeq }, payload);
    this.transport.send(frame);
    return frame.byteLength;
  }

  /** Closes the transport. */
  close(code = 1000, reason = 'client closed'): void {
    if (!this.closed) this.transport.close(code, reason);
  }

  #onFrame(buf: Uint8Array): void {
    let frame;
    try {
      frame = decodeFrame(buf);
    } catch {
      return; // A server never sends malformed frames; ignoring keeps a bad proxy from crashing the app.
    }
    if (frame.kind === FrameKind.Ack) {
      this.serverAck = frame.ack;
      return;
    }
    if (frame.kind === FrameKind.Control || frame.mode !== 'unreliable') this.#received(frame.connSeq);
    if (frame.kind === FrameKind.Data) {
      this.emit('data', frame);
      return;
    }
    let msg: ServerMessage;
    try {
      msg = JSON.parse(decoder.decode(frame.body)) as ServerMessage;
    } catch {
      return;
    }
    if (msg.t === 'ok' || msg.t === 'err') {
      const p = this.#pending.get(msg.re);
      if (!p) return;
      this.#pending.delete(msg.re);
      clearTimeout(p.timer);
      if (msg.t === 'ok') p.resolve(msg.data);
      else p.reject(BackchannelError.fromWire(msg.error));
      return;
    }
    this.emit('event', msg);
  }

  #received(connSeq: number): void {
    if (connSeq > this.#rxSeq) this.#rxSeq = connSeq;
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
