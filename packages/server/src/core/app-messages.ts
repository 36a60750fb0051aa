/**
 * App control messages: data the server API sends into a room. Clients receive them exactly like
 * data from a participant, with the server as sender (participant id `'server'`, handle 0):
 *
 * - the server keeps one send session per room and stream id, open for the room's life;
 * - each receiver is told `ds.incoming` (from `'server'`) before its first message on it, so late
 *   joiners learn of it with the next message;
 * - every message gets the next sequence number of that session (receivers that were not a
 *   destination see a gap, as with any session);
 * - sending on the same stream id with another mode closes the session (`ds.closed`, reason
 *   `closed`) after its queued data and opens a new one.
 *
 * No I/O: everything leaves through the members' {@link PeerLink}s.
 */
import {
  BackchannelError,
  ErrorCode,
  PRIORITY_CLASS,
  STREAM_ID_RESERVED_MIN,
  SessionCloseReason,
  encodeDataFrame,
  type DataMode,
  type Priority,
  type PriorityClass,
} from '@backchannel/protocol';
import { reason, type Hub } from './hub.js';
import type { OutboundFrame } from './peer.js';
import type { Member, Room } from './room.js';

/** Participant handle of the server in data frames (clients map it to `'server'`). */
export const SERVER_SID = 0;
/** Participant id clients see as the sender of app control messages. */
export const SERVER_PARTICIPANT_ID = 'server';

/** One app control message. */
export interface AppMessage {
  streamId: number;
  mode: DataMode;
  data: Uint8Array;
  /** Everyone in the room, or these participant ids. */
  destination: 'broadcast' | readonly string[];
  priority: Priority;
}

interface ServerSession {
  streamId: number;
  mode: DataMode;
  /** Queue key at every receiver; cannot collide with a participant's (handles start at 1). */
  key: string;
  priority: PriorityClass;
  /** Sequence number of the next message. */
  seq: number;
  /** Members told `ds.incoming` (a member who leaves and re-joins is a new Member). */
  announced: WeakSet<Member>;
}

/** The server's send sessions, per room and stream id (forgotten with the room). */
export class AppMessenger {
  readonly #sessions = new WeakMap<Room, Map<number, ServerSession>>();

  constructor(private readonly hub: Hub) {}

  /**
   * Queues `msg` for its destination in `room`. Returns the message's sequence number and the
   * participants it was queued for (those that refuse the stream id, lack the subscribe grant, do
   * not support data sessions, or already have more than `receiverQueueMaxBytes` of this stream
   * queued are skipped). Throws `stream-id-invalid`, `message-too-large`,
   * or `participant-not-found` for a destination id not in the room.
   */
  send(room: Room, msg: AppMessage): { seq: number; recipients: string[] } {
    if (!Number.isInteger(msg.streamId) || msg.streamId < 1 || msg.streamId >= STREAM_ID_RESERVED_MIN) {
      throw new BackchannelError(ErrorCode.StreamIdInvalid, `stream id must be an integer 1–${STREAM_ID_RESERVED_MIN - 1}`, { details: { streamId: msg.streamId } });
    }
    const cfg = this.hub.config;
    if (msg.data.byteLength > cfg.maxMessageBytes) {
      throw new BackchannelError(ErrorCode.MessageTooLarge, `message of ${msg.data.byteLength} bytes exceeds the limit of ${cfg.maxMessageBytes}`, {
        details: { size: msg.data.byteLength, limit: cfg.maxMessageBytes },
      });
    }
    const targets: Member[] = [];
    if (msg.destination === 'broadcast') targets.push(...room.members.values());
    else {
      for (const id of msg.destination) {
        const m = room.members.get(id);
        if (!m) throw new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${id} is not in this room`, { details: { participantId: id } });
        targets.push(m);
      }
    }
    const s = this.#session(room, msg);
    const seq = s.seq;
    s.seq = (s.seq + 1) >>> 0;
    const frames = this.#frames(room, s, seq, msg.data);
    const recipients: string[] = [];
    for (const m of targets) {
      if (refuses(m, s.streamId)) continue;
      const link = m.peer.link;
      // A receiver this far behind on a reliable stream is skipped (it sees a sequence gap) rather
      // than letting the API grow its queue without bound; the caller sees it missing from recipients.
      if (s.mode !== 'unreliable' && link.queuedBytes(s.key) > cfg.receiverQueueMaxBytes) continue;
      if (!s.announced.has(m)) {
        s.announced.add(m);
        // Through the session's queue, so it follows data (and a `ds.closed`) queued before it.
        link.sendSessionEvent(s.key, s.priority, { t: 'ds.incoming', room: room.num, streamId: s.streamId, from: SERVER_PARTICIPANT_ID, sid: SERVER_SID, mode: s.mode });
      }
      for (const f of frames) {
        if (f.droppable) link.sendDroppable(s.key, s.priority, f, cfg.unreliableQueueMaxBytes);
        else link.sendData(s.key, s.priority, f);
      }
      recipients.push(m.peer.id);
    }
    return { seq, recipients };
  }

  /** The server's session on `msg.streamId` in `room`, re-opened if the mode changed. */
  #session(room: Room, msg: AppMessage): ServerSession {
    let byStream = this.#sessions.get(room);
    if (!byStream) this.#sessions.set(room, (byStream = new Map()));
    const existing = byStream.get(msg.streamId);
    if (existing && existing.mode === msg.mode) {
      existing.priority = PRIORITY_CLASS[msg.priority];
      return existing;
    }
    if (existing) {
      const why = reason(SessionCloseReason.Closed, 'the server reopened this stream id with another mode');
      for (const m of room.members.values()) {
        if (!existing.announced.has(m)) continue;
        m.peer.link.sendSessionEvent(existing.key, existing.priority, { t: 'ds.closed', room: room.num, streamId: existing.streamId, from: SERVER_PARTICIPANT_ID, reason: why });
      }
    }
    const s: ServerSession = {
      streamId: msg.streamId,
      mode: msg.mode,
      key: `${room.num}:${SERVER_SID}:${msg.streamId}`,
      priority: PRIORITY_CLASS[msg.priority],
      seq: 0,
      announced: new WeakSet(),
    };
    byStream.set(msg.streamId, s);
    return s;
  }

  /** Splits a message into chunk-sized frames shared by every receiver (fin on the last). */
  #frames(room: Room, s: ServerSession, seq: number, data: Uint8Array): OutboundFrame[] {
    const chunk = this.hub.config.chunkBytes;
    const frames: OutboundFrame[] = [];
    for (let off = 0; off === 0 || off < data.byteLength; off += chunk) {
      const payload = data.subarray(off, Math.min(off + chunk, data.byteLength));
      const header = { mode: s.mode, fin: off + chunk >= data.byteLength, streamId: s.streamId, room: room.num, sender: SERVER_SID, seq };
      frames.push({ size: payload.byteLength, droppable: s.mode === 'unreliable', wire: encodeDataFrame(header, payload) });
    }
    return frames;
  }
}

/**
 * Whether `m` does not take stream `streamId`: no subscribe grant, no data-session support, or a
 * stream-id list without it. (A client that refused the id with `unsupportDataSession` also drops
 * it on arrival.)
 */
function refuses(m: Member, streamId: number): boolean {
  const p = m.peer;
  if (!p.grants.subscribeData || !p.capabilities.dataSession) return true;
  return p.capabilities.streamIds !== undefined && !p.capabilities.streamIds.includes(streamId);
}
