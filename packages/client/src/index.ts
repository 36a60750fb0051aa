/**
 * @packageDocumentation
 * Backchannel client SDK (browsers and Node): calls, conferences and data sessions.
 */
export { Client, SDK_NAME } from './client.js';
export type { ClientEvents, ConnectionState, JoinOptions } from './client.js';
export { DEFAULT_RECONNECT, reconnectDelay } from './reconnect.js';
export type { ReconnectOptions } from './reconnect.js';
export { Call, CallInvite } from './call.js';
export type { CallEvents, CallState } from './call.js';
export { Conference } from './conference.js';
export { RoomBase } from './room.js';
export type { IncomingSession, RoomEvents } from './room.js';
export { RemoteParticipant } from './participant.js';
export { SendDataSession } from './data/send-session.js';
export type { DestinationInput, SendSessionOptions, SendSessionStats } from './data/send-session.js';
export { RecvDataSession } from './data/recv-session.js';
export type { DataInfo, OnData, ReceivedData, RecvSessionOptions, RecvSessionStats } from './data/recv-session.js';
export { StreamWriter } from './streams/writer.js';
export type { StreamFailure, StreamProgress } from './streams/writer.js';
export { StreamReader } from './streams/reader.js';
export type { StreamInfo } from './streams/reader.js';
export type { StreamHandler, StreamOptions } from './streams/manager.js';
export { RPC_MAX_PAYLOAD_BYTES } from './builtin/rpc.js';
export type { PerformRpcOptions, RpcHandler, RpcInvocation } from './builtin/rpc.js';
export { platform } from './platform.js';
export type { FileSource, Hasher, Platform } from './platform.js';
export { DEFAULT_CLIENT_OPTIONS } from './options.js';
export type { ClientOptions } from './options.js';
export { webSocketTransport } from './transport.js';
export { setPeerConnectionImpl } from './webrtc.js';
export type { PeerConnectionConstructor, TransportInfo, TransportStats, WebRtcState } from './webrtc.js';
export type { Transport, TransportFactory, TransportOpenOptions, WebSocketConstructor, WebSocketLike } from './transport.js';
export { BackchannelError, CallEndReason, ErrorCode, LeaveReason, SessionCloseReason, StreamFailReason, STREAM_ID_APP_MAX, STREAM_ID_APP_MIN, STREAM_ID_RESERVED_MIN } from '@backchannel/protocol';
export type { DataMode, Priority, Reason } from '@backchannel/protocol';
