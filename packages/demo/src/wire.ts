/**
 * The demo's own application protocol on data sessions: which stream id carries what, and how
 * each message is encoded. Stream ids come from the conventional application range (100–999).
 */

/** Chat messages: `reliable-message`, broadcast, JSON {@link ChatMessage}. */
export const STREAM_CHAT = 100;
/** Receipts for chat messages and files: `reliable-message`, broadcast, JSON {@link Receipt}. */
export const STREAM_RECEIPTS = 101;
/** Cursor positions: `unreliable`, broadcast, 12 bytes (see {@link encodeCursor}). */
export const STREAM_CURSORS = 102;
/** Bursts that show backpressure: `reliable-message`, broadcast, 16 KiB messages of zeros, only counted. */
export const STREAM_BURST = 103;
/** Nudges inside a 1:1 call: `reliable-message`, to the peer, UTF-8 text. */
export const STREAM_NUDGE = 110;
/** Data-stream topic of shared files (`sendFile` / `registerStreamHandler`). */
export const TOPIC_FILES = 'files';

export interface ChatMessage {
  /** Unique per sender participant. */
  id: number;
  text: string;
}

/** "I got it": sent by a receiver to everyone; only the original sender (`to`) acts on it. */
export type Receipt =
  | { kind: 'chat'; to: string; ids: number[] }
  | { kind: 'file'; to: string; stream: string; ok: boolean; sha256?: string; error?: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses a JSON message; undefined for anything that is not an object. */
export function decodeJson<T>(data: Uint8Array): T | undefined {
  try {
    const value: unknown = JSON.parse(decoder.decode(data));
    return typeof value === 'object' && value !== null ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

/** A cursor position on the board, as fractions of its width and height (0–1), or hidden. */
export interface Cursor {
  x: number;
  y: number;
  hidden: boolean;
  /** When the sender sent it, ms since the epoch (sub-millisecond). */
  sentAt: number;
}

const HIDDEN = 0xffff;
const SCALE = 0xfffe;

/** u16 x, u16 y (0–65534 across the board; 65535 = off the board), f64 send time. */
export function encodeCursor(c: Cursor): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint16(0, c.hidden ? HIDDEN : Math.round(clamp01(c.x) * SCALE));
  view.setUint16(2, c.hidden ? HIDDEN : Math.round(clamp01(c.y) * SCALE));
  view.setFloat64(4, c.sentAt);
  return out;
}

export function decodeCursor(data: Uint8Array): Cursor | undefined {
  if (data.byteLength !== 12) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const x = view.getUint16(0);
  const y = view.getUint16(2);
  const hidden = x === HIDDEN || y === HIDDEN;
  return { x: hidden ? 0 : x / SCALE, y: hidden ? 0 : y / SCALE, hidden, sentAt: view.getFloat64(4) };
}

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}
