/**
 * One client connection over a WebSocket: frame decoding, per-connection sequence numbers and
 * acknowledgements, the fair priority outbound queue, and inbound pausing. It moves frames and
 * knows nothing of rooms; the server glue wires it to the core.
 */
import type { WebSocket } from 'ws';
import {
  BackchannelError,
  ErrorCode,
  FairQueue,
  FrameKind,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  type DataFrame,
  type PriorityClass,
  type QueueItem,
  type Reason,
  type ServerEvent,
  type ServerMessage,
} from '@backchannel/protocol';
import type { OutboundFrame, PeerLink } from '../core/peer.js';

/**
 * Frames queued for one connection within an event-loop turn are written together, in one
 * system call, when the turn's I/O is done (see `Connection#schedule`); a batch this large is
 * written at once instead, to keep the kernel busy and bound what a turn holds.
 */
const WRITE_BATCH_BYTES = 64 * 1024;

/** The part of the underlying net.Socket that batching uses. */
interface Corkable {
  cork(): void;
  uncork(): void;
}

/** Connections with frames queued this turn, written by one setImmediate for them all. */
const toFlush = new Set<Connection>();
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  for (const conn of toFlush) conn.flush(); // flush() takes it out of the set
}

/** A queued marker: a control event that must follow the data queued before it. */
interface EventMarker extends QueueItem {
  event: ServerEvent;
}
type Outbound = OutboundFrame | EventMarker;

export interface ConnectionOptions {
  socketHighWaterBytes: number;
  ackEvery: number;
  ackEveryBytes: number;
  ackDelayMs: number;
  maxBadFrames: number;
}

export interface ConnectionHandlers {
  /** A control message (parsed JSON object) arrived. */
  control(conn: Connection, body: Uint8Array): void;
  /** A data frame arrived. */
  data(conn: Connection, frame: DataFrame, raw: Uint8Array): void;
  /** The socket closed (for any reason). */
  closed(conn: Connection, code: number, reason: string): void;
}

