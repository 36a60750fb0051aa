/**
 * Data sessions in the server: opening, destinations, forwarding with per-receiver bounded queues,
 * slow-receiver detachment, unsupported stream ids, backlog feedback to senders and the
 * per-participant bitrate limit. No I/O: everything leaves through {@link PeerLink}s.
 */
import {
  BackchannelError,
  ErrorCode,
  LeaveReason,
  DATA_HEADER_BYTES,
  PRIORITY_CLASS,
  STREAM_ID_CONTROL,
  STREAM_ID_DATA_STREAM_MAX,
  STREAM_ID_RESERVED_MIN,
  SessionCloseReason,
  restampDataFrame,
  type ClientMessage,
  type DataFrame,
  type DataMode,
  type Destination,
  type PriorityClass,
  type Reason,
  type SessionInfo,
} from '@backchannel/protocol';
import { reason, requireGrant, type Hub } from './hub.js';
import type { DataCounters } from './metrics.js';
import type { OutboundFrame, Peer } from './peer.js';
import type { Member, Room } from './room.js';

/** One open send session. Its key is also the queue key at every receiver. */
interface SendSession {
  /** Queue key at every receiver (string, built once). */
  key: string;
  /** Lookup key in the room's session map: sender sid × 65536 + stream id. */
  id: number;
  room: Room;
  sender: Member;
  streamId: number;
  mode: DataMode;
  priority: PriorityClass;
  destination: 'broadcast' | 'addressed' | Set<string>;
  /** Receivers told `ds.incoming` (once per sender and stream id). */
  announced: Set<string>;
  /** Receivers detached as too slow; nothing more is forwarded to them. */
  detached: Set<string>;
  /** Unreliable frames dropped for any receiver (reported to the sender). */
  dropped: number;
  /** Unreliable frames dropped per receiver since the last report. */
  recvDrops: Map<string, number>;
  reportedBacklog: number;
  reportedDropped: number;
  /** Since when each receiver has been at least a chunk behind (reliable sessions). */
  behindSince: Map<string, { since: number; taken: number }>;
  /** The metrics counters of this session's mode (incremented in place). */
  counts: DataCounters;
  /** A `reliable-message` message is partly forwarded (its last fragment has not passed yet). */
  mid: boolean;
  /**
   * Receivers that became receivers while a message was partly forwarded: they start at the next
   * message, so that a receiver only ever gets whole messages.
   */
  joinedMid: Set<string> | undefined;
}

/**
 * What one queued frame costs in the accounting (queue limits, backlog reports, the server-wide
 * budget): its payload plus this, for the header and the bookkeeping that holds it. An empty frame
 * is never free.
 */
export const FRAME_COST_BYTES = 128;

type DsMessage = ClientMessage<'ds.open' | 'ds.dest' | 'ds.close' | 'ds.unsupport' | 'ds.support'>;

/** Auto-allocated stream ids start here: above the conventional application range (100–999). */
const AUTO_ID_MIN = 1000;
const ROOM_GONE_CODES: ReadonlySet<string> = new Set([LeaveReason.RoomEnded, LeaveReason.CallEnded, LeaveReason.ServerShutdown]);

export class SessionRouter {
  readonly #byRoom = new Map<number, Map<number, SendSession>>();
  readonly #perPeer = new Map<Peer, number>();
  readonly #active = new Set<SendSession>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #budgetLoggedAt = 0;

  constructor(private readonly hub: Hub) {}

