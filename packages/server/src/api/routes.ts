/**
 * The server API's routes: one table that the router dispatches from, validates with, and
 * generates the OpenAPI document from. Handlers are calls into this node's core; in a cluster each
 * route also says where it runs (its {@link Placement}, carried out by cluster.ts).
 */
import type { TSchema } from '@sinclair/typebox';
import { BackchannelError, ErrorCode, RoomEndReason } from '@backchannel/protocol';
import {
  API_PAGE_LIMIT_DEFAULT,
  API_PAGE_LIMIT_MAX,
  API_PAGE_MAX_PARTICIPANTS,
  CallListSchema,
  CallSchema,
  ConferenceListSchema,
  ConferenceSchema,
  KickRequestSchema,
  ParticipantListSchema,
  RevokeRequestSchema,
  SendDataRequestSchema,
  SendDataResponseSchema,
  UpdateParticipantRequestSchema,
  UpdateParticipantResponseSchema,
  WebhookStatsSchema,
  parseRoomId,
  type ApiCall,
  type ApiConference,
  type CallList,
  type ConferenceList,
  type KickRequest,
  type RevokeRequest,
  type SendDataRequest,
  type SendDataResponse,
  type UpdateParticipantRequest,
  type RoomRef,
  type WebhookStats,
} from '@backchannel/server-sdk';
import type { Call } from '../core/calls.js';
import { reason, type Hub } from '../core/hub.js';
import type { Member, Room } from '../core/room.js';
import type { Peer } from '../core/peer.js';
import { mergePages, paginate, readPageRequest, type PageKey } from './pagination.js';
import { callView, conferenceView, findCall, findConference, findMember, findPeer, findRoom, participantView } from './views.js';

/** What handlers work with. */
export interface ApiContext {
  hub: Hub;
  webhookStats: () => WebhookStats;
}

/** A parsed request: decoded path parameters, the query string and the validated body. */
export interface ApiRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
}

/**
 * Where a request runs in a cluster (docs/cluster.md#server-api). Authentication, the rate limit
 * and validation stay on the node that received it; the handler runs where the state is:
 * - `every-node`: on each live node over its own rooms; `merge` makes one answer of theirs;
 * - `room-host`: on the node hosting the room (a call id names it; a conference is looked for);
 * - `edge`: on the node the participant is connected to, once each node holding a stand-in of it
 *   (in a room hosted there) ran `standIn` with it (best effort: a node that fails does not stop it).
 */
export type Placement =
  | { on: 'every-node'; merge(results: unknown[], req: ApiRequest): unknown }
  | { on: 'room-host'; room(req: ApiRequest): RoomRef }
  | { on: 'edge'; participant(req: ApiRequest): string; standIn(ctx: ApiContext, peer: Peer, req: ApiRequest): void };

/** One endpoint. `response` undefined means `204 No Content`. */
export interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Path under `/api/v1`, with `{name}` parameters. */
  path: string;
  operationId: string;
  summary: string;
  /** Path parameter descriptions, by name. */
  params?: Record<string, string>;
  /** Query parameters (all optional), by name. */
  query?: Record<string, { description: string; schema: Record<string, unknown> }>;
  body?: TSchema;
  /** Whether a request without a body is accepted (treated as `{}`). */
  bodyOptional?: boolean;
  response?: TSchema;
  /** Error statuses besides the ones every authenticated route has (400, 401, 403, 429). */
  errors?: number[];
  /** Extra fields for the audit log line of a successful call. */
  audit?(req: ApiRequest): Record<string, unknown>;
  /** Where it runs in a cluster; absent: on the node that received it. */
  cluster?: Placement;
  /** Answers on this node (may return a promise); throws a BackchannelError to answer an error. */
  handler(ctx: ApiContext, req: ApiRequest): unknown;
}

const ROOM_ID = '`conference:<name>`, `call:<callId>`, or unqualified: a call id if it starts with `CA_`, else a conference name.';
const PARTICIPANT_ID = 'Participant id.';

/** `limit` and `cursor`, as every list endpoint takes them. */
const PAGE_QUERY: NonNullable<Route['query']> = {
  limit: {
    description: `Items per page (default ${API_PAGE_LIMIT_DEFAULT}).`,
    schema: { type: 'integer', minimum: 1, maximum: API_PAGE_LIMIT_MAX, default: API_PAGE_LIMIT_DEFAULT },
  },
  cursor: { description: 'The `next` of the previous page (opaque); omit for the first page.', schema: { type: 'string' } },
};

