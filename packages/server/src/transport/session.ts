/**
 * A participant's connection as the core sees it, outliving any one socket: per-direction
 * sequence numbers and acknowledgements, the replay buffer of frames the client has not
 * acknowledged, the fair priority outbound queue, and inbound pausing. When its socket is lost the
 * session keeps queueing; a resumed client brings a new socket and the session sends again what
 * the client had not received, then carries on. It moves frames and knows nothing of rooms.
 */
import {
  AckCounter,
  BackchannelError,
  ErrorCode,
  FairQueue,
  FrameKind,
  PONG_FRAME,
  ReplayBuffer,
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
import type { DatagramPath } from './datagram-path.js';
import type { FrameSocket } from './frame-socket.js';

/**
 * Frames queued for one session are written together, in one system call (see
 * `Session#schedule`); a batch this large is written at once instead, to keep the kernel busy and
 * bound what a turn holds.
 */
const WRITE_BATCH_BYTES = 64 * 1024;

/** Sessions with frames queued this turn behind output still buffered, written by one setImmediate for them all. */
const toFlush = new Set<Session>();
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  for (const s of toFlush) s.flush(); // flush() takes it out of the set
}

/**
 * A session that wrote less than this long ago (ms) is under load: its frames wait for the end of
 * the turn and leave with what the turn's other reads add, even to an idle socket. At light load
 * (messages further apart) a lone message leaves right after the read that brought it.
 */
const LIGHT_LOAD_GAP_MS = 0.5;

/** Sessions whose socket was idle when frames were queued, written by one microtask for them all. */
const toFlushSoon = new Set<Session>();
let soonScheduled = false;
function flushSoon(): void {
  soonScheduled = false;
  for (const s of toFlushSoon) s.flush(); // flush() takes it out of the set
}

/**
 * Sockets that control frames were sent to in this synchronous run: corked at the first, and
 * uncorked by one microtask for them all, in the order they were first written to. The frames of a
 * run (a reply and the events it causes, the presence batch a join sends to a room's members)
 * leave in one write per socket, after the code that sent them has finished; the socket being
 * handled then writes before the others (issue 17, `join`: the room's presence write to the
 * member already there no longer comes before the joiner's reply).
 */
const corkedRun = new Set<FrameSocket>();
let uncorkScheduled = false;
/** Corks `socket` until the end of this synchronous run, unless this run already did. */
function corkForRun(socket: FrameSocket): void {
  if (corkedRun.has(socket)) return;
  socket.cork();
  corkedRun.add(socket);
  if (!uncorkScheduled) {
    uncorkScheduled = true;
    queueMicrotask(uncorkRun);
  }
}
function uncorkRun(): void {
  uncorkScheduled = false;
  for (const socket of corkedRun) {
    corkedRun.delete(socket);
    socket.uncork();
  }
}

/** A queued marker: a control event that must follow the data queued before it. */
interface EventMarker extends QueueItem {
  event: ServerEvent;
}
type Outbound = OutboundFrame | EventMarker;

export interface SessionOptions {
  socketHighWaterBytes: number;
  ackEvery: number;
  ackEveryBytes: number;
  ackDelayMs: number;
  maxBadFrames: number;
  /** Unacknowledged bytes beyond which data waits in the queue (control frames never wait). */
  sendWindowBytes: number;
  /** Unacknowledged frames beyond which data waits in the queue, as with `sendWindowBytes`. */
  sendWindowFrames: number;
  /** Unacknowledged bytes (data and control) beyond which the session cannot be kept. */
  replayBufferMaxBytes: number;
  /** Bytes queued by every session of the server together (shared, updated in place). */
  budget: QueueBudget;
}

/** The server-wide total of queued bytes, shared by all sessions. */
export interface QueueBudget {
  bytes: number;
}

export interface SessionHandlers {
  /** A control message arrived. */
  control(session: Session, body: Uint8Array): void;
  /** A data frame arrived. */
  data(session: Session, frame: DataFrame, raw: Uint8Array): void;
  /** The socket was lost without a deliberate close: the session waits to be resumed. */
  lost(session: Session, code: number, reason: string): void;
  /**
   * The session is over: closed by the server, or by the client on purpose (`deliberate`: a
   * normal close code from the client, which then leaves its rooms as `left`).
   */
  closed(session: Session, deliberate: boolean): void;
  /** The replay buffer exceeded its bound; the session must end. */
  overflow(session: Session): void;
}

