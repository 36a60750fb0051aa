/**
 * How the server API shows the core's rooms, calls and participants, and how it finds them by the
 * ids in a request path (404 codes when they do not exist).
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { parseRoomId, type ApiCall, type ApiConference, type ApiParticipant } from '@backchannel/server-sdk';
import type { Call } from '../core/calls.js';
import type { Hub } from '../core/hub.js';
import type { Peer } from '../core/peer.js';
import type { Member, Room } from '../core/room.js';

/** A member as the API shows it: hidden members included and flagged; no internal handles. */
export function participantView(m: Member): ApiParticipant {
  const p = m.peer;
  return { id: p.id, userId: p.userId, displayName: m.displayName, metadata: m.metadata ?? null, joinedAt: m.joinedAt, capabilities: p.capabilities, hidden: m.hidden };
}

/** A conference with all its members. */
export function conferenceView(room: Room): ApiConference {
  const participants = [...room.members.values()].map(participantView);
  return { name: room.name, createdAt: room.createdAt, participantCount: participants.length, participants };
}

/** A ringing or connected call with its members. */
export function callView(call: Call): ApiCall {
  const view: ApiCall = {
    callId: call.id,
    state: call.state === 'connected' ? 'connected' : 'ringing',
    caller: { userId: call.caller.userId, displayName: call.caller.displayName, participantId: call.caller.id },
    callee: call.callee ? { userId: call.callee.userId, displayName: call.callee.displayName, participantId: call.callee.id } : { userId: call.calleeUserId },
    createdAt: call.createdAt,
    participants: [...call.room.members.values()].map(participantView),
  };
  if (call.appParam !== undefined) view.appParam = call.appParam;
  if (call.connectedAt !== undefined) view.connectedAt = call.connectedAt;
  return view;
}

/** The live conference `name`, or `room-not-found`. */
export function findConference(hub: Hub, name: string): Room {
  const room = hub.conferences.byName.get(name);
  if (!room || room.ended) throw new BackchannelError(ErrorCode.RoomNotFound, `no conference "${name}"`, { details: { room: name } });
  return room;
}

/** The live call `callId`, or `call-not-found`. */
export function findCall(hub: Hub, callId: string): Call {
  const call = hub.calls.calls.get(callId);
  if (!call || call.state === 'ended') throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}"`, { details: { callId } });
  return call;
}

/**
 * A room by API room id (`conference:<name>`, `call:<callId>`, or unqualified: a call id if it
 * starts with `CA_`, else a conference name). What an id names depends on its text only, never on
 * which rooms exist, so a conference can never stand in for a call (or the other way round).
 */
export function findRoom(hub: Hub, roomId: string): Room {
  const ref = parseRoomId(roomId);
  if (ref.kind === 'conference') {
    const conference = hub.conferences.byName.get(ref.name);
    if (conference && !conference.ended) return conference;
    throw new BackchannelError(ErrorCode.RoomNotFound, `no conference "${ref.name}"`, { details: { room: roomId } });
  }
  const call = hub.calls.calls.get(ref.name);
  if (call && call.state !== 'ended') return call.room;
  throw new BackchannelError(ErrorCode.RoomNotFound, `no call "${ref.name}"`, { details: { room: roomId } });
}

/**
 * The participant `participantId` connected (or reconnecting) here, or `participant-not-found`. A
 * stand-in of a participant connected to another node of a cluster is not it.
 */
export function findPeer(hub: Hub, participantId: string): Peer {
  const peer = hub.peers.get(participantId);
  if (!peer || peer.gone || peer.remote) throw new BackchannelError(ErrorCode.ParticipantNotFound, `no participant ${participantId} on this server`, { details: { participantId } });
  return peer;
}

/** The member `participantId` of `room`, or `participant-not-found`. */
export function findMember(room: Room, participantId: string): Member {
  const member = room.member(participantId);
  if (!member) throw new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${participantId} is not in ${room.kind} "${room.name}"`, { details: { participantId } });
  return member;
}
