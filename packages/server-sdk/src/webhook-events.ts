/**
 * Webhook events: the JSON bodies the server POSTs to the configured webhook URLs. The schemas are
 * the single definition (the server's OpenAPI document lists them under `webhooks`); the types are
 * what {@link verifyWebhook} returns. See docs/webhooks.md.
 */
import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import { ParticipantInfoSchema } from '@backchannel/protocol';
import { ApiReasonSchema, CallPartySchema, RoomRefSchema } from './api-schemas.js';

/** Every webhook event type. */
export const WEBHOOK_EVENT_TYPES = [
  'call.incoming',
  'call.started',
  'call.ended',
  'conference.started',
  'conference.ended',
  'participant.joined',
  'participant.left',
  'participant.kicked',
] as const;

/** One of {@link WEBHOOK_EVENT_TYPES}. */
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

function event<T extends WebhookEventType, P extends TProperties>(type: T, description: string, props: P) {
  return Type.Object(
    {
      id: Type.String({ description: 'Unique event id: the same on every delivery attempt; de-duplicate on it.' }),
      type: Type.Literal(type),
      createdAt: Type.Number({ description: 'When the event happened, ms since the epoch.' }),
      room: RoomRefSchema,
      sequence: Type.Integer({ minimum: 1, description: 'Per-room sequence number, 1 for the room’s first event, +1 for each next one.' }),
      ...props,
    },
    { $id: `WebhookEvent.${type}`, description },
  );
}

/** Schema of each webhook event, by type. */
export const WebhookEventSchemas = {
  'call.incoming': event('call.incoming', 'A call is ringing: push-notify the callee if it is not connected.', {
    callId: Type.String(),
    caller: CallPartySchema,
    callee: Type.Object({ userId: Type.String() }),
    appParam: Type.Optional(Type.String()),
  }),
  'call.started': event('call.started', 'The callee answered.', {
    callId: Type.String(),
    caller: CallPartySchema,
    callee: CallPartySchema,
  }),
  'call.ended': event('call.ended', 'A call ended (both sides saw the same reason and duration).', {
    callId: Type.String(),
    caller: CallPartySchema,
    callee: Type.Object({ userId: Type.String() }),
    reason: ApiReasonSchema,
    durationMs: Type.Number({ description: 'Connected time, ms (0 if never answered).' }),
  }),
  'conference.started': event('conference.started', 'The first participant created the conference.', {}),
  'conference.ended': event('conference.ended', 'The conference ended.', {
    reason: ApiReasonSchema,
    durationMs: Type.Number(),
  }),
  'participant.joined': event('participant.joined', 'Someone joined a conference.', { participant: ParticipantInfoSchema }),
  'participant.left': event('participant.left', 'Someone left a conference (reason `kicked` after a kick).', {
    participant: ParticipantInfoSchema,
    reason: ApiReasonSchema,
  }),
  'participant.kicked': event('participant.kicked', 'The server API removed a participant; `reason.message` is the reason given.', {
    participant: ParticipantInfoSchema,
    reason: ApiReasonSchema,
  }),
} satisfies Record<WebhookEventType, TObject>;

type Schemas = typeof WebhookEventSchemas;
/** A webhook event, by type (a discriminated union on `type`). */
export type WebhookEvent<T extends WebhookEventType = WebhookEventType> = { [K in T]: Static<Schemas[K]> }[T];