const conferenceKey = (room: Room): PageKey => [room.createdAt, room.name];
const callKey = (call: Call): PageKey => [call.createdAt, call.id];
const memberKey = (member: Member): PageKey => [member.joinedAt, member.peer.id];

const inRoom = (roomId: string): Placement => ({ on: 'room-host', room: ({ params }) => parseRoomId(params[roomId]!) });
const conferenceNamed: Placement = { on: 'room-host', room: ({ params }) => ({ kind: 'conference', name: params.name! }) };
const callNamed: Placement = { on: 'room-host', room: ({ params }) => ({ kind: 'call', name: params.callId! }) };

/** Every authenticated route of the server API. */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/conferences',
    operationId: 'listConferences',
    summary:
      'List conferences, oldest first, with their participants, one page at a time: follow `next` until it is absent. ' +
      `A page also ends after the conference that brings it to ${API_PAGE_MAX_PARTICIPANTS} participants.`,
    query: PAGE_QUERY,
    response: ConferenceListSchema,
    cluster: {
      on: 'every-node',
      merge: (results, { query }) => {
        const pages = (results as ConferenceList[]).map((r) => ({ items: r.conferences, next: r.next }));
        const page = mergePages(pages, (c: ApiConference) => [c.createdAt, c.name], readPageRequest(query), { of: (c) => c.participantCount, max: API_PAGE_MAX_PARTICIPANTS });
        return { conferences: page.items, ...(page.next ? { next: page.next } : {}) };
      },
    },
    handler: ({ hub }, { query }) => {
      const live = [...hub.conferences.byName.values()].filter((r) => !r.ended);
      const page = paginate(live, conferenceKey, readPageRequest(query), { of: (r) => r.size, max: API_PAGE_MAX_PARTICIPANTS });
      return { conferences: page.items.map(conferenceView), ...(page.next ? { next: page.next } : {}) };
    },
  },
  {
    method: 'GET',
    path: '/conferences/{name}',
    operationId: 'getConference',
    summary: 'Get one conference, with its participants.',
    params: { name: 'Conference name.' },
    response: ConferenceSchema,
    errors: [404],
    cluster: conferenceNamed,
    handler: ({ hub }, { params }) => conferenceView(findConference(hub, params.name!)),
  },
  {
    method: 'DELETE',
    path: '/conferences/{name}',
    operationId: 'endConference',
    summary: 'End a conference: every participant sees it end with reason `ended-by-server`.',
    params: { name: 'Conference name.' },
    errors: [404],
    cluster: conferenceNamed,
    handler: ({ hub }, { params }) => {
      hub.conferences.end(findConference(hub, params.name!), reason(RoomEndReason.EndedByServer, 'ended by the server'));
    },
  },
  {
    method: 'GET',
    path: '/calls',
    operationId: 'listCalls',
    summary: 'List ringing and connected 1:1 calls, oldest first, one page at a time: follow `next` until it is absent.',
    query: PAGE_QUERY,
    response: CallListSchema,
    cluster: {
      on: 'every-node',
      merge: (results, { query }) => {
        const pages = (results as CallList[]).map((r) => ({ items: r.calls, next: r.next }));
        const page = mergePages(pages, (c: ApiCall) => [c.createdAt, c.callId], readPageRequest(query));
        return { calls: page.items, ...(page.next ? { next: page.next } : {}) };
      },
    },
    handler: ({ hub }, { query }) => {
      const live = [...hub.calls.calls.values()].filter((c) => c.state !== 'ended');
      const page = paginate(live, callKey, readPageRequest(query));
      return { calls: page.items.map(callView), ...(page.next ? { next: page.next } : {}) };
    },
  },
  {
    method: 'GET',
    path: '/calls/{callId}',
    operationId: 'getCall',
    summary: 'Get one call.',
    params: { callId: 'Call id.' },
    response: CallSchema,
    errors: [404],
    cluster: callNamed,
    handler: ({ hub }, { params }) => callView(findCall(hub, params.callId!)),
  },
  {
    method: 'DELETE',
    path: '/calls/{callId}',
    operationId: 'endCall',
    summary: 'End a call: both sides and the `call.ended` webhook see reason `ended-by-server`.',
    params: { callId: 'Call id.' },
    errors: [404],
    cluster: callNamed,
    handler: ({ hub }, { params }) => {
      findCall(hub, params.callId!);
      hub.calls.endByServer(params.callId!);
    },
  },
  {
    method: 'GET',
    path: '/rooms/{roomId}/participants',
    operationId: 'listParticipants',
    summary: 'List the participants of a conference or call (hidden ones included), in join order, one page at a time.',
    params: { roomId: ROOM_ID },
    query: PAGE_QUERY,
    response: ParticipantListSchema,
    errors: [404],
    cluster: inRoom('roomId'),
    handler: ({ hub }, { params, query }) => {
      const request = readPageRequest(query);
      const room = findRoom(hub, params.roomId!);
      const page = paginate(room.members.values(), memberKey, request);
      return { room: { kind: room.kind, name: room.name }, participants: page.items.map(participantView), ...(page.next ? { next: page.next } : {}) };
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
    cluster: inRoom('roomId'),
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
    cluster: inRoom('roomId'),
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
    cluster: inRoom('roomId'),
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
    method: 'POST',
    path: '/participants/{participantId}/revoke',
    operationId: 'revokeParticipant',
    summary:
      "End a participant's connection for good: its calls end with `ended-by-server`, it leaves its conferences as `kicked` " +
      '(webhooks `participant.kicked`, then `participant.left` or `call.ended`), its client is told goodbye with `connection-revoked`, ' +
      'and its resume credential no longer works.',
    params: { participantId: PARTICIPANT_ID },
    body: RevokeRequestSchema,
    bodyOptional: true,
    errors: [404],
    audit: ({ body }) => ({ reason: (body as RevokeRequest).reason }),
    cluster: {
      on: 'edge',
      participant: ({ params }) => params.participantId!,
      // Its rooms on other nodes end as they would on one server (webhook `participant.kicked`, the
      // others see it leave with the reason given) before its edge closes the connection.
      standIn: ({ hub }, peer, { body }) => {
        for (const room of [...peer.rooms.values()]) {
          const member = room.member(peer.id);
          if (member) hub.kick(room, member, (body as RevokeRequest).reason || 'revoked by the server');
        }
      },
    },
    handler: ({ hub }, { params, body }) => {
      hub.revoke(findPeer(hub, params.participantId!), (body as RevokeRequest).reason || 'revoked by the server');
    },
  },
  {
    method: 'GET',
    path: '/webhooks',
    operationId: 'webhookStats',
    summary: 'Delivery counters of each configured webhook URL, with what was dropped by reason and by event type (one entry per URL: not paginated).',
    response: WebhookStatsSchema,
    cluster: { on: 'every-node', merge: (results) => sumWebhookStats(results as WebhookStats[]) },
    handler: ({ webhookStats }) => webhookStats(),
  },
];

