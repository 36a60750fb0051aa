/**
 * Typed internal events of the server core: the seam that webhooks, metrics and logs consume.
 * Each event is a plain JSON-serialisable object with a `type` and an `at` time (ms since epoch).
 */
import type { ParticipantInfo, Reason } from '@backchannel/protocol';

/** The user and connection that placed a call. */
export interface CallParty {
  userId: string;
  displayName: string;
  participantId: string;
}

/** A room as seen by events: its kind and name (conference name, or call id). */
export interface RoomRef {
  kind: 'conference' | 'call';
  name: string;
}

/** Every internal event, by `type`. */
export type HubEvent =
  | { type: 'call.incoming'; at: number; callId: string; caller: CallParty; callee: string; appParam?: string }
  | { type: 'call.started'; at: number; callId: string; caller: CallParty; callee: CallParty }
  | { type: 'call.ended'; at: number; callId: string; caller: CallParty; callee: string; reason: Reason; durationMs: number }
  | { type: 'conference.started'; at: number; room: RoomRef }
  | { type: 'conference.ended'; at: number; room: RoomRef; reason: Reason; durationMs: number }
  | { type: 'participant.joined'; at: number; room: RoomRef; participant: ParticipantInfo }
  | { type: 'participant.left'; at: number; room: RoomRef; participant: ParticipantInfo; reason: Reason }
  /** The server API removed a participant (a `participant.left` with reason `kicked` follows in conferences). */
  | { type: 'participant.kicked'; at: number; room: RoomRef; participant: ParticipantInfo; reason: Reason };

/** The `type` of a {@link HubEvent}. */
export type HubEventType = HubEvent['type'];
