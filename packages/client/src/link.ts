/**
 * The client end of a session, outliving any one transport: request/reply correlation, control
 * events, data frames in and out, per-direction sequence numbers and acknowledgements, the replay
 * buffer of what the server has not acknowledged, and the heartbeat that notices a dead
 * connection. When its transport is lost the link keeps requests and data waiting; a resumed
 * connection brings a new transport and the link sends again what the server had not received.
 */
import {
  AckCounter,
  BackchannelError,
  DATA_HEADER_BYTES,
  Emitter,
  ErrorCode,
  FrameKind,
  PING_FRAME,
  ReplayBuffer,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  encodeDataFrame,
  type DataFrame,
  type DataHeader,
  type Reason,
  type ServerEvent,
  type ServerMessage,
} from '@backchannel/protocol';
import type { Transport } from './transport.js';
import { platform } from './platform.js';
import { nextMacrotask } from './util.js';

const decoder = new TextDecoder();
/** Control frames this large are acknowledged at once (see #process). */
const LARGE_CONTROL_BYTES = 8 * 1024;

type LinkEvents = {
  event: [ServerEvent];
  data: [DataFrame];
  /** The transport was lost (closed by the network or the server, or found dead); the link waits. */
  lost: [Reason];
  /** The link is over for good (`close()`, or the server said goodbye and closed). */
  closed: [code: number, reason: string];
};

interface Pending {
  msg: string;
  resolve: (data: unknown) => void;
  reject: (error: BackchannelError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  timeoutMs: number;
}

/** What a data frame to (re)send needs: its header fields and payload (a view, never copied). */
export interface DataEntry {
  header: Omit<DataHeader, 'sender'> & { target?: number };
  payload: Uint8Array;
}

/** Tunables of a link. */
export interface LinkOptions {
  requestTimeoutMs: number;
  ackEvery: number;
  ackEveryBytes: number;
  ackDelayMs: number;
  /** Send a ping when nothing was received for this long. */
  pingIntervalMs: number;
  /** Consider the transport dead when nothing was received for this long. */
  pingTimeoutMs: number;
}

export class Link extends Emitter<LinkEvents> {
  #transport: Transport | undefined;
  #opts: LinkOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Numbered frames sent and not yet acknowledged: control frames, or data entries to encode again. */
  readonly #replay = new ReplayBuffer<Uint8Array | DataEntry>();
  readonly #acks: AckCounter;
  /** Reused for every outgoing data frame when the transport copies on send. */
  #scratch: Uint8Array | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** An acknowledgement is due and will be sent by a microtask (see `#received`). */
  #ackSoon = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /**
   * When the first frame since the heartbeat's last tick arrived (or the transport was attached).
   * Later frames of the same tick interval do not read the clock, which per frame was about 3 % of
   * a fan-out receiver's CPU (issue 17). The ticks decide the same as they would from the last
   * frame's time whenever `pingIntervalMs` and `pingTimeoutMs` are multiples of the tick (the
   * defaults are); otherwise a ping or a timeout can come at most one tick earlier, never later.
   */
  #lastRx = 0;
  /** Whether `#lastRx` was stamped since the heartbeat's last tick. */
  #rxStamped = false;
  #pingAt = 0;
  /** Round-trip time of the last heartbeat, ms (undefined before the first). */
  rtt: number | undefined;
  /** Called after each acknowledgement from the server (the send window has moved). */
  onack: () => void = () => {};
  /** Called when a transport is attached again (queued data may flow). */
  onwritable: () => void = () => {};
  /**
   * The WebRTC datagram path while it is open (see `webrtc.ts`): `unreliable` frames go over it
   * instead of the WebSocket. `send` returns false when it dropped the frame (counted there).
   */
  datagrams: { send(frame: Uint8Array): boolean } | undefined;
  closed = false;
  // Frames waiting while a just-delivered reply's awaiting code runs (see #onFrame).
  #backlog: Uint8Array[] = [];
  #held = false;
  /** Holders of `holdAcks()`: while any, no acknowledgement is sent (receive backpressure). */
  #ackHolds = 0;

  constructor(options: LinkOptions) {
    super();
    this.#opts = options;
    this.#acks = new AckCounter(options.ackEvery, options.ackEveryBytes);
  }

