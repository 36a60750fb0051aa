/**
 * Closed sets of reason codes for things that end: calls, room memberships and data sessions.
 * Both ends of anything that ends, and the webhooks, see the same code. See docs/errors.md.
 */

/** Why a 1:1 call ended. */
export const CallEndReason = {
  Normal: 'normal',
  Declined: 'declined',
  Busy: 'busy',
  NoAnswer: 'no-answer',
  Cancelled: 'cancelled',
  ConnectionLost: 'connection-lost',
  EndedByServer: 'ended-by-server',
  ServerShutdown: 'server-shutdown',
  Error: 'error',
} as const;
export type CallEndReason = (typeof CallEndReason)[keyof typeof CallEndReason];

/** Why a ringing invite stopped ringing on one of the callee's other clients. */
export const InviteRevokedReason = {
  AnsweredElsewhere: 'answered-elsewhere',
  DeclinedElsewhere: 'declined-elsewhere',
} as const;
export type InviteRevokedReason = (typeof InviteRevokedReason)[keyof typeof InviteRevokedReason];

/** Why a participant left a room. */
export const LeaveReason = {
  Left: 'left',
  ConnectionLost: 'connection-lost',
  ResumeBufferOverflow: 'resume-buffer-overflow',
  Kicked: 'kicked',
  RoomEnded: 'room-ended',
  CallEnded: 'call-ended',
  ServerShutdown: 'server-shutdown',
} as const;
export type LeaveReason = (typeof LeaveReason)[keyof typeof LeaveReason];

/** Why a room ended. */
export const RoomEndReason = {
  Empty: 'empty',
  CallEnded: 'call-ended',
  EndedByServer: 'ended-by-server',
  ServerShutdown: 'server-shutdown',
} as const;
export type RoomEndReason = (typeof RoomEndReason)[keyof typeof RoomEndReason];

/** Why a data session (or one receiver's part of it) closed. */
export const SessionCloseReason = {
  Closed: 'closed',
  SenderLeft: 'sender-left',
  ReceiverLeft: 'receiver-left',
  RoomEnded: 'room-ended',
  ReceiverTooSlow: 'receiver-too-slow',
  ResumeBufferOverflow: 'resume-buffer-overflow',
  Unsupported: 'unsupported',
  ConnectionLost: 'connection-lost',
} as const;
export type SessionCloseReason = (typeof SessionCloseReason)[keyof typeof SessionCloseReason];
