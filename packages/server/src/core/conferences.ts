/**
 * Conferences (group calls): created by the first join, ended when empty for the grace period or
 * by the server API.
 */
import { BackchannelError, ErrorCode, LeaveReason, RoomEndReason, type PresenceMode, type Reason, type RoomInfo } from '@backchannel/protocol';
import { mayJoinConference } from '@backchannel/server-sdk';
import { reason, requireGrant, type Hub } from './hub.js';
import type { Peer } from './peer.js';
import { Room, type Member } from './room.js';

const encoder = new TextEncoder();

export class ConferenceManager {
  readonly byName = new Map<string, Room>();

  constructor(private readonly hub: Hub) {}

  /** `conf.join`: joins (creating if needed) the conference `name`. */
  join(peer: Peer, name: string, displayName: string | undefined, metadata: unknown, presence: PresenceMode = 'full'): RoomInfo {
    requireGrant(mayJoinConference(peer.grants, name), `joining conference "${name}"`);
    if (metadata !== undefined || (displayName !== undefined && displayName !== peer.displayName)) {
      requireGrant(peer.grants.updateOwnMetadata, 'setting its own metadata or display name');
    }
    this.checkMetadata(metadata);
    let room = this.byName.get(name);
    if (room?.member(peer.id)) throw new BackchannelError(ErrorCode.AlreadyInRoom, `already in conference "${name}"`);
    const limit = this.hub.config.maxConferencesPerParticipant;
    if (peer.conferences >= limit) throw new BackchannelError(ErrorCode.TooManyRooms, `a participant may be in at most ${limit} conferences`, { details: { limit } });
    // Visible and hidden members are counted apart, so that a full room never reveals hidden ones.
    const max = this.hub.config.maxParticipantsPerRoom;
    if (room && (peer.grants.hidden ? room.hiddenCount : room.size - room.hiddenCount) >= max) {
      throw new BackchannelError(ErrorCode.RoomFull, `conference "${name}" is full (${max} participants)`, { details: { maxParticipants: max } });
    }
    if (!room) {
      room = this.hub.createRoom('conference', name);
      this.byName.set(name, room);
      this.hub.emit({ type: 'conference.started', at: room.createdAt, room: { kind: 'conference', name } });
    }
    if (room.emptyTimer) {
      clearTimeout(room.emptyTimer);
      room.emptyTimer = undefined;
    }
    const member = this.hub.enter(room, peer, displayName ?? peer.displayName, metadata, presence);
    return room.infoFor(member, this.hub.sessions.openSessionsFor);
  }

  /** `room.metadata`: updates a member's metadata and tells the others. */
  updateMetadata(peer: Peer, { room, member }: { room: Room; member: Member }, metadata: unknown): Record<string, never> {
    requireGrant(peer.grants.updateOwnMetadata, 'updating own metadata');
    this.checkMetadata(metadata);
    this.setMetadata(room, member, metadata);
    return {};
  }

  /** Server API: replaces a member's metadata (size-checked) and notifies everyone in the room. */
  updateByServer(room: Room, member: Member, metadata: unknown): void {
    this.checkMetadata(metadata);
    this.setMetadata(room, member, metadata);
  }

  /** Sets metadata and notifies everyone in the room (the member itself included). */
  setMetadata(room: Room, member: Member, metadata: unknown): void {
    member.metadata = metadata ?? null;
    room.updated(member);
  }

  /** Starts the grace period of a conference that became empty. */
  roomEmptied(room: Room): void {
    if (room.ended || room.emptyTimer) return;
    room.emptyTimer = setTimeout(() => {
      room.emptyTimer = undefined;
      if (room.size === 0) this.end(room, reason(RoomEndReason.Empty, 'the conference was empty'));
    }, this.hub.config.emptyRoomGraceMs);
  }

  /** Ends a conference: every member is told `room.ended` and removed. */
  end(room: Room, why: Reason): void {
    if (room.ended) return;
    room.ended = true;
    for (const member of [...room.members.values()]) {
      member.peer.link.sendEvent({ t: 'room.ended', room: room.num, reason: why });
      this.hub.exit(room, member, reason(LeaveReason.RoomEnded, why.message), { announce: false });
    }
    this.hub.dropRoom(room);
    this.byName.delete(room.name);
    this.hub.emit({ type: 'conference.ended', at: Date.now(), room: { kind: 'conference', name: room.name }, reason: why, durationMs: Date.now() - room.createdAt });
  }

  /** Ends every conference (server shutdown). */
  endAll(why: Reason): void {
    for (const room of [...this.byName.values()]) this.end(room, why);
  }

  private checkMetadata(metadata: unknown): void {
    if (metadata === undefined) return;
    const bytes = encoder.encode(JSON.stringify(metadata) ?? '').byteLength;
    if (bytes > this.hub.config.maxMetadataBytes) {
      throw new BackchannelError(ErrorCode.InvalidArgument, `metadata is ${bytes} bytes; the limit is ${this.hub.config.maxMetadataBytes}`, {
        details: { limit: this.hub.config.maxMetadataBytes, size: bytes },
      });
    }
  }
}