/** WebSocket close codes used by the server (4000–4999 are application codes). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  AuthFailed: 4001,
  ProtocolUnsupported: 4002,
  HelloTimeout: 4003,
  Kicked: 4004,
  ResumeBufferOverflow: 4005,
  TooManyBadFrames: 4008,
} as const;

const PAUSED_RATE = 1;
const PAUSED_OUTPUT = 2;

/** Close codes by which a client ends its session on purpose (a page going away sends 1001). */
const DELIBERATE_CLOSE: ReadonlySet<number> = new Set([CloseCode.Normal, CloseCode.GoingAway]);

export class Session implements PeerLink {
  readonly #opts: SessionOptions;
  readonly #handlers: SessionHandlers;
  #queue = new FairQueue<Outbound>();
  /** Numbered frames sent and not yet acknowledged (shared buffers, never copies). */
  readonly #replay = new ReplayBuffer<Uint8Array>();
  readonly #acks: AckCounter;
  #socket: FrameSocket | undefined;
  /** The datagram path (WebRTC), while open: droppable frames prefer it (docs/webrtc.md). */
  #datagrams: DatagramPath | undefined;
  /** An acknowledgement is due at this turn's flush. */
  #ackDue = false;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #pauseTimer: ReturnType<typeof setTimeout> | undefined;
  #pausedUntil = 0;
  /** Why reading from the socket is paused: bit 1 the bitrate limit, bit 2 output the client has not read. */
  #paused = 0;
  #badFrames = 0;
  #pumping = false;
  /**
   * Bytes in the socket's buffer and the queue together below which a client's queue is data in
   * transit, not backlog that senders are told of: what the socket may hold (`socketHighWaterBytes`)
   * plus a quarter of the send window. The SDK acknowledges within a quarter of the window, so a
   * client that keeps pace still leaves up to that much waiting in the queue for its next
   * acknowledgement to open the window, each time, as it would wait in socket buffers without a
   * window. Counted as backlog, it made senders stop and start again at every acknowledgement of a
   * flow that was keeping up (bench/PROFILE.md, "Backlog reports at 16 KiB").
   */
  readonly #transitBytes: number;
  /** When this session last wrote (`performance.now()`): a busy session batches to the end of the turn. */
  #lastFlushAt = -Infinity;
  /** Sessions whose queue emptying someone waits for (see `onDrained`). */
  readonly #drainWaiters = new Map<string, () => void>();
  /** Over for good (closed by either side or overflowed); no socket will be attached again. */
  closed = false;
  /** Bytes and frames moved, for metrics. */
  readonly stats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, resumes: 0, datagramsIn: 0, datagramsOut: 0 };

  constructor(socket: FrameSocket, options: SessionOptions, handlers: SessionHandlers) {
    this.#opts = options;
    this.#handlers = handlers;
    this.#acks = new AckCounter(options.ackEvery, options.ackEveryBytes);
    this.#transitBytes = options.socketHighWaterBytes + Math.floor(options.sendWindowBytes / 4);
    this.#attach(socket);
  }

  /** The current socket, if the session has one. */
  get socket(): FrameSocket | undefined {
    return this.#socket;
  }

  /** Numbered frames received from the client (what a resume reply reports). */
  get received(): number {
    return this.#acks.received;
  }

  /**
   * Lets rings grown under load go once they are empty (the replay buffer's and the queue's spare):
   * called on the server's heartbeat, not per frame, so a busy flow keeps them.
   */
  trim(): void {
    this.#replay.trim();
    this.#queue.trim();
  }

  /** Whether reading from the client is paused because it has not read what it was sent. */
  get outputStuck(): boolean {
    return (this.#paused & PAUSED_OUTPUT) !== 0;
  }

  /** Bytes of numbered frames sent and not yet acknowledged by the client. */
  get unackedBytes(): number {
    return this.#replay.bytes;
  }

  /** Whether a client that has received `count` numbered frames can continue this session. */
  canResume(count: number): boolean {
    return !this.closed && ((count - this.#replay.acked) >>> 0) <= this.#replay.length;
  }

  /**
   * Continues on `socket` for a client that has received `count` numbered frames: any old socket
   * is dropped, the frames after `count` are sent again, then queued data follows. Call after
   * `canResume(count)` and after the resume reply has been written to `socket`.
   */
  resume(socket: FrameSocket, count: number): void {
    const again = this.#replay.after(count) ?? [];
    const old = this.#socket;
    if (old && old !== socket) {
      old.bind({ frame: () => {}, close: () => {} });
      old.terminate();
    }
    this.#attach(socket);
    this.stats.resumes++;
    socket.cork();
    try {
      for (const frame of again) this.#write(frame);
      if (this.#acks.pending) this.#sendAck();
    } finally {
      socket.uncork();
    }
    this.#schedule();
  }

  #attach(socket: FrameSocket): void {
    this.#socket = socket;
    socket.bind({ frame: (data, binary) => this.#onFrame(data, binary), close: (code, reason) => this.#onSocketClose(socket, code, reason) });
  }

  /** Sends a control message now (replies and events). */
  sendControl(msg: ServerMessage): void {
    if (!this.closed) this.sendControlFrame(encodeControlFrame(JSON.stringify(msg)));
  }

  /** Sends an encoded control frame (one buffer may serve a whole room). */
  sendControlFrame(frame: Uint8Array): void {
    if (this.closed) return;
    // Data queued earlier in this turn goes first, as it would have without batching.
    if (toFlush.has(this) || toFlushSoon.has(this)) this.flush();
    this.#replay.push(frame, frame.byteLength);
    const socket = this.#socket;
    if (socket) {
      this.stats.framesOut++;
      this.stats.bytesOut += frame.byteLength;
      if (frame.byteLength < WRITE_BATCH_BYTES) {
        corkForRun(socket);
        socket.send(frame, this.#afterWrite);
      } else {
        // A large frame (a long member list) is written at once, with what the run held before it,
        // so that the bounds below see what the socket did not take.
        socket.send(frame, this.#afterWrite);
        if (corkedRun.delete(socket)) socket.uncork();
      }
      // Replies and events count against the same bounds as data: a client that does not read
      // stops being read from, and is dropped long before its output matters for memory.
      const buffered = socket.bufferedAmount;
      if (buffered > this.#opts.replayBufferMaxBytes) return this.#handlers.overflow(this);
      if (buffered > this.#opts.socketHighWaterBytes) this.#pause(PAUSED_OUTPUT);
    }
    if (this.#replay.bytes > this.#opts.replayBufferMaxBytes) this.#handlers.overflow(this);
  }

  #pause(why: number): void {
    if (this.#paused === 0) this.#socket?.pause();
    this.#paused |= why;
  }

  #unpause(why: number): void {
    if ((this.#paused & why) === 0) return;
    this.#paused &= ~why;
    if (this.#paused === 0) this.#socket?.resume();
  }

  sendEvent(event: ServerEvent): void {
    this.sendControl(event);
  }

  sendData(key: string, priority: PriorityClass, frame: OutboundFrame): number {
    if (this.closed || this.#direct(frame)) return 0;
    this.#queue.push(key, priority, frame);
    this.#opts.budget.bytes += frame.size;
    this.#schedule();
    return this.backlogOf(key);
  }

  backlogOf(key: string): number {
    // What is in transit to the client is not backlog (see #transitBytes).
    const socket = this.#socket;
    if (socket && socket.bufferedAmount + this.#queue.bytes <= this.#transitBytes) return 0;
    return this.#queue.bytesOf(key);
  }

  sendDroppable(key: string, priority: PriorityClass, frame: OutboundFrame, dropCap: number): number {
    if (this.closed) return 0;
    const datagrams = this.#datagrams;
    if (datagrams && this.#socket) {
      // A datagram leaves at once, beside the queue: it is never held back for a retransmission.
      if (!datagrams.send(frame.wire)) {
        this.stats.dropped++;
        return 1;
      }
      this.stats.datagramsOut++;
      this.stats.bytesOut += frame.wire.byteLength;
      return 0;
    }
    if (!this.#socket) {
      // Unreliable data is never held for a client that is away: dropped, and counted.
      this.stats.dropped++;
      return 1;
    }
    if (this.#direct(frame)) return 0;
    const before = this.#queue.bytes;
    const dropped = this.#queue.push(key, priority, frame, dropCap).length;
    this.#opts.budget.bytes += this.#queue.bytes - before;
    this.stats.dropped += dropped;
    this.#schedule();
    return dropped;
  }

  sendSessionEvent(key: string, priority: PriorityClass, event: ServerEvent): void {
    if (this.#queue.lengthOf(key) === 0) this.sendControl(event);
    else this.#queue.push(key, priority, { size: 0, droppable: false, event });
  }

  discard(key: string): void {
    const before = this.#queue.bytes;
    this.#queue.clear(key);
    this.#opts.budget.bytes += this.#queue.bytes - before;
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

  progressOf(key: string): number {
    return this.#queue.takenOf(key);
  }

  queuedBytes(key: string): number {
    return this.#queue.bytesOf(key);
  }

  /** Total bytes waiting in the outbound queue. */
  get queuedTotal(): number {
    return this.#queue.bytes;
  }

  pauseInbound(ms: number): void {
    const socket = this.#socket;
    if (this.closed || !socket) return;
    // Frames already read keep arriving while paused and deepen the deficit: extend, never shorten.
    const until = Date.now() + ms;
    if (this.#pauseTimer) {
      if (until <= this.#pausedUntil) return;
      clearTimeout(this.#pauseTimer);
    } else this.#pause(PAUSED_RATE);
    this.#pausedUntil = until;
    this.#pauseTimer = setTimeout(() => {
      this.#pauseTimer = undefined;
      this.#unpause(PAUSED_RATE);
    }, ms);
  }

  /** Sends `goodbye` with `reason`, then closes the socket with `code`; the session is over. */
  close(reason: Reason, code: number = CloseCode.GoingAway): void {
    if (this.closed) return;
    this.sendControl({ t: 'goodbye', reason });
    this.#end();
    const socket = this.#socket;
    if (socket) socket.close(code, reason.code); // `closed` follows from the socket's close
    else queueMicrotask(() => this.#handlers.closed(this, false));
  }

  /** Drops the socket without a closing handshake (dead peer); the session waits to be resumed. */
  terminate(): void {
    this.#socket?.terminate();
  }

  /**
   * Batches writes, so that frames leave in one system call instead of one each. To a socket that
   * has nothing buffered, the frames one read of a sender's socket produced (the frames queued in
   * one callback) are written in a microtask right after it, unless the session wrote within the
   * last {@link LIGHT_LOAD_GAP_MS} (then it is under load, and batching wins): a lone message is not held back until
   * the turn's other I/O is done (issue 17: that was most of what a light fan-out added to the
   * relay's latency). To a socket with output still buffered, frames wait for the end of the turn
   * (setImmediate) and leave with whatever the turn's other reads add. The queue keeps its
   * priority order throughout: frames wait in it, not in the socket, until the socket is below its
   * high-water mark.
   */
  #schedule(): void {
    const socket = this.#socket;
    if (!socket || this.#windowClosed()) return;
    const full = this.#queue.bytes >= WRITE_BATCH_BYTES;
    const enlisted = toFlush.has(this);
    // Already due to be written, and not yet a batch to write at once: nothing to decide (this
    // spares a read of the socket and of the clock for every frame of a busy turn).
    if (!full && (enlisted || toFlushSoon.has(this))) return;
    const buffered = socket.bufferedAmount;
    if (full && buffered < this.#opts.socketHighWaterBytes) {
      this.flush();
      return;
    }
    if (buffered === 0 && !enlisted && performance.now() - this.#lastFlushAt >= LIGHT_LOAD_GAP_MS) {
      toFlushSoon.add(this);
      if (!soonScheduled) {
        soonScheduled = true;
        queueMicrotask(flushSoon);
      }
    } else this.#enlist();
  }

  /**
   * Whether what the client has not acknowledged fills the send window (in bytes or in frames).
   * Data then waits until an acknowledgement opens it, and that schedules the next write: until
   * then there is nothing to write, and scheduling anyway would cork and uncork the socket for
   * nothing once per frame read for this client (a receiver that is behind under a flood).
   */
  #windowClosed(): boolean {
    return this.#replay.bytes >= this.#opts.sendWindowBytes || this.#replay.length >= this.#opts.sendWindowFrames;
  }

  /**
   * Writes `frame` straight into the socket, past the queue, when the queue is empty and the
   * socket idle at light load (as `#schedule` decides): nothing waits that the frame could
   * overtake, so priority and fairness have nothing to decide. The frame leaves as it would from
   * the microtask flush (the socket is corked for this run and uncorked by one microtask, so the
   * frames of one run still leave in one write), without a trip through the queue. Returns false,
   * writing nothing, when the frame must be queued.
   */
  #direct(frame: OutboundFrame): boolean {
    const socket = this.#socket;
    if (!socket || this.#queue.length !== 0 || this.#windowClosed()) return false;
    const buffered = socket.bufferedAmount;
    if (corkedRun.has(socket)) {
      // Already corked in this run: the frame joins the write its microtask makes.
      if (buffered >= WRITE_BATCH_BYTES) return false;
    } else {
      if (buffered !== 0) return false;
      const now = performance.now();
      if (now - this.#lastFlushAt < LIGHT_LOAD_GAP_MS) return false;
      this.#lastFlushAt = now;
      corkForRun(socket);
    }
    if (!frame.droppable) this.#replay.push(frame.wire, frame.size);
    this.#write(frame.wire);
    return true;
  }

  /** Puts this session in the set written at the end of the turn. */
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
    toFlushSoon.delete(this);
    const socket = this.#socket;
    if (this.closed || !socket) return;
    if (this.#queue.length === 0) {
      if (this.#ackDue) this.#sendAck();
      return;
    }
    this.#lastFlushAt = performance.now();
    socket.cork();
    try {
      if (this.#ackDue) this.#sendAck();
      this.#pump(socket);
    } finally {
      socket.uncork();
    }
  }

  /**
   * Writes queued data while the socket buffer is below the high-water mark and what the client
   * has not acknowledged fits in the send window (which bounds the replay buffer).
   */
  #pump(socket: FrameSocket): void {
    if (this.#pumping) return;
    this.#pumping = true;
    // The frame written last waits here for the next one, so that only the last frame of the batch
    // carries the written-callback: writes complete in order, and one callback per batch does what
    // one per frame did (under a saturated flow that was a call for every frame).
    let last: Uint8Array | undefined;
    try {
      const { socketHighWaterBytes, budget } = this.#opts;
      while (this.#socket === socket && socket.bufferedAmount < socketHighWaterBytes && !this.#windowClosed()) {
        const item = this.#queue.next();
        if (!item) break;
        budget.bytes -= item.size;
        if (this.#drainWaiters.size > 0 && this.#queue.lengthOf(this.#queue.lastKey) === 0) this.#drained(this.#queue.lastKey);
        if ('event' in item) {
          if (last) socket.send(last, this.#afterWrite);
          last = undefined;
          this.sendControl(item.event);
          continue;
        }
        const out = item.wire;
        // A reliable frame is numbered (the client counts them) and kept until acknowledged; it
        // counts at its queue cost, so that even empty frames fill the window.
        if (!item.droppable) this.#replay.push(out, item.size);
        this.stats.framesOut++;
        this.stats.bytesOut += out.byteLength;
        if (last) socket.send(last);
        last = out;
      }
    } finally {
      if (last) socket.send(last, this.#afterWrite);
      this.#pumping = false;
    }
  }

  #write(frame: Uint8Array): void {
    this.stats.framesOut++;
    this.stats.bytesOut += frame.byteLength;
    this.#socket!.send(frame, this.#afterWrite);
  }

  readonly #afterWrite = (): void => {
    if (this.#paused & PAUSED_OUTPUT && (this.#socket?.bufferedAmount ?? 0) <= this.#opts.socketHighWaterBytes) this.#unpause(PAUSED_OUTPUT);
    if (this.#queue.length > 0 && !this.closed) this.#schedule();
  };

  /**
   * Handles a frame read before the session took the socket over: one the client pipelined
   * behind its `hello` (see PROTOCOL.md, "Pipelining"). Later frames come from the socket.
   */
  receive(data: Uint8Array, isBinary: boolean): void {
    if (!this.closed) this.#onFrame(data, isBinary);
  }

  #onFrame(data: Uint8Array, isBinary: boolean): void {
    this.stats.framesIn++;
    this.stats.bytesIn += data.byteLength;
    const socket = this.#socket;
    if (socket) socket.alive = true;
    if (!isBinary) return this.#bad(new BackchannelError(ErrorCode.BadFrame, 'text messages are not part of the protocol; send binary frames'));
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      return this.#bad(error);
    }
    switch (frame.kind) {
      case FrameKind.Ack:
        if (!this.#replay.ack(frame.ack)) return this.#bad(new BackchannelError(ErrorCode.BadFrame, `acknowledgement ${frame.ack} is beyond the ${this.#replay.sent} frames sent`));
        if (this.#queue.length > 0) this.#schedule();
        return;
      case FrameKind.Ping:
        socket?.send(PONG_FRAME);
        return;
      case FrameKind.Pong:
        return;
      case FrameKind.Control:
        this.#received(data.byteLength);
        this.#handlers.control(this, frame.body);
        return;
      case FrameKind.Data:
        if (frame.mode !== 'unreliable') this.#received(data.byteLength);
        this.#handlers.data(this, frame, data);
        return;
    }
  }

  /** The datagram path, while one is open. */
  get datagramPath(): DatagramPath | undefined {
    return this.#datagrams;
  }

  /** Sets (or, with `undefined`, removes) the datagram path that droppable frames prefer. */
  setDatagramPath(path: DatagramPath | undefined): void {
    this.#datagrams = path;
  }

  /**
   * One frame that arrived over the datagram path: only `unreliable` data frames may, and they go
   * to the same handler as over the socket. While reading is paused by the data limits a datagram
   * cannot wait, so it is dropped.
   */
  receiveDatagram(data: Uint8Array): void {
    if (this.closed || !this.#socket) return;
    if (this.#paused & PAUSED_RATE) {
      this.stats.dropped++;
      return;
    }
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      return this.#bad(error);
    }
    if (frame.kind !== FrameKind.Data || frame.mode !== 'unreliable') {
      return this.#bad(new BackchannelError(ErrorCode.BadFrame, 'only unreliable data frames may be sent as datagrams'));
    }
    this.stats.datagramsIn++;
    this.stats.bytesIn += data.byteLength;
    this.#handlers.data(this, frame, data);
  }

  /** A malformed datagram (a bad fragment): counted like a malformed frame. */
  reportDatagramError(error: unknown): void {
    if (!this.closed) this.#bad(error);
  }

  /** Reports a malformed frame to the client; too many of them close the session. */
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
   * Counts a received numbered frame and acknowledges in batches: after `ackEvery` frames or
   * `ackEveryBytes` bytes (at the end of the turn, so one read of the socket gets one
   * acknowledgement), else after `ackDelayMs`. The client's send window moves with these.
   */
  #received(bytes: number): void {
    if (this.#acks.count(bytes)) {
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
    const socket = this.#socket;
    if (!this.closed && socket) socket.send(encodeAckFrame(this.#acks.take()));
  }

  #onSocketClose(socket: FrameSocket, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#detach();
    if (this.closed) return this.#handlers.closed(this, false);
    if (DELIBERATE_CLOSE.has(code)) {
      this.#end();
      return this.#handlers.closed(this, true);
    }
    this.#handlers.lost(this, code, reason);
  }

  #detach(): void {
    this.#socket = undefined;
    this.#datagrams = undefined;
    toFlush.delete(this);
    toFlushSoon.delete(this);
    this.#ackDue = false;
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#pauseTimer) clearTimeout(this.#pauseTimer);
    this.#pauseTimer = undefined;
    this.#paused = 0;
  }

  /** Over for good: nothing more is sent, queued data and the replay buffer are released. */
  #end(): void {
    this.closed = true;
    this.#opts.budget.bytes -= this.#queue.bytes;
    this.#queue = new FairQueue<Outbound>();
    toFlush.delete(this);
    toFlushSoon.delete(this);
    for (const key of [...this.#drainWaiters.keys()]) this.#drained(key);
    this.#replay.clear();
  }
}
