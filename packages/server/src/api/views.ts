/**
 * How the server API shows the core's rooms, calls and participants, and how it finds them by the
 * ids in a request path (404 codes when they do not exist).
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import type { ApiCall, ApiConference, ApiParticipant } from '@backchannel/server-sdk';
import type { Call } from '../core/calls.js';
import type { Hub } from '../core/hub.js';
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

/** A room by API room id: a conference name first, else a call id. */
export function findRoom(hub: Hub, roomId: string): Room {
  const conference = hub.conferences.byName.get(roomId);
  if (conference && !conference.ended) return conference;
  const call = hub.calls.calls.get(roomId);
  if (call && call.state !== 'ended') return call.room;
  throw new BackchannelError(ErrorCode.RoomNotFound, `no conference or call "${roomId}"`, { details: { room: roomId } });
}

/** The member `participantId` of `room`, or `participant-not-found`. */
export function findMember(room: Room, participantId: string): Member {
  const member = room.member(participantId);
  if (!member) throw new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${participantId} is not in ${room.kind} "${room.name}"`, { details: { participantId } });
  return member;
}
