/**
 * Control messages: JSON objects carried in control frames, each with a string discriminator `t`.
 * Client→server messages are requests carrying an integer `id`; the server answers each with exactly
 * one `ok` or `err` reply carrying `re: id`. Server→client messages without `re` are events.
 *
 * The TypeBox schemas below are the single definition: the server validates with them, the types
 * are derived from them, and documentation is generated from them.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Id = Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 });
const RoomNum = Type.Integer({ minimum: 1, maximum: 2 ** 32 - 1 });
/** Stream id on the wire: 0 asks the server to allocate one. */
const StreamIdOrAuto = Type.Integer({ minimum: 0, maximum: 65535 });
const StreamId = Type.Integer({ minimum: 1, maximum: 65535 });
const UserId = Type.String({ minLength: 1, maxLength: 256 });
const RoomName = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f]+$' });
const ParticipantId = Type.String({ minLength: 1, maxLength: 64 });

/** Participant metadata: any JSON value (size limited by the server). */
export const MetadataSchema = Type.Unknown();

export const ModeSchema = Type.Union([Type.Literal('reliable-message'), Type.Literal('reliable-bytes'), Type.Literal('unreliable')]);
export const PrioritySchema = Type.Union([Type.Literal('high'), Type.Literal('normal'), Type.Literal('low')]);
/**
 * Destination of a data session: everyone else in the room, a set of participant ids, or
 * `'addressed'`: each frame names its one recipient (its sender field carries the recipient's sid).
 */
export const DestinationSchema = Type.Union([
  Type.Literal('broadcast'),
  Type.Literal('addressed'),
  // Capped so that validating one request stays cheap (duplicates are merged by the server).
  Type.Array(ParticipantId, { minItems: 1, maxItems: 1_000 }),
]);

export const CapabilitiesSchema = Type.Object(
  {
    protocol: Type.Integer({ minimum: 1 }),
    dataSession: Type.Boolean(),
    streamIds: Type.Optional(Type.Array(StreamId, { maxItems: 1024 })),
  },
  { additionalProperties: false },
);

export const ReasonSchema = Type.Object({ code: Type.String(), message: Type.String() });

/** A participant's connection: absent means connected; `'reconnecting'` while its client resumes. */
export const ConnectionStateSchema = Type.Union([Type.Literal('connected'), Type.Literal('reconnecting')]);

/** What a member hears of the others: everything (`'full'`) or nothing pushed (`'none'`). */
export const PresenceModeSchema = Type.Union([Type.Literal('full'), Type.Literal('none')]);

/** Largest page of `room.participants`. */
export const MAX_PARTICIPANTS_PAGE = 1000;

export const ParticipantInfoSchema = Type.Object({
  id: ParticipantId,
  sid: Type.Integer(),
  userId: UserId,
  displayName: Type.String(),
  metadata: MetadataSchema,
  joinedAt: Type.Number(),
  capabilities: CapabilitiesSchema,
  /** Present (`'reconnecting'`) only while the participant's connection is being resumed. */
  connection: Type.Optional(ConnectionStateSchema),
});

export const SessionInfoSchema = Type.Object({ streamId: StreamId, from: ParticipantId, sid: Type.Integer(), mode: ModeSchema });

export const RoomInfoSchema = Type.Object({
  room: RoomNum,
  kind: Type.Union([Type.Literal('conference'), Type.Literal('call')]),
  name: Type.String(),
  self: ParticipantInfoSchema,
  /** The other visible participants (empty when joined with `presence: 'none'`). */
  participants: Type.Array(ParticipantInfoSchema),
  /** How many other visible participants the room has (listed or not). */
  participantCount: Type.Integer({ minimum: 0 }),
  /** Sequence number of the room's last presence change this snapshot includes (see `room.presence`). */
  presenceSeq: Type.Integer({ minimum: 0 }),
  /** Sessions already open whose destination includes the joining participant (late joiners). */
  sessions: Type.Array(SessionInfoSchema),
});

export const CallInfoSchema = Type.Object({
  callId: Type.String(),
  caller: Type.Object({ userId: UserId, displayName: Type.String(), participantId: ParticipantId }),
  callee: Type.Object({ userId: UserId }),
  appParam: Type.Optional(Type.String()),
  state: Type.Union([Type.Literal('ringing'), Type.Literal('connected'), Type.Literal('ended')]),
  createdAt: Type.Number(),
});

function req<T extends string, P extends Record<string, TSchema>>(t: T, props: P) {
  return Type.Object({ t: Type.Literal(t), id: Id, ...props }, { additionalProperties: false });
}

