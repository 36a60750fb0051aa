/**
 * The server API's routes: one table that the router dispatches from, validates with, and
 * generates the OpenAPI document from. Handlers are synchronous calls into the core.
 */
import type { TSchema } from '@sinclair/typebox';
import { BackchannelError, ErrorCode, RoomEndReason } from '@backchannel/protocol';
import {
  CallListSchema,
  CallSchema,
  ConferenceListSchema,
  ConferenceSchema,
  KickRequestSchema,
  ParticipantListSchema,
  SendDataRequestSchema,
  SendDataResponseSchema,
  UpdateParticipantRequestSchema,
  UpdateParticipantResponseSchema,
  WebhookStatsSchema,
  type KickRequest,
  type SendDataRequest,
  type SendDataResponse,
  type UpdateParticipantRequest,
  type WebhookStats,
} from '@backchannel/server-sdk';
import { reason, type Hub } from '../core/hub.js';
import { callView, conferenceView, findCall, findConference, findMember, findRoom, participantView } from './views.js';

/** What handlers work with. */
export interface ApiContext {
  hub: Hub;
  webhookStats: () => WebhookStats;
}

/** A parsed request: decoded path parameters and the validated body. */
export interface ApiRequest {
  params: Record<string, string>;
  body: unknown;
}

/** One endpoint. `response` undefined means `204 No Content`. */
export interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Path under `/api/v1`, with `{name}` parameters. */
  path: string;
  operationId: string;
  summary: string;
  /** Path parameter descriptions, by name. */
  params?: Record<string, string>;
  body?: TSchema;
  /** Whether a request without a body is accepted (treated as `{}`). */
  bodyOptional?: boolean;
  response?: TSchema;
  /** Error statuses besides the ones every authenticated route has (400, 401, 403, 429). */
  errors?: number[];
  /** Extra fields for the audit log line of a successful call. */
  audit?(req: ApiRequest): Record<string, unknown>;
  handler(ctx: ApiContext, req: ApiRequest): unknown;
}

const ROOM_ID = 'Conference name, or call id of a 1:1 call.';
const PARTICIPANT_ID = 'Participant id.';