  /** Sessions open in `room` that include `member`: the late joiner's list; marks them announced. */
  readonly openSessionsFor = (room: Room, member: Member): SessionInfo[] => {
    const out: SessionInfo[] = [];
    for (const s of this.#byRoom.get(room.num)?.values() ?? []) {
      if (!this.#includes(s, member) || s.announced.has(member.peer.id)) continue;
      if (this.#refuses(member, s.streamId)) continue;
      s.announced.add(member.peer.id);
      out.push({ streamId: s.streamId, from: s.sender.peer.id, sid: s.sender.peer.sid, mode: s.mode });
    }
    return out;
  };

  /** Number of open send sessions in all rooms. */
  get openCount(): number {
    let n = 0;
    for (const m of this.#byRoom.values()) n += m.size;
    return n;
  }

  handleRequest(peer: Peer, { room, member }: { room: Room; member: Member }, msg: DsMessage): unknown {
    switch (msg.t) {
      case 'ds.open':
        return this.#open(peer, room, member, msg);
      case 'ds.dest': {
        const s = this.#own(room, peer, msg.streamId);
        this.#setDestination(s, msg.destination);
        return {};
      }
      case 'ds.close':
        this.#close(this.#own(room, peer, msg.streamId), reason(SessionCloseReason.Closed, 'closed by the sender'), false);
        return {};
      case 'ds.unsupport':
        this.#unsupport(room, member, msg.streamId);
        return {};
      case 'ds.support':
        if (member.unsupported?.delete(msg.streamId)) {
          for (const s of this.#byRoom.get(room.num)?.values() ?? []) if (s.streamId === msg.streamId && this.#includes(s, member)) this.#becameReceiver(s, member);
        }
        return {};
    }
  }

  /** Forwards one data frame from `peer` to the session's current receivers. */
  handleData(peer: Peer, room: Room, frame: DataFrame, raw: Uint8Array): void {
    const s = this.#byRoom.get(room.num)?.get(sessionId(peer.sid, frame.streamId));
    if (!s) throw new BackchannelError(ErrorCode.SessionNotFound, `no open send session on stream ${frame.streamId} in room ${room.num}`);
    if (frame.mode !== s.mode) throw new BackchannelError(ErrorCode.BadFrame, `frame mode ${frame.mode} does not match session mode ${s.mode}`);
    if (s.streamId >= STREAM_ID_RESERVED_MIN) checkBuiltIn(s, frame);
    const payloadBytes = frame.payload.byteLength;
    if (!peer.remote) this.meter(peer, payloadBytes + DATA_HEADER_BYTES);
    const budget = this.hub.queuedBytes();
    if (budget > this.hub.config.serverQueueMaxBytes) this.#overBudget(peer, budget);
    const c = s.counts;
    c.framesIn++;
    c.bytesIn += payloadBytes;
    if (frame.fin) c.messagesIn++;
    // The received frame is forwarded as it is, with the sender's handle stamped in.
    restampDataFrame(raw, peer.sid);
    const out: OutboundFrame = { size: payloadBytes + FRAME_COST_BYTES, droppable: s.mode === 'unreliable', wire: raw };
    let n = 0;
    if (s.destination === 'broadcast') {
      for (const m of room.members.values()) n += this.#forward(s, m, out);
    } else if (s.destination === 'addressed') {
      const m = room.bySid.get(frame.sender);
      // A hidden member cannot be addressed: it answers exactly like a participant that is not there.
      if (!m || (m.hidden && !s.sender.hidden)) throw new BackchannelError(ErrorCode.ParticipantNotFound, `no participant with handle ${frame.sender} in room ${room.num}`);
      n = this.#forward(s, m, out);
    } else {
      for (const id of s.destination) {
        const m = room.members.get(id);
        if (m) n += this.#forward(s, m, out);
      }
    }
    c.framesOut += n;
    c.bytesOut += n * payloadBytes;
    if (frame.fin) c.messagesOut += n;
    if (s.mode === 'reliable-message') {
      if (frame.fin) {
        s.mid = false;
        s.joinedMid = undefined;
      } else s.mid = true;
    }
    this.#activate(s);
  }

  /** Over the server-wide budget for queued data: stop reading data from this sender for a while. */
  #overBudget(peer: Peer, bytes: number): void {
    peer.link.pauseInbound(OVER_BUDGET_PAUSE_MS);
    const now = Date.now();
    if (now - this.#budgetLoggedAt > 10_000) {
      this.#budgetLoggedAt = now;
      this.hub.warn({ queuedBytes: bytes, limit: this.hub.config.serverQueueMaxBytes }, 'server-wide queue budget reached; reading from senders is slowed down');
    }
  }

  /** Queues one frame of `s` for receiver `m` (a method, not a closure per frame: the hot path); returns 1 if it did, else 0. */
  #forward(s: SendSession, m: Member, out: OutboundFrame): number {
    if (m === s.sender || s.detached.has(m.peer.id) || this.#refuses(m, s.streamId)) return 0;
    if (s.joinedMid?.has(m.peer.id)) return 0; // starts at the next whole message
    if (!s.announced.has(m.peer.id)) this.#announce(s, m);
    const cfg = this.hub.config;
    if (out.droppable) {
      const dropped = m.peer.link.sendDroppable(s.key, s.priority, out, cfg.unreliableQueueMaxBytes);
      if (dropped > 0) this.#dropped(s, m, dropped);
      return 1;
    }
    const queued = m.peer.link.sendData(s.key, s.priority, out);
    if (queued > cfg.receiverQueueMaxBytes / 2 && (m.peer.remote || s.sender.peer.remote)) {
      // Across nodes the sender hears of the backlog later than on one server (the report crosses
      // between nodes first), long enough to overrun the hard limit at full speed: its reading is
      // held back meanwhile, as TCP would.
      s.sender.peer.link.pauseInbound(CROSS_NODE_PAUSE_MS);
    }
    if (queued > cfg.receiverQueueMaxBytes) {
      if (m.peer.connection === 'reconnecting') this.#detach(s, m, `more than ${cfg.receiverQueueMaxBytes} bytes were held for the receiver while its connection was lost`, SessionCloseReason.ResumeBufferOverflow);
      else this.#detach(s, m);
    } else if (m.peer.link.queuedTotal > cfg.connectionQueueMaxBytes) {
      // All sessions toward one connection together are bounded too: the one adding is detached.
      this.#detach(s, m, `more than ${cfg.connectionQueueMaxBytes} bytes were held for the receiver over all its sessions`);
    } else if (m.hidden) {
      return 1; // a hidden receiver's backlog is not reported to the sender
    } else if (queued >= s.reportedBacklog + cfg.chunkBytes) {
      // Growth is reported at once (a sender can push megabytes between timer ticks), and so is
      // this receiver catching up (a sender that waits for it resumes without waiting for the
      // timer); the timer reports other decreases and the exact maximum over receivers.
      s.reportedBacklog = queued;
      s.sender.peer.link.sendEvent({ t: 'ds.backlog', room: s.room.num, streamId: s.streamId, bytes: queued, dropped: s.dropped });
      m.peer.link.onDrained(s.key, () => this.#caughtUp(s));
    }
    return 1;
  }

  /** A member entered: senders learn if it refuses their stream ids. */
  memberEntered(room: Room, member: Member): void {
    for (const s of this.#byRoom.get(room.num)?.values() ?? []) {
      if (!this.#includes(s, member)) continue;
      this.#becameReceiver(s, member);
      if (this.#refuses(member, s.streamId) && !member.hidden) {
        s.sender.peer.link.sendEvent({ t: 'ds.unsupported', room: room.num, streamId: s.streamId, participantId: member.peer.id });
      }
    }
  }

  /** `m` is a receiver of `s` from now on: if a message is partly forwarded, it starts at the next. */
  #becameReceiver(s: SendSession, m: Member): void {
    if (s.mid) (s.joinedMid ??= new Set()).add(m.peer.id);
  }

  /** A member is leaving: its sessions close, and it stops being a receiver. */
  memberLeaving(room: Room, member: Member, why: Reason): void {
    const sessions = this.#byRoom.get(room.num);
    const code = ROOM_GONE_CODES.has(why.code) ? SessionCloseReason.RoomEnded : SessionCloseReason.SenderLeft;
    for (const s of [...(sessions?.values() ?? [])]) {
      // The leaving sender learns of its own sessions' end from the room ending on its side.
      if (s.sender === member) this.#close(s, reason(code, code === SessionCloseReason.RoomEnded ? 'the room ended' : 'the sender left'), false);
      else {
        s.announced.delete(member.peer.id);
        s.detached.delete(member.peer.id);
        if (typeof s.destination !== 'string') s.destination.delete(member.peer.id);
      }
    }
  }

  /** The room is gone: forget its sessions. */
  roomEnded(room: Room): void {
    for (const s of this.#byRoom.get(room.num)?.values() ?? []) this.#forget(s);
    this.#byRoom.delete(room.num);
  }

  /** Stops the backlog timer (server shutdown). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #open(peer: Peer, room: Room, member: Member, msg: ClientMessage<'ds.open'>): { streamId: number } {
    // Without the publish grant a participant may still answer on the control channel (RPC
    // responses, data-stream confirmations): what it may send there is checked per message.
    if (msg.streamId !== STREAM_ID_CONTROL) requireGrant(peer.grants.publishData, 'publishing data');
    const sessions = this.#byRoom.get(room.num) ?? new Map<number, SendSession>();
    let streamId = msg.streamId;
    if (streamId === 0) streamId = this.#allocate(sessions);
    if (streamId >= STREAM_ID_RESERVED_MIN) checkBuiltInOpen(streamId, msg);
    const allow = peer.grants.streamIds;
    if (allow && streamId < STREAM_ID_RESERVED_MIN && !allow.includes(streamId)) {
      throw new BackchannelError(ErrorCode.StreamIdNotAllowed, `the access token does not allow sending on stream ${streamId}`, { details: { streamId } });
    }
    const key = sessionKey(room.num, peer.sid, streamId);
    const id = sessionId(peer.sid, streamId);
    if (sessions.has(id)) throw new BackchannelError(ErrorCode.StreamIdInUse, `stream ${streamId} is already open by this participant`, { details: { streamId } });
    const count = this.#perPeer.get(peer) ?? 0;
    if (count >= this.hub.config.maxSessionsPerParticipant) {
      throw new BackchannelError(ErrorCode.TooManySessions, `a participant may have at most ${this.hub.config.maxSessionsPerParticipant} open send sessions`, {
        details: { limit: this.hub.config.maxSessionsPerParticipant },
      });
    }
    const destination = this.#checkDestination(room, peer, msg.destination);
    const s: SendSession = {
      key,
      id,
      room,
      sender: member,
      streamId,
      mode: msg.mode,
      priority: PRIORITY_CLASS[msg.priority],
      destination,
      announced: new Set(),
      detached: new Set(),
      dropped: 0,
      recvDrops: new Map(),
      reportedBacklog: 0,
      reportedDropped: 0,
      behindSince: new Map(),
      mid: false,
      joinedMid: undefined,
      counts: this.hub.metrics.data[msg.mode],
    };
    s.counts.sessionsOpened++;
    sessions.set(id, s);
    this.#byRoom.set(room.num, sessions);
    this.#perPeer.set(peer, count + 1);
    // Announce after the reply so the sender holds its session object when events about it arrive.
    this.hub.afterReply(peer, () => this.#announceAll(s));
    return { streamId };
  }

  #announceAll(s: SendSession): void {
    if (!this.#byRoom.get(s.room.num)?.has(s.id)) return;
    for (const m of s.room.members.values()) if (this.#includes(s, m)) this.#announce(s, m);
  }

  #announce(s: SendSession, m: Member): void {
    if (this.#refuses(m, s.streamId)) {
      if (!m.hidden) s.sender.peer.link.sendEvent({ t: 'ds.unsupported', room: s.room.num, streamId: s.streamId, participantId: m.peer.id });
      return;
    }
    if (s.announced.has(m.peer.id)) return;
    s.announced.add(m.peer.id);
    m.peer.link.sendEvent({ t: 'ds.incoming', room: s.room.num, streamId: s.streamId, from: s.sender.peer.id, sid: s.sender.peer.sid, mode: s.mode });
  }

  #setDestination(s: SendSession, destination: Destination): void {
    const before = s.mid ? [...s.room.members.values()].filter((m) => this.#includes(s, m)) : [];
    s.destination = this.#checkDestination(s.room, s.sender.peer, destination);
    if (s.mid) for (const m of s.room.members.values()) if (this.#includes(s, m) && !before.includes(m)) this.#becameReceiver(s, m);
    this.hub.afterReply(s.sender.peer, () => this.#announceAll(s));
  }

  #checkDestination(room: Room, sender: Peer, destination: Destination): 'broadcast' | 'addressed' | Set<string> {
    if (destination === 'broadcast' || destination === 'addressed') return destination;
    for (const id of destination) {
      if (id === sender.id) throw new BackchannelError(ErrorCode.InvalidArgument, 'a session cannot be sent to its own sender');
      const m = room.members.get(id);
      // A hidden member is named exactly like one that is not there.
      if (!m || (m.hidden && !sender.grants.hidden)) throw new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${id} is not in this room`, { details: { participantId: id } });
    }
    return new Set(destination);
  }

  #unsupport(room: Room, member: Member, streamId: number): void {
    (member.unsupported ??= new Set()).add(streamId);
    for (const s of this.#byRoom.get(room.num)?.values() ?? []) {
      if (s.streamId !== streamId || !this.#includes(s, member)) continue;
      member.peer.link.discard(s.key);
      if (member.hidden) continue;
      this.hub.afterReply(member.peer, () => s.sender.peer.link.sendEvent({ t: 'ds.unsupported', room: room.num, streamId, participantId: member.peer.id }));
    }
  }

  #detach(s: SendSession, m: Member, detail = `receiver fell more than ${this.hub.config.receiverQueueMaxBytes} bytes behind`, code: string = SessionCloseReason.ReceiverTooSlow): void {
    s.detached.add(m.peer.id);
    if (code === SessionCloseReason.ReceiverTooSlow) s.counts.receiversTooSlow++;
    else s.counts.receiversOverflowed++;
    m.peer.link.discard(s.key);
    const why = reason(code, detail);
    m.peer.link.sendEvent({ t: 'ds.closed', room: s.room.num, streamId: s.streamId, from: s.sender.peer.id, reason: why });
    if (!m.hidden) s.sender.peer.link.sendEvent({ t: 'ds.detached', room: s.room.num, streamId: s.streamId, participantId: m.peer.id, reason: why });
  }

  /** Closes a session: receivers get `ds.closed` after the data queued before it. */
  #close(s: SendSession, why: Reason, tellSender: boolean): void {
    const sessions = this.#byRoom.get(s.room.num);
    if (!sessions?.delete(s.id)) return;
    this.#forget(s);
    for (const m of s.room.members.values()) {
      if (m === s.sender || !s.announced.has(m.peer.id) || s.detached.has(m.peer.id)) continue;
      m.peer.link.sendSessionEvent(s.key, s.priority, { t: 'ds.closed', room: s.room.num, streamId: s.streamId, from: s.sender.peer.id, reason: why });
    }
    if (tellSender && !s.sender.peer.gone) s.sender.peer.link.sendEvent({ t: 'ds.ended', room: s.room.num, streamId: s.streamId, reason: why });
  }

  #forget(s: SendSession): void {
    s.counts.sessionsClosed++;
    this.#active.delete(s);
    const peer = s.sender.peer;
    const n = (this.#perPeer.get(peer) ?? 1) - 1;
    if (n > 0) this.#perPeer.set(peer, n);
    else this.#perPeer.delete(peer);
  }

  #own(room: Room, peer: Peer, streamId: number): SendSession {
    const s = this.#byRoom.get(room.num)?.get(sessionId(peer.sid, streamId));
    if (!s) throw new BackchannelError(ErrorCode.SessionNotFound, `no open send session on stream ${streamId}`, { details: { streamId } });
    return s;
  }

  #includes(s: SendSession, m: Member): boolean {
    if (m === s.sender) return false;
    return s.destination === 'broadcast' || s.destination === 'addressed' || s.destination.has(m.peer.id);
  }

  /** Whether `m` does not take stream `streamId`: unsupported, not subscribed, or no data sessions. */
  #refuses(m: Member, streamId: number): boolean {
    const p = m.peer;
    if (!p.grants.subscribeData || !p.capabilities.dataSession) return true;
    if (p.capabilities.streamIds && streamId < STREAM_ID_RESERVED_MIN && !p.capabilities.streamIds.includes(streamId)) return true;
    return m.unsupported?.has(streamId) ?? false;
  }

  /** A stream id no session in the room uses (any sender's), above the conventional application range. */
  #allocate(sessions: Map<number, SendSession>): number {
    const used = new Set<number>();
    for (const s of sessions.values()) used.add(s.streamId);
    for (let id = AUTO_ID_MIN; id < STREAM_ID_RESERVED_MIN; id++) if (!used.has(id)) return id;
    throw new BackchannelError(ErrorCode.StreamIdsExhausted, 'no free stream id left to allocate');
  }

