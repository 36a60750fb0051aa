/**
 * Schemas of the server API (`/api/v1/`): request bodies and responses. They are the single
 * definition: the server validates requests with them and generates `/api/v1/openapi.json` from
 * them, and the types of {@link ServerApiClient} are derived from them. See docs/server-api.md.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CapabilitiesSchema, ModeSchema, PrioritySchema } from '@backchannel/protocol';

/** Largest stream id the server API may send on (ids from 65000 are reserved for Backchannel). */
export const API_STREAM_ID_MAX = 64_999;

/** Items in a page of a list endpoint when the request gives no `limit`. */
export const API_PAGE_LIMIT_DEFAULT = 100;
/** Largest `limit` a list endpoint accepts. */
export const API_PAGE_LIMIT_MAX = 1_000;
/**
 * A page of `GET /conferences` ends early, after the conference that brings it to this many
 * participants (it always holds at least one conference), so a page stays small however full
 * the rooms are.
 */
export const API_PAGE_MAX_PARTICIPANTS = 1_000;

/** `next` of a list answer: present when more items follow. */
const NextCursor = Type.Optional(
  Type.String({ description: 'Opaque cursor of the next page: pass it back as `?cursor=`. Absent on the last page.' }),
);

const ParticipantId = Type.String({ minLength: 1, maxLength: 64, description: 'Server-assigned participant id (unique per connection).' });

/** Why something ended or left: a stable code and a human message. */
export const ApiReasonSchema = Type.Object({ code: Type.String(), message: Type.String() }, { $id: 'Reason' });

/** A room as events and the API name it: a conference (by name) or a 1:1 call (by call id). */
export const RoomRefSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('conference'), Type.Literal('call')]),
    name: Type.String({ description: 'Conference name, or call id for a 1:1 call.' }),
  },
  { $id: 'RoomRef' },
);

/** A participant as the server API shows it (hidden participants included, and flagged). */
export const ApiParticipantSchema = Type.Object(
  {
    id: ParticipantId,
    userId: Type.String(),
    displayName: Type.String(),
    metadata: Type.Unknown({ description: 'Any JSON value set by the participant or the server API.' }),
    joinedAt: Type.Number({ description: 'Join time, ms since the epoch.' }),
    capabilities: CapabilitiesSchema,
    hidden: Type.Boolean({ description: 'Hidden participants are not listed to other participants.' }),
  },
  { $id: 'Participant' },
);

/** A conference and everyone in it. */
export const ConferenceSchema = Type.Object(
  {
    name: Type.String(),
    createdAt: Type.Number({ description: 'Creation time, ms since the epoch.' }),
    participantCount: Type.Integer({ minimum: 0 }),
    participants: Type.Array(ApiParticipantSchema),
  },
  { $id: 'Conference' },
);

/** Answer of `GET /conferences`. */
export const ConferenceListSchema = Type.Object({ conferences: Type.Array(ConferenceSchema), next: NextCursor }, { $id: 'ConferenceList' });

/** The user and connection on one side of a call. */
export const CallPartySchema = Type.Object(
  { userId: Type.String(), displayName: Type.String(), participantId: ParticipantId },
  { $id: 'CallParty' },
);

/** A 1:1 call. `callee.participantId` is set once a client of the callee answered. */
export const CallSchema = Type.Object(
  {
    callId: Type.String(),
    state: Type.Union([Type.Literal('ringing'), Type.Literal('connected')]),
    caller: CallPartySchema,
    callee: Type.Object({ userId: Type.String(), displayName: Type.Optional(Type.String()), participantId: Type.Optional(ParticipantId) }),
    appParam: Type.Optional(Type.String()),
    createdAt: Type.Number({ description: 'When the call was placed, ms since the epoch.' }),
    connectedAt: Type.Optional(Type.Number({ description: 'When it was answered, ms since the epoch.' })),
    participants: Type.Array(ApiParticipantSchema),
  },
  { $id: 'Call' },
);

/** Answer of `GET /calls`. */
export const CallListSchema = Type.Object({ calls: Type.Array(CallSchema), next: NextCursor }, { $id: 'CallList' });

/** Answer of `GET /rooms/{roomId}/participants`. */
export const ParticipantListSchema = Type.Object({ room: RoomRefSchema, participants: Type.Array(ApiParticipantSchema), next: NextCursor }, { $id: 'ParticipantList' });

/** Body of `POST /rooms/{roomId}/participants/{participantId}/kick`. */
export const KickRequestSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 256, description: 'Shown to the kicked client and carried by the webhooks.' })) },
  { $id: 'KickRequest', additionalProperties: false },
);

/** Body of `POST /participants/{participantId}/revoke`. */
export const RevokeRequestSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 256, description: 'Shown to the revoked client (in its goodbye) and to the others in its rooms.' })) },
  { $id: 'RevokeRequest', additionalProperties: false },
);