/** Every client→server request, by its `t`. */
export const ClientMessageSchemas = {
  hello: req('hello', {
    token: Type.String({ maxLength: 8192 }),
    protocol: Type.Integer({ minimum: 0 }),
    sdk: Type.Optional(Type.String({ maxLength: 64 })),
    capabilities: CapabilitiesSchema,
  }),
  /**
   * Takes over a participant whose connection was lost, within the resume window. Sent instead of
   * `hello` as the first message of a new connection.
   */
  resume: req('resume', {
    protocol: Type.Integer({ minimum: 0 }),
    participantId: ParticipantId,
    credential: Type.String({ minLength: 1, maxLength: 128 }),
    /**
     * The credential for the next resume, chosen by the client (unguessable: at least 32 random
     * bytes, base64url). It replaces `credential` when this resume succeeds, so a client whose
     * reply was lost still knows the current one: it is one of the two it holds.
     */
    next: Type.String({ minLength: 43, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }),
    /** Numbered frames this client has received from the server (u32). */
    received: Type.Integer({ minimum: 0, maximum: 2 ** 32 - 1 }),
  }),
  /** Replaces the connection's access token (same user): a new expiry and grants for new actions. */
  'auth.refresh': req('auth.refresh', { token: Type.String({ maxLength: 8192 }) }),
  'call.make': req('call.make', { callee: UserId, appParam: Type.Optional(Type.String({ maxLength: 4096 })) }),
  'call.get': req('call.get', { callId: Type.String({ maxLength: 64 }) }),
  'call.accept': req('call.accept', { callId: Type.String({ maxLength: 64 }) }),
  'call.decline': req('call.decline', { callId: Type.String({ maxLength: 64 }), reason: Type.Optional(Type.String({ maxLength: 256 })) }),
  'call.cancel': req('call.cancel', { callId: Type.String({ maxLength: 64 }) }),
  'call.end': req('call.end', { callId: Type.String({ maxLength: 64 }) }),
  'conf.join': req('conf.join', {
    name: RoomName,
    displayName: Type.Optional(Type.String({ maxLength: 256 })),
    metadata: Type.Optional(MetadataSchema),
    /** `'full'` (default): the member list and every change to it; `'none'`: neither (pages on request). */
    presence: Type.Optional(PresenceModeSchema),
  }),
  'room.leave': req('room.leave', { room: RoomNum }),
  'room.metadata': req('room.metadata', { room: RoomNum, metadata: MetadataSchema }),
  /** One page of the room's other visible participants, in join order, after the cursor `after`. */
  'room.participants': req('room.participants', {
    room: RoomNum,
    after: Type.Optional(Type.String({ maxLength: 32, pattern: '^[0-9]+$' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PARTICIPANTS_PAGE })),
  }),
  'ds.open': req('ds.open', {
    room: RoomNum,
    streamId: StreamIdOrAuto,
    mode: ModeSchema,
    destination: DestinationSchema,
    priority: PrioritySchema,
  }),
  'ds.dest': req('ds.dest', { room: RoomNum, streamId: StreamId, destination: DestinationSchema }),
  'ds.close': req('ds.close', { room: RoomNum, streamId: StreamId }),
  'ds.unsupport': req('ds.unsupport', { room: RoomNum, streamId: StreamId }),
  'ds.support': req('ds.support', { room: RoomNum, streamId: StreamId }),
  /**
   * WebRTC path (docs/webrtc.md): the SDP offer of the client's one peer connection, after the
   * welcome announced `webrtc`. The reply's data is `{ sdp }`, the server's answer.
   */
  'rtc.offer': req('rtc.offer', { sdp: Type.String({ minLength: 1, maxLength: 32 * 1024 }) }),
  /** A trickled ICE candidate of the client's peer connection (`candidate` as in SDP, `a=` excluded). */
  'rtc.candidate': req('rtc.candidate', { candidate: Type.String({ minLength: 1, maxLength: 1024 }), mid: Type.String({ maxLength: 64 }) }),
  /** The client stops using its peer connection (it carries on over the WebSocket alone). */
  'rtc.close': req('rtc.close', {}),
} as const;

type Schemas = typeof ClientMessageSchemas;
/** The `t` of a client→server request. */
export type ClientMessageType = keyof Schemas;
/** A client→server request, by `t`. */
export type ClientMessage<T extends ClientMessageType = ClientMessageType> = { [K in T]: Static<Schemas[K]> }[T];

export type Capabilities = Static<typeof CapabilitiesSchema>;
export type ConnectionState = Static<typeof ConnectionStateSchema>;
export type PresenceMode = Static<typeof PresenceModeSchema>;
export type Reason = Static<typeof ReasonSchema>;
export type ParticipantInfo = Static<typeof ParticipantInfoSchema>;
export type SessionInfo = Static<typeof SessionInfoSchema>;
export type RoomInfo = Static<typeof RoomInfoSchema>;
export type CallInfo = Static<typeof CallInfoSchema>;
export type Destination = Static<typeof DestinationSchema>;
export type Priority = Static<typeof PrioritySchema>;