/** Every authenticated route of the server API. */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/conferences',
    operationId: 'listConferences',
    summary: 'List conferences, with their participants.',
    response: ConferenceListSchema,
    handler: ({ hub }) => ({ conferences: [...hub.conferences.byName.values()].filter((r) => !r.ended).map(conferenceView) }),
  },
  {
    method: 'GET',
    path: '/conferences/{name}',
    operationId: 'getConference',
    summary: 'Get one conference, with its participants.',
    params: { name: 'Conference name.' },
    response: ConferenceSchema,
    errors: [404],
    handler: ({ hub }, { params }) => conferenceView(findConference(hub, params.name!)),
  },
  {
    method: 'DELETE',
    path: '/conferences/{name}',
    operationId: 'endConference',
    summary: 'End a conference: every participant sees it end with reason `ended-by-server`.',
    params: { name: 'Conference name.' },
    errors: [404],
    handler: ({ hub }, { params }) => {
      hub.conferences.end(findConference(hub, params.name!), reason(RoomEndReason.EndedByServer, 'ended by the server'));
    },
  },
  {
    method: 'GET',
    path: '/calls',
    operationId: 'listCalls',
    summary: 'List ringing and connected 1:1 calls.',
    response: CallListSchema,
    handler: ({ hub }) => ({ calls: [...hub.calls.calls.values()].filter((c) => c.state !== 'ended').map(callView) }),
  },
  {
    method: 'GET',
    path: '/calls/{callId}',
    operationId: 'getCall',
    summary: 'Get one call.',
    params: { callId: 'Call id.' },
    response: CallSchema,
    errors: [404],
    handler: ({ hub }, { params }) => callView(findCall(hub, params.callId!)),
  },
  {
    method: 'DELETE',
    path: '/calls/{callId}',
    operationId: 'endCall',
    summary: 'End a call: both sides and the `call.ended` webhook see reason `ended-by-server`.',
    params: { callId: 'Call id.' },
    errors: [404],
    handler: ({ hub }, { params }) => {
      findCall(hub, params.callId!);
      hub.calls.endByServer(params.callId!);
    },
  },
  {
    method: 'GET',
    path: '/rooms/{roomId}/participants',
    operationId: 'listParticipants',
    summary: 'List the participants of a conference or call (hidden ones included).',
    params: { roomId: ROOM_ID },
    response: ParticipantListSchema,
    errors: [404],
    handler: ({ hub }, { params }) => {
      const room = findRoom(hub, params.roomId!);
      return { room: { kind: room.kind, name: room.name }, participants: [...room.members.values()].map(participantView) };
    },
  },
  {
    method: 'POST',
    path: '/rooms/{roomId}/participants/{participantId}/kick',
    operationId: 'kickParticipant',
    summary:
      'Remove a participant. Its room ends for it with reason `kicked` and the given message; the others see it leave with reason `kicked`. ' +
      'Webhooks: `participant.kicked`, then `participant.left`. In a 1:1 call the call ends with `ended-by-server`.',
    params: { roomId: ROOM_ID, participantId: PARTICIPANT_ID },
    body: KickRequestSchema,
    bodyOptional: true,
    errors: [404],
    audit: ({ body }) => ({ reason: (body as KickRequest).reason }),
    handler: ({ hub }, { params, body }) => {
      const room = findRoom(hub, params.roomId!);
      const member = findMember(room, params.participantId!);
      hub.kick(room, member, (body as KickRequest).reason || 'removed by the server');
    },
  },
  {
    method: 'PATCH',
    path: '/rooms/{roomId}/participants/{participantId}',
    operationId: 'updateParticipant',
    summary: "Replace a participant's metadata; everyone in the room is notified.",
    params: { roomId: ROOM_ID, participantId: PARTICIPANT_ID },
    body: UpdateParticipantRequestSchema,
    response: UpdateParticipantResponseSchema,
    errors: [404],
    handler: ({ hub }, { params, body }) => {
      const room = findRoom(hub, params.roomId!);
      const member = findMember(room, params.participantId!);
      hub.conferences.updateByServer(room, member, (body as UpdateParticipantRequest).metadata);
      return { participant: participantView(member) };
    },
  },
  {
    method: 'POST',
    path: '/rooms/{roomId}/data',
    operationId: 'sendData',
    summary:
      'Send an app control message to everyone in a room, one participant or a set. Clients receive it like data from a participant, ' +
      "on the given stream id, from participant `'server'`.",
    params: { roomId: ROOM_ID },
    body: SendDataRequestSchema,
    response: SendDataResponseSchema,
    errors: [404, 413],
    handler: ({ hub }, { params, body }): SendDataResponse => {
      const req = body as SendDataRequest;
      const room = findRoom(hub, params.roomId!);
      const destination = req.destination === undefined || req.destination === 'broadcast' ? 'broadcast' : typeof req.destination === 'string' ? [req.destination] : req.destination;
      const { seq, recipients } = hub.appMessages.send(room, {
        streamId: req.streamId,
        mode: req.mode ?? 'reliable-message',
        data: decodeData(req.data, req.encoding ?? 'utf8'),
        destination,
        priority: req.priority ?? 'normal',
      });
      return { room: { kind: room.kind, name: room.name }, streamId: req.streamId, seq, recipients };
    },
  },
  {
    method: 'GET',
    path: '/webhooks',
    operationId: 'webhookStats',
    summary: 'Delivery counters of each configured webhook URL.',
    response: WebhookStatsSchema,
    handler: ({ webhookStats }) => webhookStats(),
  },
];

/** Path of the OpenAPI document (served without authentication). */
export const OPENAPI_PATH = '/openapi.json';

function decodeData(data: string, encoding: 'utf8' | 'base64'): Uint8Array {
  if (encoding === 'utf8') return Buffer.from(data, 'utf8');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) {
    throw new BackchannelError(ErrorCode.InvalidArgument, 'invalid request body: /data is not valid base64', { details: { field: '/data' } });
  }
  return Buffer.from(data, 'base64');
}
