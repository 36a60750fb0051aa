/**
 * Stable error codes shared by the server, the client SDK and the server SDK.
 *
 * Every code has exactly one meaning; the table in `docs/errors.md` lists them all. Codes travel on
 * the wire as strings, so adding one is backward compatible and renaming one is not.
 */
export const ErrorCode = {
  // Access tokens (refused before any room state changes).
  TokenMissing: 'token-missing',
  TokenMalformed: 'token-malformed',
  TokenExpired: 'token-expired',
  TokenNotYetValid: 'token-not-yet-valid',
  TokenBadSignature: 'token-bad-signature',
  TokenUnknownKey: 'token-unknown-key',
  TokenInvalidClaims: 'token-invalid-claims',
  PermissionDenied: 'permission-denied',
  // Protocol and input.
  ProtocolVersionUnsupported: 'protocol-version-unsupported',
  HelloTimeout: 'hello-timeout',
  NotAuthenticated: 'not-authenticated',
  BadFrame: 'bad-frame',
  BadMessage: 'bad-message',
  InvalidArgument: 'invalid-argument',
  RateLimited: 'rate-limited',
  /** Too many connections from one address (`maxConnectionsPerAddress`). */
  TooManyConnections: 'too-many-connections',
  /** The client did not read what the server sent it: more than `replayBufferMaxBytes` waited for it. */
  ClientTooSlow: 'client-too-slow',
  // Rooms and calls.
  RoomNotFound: 'room-not-found',
  RoomFull: 'room-full',
  NotInRoom: 'not-in-room',
  AlreadyInRoom: 'already-in-room',
  CallNotFound: 'call-not-found',
  CallNotRinging: 'call-not-ringing',
  CallAnsweredElsewhere: 'call-answered-elsewhere',
  ParticipantNotFound: 'participant-not-found',
  /** The participant is already in `maxConferencesPerParticipant` conferences. */
  TooManyRooms: 'too-many-rooms',
  /** The participant already has `maxRingingCallsPerParticipant` outgoing calls ringing. */
  TooManyCalls: 'too-many-calls',
  // Data sessions.
  StreamIdInvalid: 'stream-id-invalid',
  StreamIdInUse: 'stream-id-in-use',
  StreamIdNotAllowed: 'stream-id-not-allowed',
  StreamIdsExhausted: 'stream-ids-exhausted',
  MessageTooLarge: 'message-too-large',
  TooManySessions: 'too-many-sessions',
  SessionClosed: 'session-closed',
  SessionNotFound: 'session-not-found',
  ReceiverExists: 'receiver-exists',
  ReceiverBufferOverflow: 'receiver-buffer-overflow',
  /** A fragmented `reliable-message` arrived incomplete (a fragment of another message, or a continuation without its start); it was dropped. */
  MessageIncomplete: 'message-incomplete',
  /** Messages in reassembly would have exceeded the client's `maxReassemblyBytes`; the one that did not fit was dropped. */
  ReassemblyOverflow: 'reassembly-overflow',
  // Data streams and RPC (built on data sessions).
  StreamAborted: 'stream-aborted',
  StreamRefused: 'stream-refused',
  StreamIntegrity: 'stream-integrity',
  TooManyStreams: 'too-many-streams',
  /** A data stream did not reach every destination (`details.failed` says why, per destination). */
  StreamNotDelivered: 'stream-not-delivered',
  RpcTimeout: 'rpc-timeout',
  RpcUnsupportedMethod: 'rpc-unsupported-method',
  RpcApplicationError: 'rpc-application-error',
  RpcPayloadTooLarge: 'rpc-payload-too-large',
  RpcRecipientDisconnected: 'rpc-recipient-disconnected',
  // Connection lifecycle.
  ConnectFailed: 'connect-failed',
  /** No participant to resume: its resume window passed, it ended, or the server restarted. */
  ResumeNotFound: 'resume-not-found',
  /** The resume credential is not the current one for that participant (wrong, stolen or already used). */
  ResumeCredentialInvalid: 'resume-credential-invalid',
  /** The frames to replay no longer exist on one side: this participant cannot be resumed. */
  ResumeFailed: 'resume-failed',
  /** A replay buffer would have exceeded its bound during an outage. */
  ResumeBufferOverflow: 'resume-buffer-overflow',
  /** Nothing was received on the connection for the heartbeat timeout: it is considered dead. */
  HeartbeatTimeout: 'heartbeat-timeout',
  ConnectionClosed: 'connection-closed',
  /** The server API revoked this participant's connection (the reason's message says why); it cannot be resumed. */
  ConnectionRevoked: 'connection-revoked',
  RequestTimeout: 'request-timeout',
  // WebRTC datagram path (docs/webrtc.md).
  /** The server does not offer WebRTC (turned off, or its native library is not installed). */
  WebRtcUnavailable: 'webrtc-unavailable',
  /** An `rtc.offer` whose SDP the server cannot use (malformed, or without one data-channel section). */
  WebRtcBadSdp: 'webrtc-bad-sdp',
  /** An `rtc.candidate` that is malformed or comes before any offer. */
  WebRtcBadCandidate: 'webrtc-bad-candidate',
  /** The peer connection did not open within the negotiation time, or failed later; data goes over the WebSocket. */
  WebRtcFailed: 'webrtc-failed',
  /** Cluster mode: Redis cannot be reached, so the node cannot tell where a room lives or place a new one; retry. */
  ClusterUnavailable: 'cluster-unavailable',
  ServerShutdown: 'server-shutdown',
  InternalError: 'internal-error',
  // Server API (HTTP).
  /** No server-API route matches the request path. */
  NotFound: 'not-found',
  /** The route exists but not for this HTTP method. */
  MethodNotAllowed: 'method-not-allowed',
  // Webhook verification (server SDK).
  /** A webhook request lacks the signature headers or its body is not a JSON event. */
  WebhookMalformed: 'webhook-malformed',
  /** No signature in the webhook headers matches the body and the API secret. */
  WebhookSignatureInvalid: 'webhook-signature-invalid',
  /** The webhook timestamp is outside the accepted tolerance (old, or in the future). */
  WebhookTimestampStale: 'webhook-timestamp-stale',
  /** A webhook event with this id was already accepted (replay). */
  WebhookReplayed: 'webhook-replayed',
} as const;

/** One of the stable error code strings in {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Whether `code` is one of the codes this protocol version defines. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && knownCodes.has(code);
}

/**
 * The one error class of Backchannel. `code` is stable and meant for programs; `message` is for
 * people and may change. `details` carries structured context (e.g. the limit that was exceeded).
 */
export class BackchannelError extends Error {
  override readonly name = 'BackchannelError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  /** The wire form: `{ code, message }` (plus `details` when present). */
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: { ...this.details } } : { code: this.code, message: this.message };
  }

  /**
   * Converts a wire error (`{ code, message }`) into a typed error. This is the one place where
   * remote errors become {@link BackchannelError}s; an unknown code maps to `internal-error` and keeps
   * the original code in `details.remoteCode`.
   */
  static fromWire(wire: { code?: unknown; message?: unknown; details?: unknown }): BackchannelError {
    const message = typeof wire.message === 'string' && wire.message ? wire.message : 'the server reported an error without a message';
    const details = isPlainObject(wire.details) ? wire.details : undefined;
    if (isErrorCode(wire.code)) return new BackchannelError(wire.code, message, details ? { details } : undefined);
    return new BackchannelError(ErrorCode.InternalError, message, { details: { ...details, remoteCode: wire.code } });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
