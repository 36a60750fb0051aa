/**
 * Room ids of the server API (`/rooms/{roomId}/…`): how one path segment names either a
 * conference or a 1:1 call. Conference names are chosen by clients and call ids by the server, so
 * the two namespaces must never overlap: what an id means depends only on its text, never on
 * which rooms happen to exist (a conference named like a call id must not capture the call's
 * traffic). See docs/server-api.md#rooms-and-ids.
 */
import type { RoomRef } from './api-schemas.js';

/** Prefix of every call id the server assigns. */
export const CALL_ID_PREFIX = 'CA_';

const CONFERENCE_QUALIFIER = 'conference:';
const CALL_QUALIFIER = 'call:';

/**
 * What a room id names:
 * - `conference:<name>` — the conference `<name>` (any name, including one that starts with `CA_`
 *   or contains `:`);
 * - `call:<callId>` — the call `<callId>`;
 * - anything else: a call if it starts with `CA_`, otherwise a conference of that name.
 */
export function parseRoomId(roomId: string): RoomRef {
  if (roomId.startsWith(CONFERENCE_QUALIFIER)) return { kind: 'conference', name: roomId.slice(CONFERENCE_QUALIFIER.length) };
  if (roomId.startsWith(CALL_QUALIFIER)) return { kind: 'call', name: roomId.slice(CALL_QUALIFIER.length) };
  return roomId.startsWith(CALL_ID_PREFIX) ? { kind: 'call', name: roomId } : { kind: 'conference', name: roomId };
}

/** The kind-qualified room id of `room` (`conference:<name>` or `call:<callId>`): never ambiguous. */
export function formatRoomId(room: RoomRef): string {
  return `${room.kind === 'call' ? CALL_QUALIFIER : CONFERENCE_QUALIFIER}${room.name}`;
}
