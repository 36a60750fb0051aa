/** Conventional range for applications' own protocols (the range LINE Planet documents). */
export const STREAM_ID_APP_MIN = 100;
/** Upper end of the conventional application range. */
export const STREAM_ID_APP_MAX = 999;
/** Stream ids from here to 65535 are reserved for Backchannel's own protocols (data streams, RPC). */
export const STREAM_ID_RESERVED_MIN = 65000;

/** Whether `id` is a usable explicit stream id (an integer 1–65535). */
export function isValidStreamId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 1 && (id as number) <= 65535;
}

/** Reserved: each room's addressed control channel (RPC, stream control). */
export const STREAM_ID_CONTROL = 65000;
/** Reserved: first stream id of outgoing data streams (one session per stream). */
export const STREAM_ID_DATA_STREAM_MIN = 65001;
/** Reserved: last stream id of outgoing data streams. */
export const STREAM_ID_DATA_STREAM_MAX = 65499;
