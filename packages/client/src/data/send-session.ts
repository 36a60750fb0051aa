/**
 * The sending end of a data session: chunking, sequence numbers, pacing, and backpressure that
 * counts both the local queue and what the server holds for the slowest receiver.
 */
import {
  BackchannelError,
  Emitter,
  ErrorCode,
  PRIORITY_CLASS,
  SessionCloseReason,
  type DataMode,
  type Destination,
  type Priority,
  type Reason,
} from '@backchannel/protocol';
import type { OutItem } from './outbound.js';
import type { RoomBase } from '../room.js';

const encoder = new TextEncoder();

/** Who receives a session: everyone else, one participant id, or a set of them. */
export type DestinationInput = 'broadcast' | string | string[];

/** @internal Destinations the SDK's built-in protocols may also use. */
export type InternalDestination = DestinationInput | { addressed: true };

/** Options of `makeSendDataSession`. */
export interface SendSessionOptions {
  /** Default `'broadcast'`. */
  destination?: DestinationInput;
  /** @internal */
  internalDestination?: InternalDestination;
  /** Default `'normal'`. */
  priority?: Priority;
  /** Pace sending to this rate (kbit/s). Default: unpaced. */
  maxBitrateKbps?: number;
}

/** Counters of a send session. */
export interface SendSessionStats {
  messagesSent: number;
  bytesSent: number;
  /** Local queue + paced backlog + what the server holds for the slowest receiver. */
  queuedBytes: number;
  localQueuedBytes: number;
  serverBacklogBytes: number;
  /** Unreliable chunks dropped here (queue full) and in the server. */
  droppedLocal: number;
  droppedServer: number;
  /** Sequence number the next `send()` will use. */
  nextSeq: number;
  /** Messages `send()` did not send because no destination remained (see `noDestination`). */
  unsentNoDestination: number;
}

type SendEvents = {
  queueTooLong: [{ triggered: boolean }];
  unsupported: [{ participantId: string }];
  receiverDetached: [{ participantId: string; reason: Reason }];
  /**
   * Every participant of an explicit destination has left the room or was detached from this
   * session: from now on `send()` sends nothing and returns false, until `changeDestination()`
   * names a participant that can receive.
   */
  noDestination: [{ participantIds: string[] }];
  /** Server feedback: bytes it holds for the slowest receiver, and unreliable chunks it dropped. */
  backlog: [{ serverBacklogBytes: number; droppedServer: number }];
  closed: [{ reason: Reason }];
};

/** Normalises a destination for the wire. */
export function toWireDestination(d: InternalDestination | undefined): Destination {
  if (d === undefined || d === 'broadcast') return 'broadcast';
  if (typeof d === 'object' && !Array.isArray(d)) return 'addressed';
  const ids = typeof d === 'string' ? [d] : [...new Set(d)];
  if (ids.length === 0 || !ids.every((i) => typeof i === 'string' && i.length > 0)) {
    throw new BackchannelError(ErrorCode.InvalidArgument, "destination must be 'broadcast', a participant id or a non-empty array of them");
  }
  return ids;
}