/** WebSocket close codes used by the server (4000–4999 are application codes). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  AuthFailed: 4001,
  ProtocolUnsupported: 4002,
  HelloTimeout: 4003,
  Kicked: 4004,
  TooManyBadFrames: 4008,
} as const;

export class Connection implements PeerLink {
  readonly #ws: WebSocket;
  readonly #opts: ConnectionOptions;
  readonly #handlers: ConnectionHandlers;
  readonly #queue = new FairQueue<Outbound>();
  #txSeq = 0;
  #rxSeq = 0;
  #unacked = 0;
  #unackedBytes = 0;
  /** An acknowledgement is due at this turn's flush. */
  #ackDue = false;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #pauseTimer: ReturnType<typeof setTimeout> | undefined;
  #pausedUntil = 0;
  #badFrames = 0;
  #pumping = false;
  /** Sessions whose queue emptying someone waits for (see `onDrained`). */
  readonly #drainWaiters = new Map<string, () => void>();
  readonly #socket: Corkable | undefined;
  /** Highest connection sequence number the client has acknowledged. */
  peerAck = 0;
  /** Answered the last ping (liveness). */
  alive = true;
  closed = false;
  /** Bytes and frames moved, for metrics. */
  readonly stats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0 };

  constructor(ws: WebSocket, options: ConnectionOptions, handlers: ConnectionHandlers) {
    this.#ws = ws;
    this.#opts = options;
    this.#handlers = handlers;
    ws.binaryType = 'nodebuffer';
    this.#socket = (ws as unknown as { _socket?: Corkable })._socket;
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', (code, reason) => this.#onClose(code, reason.toString()));
    ws.on('error', () => {
      /* 'close' follows; errors such as oversize frames are reported by the close code */
    });
  }

  /** Sends a control message now (replies and events). */
  sendControl(msg: ServerMessage): void {
    if (!this.closed) this.sendControlFrame(encodeControlFrame(JSON.stringify(msg)));
  }

  /** Sends an encoded control frame (one buffer may serve a whole room). */
  sendControlFrame(frame: Uint8Array): void {
    if (this.closed) return;
    // Data queued earlier in this turn goes first, as it would have without batching.
    if (toFlush.has(this)) this.flush();
    ++this.#txSeq;
    this.stats.framesOut++;
    this.stats.bytesOut += frame.byteLength;
    this.#ws.send(frame);
  }

  sendEvent(event: ServerEvent): void {
    this.sendControl(event);
  }

  sendData(key: string, priority: PriorityClass, frame: OutboundFrame): number {
    if (this.closed) return 0;
    this.#queue.push(key, priority, frame);
    this.#schedule();
    // What the socket will take at this turn's flush is a batch in transit, not backlog.
    const backlogged = this.#ws.bufferedAmount + this.#queue.bytes > this.#opts.socketHighWaterBytes;
    return backlogged ? this.#queue.bytesOf(key) : 0;
  }

  sendDroppable(key: string, priority: PriorityClass, frame: OutboundFrame, dropCap: number): number {
    if (this.closed) return 0;
    const dropped = this.#queue.push(key, priority, frame, dropCap).length;
    this.stats.dropped += dropped;
    this.#schedule();
    return dropped;
  }

  sendSessionEvent(key: string, priority: PriorityClass, event: ServerEvent): void {
    if (this.#queue.lengthOf(key) === 0) this.sendControl(event);
    else this.#queue.push(key, priority, { size: 0, droppable: false, event });
  }

  discard(key: string): void {
    this.#queue.clear(key);
    this.#drained(key);
  }

  onDrained(key: string, cb: () => void): void {
    if (this.#queue.lengthOf(key) === 0) cb();
    else this.#drainWaiters.set(key, cb);
  }

  #drained(key: string): void {
    const cb = this.#drainWaiters.get(key);
    if (!cb) return;
    this.#drainWaiters.delete(key);
    cb();
  }

  queuedBytes(key: string): number {
    return this.#queue.bytesOf(key);
  }

  /** Total bytes waiting in the outbound queue. */
  get queuedTotal(): number {
    return this.#queue.bytes;
  }

  pauseInbound(ms: number): void {
    if (this.closed) return;
    // Frames already read keep arriving while paused and deepen the deficit: extend, never shorten.
    const until = Date.now() + ms;
    if (this.#pauseTimer) {
      if (until <= this.#pausedUntil) return;
      clearTimeout(this.#pauseTimer);
    } else this.#ws.pause();
    this.#pausedUntil = until;
    this.#pauseTimer = setTimeout(() => {
      this.#pauseTimer = undefined;
      if (!this.closed) this.#ws.resume();
    }, ms);
  }

  /** Sends `goodbye` with `reason`, then closes with the given WebSocket close code. */
  close(reason: Reason, code: number = CloseCode.GoingAway): void {
    if (this.closed) return;
    this.sendControl({ t: 'goodbye', reason });
    this.closed = true;
    this.#ws.close(code, reason.code.slice(0, 120));
  }

  /** Drops the socket without a closing handshake (dead peer). */
  terminate(): void {
    this.#ws.terminate();
  }

  /** Sends a WebSocket ping (liveness check). */
  ping(): void {
    if (!this.closed) this.#ws.ping();
  }

  /**
   * Batches writes: frames queued during an event-loop turn (the frames one read of a sender's
   * socket produced, say) are written together when the turn's I/O is done, so they leave in one
   * system call instead of one each. The queue keeps its priority order throughout: frames wait
   * in it, not in the socket, until the socket is below its high-water mark.
   */
  #schedule(): void {
    if (this.#queue.bytes >= WRITE_BATCH_BYTES && this.#ws.bufferedAmount < this.#opts.socketHighWaterBytes) {
      this.flush();
      return;
    }
    this.#enlist();
  }

  /** Puts this connection in the set written at the end of the turn. */
  #enlist(): void {
    toFlush.add(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Writes what is queued, as far as the socket's high-water mark allows, in one system call. */
  flush(): void {
    toFlush.delete(this);
    if (this.closed) return;
    if (this.#queue.length === 0) {
      if (this.#ackDue) this.#sendAck();
      return;
    }
    const socket = this.#socket;
    socket?.cork();
    try {
      if (this.#ackDue) this.#sendAck();
      this.#pump();
    } finally {
      socket?.uncork();
    }
  }

  /** Writes queued data while the socket buffer is below the high-water mark. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.closed && this.#ws.bufferedAmount < this.#opts.socketHighWaterBytes) {
        const item = this.#queue.next();
        if (!item) break;
        if (this.#drainWaiters.size > 0 && this.#queue.lengthOf(this.#queue.lastKey) === 0) this.#drained(this.#queue.lastKey);
        if ('event' in item) {
          this.sendControl(item.event);
          continue;
        }
        // A reliable frame takes the next connection sequence number (the client counts them).
        if (!item.droppable) ++this.#txSeq;
        const out = item.wire;
        this.stats.framesOut++;
        this.stats.bytesOut += out.byteLength;
        this.#ws.send(out, this.#afterWrite);
      }
    } finally {
      this.#pumping = false;
    }
  }

  readonly #afterWrite = (): void => {
    if (this.#queue.length > 0 && !this.closed) this.#schedule();
  };

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.stats.framesIn++;
    this.stats.bytesIn += data.byteLength;
    if (!isBinary) return this.#bad(new BackchannelError(ErrorCode.BadFrame, 'text messages are not part of the protocol; send binary frames'));
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      return this.#bad(error);
    }
    if (frame.kind === FrameKind.Ack) {
      this.peerAck = frame.ack;
      return;
    }
    if (frame.kind === FrameKind.Control || frame.mode !== 'unreliable') this.#received(data.byteLength);
    if (frame.kind === FrameKind.Control) this.#handlers.control(this, frame.body);
    else this.#handlers.data(this, frame, data);
  }

  /** Reports a malformed frame to the client; too many of them close the connection. */
  #bad(error: unknown): void {
    const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.BadFrame, 'malformed frame', { cause: error });
    this.reportError(err);
    if (++this.#badFrames > this.#opts.maxBadFrames) {
      this.close({ code: ErrorCode.BadFrame, message: `more than ${this.#opts.maxBadFrames} malformed frames` }, CloseCode.TooManyBadFrames);
    }
  }

  /** Sends an `error` event (for problems not tied to a request). */
  reportError(err: BackchannelError): void {
    this.sendControl({ t: 'error', error: { code: err.code, message: err.message } });
  }

  /**
   * Counts a received sequenced frame and acknowledges in batches: after `ackEvery` frames or
   * `ackEveryBytes` bytes (at the end of the turn, so one read of the socket gets one
   * acknowledgement), else after `ackDelayMs`. The client's send window moves with these.
   */
  #received(bytes: number): void {
    this.#rxSeq++;
    this.#unackedBytes += bytes;
    if (++this.#unacked >= this.#opts.ackEvery || this.#unackedBytes >= this.#opts.ackEveryBytes) {
      if (!this.#ackDue) {
        this.#ackDue = true;
        this.#enlist();
      }
    } else if (!this.#ackTimer) this.#ackTimer = setTimeout(() => this.#sendAck(), this.#opts.ackDelayMs);
  }

  #sendAck(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#ackDue = false;
    this.#unacked = 0;
    this.#unackedBytes = 0;
    if (!this.closed) this.#ws.send(encodeAckFrame(this.#rxSeq));
  }

  #onClose(code: number, reason: string): void {
    this.closed = true;
    toFlush.delete(this);
    for (const key of [...this.#drainWaiters.keys()]) this.#drained(key);
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    if (this.#pauseTimer) clearTimeout(this.#pauseTimer);
    this.#handlers.closed(this, code, reason);
  }
}
