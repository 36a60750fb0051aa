/**
 * @packageDocumentation
 * Backchannel wire protocol: binary frame codec, control message schemas, error and reason codes.
 * No I/O and no Node-specific APIs: shared by the server and the isomorphic client SDK.
 */
export { BackchannelError, ErrorCode, isErrorCode } from './errors.js';
export {
  ACK_FRAME_BYTES,
  CONTROL_HEADER_BYTES,
  DATA_HEADER_BYTES,
  DataModes,
  FrameKind,
  HEARTBEAT_FRAME_BYTES,
  PING_FRAME,
  PONG_FRAME,
  WIRE_VERSION,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  encodeDataFrame,
  restampDataFrame,
  writeDataHeader,
} from './frame.js';
export type { AckFrame, ControlFrame, DataFrame, DataHeader, DataMode, Frame, HeartbeatFrame } from './frame.js';
export { AckCounter, ReplayBuffer } from './reliability.js';
export { DATAGRAM_BYTES, DATAGRAM_FRAGMENT_KIND, FRAGMENT_HEADER_BYTES, MAX_FRAGMENTS, Reassembler, isFragment, toDatagrams } from './datagram.js';
export type { ReassemblerOptions } from './datagram.js';
export {
  CallInfoSchema,
  CapabilitiesSchema,
  ClientMessageSchemas,
  ConnectionStateSchema,
  DestinationSchema,
  MAX_PARTICIPANTS_PAGE,
  ModeSchema,
  ParticipantInfoSchema,
  PresenceModeSchema,
  PrioritySchema,
  RoomInfoSchema,
} from './messages.js';
export type {
  AnnouncedLimits,
  CallInfo,
  Capabilities,
  ClientMessage,
  ClientMessageType,
  Destination,
  ParticipantInfo,
  ParticipantsPage,
  PresenceChange,
  PresenceMode,
  Priority,
  Reason,
  RoomInfo,
  ServerEvent,
  ServerMessage,
  ServerReply,
  SessionInfo,
  IceServerInfo,
  WebRtcGrant,
  ResumeGrant,
  ResumeResult,
  ConnectionState,
  WelcomeResult,
} from './messages.js';
export { CallEndReason, InviteRevokedReason, LeaveReason, RoomEndReason, SessionCloseReason, StreamFailReason } from './reasons.js';
export { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from './version.js';
export { parseControlBody, validateClientMessage } from './validate.js';
export {
  STREAM_ID_APP_MAX,
  STREAM_ID_APP_MIN,
  STREAM_ID_CONTROL,
  STREAM_ID_DATA_STREAM_MAX,
  STREAM_ID_DATA_STREAM_MIN,
  STREAM_ID_RESERVED_MIN,
  isValidStreamId,
} from './stream-ids.js';
export { Emitter } from './emitter.js';
export type { EventMap, ListenerErrorHandler } from './emitter.js';
export { FairQueue, PRIORITY_CLASS } from './fair-queue.js';
export type { PriorityClass, QueueItem } from './fair-queue.js';
export { EARLY_SUBPROTOCOL, MAX_EARLY_CHARS, MAX_EARLY_FRAMES, SUBPROTOCOL, earlyProtocols, takeEarlyFrames } from './early.js';