  /**
   * Takes the server's send window (announced in the welcome, in bytes and in frames):
   * acknowledgements then come after a quarter of it at most, whatever `ackEveryBytes` and
   * `ackEvery` say, so that a server with a small window never waits for the acknowledgement timer.
   */
  setServerWindow(bytes: number | undefined, frames: number | undefined): void {
    // A nonsensical value is ignored by the counter.
    if (bytes !== undefined) this.#acks.capBytes(bytes / 4);
    if (frames !== undefined) this.#acks.capFrames(frames / 4);
  }

  /** The transport frames go out on, while connected. */
  get transport(): Transport | undefined {
    return this.#transport;
  }

  /** Whether a transport is attached (false while reconnecting). */
  get attached(): boolean {
    return this.#transport !== undefined;
  }

  /** Numbered frames received from the server (what a resume request reports). */
  get received(): number {
    return this.#acks.received;
  }

  /**
   * Starts (or, after a resume, continues) on `transport`. `server` is the count of numbered frames
   * the server reported having received (a resume reply): those after it are sent again. `early`
   * are frames that arrived right after the handshake reply; they are handled on a later macrotask,
   * once the code awaiting the handshake has attached its listeners.
   */
  attach(transport: Transport, { early, closed }: { early: Uint8Array[]; closed?: { code: number; reason: string } }, server?: number): void {
    if (this.closed) return transport.close(1000, 'client closed');
    this.#transport = transport;
    transport.onframe = (buf) => this.#onFrame(buf);
    transport.onclose = (code, reason) => this.#onClose(transport, code, reason);
    transport.onwritable = () => this.onwritable();
    this.#lastRx = Date.now();
    this.#rxStamped = false;
    this.#startHeartbeat();
    if (server !== undefined) {
      const again = this.#replay.after(server) ?? [];
      for (const entry of again) this.#write(entry);
      if (this.#acks.pending) this.#sendAck();
    }
    for (const p of this.#pending.values()) this.#arm(p);
    this.#backlog.push(...early);
    this.#hold();
    this.onwritable();
    // Closed between the handshake reply and now: reported once the early frames are handled.
    if (closed) this.#onClose(transport, closed.code, closed.reason);
  }

  /**
   * Sends the requests made so far (before there was a transport) on `transport`, right behind
   * its `hello` and before the welcome: pipelining (see PROTOCOL.md). They are the session's first
   * numbered frames; `attach()` then takes `transport` over without sending them again.
   */
  pipeline(transport: Transport): void {
    for (const entry of this.#replay.after(0) ?? []) this.#write(entry, transport);
  }

  /**
   * The requests made so far, before there was a transport, as frames: what the client may carry
   * in its upgrade request behind the `hello` (PROTOCOL.md, "Early frames") instead of
   * {@link pipeline}.
   */
  pipelined(): Uint8Array[] {
    return (this.#replay.after(0) ?? []).filter((e): e is Uint8Array => e instanceof Uint8Array);
  }

  /** Changes the default request timeout (after the handshake). */
  setRequestTimeout(ms: number): void {
    this.#opts = { ...this.#opts, requestTimeoutMs: ms };
  }

  /**
   * Sends a request and resolves with the reply's data (or rejects with the server's error).
   * While reconnecting the request waits, and its timeout starts once it has been sent.
   */
  request<T = unknown>(msg: { t: string } & Record<string, unknown>, timeoutMs = this.#opts.requestTimeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(new BackchannelError(ErrorCode.ConnectionClosed, 'the connection is closed'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { msg: msg.t, resolve: resolve as (d: unknown) => void, reject, timer: undefined, timeoutMs };
      this.#pending.set(id, p);
      const frame = encodeControlFrame(JSON.stringify({ ...msg, id }));
      this.#replay.push(frame, frame.byteLength);
      if (this.#transport) {
        this.#transport.send(frame);
        this.#arm(p);
      }
    });
  }

  #arm(p: Pending): void {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      for (const [id, q] of this.#pending) if (q === p) this.#pending.delete(id);
      p.reject(new BackchannelError(ErrorCode.RequestTimeout, `no reply to "${p.msg}" within ${p.timeoutMs} ms`));
    }, p.timeoutMs);
  }

  /**
   * Sends one data frame (only while attached); a reliable one is numbered and kept until the
   * server acknowledges it (data frames do not carry the number: the receiver counts). For
   * addressed sessions `target` is the recipient's handle, carried in the header's sender field.
   */
  sendData(entry: DataEntry): number {
    if (entry.header.mode !== 'unreliable') this.#replay.push(entry, entry.payload.byteLength + DATA_HEADER_BYTES);
    else if (this.datagrams) {
      // A datagram of its own (not the reused scratch buffer: the channel may keep it queued).
      const { header, payload } = entry;
      const frame = encodeDataFrame({ mode: 'unreliable', fin: header.fin, streamId: header.streamId, room: header.room, seq: header.seq, sender: header.target ?? 0 }, payload, platform.allocFrame);
      this.datagrams.send(frame);
      return frame.byteLength;
    }
    return this.#write(entry);
  }

  /** One frame that arrived over the datagram path: only `unreliable` data frames are taken. */
  receiveDatagram(buf: Uint8Array): void {
    if (this.closed) return;
    let frame;
    try {
      frame = decodeFrame(buf);
    } catch {
      return;
    }
    if (frame.kind === FrameKind.Data && frame.mode === 'unreliable') this.emit('data', frame);
  }

  #write(entry: Uint8Array | DataEntry, transport: Transport = this.#transport!): number {
    if (entry instanceof Uint8Array) {
      transport.send(entry);
      return entry.byteLength;
    }
    const { header, payload } = entry;
    const frame = encodeDataFrame(
      { mode: header.mode, fin: header.fin, streamId: header.streamId, room: header.room, seq: header.seq, sender: header.target ?? 0 },
      payload,
      transport.copiesOnSend ? this.#scratchOf : platform.allocFrame,
    );
    transport.send(frame);
    return frame.byteLength;
  }

  readonly #scratchOf = (size: number): Uint8Array => {
    if (!this.#scratch || this.#scratch.byteLength < size) this.#scratch = platform.allocFrame(Math.max(size, 64 * 1024 + 64));
    return this.#scratch.subarray(0, size);
  };

  /**
   * Bytes of numbered frames sent but not yet acknowledged by the server: in the socket buffers of
   * both ends or not yet read by the server. Also what would be sent again after a reconnect.
   */
  get unackedBytes(): number {
    return this.#replay.bytes;
  }

  /** Numbered frames sent and not yet acknowledged by the server. */
  get unackedFrames(): number {
    return this.#replay.length;
  }

  /**
   * Closes the transport normally (the server then ends the session as a deliberate leave); `lost`
   * follows, and the owner calls `finish()`. Without a transport, finishes at once.
   */
  close(code = 1000, reason = 'client closed'): void {
    if (this.closed) return;
    const transport = this.#transport;
    if (transport) transport.close(code, reason);
    else this.#finish(code, reason);
  }

  /**
   * Drops the current transport at once (a dead connection: no closing handshake to wait for) and
   * reports the link lost with `reason`.
   */
  drop(reason: Reason): void {
    const transport = this.#transport;
    if (!transport) return;
    transport.onframe = () => {};
    transport.onclose = () => {};
    (transport.abort ?? transport.close).call(transport);
    this.#lost(transport, reason);
  }

  /** Ends for good after the transport was lost (the caller gave up reconnecting). */
  finish(code: number, reason: string): void {
    this.#finish(code, reason);
  }

  /**
   * A transport may hand over several frames in one macrotask. If a reply is followed by events
   * about what it created, the code awaiting the reply must run first (to attach listeners), so
   * after each reply the remaining frames wait for the next macrotask. Order is preserved.
   */
  #onFrame(buf: Uint8Array): void {
    if (!this.#rxStamped) {
      this.#rxStamped = true;
      this.#lastRx = Date.now();
    }
    if (this.#held) {
      this.#backlog.push(buf);
      return;
    }
    if (this.#process(buf)) this.#hold();
  }

  #hold(): void {
    if (this.#held) return;
    this.#held = true;
    nextMacrotask(() => {
      this.#held = false;
      while (this.#backlog.length > 0) {
        const next = this.#backlog.shift()!;
        if (this.#process(next)) {
          // A close that came with the replies is reported one turn later, after the awaiting code.
          if (this.#backlog.length > 0 || this.#closeAfterBacklog) this.#hold();
          return;
        }
      }
      if (this.#closeAfterBacklog) {
        const [transport, reason] = this.#closeAfterBacklog;
        this.#closeAfterBacklog = undefined;
        this.#lost(transport, reason);
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
    switch (frame.kind) {
      case FrameKind.Ack:
        this.#replay.ack(frame.ack);
        this.onack();
        return false;
      case FrameKind.Pong:
        if (this.#pingAt) this.rtt = Date.now() - this.#pingAt;
        this.#pingAt = 0;
        return false;
      case FrameKind.Ping:
        return false;
      case FrameKind.Data:
        if (frame.mode !== 'unreliable') this.#received(buf.byteLength);
        this.emit('data', frame);
        return false;
      case FrameKind.Control:
        break;
    }
    // A large control frame (a room's member list, say) is acknowledged at once: the server holds
    // it until then, and one held for long grows the server's old generation.
    this.#received(buf.byteLength, buf.byteLength >= LARGE_CONTROL_BYTES);
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

  /**
   * Withholds acknowledgements until every holder has released: the backpressure of a receiving
   * app that is behind. The server stops writing data to a client whose unacknowledged bytes reach
   * its send window, so data then waits in the server's per-receiver queue, where the slow-receiver
   * rules apply (`queueTooLong` for senders, `receiver-too-slow`). A browser cannot stop reading a
   * WebSocket; withholding acknowledgements works everywhere. Control frames still flow, and
   * heartbeats are not acknowledgements, so the connection stays alive. Reference-counted; the
   * returned function releases this hold (once), and when the last is released the full count is
   * acknowledged at once.
   */
  holdAcks(): () => void {
    this.#ackHolds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#ackHolds === 0 && this.#acks.pending) this.#sendAck();
    };
  }

  /** Whether acknowledgements are being withheld (see {@link holdAcks}). */
  get holdingAcks(): boolean {
    return this.#ackHolds > 0;
  }

  /** Counts a numbered frame (the transport is ordered, so the count is its number). */
  #received(bytes: number, now = false): void {
    const due = this.#acks.count(bytes) || now;
    if (this.#ackHolds > 0) return; // sent, with the full count, when the last hold is released
    if (!due) this.#ackTimer ??= setTimeout(() => this.#sendAck(), this.#opts.ackDelayMs);
    else if (!this.#ackSoon) {
      // Due: sent once the frames that came with this one are counted too (one read of the socket
      // may hand over hundreds), so that a read gets one acknowledgement, not one per `ackEvery`.
      this.#ackSoon = true;
      queueMicrotask(this.#ackNow);
    }
  }

  readonly #ackNow = (): void => {
    this.#ackSoon = false;
    if (this.#acks.pending) this.#sendAck();
  };

  #sendAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#ackHolds > 0) return;
    if (this.#transport) this.#transport.send(encodeAckFrame(this.#acks.take()));
  }

  /** Pings when the connection has been quiet; drops it when nothing arrived for the timeout. */
  #startHeartbeat(): void {
    if (this.#heartbeat) return;
    const { pingIntervalMs, pingTimeoutMs } = this.#opts;
    this.#heartbeat = setInterval(() => {
      this.#replay.trim();
      const transport = this.#transport;
      if (!transport) return;
      const now = Date.now();
      const quiet = now - this.#lastRx;
      this.#rxStamped = false; // the next frame stamps its own arrival
      if (quiet >= pingTimeoutMs) {
        this.drop({ code: ErrorCode.HeartbeatTimeout, message: `nothing received for ${quiet} ms` });
      } else if (quiet >= pingIntervalMs && !this.#pingAt) {
        this.#pingAt = now;
        transport.send(PING_FRAME);
      }
    }, Math.max(50, Math.floor(Math.min(pingIntervalMs, pingTimeoutMs) / 2)));
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  #closeAfterBacklog: [Transport, Reason] | undefined;

  #onClose(transport: Transport, code: number, reason: string): void {
    this.#lost(transport, { code: ErrorCode.ConnectionClosed, message: `the connection closed (${code}${reason ? ` ${reason}` : ''})` });
  }

  /**
   * The transport is gone. Frames it delivered that still wait (see #hold) are handled first, so
   * the count a resume reports includes them and nothing is sent twice.
   */
  #lost(transport: Transport, reason: Reason): void {
    if (transport !== this.#transport) return;
    if (this.#held) {
      this.#closeAfterBacklog = [transport, reason];
      return;
    }
    this.#detach();
    this.emit('lost', reason);
  }

  /** No transport any more: acks and request timers wait for the next one. */
  #detach(): void {
    this.#transport = undefined;
    this.#pingAt = 0;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.timer = undefined;
    }
  }

  #finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.#transport = undefined;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#ackTimer);
    this.#replay.clear();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new BackchannelError(ErrorCode.ConnectionClosed, `the connection closed (${code}${reason ? ` ${reason}` : ''})`));
    }
    this.#pending.clear();
    this.emit('closed', code, reason);
  }
}
