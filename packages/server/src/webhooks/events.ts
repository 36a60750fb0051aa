/**
 * Turns internal {@link HubEvent}s into webhook events: a unique id, the event time, the room, and
 * a per-room sequence number. Pure (no I/O): the dispatcher serialises and delivers the result.
 */
import type { RoomRef, WebhookEvent } from '@backchannel/server-sdk';
import type { HubEvent } from '../core/events.js';
import { randomId } from '../core/ids.js';

/** The room a hub event belongs to (a call's room is named by its call id). */
export function roomOf(e: HubEvent): RoomRef {
  switch (e.type) {
    case 'call.incoming':
    case 'call.started':
    case 'call.ended':
      return { kind: 'call', name: e.callId };
    default:
      return { kind: e.room.kind, name: e.room.name };
  }
}

/** Key of a room for sequencing and ordered delivery. */
export function roomKey(room: RoomRef): string {
  return `${room.kind}:${room.name}`;
}

/** Whether `e` is the last event of its room (its sequence counter can be forgotten). */
function isFinal(e: HubEvent): boolean {
  return e.type === 'call.ended' || e.type === 'conference.ended';
}

/**
 * Assigns ids and per-room sequence numbers. A room's first event gets sequence 1; the counter is
 * dropped after the room's final event, so a conference that starts again under the same name
 * starts again at 1 (with `conference.started`).
 */
export class WebhookSequencer {
  readonly #sequences = new Map<string, number>();

  /** Rooms with a live sequence counter. */
  get rooms(): number {
    return this.#sequences.size;
  }

  /**
   * Continues room `room`'s sequence after `last` (cluster mode: a survivor ending the rooms of a
   * dead node continues where their host stopped).
   */
  continueFrom(room: RoomRef, last: number): void {
    const key = roomKey(room);
    if ((this.#sequences.get(key) ?? 0) < last) this.#sequences.set(key, last);
  }

  /** Builds the webhook event for `e`, advancing its room's sequence. */
  next(e: HubEvent): WebhookEvent {
    const room = roomOf(e);
    const key = roomKey(room);
    const sequence = (this.#sequences.get(key) ?? 0) + 1;
    if (isFinal(e)) this.#sequences.delete(key);
    else this.#sequences.set(key, sequence);
    const base = { id: `EV_${randomId(22)}`, createdAt: e.at, room, sequence };
    switch (e.type) {
      case 'call.incoming':
        return { ...base, type: e.type, callId: e.callId, caller: e.caller, callee: { userId: e.callee }, ...(e.appParam !== undefined ? { appParam: e.appParam } : {}) };
      case 'call.started':
        return { ...base, type: e.type, callId: e.callId, caller: e.caller, callee: e.callee };
      case 'call.ended':
        return { ...base, type: e.type, callId: e.callId, caller: e.caller, callee: { userId: e.callee }, reason: e.reason, durationMs: e.durationMs };
      case 'conference.started':
        return { ...base, type: e.type };
      case 'conference.ended':
        return { ...base, type: e.type, reason: e.reason, durationMs: e.durationMs };
      case 'participant.joined':
        return { ...base, type: e.type, participant: e.participant };
      case 'participant.left':
      case 'participant.kicked':
        return { ...base, type: e.type, participant: e.participant, reason: e.reason };
    }
  }
}
