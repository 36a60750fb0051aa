/**
 * What a 1:1 call and a conference share: participants, their events, and data sessions.
 */
import {
  BackchannelError,
  Emitter,
  ErrorCode,
  STREAM_ID_CONTROL,
  STREAM_ID_RESERVED_MIN,
  SessionCloseReason,
  MAX_PARTICIPANTS_PAGE,
  isValidStreamId,
  type AnnouncedLimits,
  type DataFrame,
  type DataMode,
  type ParticipantInfo,
  type ParticipantsPage,
  type PresenceChange,
  type PresenceMode,
  type Reason,
  type RoomInfo,
  type ServerEvent,
  type WelcomeResult,
} from '@backchannel/protocol';
import { ControlChannel } from './builtin/control.js';
import { Rpc, type PerformRpcOptions, type RpcHandler } from './builtin/rpc.js';
import { Inbox, type ReassemblyBudget } from './data/inbox.js';
import type { Outbound } from './data/outbound.js';
import { ReceiveGate } from './data/receive-gate.js';
import { RecvDataSession, type OnData, type RecvSessionOptions } from './data/recv-session.js';
import { SendDataSession, toWireDestination, type SendSessionOptions } from './data/send-session.js';
import type { Link } from './link.js';
import type { ResolvedClientOptions } from './options.js';
import { RemoteParticipant } from './participant.js';
import { blobSource, platform, type FileSource } from './platform.js';
import { DataStreams, type StreamHandler, type StreamOptions } from './streams/manager.js';
import type { StreamWriter } from './streams/writer.js';

/** What rooms need from their client (internal). */
export interface ClientCore {
  link: Link;
  outbound: Outbound;
  options: Readonly<ResolvedClientOptions>;
  limits: AnnouncedLimits;
  participantId: string;
  /** What this client's token allows. */
  grants: WelcomeResult['grants'];
  /** Memory held by partly reassembled messages, shared by every room of the connection. */
  reassembly: ReassemblyBudget;
  /**
   * An `unreliable` session was opened by this client or announced toward it: the client's WebRTC
   * datagram path is negotiated on the first call (docs/webrtc.md).
   */
  wantDatagrams(): void;
}

/** A data session someone opened toward this participant. */
export interface IncomingSession {
  streamId: number;
  /** Participant id of the sender. */
  from: string;
  mode: DataMode;
}

/** Events every room emits. */
export type RoomEvents = {
  participantJoined: [RemoteParticipant];
  participantLeft: [RemoteParticipant, Reason];
  participantUpdated: [RemoteParticipant];
  /**
   * Participants who joined together (one presence batch of the server), after their
   * `participantJoined` events: for apps that redraw a large member list once per batch.
   */
  participantsJoined: [RemoteParticipant[]];
  /** Participants who left together (one presence batch), after their `participantLeft` events. */
  participantsLeft: [{ participant: RemoteParticipant; reason: Reason }[]];
  /** A sender opened a session that includes us (also fired on join for sessions already open). */
  dataSessionIncoming: [IncomingSession];
  /** Data was lost before a receiver existed, or a similar data problem (`receiver-buffer-overflow`, …). */
  dataSessionError: [BackchannelError];
  /** A receiver refused one of our data streams (e.g. no handler for its topic). */
  streamRefused: [{ id: string; topic: string; participantId: string; reason: Reason }];
  /** The room ended for us (left, ended, call over, connection lost). `durationMs` for calls. */
  ended: [{ reason: Reason; durationMs?: number }];
};

const MODES: readonly DataMode[] = ['reliable-message', 'reliable-bytes', 'unreliable'];

export abstract class RoomBase<E extends RoomEvents = RoomEvents> extends Emitter<E> {
  /** Server-wide room number (internal handle). */
  roomNum = 0;
  /** Remote participants by participant id (hidden participants are not listed). */
  readonly participants = new Map<string, RemoteParticipant>();
  /** This client's own participant record in the room. */
  self: ParticipantInfo | undefined;
  /** What this client hears of the others (`'none'`: no list; see {@link fetchParticipants}). */
  presence: PresenceMode = 'full';
  /** Sequence number of the last presence change applied. */
  #presenceSeq = 0;
  readonly #bySid = new Map<number, string>();
  readonly #sidByPid = new Map<string, number>();
  readonly #control: ControlChannel;
  readonly #rpc: Rpc;
  readonly #streams: DataStreams;
  readonly #send = new Map<number, SendDataSession>();
  readonly #incoming = new Map<string, IncomingSession>();
  readonly #inbox: Inbox;
  #endReason: Reason | undefined;