/** Limits the server announces in its welcome, so the SDK can refuse early with the same codes. */
export interface AnnouncedLimits {
  maxMessageBytes: number;
  chunkBytes: number;
  maxSessionsPerParticipant: number;
  maxMetadataBytes: number;
  /**
   * The server's send window: bytes of numbered frames it sends a client before it waits for an
   * acknowledgement. A client acknowledges well within it (the SDK: every quarter of it at most).
   * Older servers do not announce it; the SDK then keeps its own `ackEveryBytes`.
   */
  sendWindowBytes?: number;
  /**
   * The same window counted in frames: the server also waits once this many numbered frames are
   * unacknowledged, so that a flow of small frames does not keep tens of thousands of them in
   * memory. The SDK acknowledges every quarter of it at most. Absent from older servers.
   */
  sendWindowFrames?: number;
}

/** Reply to `hello`. */
export interface WelcomeResult {
  participantId: string;
  sid: number;
  userId: string;
  displayName: string;
  protocol: number;
  serverVersion: string;
  limits: AnnouncedLimits;
  /** How to resume this participant after a lost connection (see `resume`). */
  resume: ResumeGrant;
  /** When the access token expires, ms since the epoch: new actions then need `auth.refresh`. */
  expiresAt: number;
  grants: {
    calls: boolean;
    publishData: boolean;
    subscribeData: boolean;
    updateOwnMetadata: boolean;
    hidden: boolean;
    streamIds?: number[];
    conferences: string[];
  };
  /** Present when the server offers the WebRTC datagram path (docs/webrtc.md). */
  webrtc?: WebRtcGrant;
}

/** An ICE server for the client's peer connection (the `RTCIceServer` dictionary). */
export interface IceServerInfo {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** What a client needs to open the WebRTC datagram path. */
export interface WebRtcGrant {
  /** STUN/TURN servers to use (empty: host candidates only). */
  iceServers: IceServerInfo[];
  /** The data channel must be open this soon after the offer, ms, else the client stays on the WebSocket. */
  negotiationTimeoutMs: number;
  /** Largest datagram to send, bytes (larger frames are fragmented). */
  datagramBytes: number;
}

/** A single-use credential to resume the participant, and how long after a loss it may be used. */
export interface ResumeGrant {
  /** Unguessable, single-use; each successful resume hands out the next one. */
  credential: string;
  /** The resume window: a lost participant is kept this long, ms. */
  windowMs: number;
}

/** Reply to `resume` (the credential for the next resume is the `next` the client sent). */
export interface ResumeResult {
  /** Numbered frames the server has received from this client (u32): send again those after it. */
  received: number;
  /** The resume window, ms. */
  windowMs: number;
}

/** Every server→client event, by `t`. */
export type ServerEvent =
  | { t: 'call.incoming'; call: CallInfo }
  | { t: 'call.connected'; callId: string; room: RoomInfo }
  | { t: 'call.ended'; callId: string; reason: Reason; durationMs: number }
  | { t: 'call.revoked'; callId: string; reason: Reason }
  | { t: 'room.presence'; room: number; seq: number; changes: PresenceChange[] }
  | { t: 'room.ended'; room: number; reason: Reason }
  | { t: 'ds.incoming'; room: number; streamId: number; from: string; sid: number; mode: Static<typeof ModeSchema> }
  | { t: 'ds.closed'; room: number; streamId: number; from: string; reason: Reason }
  | { t: 'ds.ended'; room: number; streamId: number; reason: Reason }
  | { t: 'ds.unsupported'; room: number; streamId: number; participantId: string }
  | { t: 'ds.detached'; room: number; streamId: number; participantId: string; reason: Reason }
  | { t: 'ds.backlog'; room: number; streamId: number; bytes: number; dropped: number }
  | { t: 'ds.dropped'; room: number; streamId: number; from: string; count: number }
  | { t: 'rtc.candidate'; candidate: string; mid: string }
  | { t: 'rtc.closed'; reason: Reason }
  | { t: 'error'; error: Reason }
  | { t: 'goodbye'; reason: Reason };

/**
 * One change to a room's member list: a visible participant joined (`j`), changed (`u`: metadata,
 * display name or connection state) or left (`l`). In a `room.presence` event the changes carry
 * consecutive sequence numbers from the event's `seq`.
 */
export type PresenceChange =
  | { k: 'j'; participant: ParticipantInfo }
  | { k: 'u'; participant: ParticipantInfo }
  | { k: 'l'; participantId: string; reason: Reason };

/** Reply to `room.participants`. */
export interface ParticipantsPage {
  participants: ParticipantInfo[];
  /** Cursor of the next page (pass as `after`); absent on the last page. */
  next?: string;
  /** Other visible participants in the room now. */
  total: number;
}

/** A reply to a request. */
export type ServerReply = { t: 'ok'; re: number; data?: unknown } | { t: 'err'; re: number; error: Reason & { details?: Record<string, unknown> } };

/** Anything the server sends in a control frame. */
export type ServerMessage = ServerEvent | ServerReply;
