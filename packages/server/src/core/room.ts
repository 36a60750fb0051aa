/**
 * A room: the set of participants that share calls' or conferences' events and data sessions.
 * A 1:1 call is a room of two (`kind: 'call'`); a conference is a room of many.
 */
import { encodeControlFrame, type ParticipantInfo, type RoomInfo, type ServerEvent, type SessionInfo } from '@backchannel/protocol';
import type { Peer } from './peer.js';

/** A peer's membership in one room. */
export interface Member {
  peer: Peer;
  displayName: string;
  metadata: unknown;
  joinedAt: number;
  /** Hidden members are not listed to others and their joins/leaves are not announced. */
  hidden: boolean;
  /** Stream ids this member refused with `unsupportDataSession` (created on first use). */
  unsupported?: Set<number>;
}

/** Hook through which the data-session layer reports the sessions a member would receive. */
export type OpenSessionsFor = (room: Room, member: Member) => SessionInfo[];

export class Room {
  readonly members = new Map<string, Member>();
  /** Members by their numeric handle (recipients of addressed frames). */
  readonly bySid = new Map<number, Member>();
  readonly createdAt = Date.now();
  /** Hidden members (counted apart from visible ones for the room's size limit). */
  hiddenCount = 0;
  ended = false;
  /** Timer that ends an empty conference after the grace period. */
  emptyTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    /** Server-wide room number, used in data frames. */
    readonly num: number,
    readonly kind: 'conference' | 'call',
    /** Conference name, or call id. */
    readonly name: string,
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** The member for `participantId`, if present. */
  member(participantId: string): Member | undefined {
    return this.members.get(participantId);
  }

  /** Public description of a member. */
  static info(m: Member): ParticipantInfo {
    const p = m.peer;
    const info: ParticipantInfo = { id: p.id, sid: p.sid, userId: p.userId, displayName: m.displayName, metadata: m.metadata ?? null, joinedAt: m.joinedAt, capabilities: p.capabilities };
    if (p.connection === 'reconnecting') info.connection = 'reconnecting'; // absent means connected
    return info;
  }

  /** What `member` learns about the room when it enters: everyone else who is not hidden. */
  infoFor(member: Member, openSessions: OpenSessionsFor): RoomInfo {
    const participants: ParticipantInfo[] = [];
    for (const m of this.members.values()) if (m !== member && !m.hidden) participants.push(Room.info(m));
    return { room: this.num, kind: this.kind, name: this.name, self: Room.info(member), participants, sessions: openSessions(this, member) };
  }

  /** Sends `event` to every member except `except`. */
  broadcast(event: ServerEvent, except?: Member): void {
    if (this.members.size === 0) return;
    const frame = encodeControlFrame(JSON.stringify(event)); // once for the room, not once per member
    for (const m of this.members.values()) if (m !== except) m.peer.link.sendControlFrame(frame);
  }
}