  /**
   * Applies the per-participant limits on data bitrate (frames at their size on the wire) and on
   * data frames per second, by pausing reads from a peer that is over either. In a cluster the
   * node a client is connected to meters all its data, wherever its rooms are (a pause decided
   * on another node would come after the data it should have held back).
   */
  meter(peer: Peer, bytes: number): void {
    const { maxDataBitrateKbps: kbps, maxDataFramesPerSecond: fps, chunkBytes } = this.hub.config;
    if (kbps === 0 && fps === 0) return;
    const now = Date.now();
    const b = peer.dataBucket;
    const elapsed = now - b.last;
    b.last = now;
    let waitMs = 0;
    if (kbps > 0) {
      const rate = (kbps * 1000) / 8 / 1000; // bytes per ms
      const burst = Math.max(rate * 250, chunkBytes);
      b.tokens = Math.min(burst, b.tokens + elapsed * rate) - bytes;
      if (b.tokens < 0) waitMs = Math.ceil(-b.tokens / rate);
    }
    if (fps > 0) {
      const rate = fps / 1000; // frames per ms
      const burst = Math.max(fps / 4, 16);
      b.frames = Math.min(burst, b.frames + elapsed * rate) - 1;
      if (b.frames < 0) waitMs = Math.max(waitMs, Math.ceil(-b.frames / rate));
    }
    if (waitMs > 0) peer.link.pauseInbound(waitMs);
  }