  constructor(readonly core: ClientCore) {
    super();
    this.#inbox = new Inbox({
      pendingBufferBytes: core.options.pendingBufferBytes,
      pendingBufferMs: core.options.pendingBufferMs,
      maxMessageBytes: core.limits.maxMessageBytes,
      get reassembly() {
        return core.reassembly;
      },
      participantIdOf: (sid) => (sid === 0 ? 'server' : (this.#bySid.get(sid) ?? `sid:${sid}`)),
      reportError: (err) => (this as RoomBase).emit('dataSessionError', err),
      onReserved: (data, info, sid) => this.#onReserved(data, info, sid),
    });
    this.#control = new ControlChannel(this as RoomBase);
    this.#rpc = new Rpc(this.#control, (pid) => this.participants.has(pid) || this.#sidByPid.has(pid));
    this.#streams = new DataStreams(this as RoomBase, this.#control);
  }

  /** Whether the room is over for this client. */
  get isEnded(): boolean {
    return this.#endReason !== undefined;
  }

  /** Sessions currently open toward this participant. */
  get incomingSessions(): IncomingSession[] {
    return [...this.#incoming.values()];
  }

  /**
   * Opens a one-way data session. `streamId` 0/undefined lets the server pick a free id (returned
   * on the session). Resolves once the server has opened it.
   */
  async makeSendDataSession(streamId: number | undefined, mode: DataMode = 'reliable-message', options: SendSessionOptions = {}): Promise<SendDataSession> {
    return this._openSendSession(streamId, mode, options, false);
  }

  /** @internal Also used by built-in protocols on reserved stream ids. */
  async _openSendSession(streamId: number | undefined, mode: DataMode, options: SendSessionOptions, reserved: boolean): Promise<SendDataSession> {
    this.#assertOpen();
    const id = streamId ?? 0;
    if (id !== 0 && !isValidStreamId(id)) throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream id must be an integer 1–65535 (got ${String(streamId)})`);
    if (id >= STREAM_ID_RESERVED_MIN && !reserved) {
      throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream ids ${STREAM_ID_RESERVED_MIN}–65535 are reserved for Backchannel's own protocols`);
    }
    if (!MODES.includes(mode)) throw new BackchannelError(ErrorCode.InvalidArgument, `mode must be one of ${MODES.join(', ')}`);
    const priority = options.priority ?? 'normal';
    if (!['high', 'normal', 'low'].includes(priority)) throw new BackchannelError(ErrorCode.InvalidArgument, "priority must be 'high', 'normal' or 'low'");
    if (options.maxBitrateKbps !== undefined && !(Number.isFinite(options.maxBitrateKbps) && options.maxBitrateKbps > 0)) {
      throw new BackchannelError(ErrorCode.InvalidArgument, 'maxBitrateKbps must be a positive number');
    }
    const destination = toWireDestination(options.internalDestination ?? options.destination);
    const { streamId: opened } = await this.core.link.request<{ streamId: number }>({ t: 'ds.open', room: this.roomNum, streamId: id, mode, destination, priority });
    const session = new SendDataSession(this, opened, mode, destination, options);
    this.#send.set(opened, session);
    if (mode === 'unreliable') this.core.wantDatagrams();
    return session;
  }

  /**
   * Starts receiving stream `streamId`: from every sender that has no receiver of its own, or,
   * with `options.from`, from that one participant only. Data that arrived before is delivered
   * first, in order. Without `onData`, iterate the receiver with `for await`. After
   * `unsupportDataSession(streamId)`, this supports the stream id again (the server forwards it
   * here again) before it resolves.
   */
  async makeRecvDataSession(streamId: number, onData?: OnData, options: RecvSessionOptions = {}): Promise<RecvDataSession> {
    this.#assertOpen();
    if (!isValidStreamId(streamId)) throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream id must be an integer 1–65535 (got ${String(streamId)})`);
    if (streamId >= STREAM_ID_RESERVED_MIN) throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream ids ${STREAM_ID_RESERVED_MIN}–65535 are reserved for Backchannel's own protocols`);
    if (onData !== undefined && typeof onData !== 'function') throw new BackchannelError(ErrorCode.InvalidArgument, 'onData must be a function');
    const { from } = options;
    if (from !== undefined && (typeof from !== 'string' || !from)) throw new BackchannelError(ErrorCode.InvalidArgument, 'option from must be a participant id');
    const { options: opts } = this.core;
    const gate = new ReceiveGate(() => this.core.link.holdAcks(), opts.receiveHighWaterBytes, opts.receiveLowWaterBytes);
    const rx = new RecvDataSession(streamId, onData, from, gate, (r) => this.#inbox.detach(r));
    const wasRefused = this.#inbox.refused.has(streamId);
    this.#inbox.attach(rx);
    if (wasRefused) {
      try {
        await this.core.link.request({ t: 'ds.support', room: this.roomNum, streamId });
      } catch (error) {
        rx.close();
        this.#inbox.refuse(streamId);
        throw error;
      }
    }
    return rx;
  }

  /**
   * Refuses stream `streamId`: the server stops forwarding it here and its senders get
   * `unsupported`; receivers of it end (their iterators finish). Undone by
   * `makeRecvDataSession(streamId)`.
   */
  async unsupportDataSession(streamId: number): Promise<void> {
    this.#assertOpen();
    if (!isValidStreamId(streamId)) throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream id must be an integer 1–65535 (got ${String(streamId)})`);
    this.#inbox.refuse(streamId);
    await this.core.link.request({ t: 'ds.unsupport', room: this.roomNum, streamId });
  }

  /** @internal */
  _forgetSendSession(s: SendDataSession): void {
    if (this.#send.get(s.streamId) === s) this.#send.delete(s.streamId);
  }

  /**
   * One page of the room's other visible participants, in join order (oldest first), as the
   * server has them now: `next` is the cursor of the following page (pass it as `after`), absent
   * on the last page; `total` is how many there are. Works in every presence mode; the way to
   * list a large room joined with `presence: 'none'`.
   */
  async fetchParticipants(options: { after?: string; limit?: number } = {}): Promise<ParticipantsPage> {
    this.#assertOpen();
    const { after, limit } = options;
    if (after !== undefined && (typeof after !== 'string' || !/^[0-9]{1,32}$/.test(after))) {
      throw new BackchannelError(ErrorCode.InvalidArgument, 'after must be the `next` cursor of an earlier page');
    }
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_PARTICIPANTS_PAGE)) {
      throw new BackchannelError(ErrorCode.InvalidArgument, `limit must be an integer 1–${MAX_PARTICIPANTS_PAGE}`);
    }
    const msg: Record<string, unknown> & { t: string } = { t: 'room.participants', room: this.roomNum };
    if (after !== undefined) msg.after = after;
    if (limit !== undefined) msg.limit = limit;
    const page = await this.core.link.request<ParticipantsPage>(msg);
    // Those listed can be addressed (RPC, streams, addressed sessions) even without presence.
    for (const p of page.participants) this.#mapSid(p.sid, p.id);
    return page;
  }

  /** @internal Applies a room snapshot (on join / call connect). */
  _applyInfo(info: RoomInfo): void {
    this.roomNum = info.room;
    this.self = info.self;
    this.#presenceSeq = info.presenceSeq;
    this.#mapSid(info.self.sid, info.self.id);
    for (const p of info.participants) {
      this.participants.set(p.id, new RemoteParticipant(p));
      this.#mapSid(p.sid, p.id);
    }
    // Late joiner: sessions already open. Announced after the caller's await resumes.
    if (info.sessions.length > 0) {
      for (const s of info.sessions) this.#mapSid(s.sid, s.from);
      if (info.sessions.some((s) => s.mode === 'unreliable')) this.core.wantDatagrams();
      setTimeout(() => {
        for (const s of info.sessions) if (s.streamId < STREAM_ID_RESERVED_MIN) this.#incomingSession(s.streamId, s.from, s.mode);
      }, 0);
    }
  }

  /** @internal */
  _onData(frame: DataFrame): void {
    if (!this.isEnded) this.#inbox.onFrame(frame);
  }

  /** @internal Room-scoped server events. */
  _onEvent(ev: ServerEvent): void {
    switch (ev.t) {
      case 'room.presence':
        this.#onPresence(ev.seq, ev.changes);
        return;
      case 'room.ended':
        this._end(ev.reason);
        return;
      case 'ds.incoming':
        this.#mapSid(ev.sid, ev.from);
        if (ev.mode === 'unreliable') this.core.wantDatagrams();
        if (ev.streamId < STREAM_ID_RESERVED_MIN) this.#incomingSession(ev.streamId, ev.from, ev.mode);
        return;
      case 'ds.closed': {
        const sid = this.#sidByPid.get(ev.from);
        if (sid !== undefined) this.#inbox.sessionClosed(sid, ev.streamId);
        if (ev.streamId >= STREAM_ID_RESERVED_MIN) {
          if (sid !== undefined) this.#streams.onSessionClosed(sid, ev.streamId, ev.reason);
          return;
        }
        this.#incoming.delete(`${ev.from}:${ev.streamId}`);
        this.#inbox.receiverFor(ev.streamId, ev.from)?.emit('closed', { from: ev.from, reason: ev.reason });
        return;
      }
      case 'ds.dropped': {
        const rx = this.#inbox.receiverFor(ev.streamId, ev.from);
        rx?._countDropped(ev.count, 0);
        rx?.emit('dropped', { from: ev.from, count: ev.count });
        return;
      }
      case 'ds.backlog':
        this.#send.get(ev.streamId)?._onBacklog(ev.bytes, ev.dropped);
        return;
      case 'ds.unsupported':
        this.#send.get(ev.streamId)?.emit('unsupported', { participantId: ev.participantId });
        return;
      case 'ds.detached':
        this.#send.get(ev.streamId)?._detached(ev.participantId, ev.reason);
        return;
      case 'ds.ended':
        this.#send.get(ev.streamId)?._end(ev.reason);
        return;
      default:
        return;
    }
  }

  /**
   * Applies one batch of presence changes (those the snapshot already counts are skipped), firing
   * the per-participant events in order, then the batch events.
   */
  #onPresence(first: number, changes: PresenceChange[]): void {
    const joined: RemoteParticipant[] = [];
    const left: { participant: RemoteParticipant; reason: Reason }[] = [];
    for (let i = 0; i < changes.length; i++) {
      const seq = first + i;
      if (seq <= this.#presenceSeq) continue;
      this.#presenceSeq = seq;
      const c = changes[i]!;
      if (c.k !== 'l' && c.participant.id === this.core.participantId) {
        if (c.k === 'u') this.self = c.participant; // its own join is known from the reply
        continue;
      }
      if (c.k === 'j') {
        const p = new RemoteParticipant(c.participant);
        this.participants.set(p.id, p);
        this.#mapSid(p.sid, p.id);
        joined.push(p);
        (this as RoomBase).emit('participantJoined', p);
      } else if (c.k === 'u') {
        const p = this.participants.get(c.participant.id);
        if (!p) continue;
        p._update(c.participant);
        (this as RoomBase).emit('participantUpdated', p);
      } else {
        this.#rpc.participantLeft(c.participantId);
        for (const s of this.#send.values()) s._participantLeft(c.participantId);
        this.#streams.participantLeft(c.participantId, c.reason);
        this.#inbox.senderLeft(c.participantId);
        const p = this.participants.get(c.participantId);
        if (!p) continue;
        this.participants.delete(p.id);
        left.push({ participant: p, reason: c.reason });
        (this as RoomBase).emit('participantLeft', p, c.reason);
      }
    }
    if (joined.length > 0) (this as RoomBase).emit('participantsJoined', joined);
    if (left.length > 0) (this as RoomBase).emit('participantsLeft', left);
  }

  /** @internal Ends the room locally: sessions close, receivers end, `ended` fires once. */
  _end(reason: Reason, durationMs?: number): void {
    if (this.#endReason) return;
    this.#endReason = reason;
    const sessionReason = { code: SessionCloseReason.RoomEnded, message: reason.message };
    for (const s of [...this.#send.values()]) s._end(sessionReason);
    for (const inc of this.#incoming.values()) this.#inbox.receiverFor(inc.streamId, inc.from)?.emit('closed', { from: inc.from, reason: sessionReason });
    this.#inbox.close();
    this.#streams.close(sessionReason);
    this.#rpc.close();
    this.#incoming.clear();
    this._detach();
    (this as RoomBase).emit('ended', durationMs === undefined ? { reason } : { reason, durationMs });
  }

  /** @internal Resolves once the control channel's messages (answers to senders, RPC) have left the SDK. */
  _flushControl(): Promise<void> {
    return this.#control.flushed();
  }

  /** @internal Numeric handle of a participant (for addressed messages). */
  _sidOf(participantId: string): number | undefined {
    return this.#sidByPid.get(participantId);
  }

  // ---- Data streams (topic-based, on reserved stream ids) ----

  /**
   * Sends `text` as one text stream on `topic`. Resolves once every destination's SDK confirmed
   * it (`delivered`: their participant ids); rejects with `stream-refused` / `stream-not-delivered`
   * (see `StreamWriter.close`).
   */
  async sendText(topic: string, text: string, options: StreamOptions = {}): Promise<{ id: string; delivered: string[] }> {
    const w = await this.streamText(topic, { ...options, totalLength: new TextEncoder().encode(text).byteLength });
    await w.write(text);
    await w.close();
    return { id: w.info.id, delivered: w.delivered };
  }

  /** Opens a text stream writer on `topic`. */
  async streamText(topic: string, options: StreamOptions = {}): Promise<StreamWriter<string>> {
    this.#assertOpen();
    return (await this.#streams.open('text', topic, options)) as StreamWriter<string>;
  }

  /** Opens a byte stream writer on `topic`. */
  async streamBytes(topic: string, options: StreamOptions = {}): Promise<StreamWriter<Uint8Array>> {
    this.#assertOpen();
    return (await this.#streams.open('bytes', topic, options)) as StreamWriter<Uint8Array>;
  }

  /**
   * Sends `data` as one byte stream on `topic` (SHA-256 verified by receivers). Resolves once every
   * destination's SDK confirmed it whole; rejects otherwise (see `StreamWriter.close`).
   */
  async sendBytes(topic: string, data: Uint8Array, options: StreamOptions = {}): Promise<{ id: string; delivered: string[] }> {
    const w = await this.streamBytes(topic, { ...options, totalLength: data.byteLength });
    await w.write(data);
    await w.close();
    return { id: w.info.id, delivered: w.delivered };
  }

  /**
   * Sends a file as a byte stream, reading it chunk by chunk (never whole in memory): a `File` or
   * `Blob` anywhere, or a path in Node. Name, size and MIME type go in the header; receivers verify
   * its SHA-256. Resolves once every destination's SDK confirmed it whole; rejects otherwise (see
   * `StreamWriter.close`).
   */
  async sendFile(topic: string, file: Blob | string, options: StreamOptions = {}): Promise<{ id: string; bytes: number; delivered: string[] }> {
    const source: FileSource = typeof file === 'string' ? await platform.openPath(file) : blobSource(file, options.name);
    const w = await this.streamBytes(topic, { name: source.name, mimeType: source.mimeType, ...options, totalLength: source.size });
    try {
      for await (const chunk of source.chunks(this.core.limits.chunkBytes - 5)) await w.write(chunk);
    } catch (error) {
      await w.abort(`reading the file failed: ${(error as Error).message}`).catch(() => undefined);
      throw error;
    }
    await w.close();
    return { id: w.info.id, bytes: w.bytesWritten, delivered: w.delivered };
  }

  /** Handles incoming streams on `topic` (one handler per topic). */
  registerStreamHandler(topic: string, handler: StreamHandler): void {
    this.#streams.register(topic, handler);
  }

  unregisterStreamHandler(topic: string): void {
    this.#streams.unregister(topic);
  }

  // ---- RPC ----

  /** Makes `method` callable by other participants of this room. */
  registerRpcMethod(method: string, handler: RpcHandler): void {
    this.#rpc.register(method, handler);
  }

  unregisterRpcMethod(method: string): void {
    this.#rpc.unregister(method);
  }

  /** Calls `method` on another participant; resolves with its response payload. */
  performRpc(options: PerformRpcOptions): Promise<string> {
    this.#assertOpen();
    return this.#rpc.perform(options);
  }

  #onReserved(data: Uint8Array, info: { from: string; seq: number; streamId: number; mode: DataMode }, sid: number): void {
    if (info.streamId === STREAM_ID_CONTROL) {
      const msg = ControlChannel.parse(data);
      if (!msg) return;
      if (msg.t.startsWith('rpc.')) this.#rpc.onControl(msg, info.from);
      else if (msg.t.startsWith('stream.')) this.#streams.onControl(msg, info.from);
      return;
    }
    this.#streams.onMessage(data, info, sid);
  }

  #mapSid(sid: number, participantId: string): void {
    this.#bySid.set(sid, participantId);
    this.#sidByPid.set(participantId, sid);
  }

  /** @internal Removes the room from the client's registry. */
  protected abstract _detach(): void;

  #incomingSession(streamId: number, from: string, mode: DataMode): void {
    const key = `${from}:${streamId}`;
    if (this.#incoming.has(key)) return;
    const inc = { streamId, from, mode };
    this.#incoming.set(key, inc);
    (this as RoomBase).emit('dataSessionIncoming', inc);
  }

  #assertOpen(): void {
    if (this.#endReason) throw new BackchannelError(ErrorCode.NotInRoom, `the room has ended (${this.#endReason.code})`);
    if (!this.roomNum) throw new BackchannelError(ErrorCode.NotInRoom, 'the call is not connected yet');
  }
}