export class SendDataSession extends Emitter<SendEvents> {
  readonly streamId: number;
  readonly mode: DataMode;
  readonly priority: Priority;
  readonly maxBitrateKbps: number | undefined;
  #destination: Destination;
  #seq = 0;
  #serverBacklog = 0;
  #droppedServer = 0;
  #droppedLocal = 0;
  #messages = 0;
  #bytes = 0;
  #above = false;
  #closed: Reason | undefined;
  /** Destination participants that left the room or were detached from this session. */
  readonly #gone = new Set<string>();
  #noDestination = false;
  #unsent = 0;
  #drainWaiters: (() => void)[] = [];
  #flushWaiters: (() => void)[] = [];
  readonly #key: string;
  // Pacing state (maxBitrateKbps).
  #paced: OutItem[] = [];
  #pacedBytes = 0;
  #tokens = 0;
  #tokensAt = 0;
  #paceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly room: RoomBase,
    streamId: number,
    mode: DataMode,
    destination: Destination,
    options: SendSessionOptions,
  ) {
    super();
    this.streamId = streamId;
    this.mode = mode;
    this.#destination = destination;
    this.priority = options.priority ?? 'normal';
    this.maxBitrateKbps = options.maxBitrateKbps;
    this.#key = `${room.roomNum}:${streamId}`;
  }

  /** Current destination. */
  get destination(): Destination {
    return this.#destination;
  }

  /**
   * Whether data sent now reaches anyone: false when every participant of an explicit destination
   * has left or was detached (see `noDestination`). Always true for broadcast sessions (later
   * joiners receive them).
   */
  get hasDestination(): boolean {
    const d = this.#destination;
    return typeof d === 'string' || d.some((id) => !this.#gone.has(id));
  }

  /** Whether the session is closed (and why). */
  get closeReason(): Reason | undefined {
    return this.#closed;
  }

  /** Bytes queued: locally (incl. pacing) plus the server's backlog for the slowest receiver. */
  get queuedBytes(): number {
    return this.#localQueued() + this.#serverBacklog;
  }

  /**
   * Queues `data` (bytes, or a string sent as UTF-8). Never throws for a full queue: returns
   * whether queued bytes are still below the high-water mark. Returns false, sending nothing, when
   * the session has no destination left (`hasDestination`, the `noDestination` event). Throws
   * `session-closed` after close and `message-too-large` for a reliable-message over the limit.
   */
  send(data: Uint8Array | string): boolean {
    return this.#queue(data, undefined);
  }

  /** @internal Sends one message to one participant (sessions opened with destination 'addressed'). */
  _sendTo(targetSid: number, data: Uint8Array | string): boolean {
    return this.#queue(data, targetSid);
  }

  #queue(data: Uint8Array | string, target: number | undefined): boolean {
    if (this.#closed) throw new BackchannelError(ErrorCode.SessionClosed, `session ${this.streamId} is closed (${this.#closed.code})`);
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    if (!(bytes instanceof Uint8Array)) throw new BackchannelError(ErrorCode.InvalidArgument, 'send() takes a Uint8Array or a string');
    const limits = this.room.core.limits;
    if (this.mode === 'reliable-message' && bytes.byteLength > limits.maxMessageBytes) {
      throw new BackchannelError(ErrorCode.MessageTooLarge, `message of ${bytes.byteLength} bytes exceeds the limit of ${limits.maxMessageBytes}`, {
        details: { size: bytes.byteLength, limit: limits.maxMessageBytes },
      });
    }
    const seq = this.#seq;
    this.#seq = (this.#seq + 1) >>> 0;
    if (target === undefined && !this.hasDestination) {
      this.#unsent++;
      return false;
    }
    this.#messages++;
    this.#bytes += bytes.byteLength;
    const chunk = limits.chunkBytes;
    const droppable = this.mode === 'unreliable';
    if (droppable && !this.room.core.link.attached) {
      // Reconnecting: unreliable data is never held for later; it is dropped here, and counted.
      this.#droppedLocal += Math.max(1, Math.ceil(bytes.byteLength / chunk));
      return this.queuedBytes < this.room.core.options.highWaterMarkBytes;
    }
    for (let off = 0; off === 0 || off < bytes.byteLength; off += chunk) {
      const payload = bytes.subarray(off, Math.min(off + chunk, bytes.byteLength));
      const fin = off + chunk >= bytes.byteLength;
      const item: OutItem = {
        size: payload.byteLength,
        droppable,
        header: target === undefined ? { mode: this.mode, fin, streamId: this.streamId, room: this.room.roomNum, seq } : { mode: this.mode, fin, streamId: this.streamId, room: this.room.roomNum, seq, target },
        payload,
        onSent: this.#onSent,
      };
      if (this.maxBitrateKbps) {
        this.#paced.push(item);
        this.#pacedBytes += item.size;
      } else this.#enqueue(item);
    }
    if (this.maxBitrateKbps) this.#release();
    this.#checkWater();
    return this.queuedBytes < this.room.core.options.highWaterMarkBytes;
  }

  /** Resolves when queued bytes fall below the low-water mark (at once if they already are). */
  drained(): Promise<void> {
    if (this.#closed || this.queuedBytes < this.room.core.options.lowWaterMarkBytes) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Changes who receives data sent from now on; resolves once the server applies it. */
  async changeDestination(destination: DestinationInput): Promise<void> {
    if (this.#closed) throw new BackchannelError(ErrorCode.SessionClosed, `session ${this.streamId} is closed`);
    const wire = toWireDestination(destination);
    // Data already queued here was sent for the old destination: let it leave first.
    await this.#flushed();
    await this.room.core.link.request({ t: 'ds.dest', room: this.room.roomNum, streamId: this.streamId, destination: wire });
    this.#destination = wire;
    if (this.hasDestination) this.#noDestination = false;
    else this.#checkDestination();
  }

  /** Sends what is queued, then closes the session; receivers see `closed` after the last data. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#flushed();
    if (this.#closed) return;
    this.#end({ code: SessionCloseReason.Closed, message: 'closed by the sender' });
    await this.room.core.link.request({ t: 'ds.close', room: this.room.roomNum, streamId: this.streamId }).catch(() => undefined);
  }

  /** Counters and queue levels. */
  stats(): SendSessionStats {
    return {
      messagesSent: this.#messages,
      bytesSent: this.#bytes,
      queuedBytes: this.queuedBytes,
      localQueuedBytes: this.#localQueued(),
      serverBacklogBytes: this.#serverBacklog,
      droppedLocal: this.#droppedLocal,
      droppedServer: this.#droppedServer,
      nextSeq: this.#seq,
      unsentNoDestination: this.#unsent,
    };
  }

  /** @internal A participant left the room. */
  _participantLeft(participantId: string): void {
    this.#lose(participantId);
  }

  /** @internal The server detached a receiver from this session. */
  _detached(participantId: string, reason: Reason): void {
    this.#lose(participantId);
    this.emit('receiverDetached', { participantId, reason });
  }

  #lose(participantId: string): void {
    const d = this.#destination;
    if (typeof d === 'string' || !d.includes(participantId)) return;
    this.#gone.add(participantId);
    this.#checkDestination();
  }

  #checkDestination(): void {
    if (this.#closed || this.#noDestination || this.hasDestination) return;
    this.#noDestination = true;
    const d = this.#destination;
    this.emit('noDestination', { participantIds: typeof d === 'string' ? [] : [...d] });
  }

  /** @internal Resolves when nothing of this session is queued locally any more. */
  _flushed(): Promise<void> {
    return this.#flushed();
  }

  /** @internal Server feedback: bytes held for the slowest receiver, total unreliable drops. */
  _onBacklog(bytes: number, dropped: number): void {
    this.#serverBacklog = bytes;
    this.#droppedServer = dropped;
    this.#checkWater();
    this.emit('backlog', { serverBacklogBytes: bytes, droppedServer: dropped });
  }

  /** @internal The session ended for a reason other than our own close. */
  _end(reason: Reason): void {
    if (this.#closed) return;
    this.#end(reason);
  }

  #end(reason: Reason): void {
    this.#closed = reason;
    clearTimeout(this.#paceTimer);
    this.#paced = [];
    this.#pacedBytes = 0;
    this.room.core.outbound.queue.clear(this.#key);
    this.room._forgetSendSession(this);
    this.emit('closed', { reason });
    this.#resolveAll();
  }

  #localQueued(): number {
    return this.room.core.outbound.queue.bytesOf(this.#key) + this.#pacedBytes;
  }

  #enqueue(item: OutItem): void {
    const cap = item.droppable ? this.room.core.options.unreliableQueueMaxBytes : undefined;
    const dropped = this.room.core.outbound.push(this.#key, PRIORITY_CLASS[this.priority], item, cap);
    this.#droppedLocal += dropped.length;
  }

  readonly #onSent = (): void => {
    this.#checkWater();
  };

  #release(): void {
    clearTimeout(this.#paceTimer);
    this.#paceTimer = undefined;
    const rate = (this.maxBitrateKbps! * 1000) / 8 / 1000; // bytes per ms
    const burst = rate * 50; // at most 50 ms worth of data at once
    const now = Date.now();
    this.#tokens = Math.min(burst, this.#tokens + (now - (this.#tokensAt || now)) * rate);
    this.#tokensAt = now;
    while (this.#paced.length > 0 && this.#tokens > 0) {
      const item = this.#paced.shift()!;
      this.#pacedBytes -= item.size;
      this.#tokens -= item.size;
      this.#enqueue(item);
    }
    if (this.#paced.length > 0) this.#paceTimer = setTimeout(() => this.#release(), Math.max(1, Math.ceil(-this.#tokens / rate)));
    this.#checkWater();
  }

  #checkWater(): void {
    const q = this.queuedBytes;
    const { highWaterMarkBytes, lowWaterMarkBytes } = this.room.core.options;
    if (!this.#above && q > highWaterMarkBytes) {
      this.#above = true;
      this.emit('queueTooLong', { triggered: true });
    } else if (this.#above && q < lowWaterMarkBytes) {
      this.#above = false;
      this.emit('queueTooLong', { triggered: false });
    }
    if (q < lowWaterMarkBytes && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    }
    if (this.#localQueued() === 0 && this.#flushWaiters.length > 0) {
      const waiters = this.#flushWaiters;
      this.#flushWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when nothing of this session is queued locally. */
  #flushed(): Promise<void> {
    if (this.#localQueued() === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#flushWaiters.push(resolve));
  }

  #resolveAll(): void {
    for (const w of this.#drainWaiters.splice(0)) w();
    for (const w of this.#flushWaiters.splice(0)) w();
  }
}