  /** A receiver of `s` has written out its queue: report the new backlog if it shrank. */
  #caughtUp(s: SendSession): void {
    if (this.#byRoom.get(s.room.num)?.get(s.id) !== s) return; // closed meanwhile
    let backlog = 0;
    const visit = (m: Member) => {
      if (m !== s.sender && !m.hidden && !s.detached.has(m.peer.id)) backlog = Math.max(backlog, m.peer.link.backlogOf(s.key));
    };
    this.#eachReceiver(s, visit);
    if (backlog >= s.reportedBacklog) return;
    s.reportedBacklog = backlog;
    s.sender.peer.link.sendEvent({ t: 'ds.backlog', room: s.room.num, streamId: s.streamId, bytes: backlog, dropped: s.dropped });
  }

  /** Calls `visit` for each member `s` may send to (a destination set: those still in the room). */
  #eachReceiver(s: SendSession, visit: (m: Member) => void): void {
    if (typeof s.destination === 'string') for (const m of s.room.members.values()) visit(m);
    else for (const id of s.destination) { const m = s.room.members.get(id); if (m) visit(m); }
  }

  /** Counts `n` unreliable frames of `s` dropped for receiver `m`. */
  #dropped(s: SendSession, m: Member, n: number): void {
    // A hidden receiver's drops are not reported to the sender (nothing may reveal it).
    if (!m.hidden) s.dropped += n;
    s.counts.dropped += n;
    s.recvDrops.set(m.peer.id, (s.recvDrops.get(m.peer.id) ?? 0) + n);
    this.#activate(s);
  }

  /** Cluster mode: the edge of `receiver` dropped `n` unreliable frames of session `key` for it. */
  droppedFor(key: string, receiver: Peer, n: number): void {
    const s = this.#byKey(key);
    const m = s?.room.members.get(receiver.id);
    if (s && m) this.#dropped(s, m, n);
  }

  #byKey(key: string): SendSession | undefined {
    const [room, sid, streamId] = key.split(':').map(Number) as [number, number, number];
    return this.#byRoom.get(room)?.get(sessionId(sid, streamId));
  }

  /**
   * The queue of session `key` toward a receiver changed outside the data path (cluster mode: a
   * remote receiver's edge reported it): the session's backlog is reported again at the next tick.
   */
  queueChanged(key: string): void {
    const s = this.#byKey(key);
    if (s) this.#activate(s);
  }

  #activate(s: SendSession): void {
    this.#active.add(s);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#report(), this.hub.config.backlogReportMs);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Tells senders how far their slowest receiver is behind, and receivers what was dropped. */
  #report(): void {
    const now = Date.now();
    const { chunkBytes, slowReceiverTimeoutMs } = this.hub.config;
    for (const s of this.#active) {
      let backlog = 0;
      // Held for any receiver, backlog or in transit: the session stays watched until it is all written.
      let held = 0;
      const visit = (m: Member) => {
        if (m === s.sender || s.detached.has(m.peer.id)) return;
        const queued = m.peer.link.queuedBytes(s.key);
        held = Math.max(held, queued);
        // A receiver that is away is bounded by the resume window and the byte limit instead.
        if (s.mode !== 'unreliable' && slowReceiverTimeoutMs > 0 && queued >= chunkBytes && m.peer.connection === 'connected') {
          // Behind and making no progress: a receiver that reads, only more slowly than the sender
          // writes, is backpressure (the sender sees queueTooLong), not a stalled receiver.
          const taken = m.peer.link.progressOf(s.key);
          const behind = s.behindSince.get(m.peer.id);
          if (behind === undefined || behind.taken !== taken) s.behindSince.set(m.peer.id, { since: now, taken });
          else if (now - behind.since >= slowReceiverTimeoutMs) {
            s.behindSince.delete(m.peer.id);
            this.#detach(s, m, `receiver stayed behind for ${slowReceiverTimeoutMs} ms`);
            return;
          }
        } else s.behindSince.delete(m.peer.id);
        if (!m.hidden) backlog = Math.max(backlog, m.peer.link.backlogOf(s.key));
      };
      this.#eachReceiver(s, visit);
      if (backlog !== s.reportedBacklog || s.dropped !== s.reportedDropped) {
        s.reportedBacklog = backlog;
        s.reportedDropped = s.dropped;
        s.sender.peer.link.sendEvent({ t: 'ds.backlog', room: s.room.num, streamId: s.streamId, bytes: backlog, dropped: s.dropped });
      }
      for (const [id, count] of s.recvDrops) {
        s.room.members.get(id)?.peer.link.sendEvent({ t: 'ds.dropped', room: s.room.num, streamId: s.streamId, from: s.sender.peer.id, count });
      }
      s.recvDrops.clear();
      if (held === 0) this.#active.delete(s);
    }
    if (this.#active.size === 0) this.stop();
  }
}

