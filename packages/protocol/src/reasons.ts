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
  /** Cluster mode: the node hosting the call stopped (or became unreachable). */
  NodeLost: 'node-lost',
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
  ClientTooSlow: 'client-too-slow',
  Kicked: 'kicked',
  RoomEnded: 'room-ended',
  CallEnded: 'call-ended',
  ServerShutdown: 'server-shutdown',
  /** Cluster mode: the node hosting the room stopped (or became unreachable). */
  NodeLost: 'node-lost',
} as const;
export type LeaveReason = (typeof LeaveReason)[keyof typeof LeaveReason];

/** Why a room ended. */
export const RoomEndReason = {
  Empty: 'empty',
  CallEnded: 'call-ended',
  EndedByServer: 'ended-by-server',
  ServerShutdown: 'server-shutdown',
  /** Cluster mode: the node hosting the room stopped (or became unreachable). */
  NodeLost: 'node-lost',
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

/**
 * Why a data stream did not reach one destination: in a rejected stream send's
 * `details.failed[].reason.code`, the writer's `refused` event and the room's `streamRefused`
 * event. The receiver's SDK sends the first group back to the sender; the sender's SDK learns the
 * second from the server.
 */
export const StreamFailReason = {
  /** No handler was registered for the topic within the receiver's `streamHandlerWaitMs`. */
  NoHandler: 'no-handler',
  /** The receiver already had `maxIncomingStreams` incoming streams. */
  TooManyStreams: 'too-many-streams',
  /** The stream arrived before a handler and outgrew the receiver's `pendingBufferBytes`. */
  ReceiverBufferOverflow: 'receiver-buffer-overflow',
  /** Nothing arrived on the stream for the receiver's `streamIdleTimeoutMs`; it was aborted. */
  IdleTimeout: 'idle-timeout',
  /** The bytes the receiver got do not match the SHA-256 in the trailer. */
  Integrity: 'stream-integrity',
  /** The receiver left the room before the stream was complete. */
  ReceiverLeft: 'receiver-left',
  /** The server detached the receiver from the stream's session (too far behind). */
  ReceiverTooSlow: 'receiver-too-slow',
  /** The receiver's connection was lost and more than the server holds for it piled up. */
  ResumeBufferOverflow: 'resume-buffer-overflow',
  /** The receiver does not take data (no data sessions, or no `subscribeData` grant). */
  Unsupported: 'unsupported',
  /** The receiver did not confirm within the sender's `streamConfirmTimeoutMs` (e.g. it may not publish). */
  Unconfirmed: 'unconfirmed',
} as const;
export type StreamFailReason = (typeof StreamFailReason)[keyof typeof StreamFailReason];