/** Path of the OpenAPI document (served without authentication). */
export const OPENAPI_PATH = '/openapi.json';

/** The counters of every node, summed per URL (in the order the URLs first appear). */
function sumWebhookStats(all: WebhookStats[]): WebhookStats {
  const byUrl = new Map<string, WebhookStats['endpoints'][number]>();
  for (const e of all.flatMap((s) => s.endpoints)) {
    const sum = byUrl.get(e.url);
    if (!sum) {
      byUrl.set(e.url, { ...e, droppedByReason: { ...e.droppedByReason }, droppedByType: { ...e.droppedByType } });
      continue;
    }
    sum.pending += e.pending;
    sum.delivered += e.delivered;
    sum.failedAttempts += e.failedAttempts;
    sum.dropped += e.dropped;
    sum.droppedByReason.attempts += e.droppedByReason.attempts;
    sum.droppedByReason.queueFull += e.droppedByReason.queueFull;
    sum.droppedByReason.shutdown += e.droppedByReason.shutdown;
    for (const [type, n] of Object.entries(e.droppedByType)) sum.droppedByType[type] = (sum.droppedByType[type] ?? 0) + n;
  }
  return { endpoints: [...byUrl.values()] };
}

function decodeData(data: string, encoding: 'utf8' | 'base64'): Uint8Array {
  if (encoding === 'utf8') return Buffer.from(data, 'utf8');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) {
    throw new BackchannelError(ErrorCode.InvalidArgument, 'invalid request body: /data is not valid base64', { details: { field: '/data' } });
  }
  return Buffer.from(data, 'base64');
}