/** Numeric id of a session within its room. */
function sessionId(senderSid: number, streamId: number): number {
  return senderSid * 65536 + streamId;
}

/** Queue key of a session, the same at every receiver. */
export function sessionKey(room: number, senderSid: number, streamId: number): string {
  return `${room}:${senderSid}:${streamId}`;
}

/** Pause of a sender's reading while the server-wide queue budget is exceeded, ms. */
const OVER_BUDGET_PAUSE_MS = 50;
/** Pause of a sender's reading while a receiver on another node of the cluster is half-way to the queue limit, ms. */
const CROSS_NODE_PAUSE_MS = 20;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Reserved stream ids carry only Backchannel's own protocols, in their own modes and destinations. */
function checkBuiltInOpen(streamId: number, msg: ClientMessage<'ds.open'>): void {
  const control = streamId === STREAM_ID_CONTROL;
  if (streamId > STREAM_ID_DATA_STREAM_MAX || msg.mode !== 'reliable-message' || (control && msg.destination !== 'addressed')) {
    throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream id ${streamId} is reserved for Backchannel's own protocols`, { details: { streamId } });
  }
}

/**
 * Checks that a frame on a reserved stream id is well-formed built-in protocol traffic: a control
 * message (a JSON object whose `t` is an RPC or data-stream message) on the control channel, and a
 * tagged header, chunk or trailer at the start of each message of a data stream. Only the first
 * bytes of a chunk are looked at.
 */
