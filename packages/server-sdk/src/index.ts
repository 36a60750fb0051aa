/**
 * @packageDocumentation
 * Server SDK for app servers: access tokens, a typed server-API client, and webhook verification.
 * Token minting and webhook verification use WebCrypto only (Node, browsers, edge runtimes).
 */
export { createAccessToken, GRANTS_CLAIM } from './token.js';
export type { AccessTokenOptions } from './token.js';
export { DEFAULT_GRANTS, mayJoinConference, resolveGrants } from './grants.js';
export type { Grants, ResolvedGrants } from './grants.js';
export { ServerApiClient } from './api-client.js';
export type { PageOptions, SendDataOptions, ServerApiClientOptions } from './api-client.js';
export { CALL_ID_PREFIX, formatRoomId, parseRoomId } from './room-id.js';
export {
  API_PAGE_LIMIT_DEFAULT,
  API_PAGE_LIMIT_MAX,
  API_PAGE_MAX_PARTICIPANTS,
  API_STREAM_ID_MAX,
  ApiDestinationSchema,
  ApiErrorSchema,
  ApiParticipantSchema,
  ApiReasonSchema,
  CallListSchema,
  CallPartySchema,
  CallSchema,
  ConferenceListSchema,
  ConferenceSchema,
  KickRequestSchema,
  ParticipantListSchema,
  RevokeRequestSchema,
  RoomRefSchema,
  SendDataRequestSchema,
  SendDataResponseSchema,
  UpdateParticipantRequestSchema,
  UpdateParticipantResponseSchema,
  WebhookStatsSchema,
} from './api-schemas.js';
export type {
  ApiCall,
  ApiCallParty,
  ApiConference,
  ApiDestination,
  ApiErrorBody,
  ApiParticipant,
  ApiReason,
  CallList,
  ConferenceList,
  KickRequest,
  ParticipantList,
  RevokeRequest,
  RoomRef,
  SendDataRequest,
  SendDataResponse,
  UpdateParticipantRequest,
  WebhookStats,
} from './api-schemas.js';
export { WEBHOOK_EVENT_TYPES, WebhookEventSchemas } from './webhook-events.js';
export type { WebhookEvent, WebhookEventType } from './webhook-events.js';
export { DEFAULT_WEBHOOK_TOLERANCE_SEC, WebhookHeader, createMemorySeenStore, signWebhook, verifyWebhook } from './webhook.js';
export type { SeenEventStore, VerifyWebhookOptions, WebhookHeaders } from './webhook.js';
