/**
 * Data streams of one room: opening writers (one reserved-id session per stream), dispatching
 * incoming stream messages to per-topic handlers, holding streams briefly while no handler is
 * registered, refusing what cannot be taken, confirming what arrived whole, aborting streams that
 * go idle, and enforcing the concurrency limits.
 *
 * Each receiving SDK answers each stream once on the room's control channel: `stream.done { id }`
 * when the whole stream arrived (with `reason` when it arrived damaged), or `stream.refuse { id,
 * reason }` when it will not take it. The sender's writer resolves `close()` on those answers.
 */
import {
  BackchannelError,
  ErrorCode,
  STREAM_ID_DATA_STREAM_MAX,
  STREAM_ID_DATA_STREAM_MIN,
  StreamFailReason,
  type Priority,
  type Reason,
} from '@backchannel/protocol';
import type { ControlChannel, ControlMessage } from '../builtin/control.js';
import { ReceiveGate, itemCost } from '../data/receive-gate.js';
import type { DestinationInput } from '../data/send-session.js';
import type { DataInfo } from '../data/recv-session.js';
import type { RoomBase } from '../room.js';
import { decodeStreamMessage, type StreamHeader, type StreamMessage } from './format.js';
import { StreamReader } from './reader.js';
import { StreamWriter, type StreamProgress } from './writer.js';

/** Options of the stream-opening methods. */
export interface StreamOptions {
  /** Default `'broadcast'`. */
  destination?: DestinationInput;
  attributes?: Record<string, string>;
  mimeType?: string;
  name?: string;
  /** Total bytes, when known (shown to receivers as progress total). */
  totalLength?: number;
  priority?: Priority;
  onProgress?: (p: StreamProgress) => void;
}

/** Called for each incoming stream on a topic. */
export type StreamHandler = (reader: StreamReader, context: { from: string }) => void | Promise<void>;

interface Incoming {
  from: string;
  /** The trailer has arrived (a held stream is complete and outlives its session). */
  complete: boolean;
  header: StreamHeader;
  reader: StreamReader | undefined;
  held: StreamMessage[];
  heldBytes: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Aborts the stream when nothing arrived on it for `streamIdleTimeoutMs`. */
  idle: ReturnType<typeof setTimeout> | undefined;
  refused: boolean;
}

/** A wire reason from another participant, or undefined if malformed. */
function wireReason(raw: unknown): Reason | undefined {
  const r = raw as Reason | undefined;
  return r && typeof r === 'object' && typeof r.code === 'string' && typeof r.message === 'string' ? { code: r.code, message: r.message } : undefined;
}

const randomId = () => {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return 'ST_' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
};

export class DataStreams {
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #outgoing = new Map<string, StreamWriter<string | Uint8Array>>();
  /** Reserved stream ids in use by outgoing streams (from opening until their session closed). */
  readonly #usedIds = new Set<number>();
  readonly #incoming = new Map<string, Incoming>();
  /** Topics of recently opened outgoing streams by stream id, to report late refusals. */
  readonly #recentTopics = new Map<string, string>();

  constructor(
    private readonly room: RoomBase,
    private readonly control: ControlChannel,
  ) {}