function checkBuiltIn(s: SendSession, frame: DataFrame): void {
  const p = frame.payload;
  if (s.streamId === STREAM_ID_CONTROL) {
    const t = frame.fin && !s.mid ? controlMessageType(p) : undefined;
    if (!t) throw new BackchannelError(ErrorCode.BadFrame, `stream ${STREAM_ID_CONTROL} carries only built-in control messages`);
    if (!s.sender.peer.grants.publishData && !ANSWERS.has(t)) requireGrant(false, `sending "${t}" (only answers are allowed without publishing data)`);
    return;
  }
  if (s.mid) return; // a continuation of a message whose start was checked
  const tag = p[0];
  const ok = tag === 1 ? p.byteLength >= 5 : (tag === 0 || tag === 2) && frame.fin && isJsonObject(p.subarray(1)) !== undefined;
  if (!ok) throw new BackchannelError(ErrorCode.BadFrame, `stream ${s.streamId} carries only data-stream headers, chunks and trailers`);
}

function isJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The type of a built-in control message (an RPC or data-stream message), if `bytes` is one. */
function controlMessageType(bytes: Uint8Array): string | undefined {
  const msg = isJsonObject(bytes);
  return typeof msg?.t === 'string' && (msg.t.startsWith('rpc.') || msg.t.startsWith('stream.')) ? msg.t : undefined;
}

/** Control messages that answer someone else's: allowed without the publish grant. */
const ANSWERS: ReadonlySet<string> = new Set(['rpc.res', 'stream.done', 'stream.refuse']);