/** Body of `PATCH /rooms/{roomId}/participants/{participantId}`. */
export const UpdateParticipantRequestSchema = Type.Object(
  { metadata: Type.Unknown({ description: 'New metadata: any JSON value up to the server’s maxMetadataBytes.' }) },
  { $id: 'UpdateParticipantRequest', additionalProperties: false },
);

/** Answer of `PATCH /rooms/{roomId}/participants/{participantId}`. */
export const UpdateParticipantResponseSchema = Type.Object({ participant: ApiParticipantSchema }, { $id: 'UpdateParticipantResponse' });

/** Who receives an app control message: everyone, one participant, or a set of participants. */
export const ApiDestinationSchema = Type.Union(
  [Type.Literal('broadcast'), ParticipantId, Type.Array(ParticipantId, { minItems: 1, maxItems: 10_000, uniqueItems: true })],
  { $id: 'Destination' },
);

/** Body of `POST /rooms/{roomId}/data`: one app control message. */
export const SendDataRequestSchema = Type.Object(
  {
    streamId: Type.Integer({ minimum: 1, maximum: API_STREAM_ID_MAX, description: 'Stream id the clients receive the message on.' }),
    mode: Type.Optional(ModeSchema),
    data: Type.String({ description: 'The message: UTF-8 text, or base64 when `encoding` is `base64`.' }),
    encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')])),
    destination: Type.Optional(ApiDestinationSchema),
    priority: Type.Optional(PrioritySchema),
  },
  { $id: 'SendDataRequest', additionalProperties: false },
);

/** Answer of `POST /rooms/{roomId}/data`. */
export const SendDataResponseSchema = Type.Object(
  {
    room: RoomRefSchema,
    streamId: Type.Integer(),
    seq: Type.Integer({ minimum: 0, description: 'Sequence number of this message in the server’s session on this stream id.' }),
    recipients: Type.Array(ParticipantId, { description: 'Participants the message was queued for.' }),
  },
  { $id: 'SendDataResponse' },
);

/** Delivery counters of one webhook URL. */
export const WebhookStatsSchema = Type.Object(
  {
    endpoints: Type.Array(
      Type.Object({
        url: Type.String(),
        pending: Type.Integer({ description: 'Events queued or in flight.' }),
        delivered: Type.Integer(),
        failedAttempts: Type.Integer({ description: 'Attempts that got no 2xx answer (each is retried until the last).' }),
        dropped: Type.Integer({ description: 'Events given up on after the last attempt, shed from a full queue, or left at shutdown.' }),
        droppedByReason: Type.Object(
          {
            attempts: Type.Integer({ description: 'Given up on after `webhookMaxAttempts` failed attempts.' }),
            queueFull: Type.Integer({ description: 'Shed while the queue held `webhookQueueMaxEvents` events: always from the user holding the most.' }),
            shutdown: Type.Integer({ description: 'Still undelivered when the server stopped.' }),
          },
          { description: '`dropped`, by why.' },
        ),
        droppedByType: Type.Record(Type.String(), Type.Integer(), { description: '`dropped`, by event type (types never dropped are absent).' }),
      }),
    ),
  },
  { $id: 'WebhookStats' },
);

/** Every error body: a stable code from the error table, a human message, optional details. */
export const ApiErrorSchema = Type.Object(
  { code: Type.String(), message: Type.String(), details: Type.Optional(Type.Record(Type.String(), Type.Unknown())) },
  { $id: 'Error' },
);

/** Types derived from the schemas above (same names without `Schema`, `Api` prefix where needed). */
export type ApiReason = Static<typeof ApiReasonSchema>;
export type RoomRef = Static<typeof RoomRefSchema>;
export type ApiParticipant = Static<typeof ApiParticipantSchema>;
export type ApiConference = Static<typeof ConferenceSchema>;
export type ApiCall = Static<typeof CallSchema>;
export type ApiCallParty = Static<typeof CallPartySchema>;
export type ParticipantList = Static<typeof ParticipantListSchema>;
export type KickRequest = Static<typeof KickRequestSchema>;
export type RevokeRequest = Static<typeof RevokeRequestSchema>;
export type ConferenceList = Static<typeof ConferenceListSchema>;
export type CallList = Static<typeof CallListSchema>;
export type UpdateParticipantRequest = Static<typeof UpdateParticipantRequestSchema>;
export type ApiDestination = Static<typeof ApiDestinationSchema>;
export type SendDataRequest = Static<typeof SendDataRequestSchema>;
export type SendDataResponse = Static<typeof SendDataResponseSchema>;
export type WebhookStats = Static<typeof WebhookStatsSchema>;
export type ApiErrorBody = Static<typeof ApiErrorSchema>;