  /** Opens a writer. Rejects with `too-many-streams` at the outgoing limit (never waits). */
  async open(kind: 'text' | 'bytes', topic: string, options: StreamOptions = {}): Promise<StreamWriter<string | Uint8Array>> {
    if (typeof topic !== 'string' || !topic) throw new BackchannelError(ErrorCode.InvalidArgument, 'a stream needs a topic');
    const limit = this.room.core.options.maxOutgoingStreams;
    if (this.#usedIds.size >= limit) {
      throw new BackchannelError(ErrorCode.TooManyStreams, `at most ${limit} outgoing streams may be open at once (option maxOutgoingStreams)`, { details: { limit } });
    }
    const streamId = this.#freeStreamId();
    this.#usedIds.add(streamId);
    let tx;
    try {
      tx = await this.room._openSendSession(streamId, 'reliable-message', { destination: options.destination ?? 'broadcast', priority: options.priority ?? 'normal' }, true);
    } catch (error) {
      this.#usedIds.delete(streamId);
      throw error;
    }
    const header: StreamHeader = {
      id: randomId(),
      topic,
      kind,
      mimeType: options.mimeType ?? (kind === 'text' ? 'text/plain' : 'application/octet-stream'),
      attributes: { ...(options.attributes ?? {}) },
      timestamp: Date.now(),
      ...(options.name !== undefined ? { name: options.name } : {}),
      ...(options.totalLength !== undefined ? { totalLength: options.totalLength } : {}),
    };
    const dest = options.destination;
    const explicit = !(dest === undefined || dest === 'broadcast');
    // A broadcast reaches those in the room now that take data (later joiners start mid-stream,
    // without its header, and ignore it); hidden participants are not listed and not waited for.
    const expected = explicit
      ? [...new Set(typeof dest === 'string' ? [dest] : (dest as string[]))]
      : [...this.room.participants.values()].filter((p) => p.supportsDataSession).map((p) => p.id);
    const { chunkBytes } = this.room.core.limits;
    const writer: StreamWriter<string | Uint8Array> = new StreamWriter(
      tx,
      header,
      { ...(options.onProgress ? { onProgress: options.onProgress } : {}), expected, explicit, chunkBytes, confirmTimeoutMs: this.room.core.options.streamConfirmTimeoutMs },
      () => {
        this.#outgoing.delete(header.id);
        this.#usedIds.delete(streamId);
      },
    );
    tx.on('closed', ({ reason }) => writer._sessionEnded(reason));
    tx.on('receiverDetached', ({ participantId, reason }) => writer._receiverGone(participantId, reason));
    tx.on('unsupported', ({ participantId }) => writer._unsupported(participantId));
    this.#outgoing.set(header.id, writer);
    this.#recentTopics.set(header.id, topic);
    if (this.#recentTopics.size > 256) this.#recentTopics.delete(this.#recentTopics.keys().next().value as string);
    return writer;
  }

  register(topic: string, handler: StreamHandler): void {
    if (this.#handlers.has(topic)) throw new BackchannelError(ErrorCode.InvalidArgument, `a stream handler for topic "${topic}" is already registered`);
    this.#handlers.set(topic, handler);
    for (const [key, inc] of this.#incoming) if (!inc.reader && !inc.refused && inc.header.topic === topic) this.#start(key, inc, handler);
  }

  unregister(topic: string): void {
    this.#handlers.delete(topic);
  }

  /** A message on a data-stream session from `info.from` (handle `sid`). */
  onMessage(data: Uint8Array, info: DataInfo, sid: number): void {
    if (info.streamId < STREAM_ID_DATA_STREAM_MIN || info.streamId > STREAM_ID_DATA_STREAM_MAX) return;
    let msg: StreamMessage;
    try {
      msg = decodeStreamMessage(data);
    } catch {
      return;
    }
    const key = `${sid}:${info.streamId}`;
    if (msg.type === 'header') return this.#onHeader(key, info.from, msg.header);
    const inc = this.#incoming.get(key);
    if (!inc || inc.refused) return;
    this.#armIdle(key, inc);
    if (!inc.reader) {
      if (msg.type === 'trailer') inc.complete = true;
      inc.held.push(msg.type === 'chunk' ? { ...msg, data: msg.data.slice() } : msg);
      inc.heldBytes += itemCost(msg.type === 'chunk' ? msg.data.byteLength : 0);
      if (inc.heldBytes > this.room.core.options.pendingBufferBytes) {
        this.#refuse(key, inc, StreamFailReason.ReceiverBufferOverflow, `the stream arrived before a handler and outgrew the pending buffer (${this.room.core.options.pendingBufferBytes} bytes)`);
      }
      return;
    }
    this.#feed(key, inc, msg);
  }

  /** The session under an incoming stream closed: a stream without its trailer ends abnormally. */
  onSessionClosed(sid: number, streamId: number, reason: Reason): void {
    const key = `${sid}:${streamId}`;
    const inc = this.#incoming.get(key);
    if (!inc) return;
    if (inc.complete && !inc.reader && !inc.refused) {
      // A complete stream still waiting for its handler stays (its refusal timer running), under
      // its own id: the session's stream id may be reused by the sender's next stream.
      this.#incoming.delete(key);
      this.#incoming.set(`held:${inc.header.id}`, inc);
      return;
    }
    this.#drop(key, inc);
    inc.reader?._abort(reason);
  }

  /** A control message about streams: a receiver's answer to one of ours. */
  onControl(msg: ControlMessage, from: string): void {
    if (typeof msg.id !== 'string') return;
    if (msg.t === 'stream.done') {
      this.#outgoing.get(msg.id)?._confirmed(from, msg.reason === undefined ? undefined : (wireReason(msg.reason) ?? malformed()));
      return;
    }
    if (msg.t !== 'stream.refuse') return;
    const reason = wireReason(msg.reason) ?? malformed();
    this.#outgoing.get(msg.id)?._refused(from, reason);
    const topic = this.#recentTopics.get(msg.id);
    if (topic !== undefined) this.room.emit('streamRefused', { id: msg.id, topic, participantId: from, reason });
  }

  /** A participant left: our streams to it fail, unless it had confirmed them. */
  participantLeft(participantId: string, why: Reason): void {
    const reason = { code: StreamFailReason.ReceiverLeft, message: `${participantId} left the room (${why.code})` };
    for (const w of this.#outgoing.values()) w._receiverGone(participantId, reason);
  }

  /** The room ended: every incoming stream ends abnormally. */
  close(reason: Reason): void {
    for (const [key, inc] of this.#incoming) {
      this.#drop(key, inc);
      inc.reader?._abort(reason);
    }
  }

  /**
   * Whether this client answers senders: a hidden participant never reveals itself. (Answers
   * need no publish grant: the server lets anyone answer on the control channel.)
   */
  get #answers(): boolean {
    return !this.room.core.grants.hidden;
  }

  #answer(to: string, msg: ControlMessage): void {
    if (this.#answers) this.control.send(to, msg).catch(() => undefined);
  }

  /**
   * (Re)starts an incoming stream's idle timer. When it fires while the app is behind in reading
   * (this reader holds chunks, or any queue is holding back the connection's data) the stream is
   * not idle, only waiting: the timer starts again.
   */
  #armIdle(key: string, inc: Incoming): void {
    clearTimeout(inc.idle);
    const ms = this.room.core.options.streamIdleTimeoutMs;
    inc.idle = setTimeout(() => {
      inc.idle = undefined;
      if (this.#incoming.get(key) !== inc || inc.refused) return;
      if ((inc.reader && inc.reader._queued > 0) || this.room.core.link.holdingAcks) return this.#armIdle(key, inc);
      const reason = { code: StreamFailReason.IdleTimeout, message: `nothing arrived on stream "${inc.header.topic}" for ${ms} ms` };
      inc.reader?._fail(new BackchannelError(ErrorCode.StreamAborted, `stream "${inc.header.topic}" was aborted: ${reason.message}`, { details: { reason: reason.code } }));
      this.#refuse(key, inc, reason.code, reason.message);
    }, ms);
  }

  #onHeader(key: string, from: string, header: StreamHeader): void {
    const previous = this.#incoming.get(key);
    if (previous) this.#drop(key, previous);
    const inc: Incoming = { from, header, complete: false, reader: undefined, held: [], heldBytes: 0, timer: undefined, idle: undefined, refused: false };
    this.#incoming.set(key, inc);
    const limit = this.room.core.options.maxIncomingStreams;
    const active = [...this.#incoming.values()].filter((i) => !i.refused).length;
    if (active > limit) return this.#refuse(key, inc, StreamFailReason.TooManyStreams, `the receiver takes at most ${limit} incoming streams at once`);
    // The answer to this stream goes on the control channel: open it now, not when the answer is due.
    if (this.#answers) this.control.open().catch(() => undefined);
    this.#armIdle(key, inc);
    const handler = this.#handlers.get(header.topic);
    if (handler) return this.#start(key, inc, handler);
    const waitMs = this.room.core.options.streamHandlerWaitMs;
    inc.timer = setTimeout(() => this.#refuse(key, inc, StreamFailReason.NoHandler, `no handler for topic "${header.topic}" within ${waitMs} ms`), waitMs);
  }

  #start(key: string, inc: Incoming, handler: StreamHandler): void {
    clearTimeout(inc.timer);
    inc.timer = undefined;
    const { options, link } = this.room.core;
    const gate = new ReceiveGate(() => link.holdAcks(), options.receiveHighWaterBytes, options.receiveLowWaterBytes);
    const reader = new StreamReader({ ...inc.header, sender: inc.from }, gate);
    inc.reader = reader;
    try {
      const r = handler(reader, { from: inc.from });
      if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch((e) => console.error(`[backchannel] stream handler for "${inc.header.topic}" failed:`, e));
    } catch (e) {
      console.error(`[backchannel] stream handler for "${inc.header.topic}" failed:`, e);
    }
    const held = inc.held;
    inc.held = [];
    inc.heldBytes = 0;
    for (const m of held) this.#feed(key, inc, m);
  }

  #feed(key: string, inc: Incoming, msg: StreamMessage): void {
    if (msg.type === 'chunk') inc.reader!._chunk(msg.index, msg.data);
    else if (msg.type === 'trailer') {
      const failure = inc.reader!._trailer(msg.trailer);
      this.#drop(key, inc);
      // Only a normal end is answered: an aborted stream's sender does not wait.
      if (msg.trailer.reason) return;
      const id = inc.header.id;
      this.#answer(inc.from, failure ? { t: 'stream.done', id, reason: { code: failure.code, message: failure.message } } : { t: 'stream.done', id });
    }
  }

  #refuse(key: string, inc: Incoming, code: StreamFailReason, message: string): void {
    if (inc.refused) return;
    inc.refused = true;
    if (inc.complete) this.#drop(key, inc);
    for (const [k, v] of this.#incoming) if (v === inc && k.startsWith('held:')) this.#incoming.delete(k);
    clearTimeout(inc.timer);
    clearTimeout(inc.idle);
    inc.held = [];
    inc.heldBytes = 0;
    this.#answer(inc.from, { t: 'stream.refuse', id: inc.header.id, reason: { code, message } });
    this.room.emit('dataSessionError', new BackchannelError(ErrorCode.StreamRefused, `refused stream "${inc.header.topic}" from ${inc.from}: ${message}`, { details: { topic: inc.header.topic, from: inc.from, reason: code } }));
  }

  #drop(key: string, inc: Incoming): void {
    clearTimeout(inc.timer);
    clearTimeout(inc.idle);
    if (this.#incoming.get(key) === inc) this.#incoming.delete(key);
  }

  #freeStreamId(): number {
    for (let id = STREAM_ID_DATA_STREAM_MIN; id <= STREAM_ID_DATA_STREAM_MAX; id++) if (!this.#usedIds.has(id)) return id;
    throw new BackchannelError(ErrorCode.TooManyStreams, 'no reserved stream id left for another stream');
  }
}

/** The reason recorded for a stream answer whose reason is not a `{ code, message }` object. */
function malformed(): Reason {
  return { code: ErrorCode.BadMessage, message: 'the receiver sent a malformed answer' };
}
