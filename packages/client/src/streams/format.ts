/**
 * Messages of one data stream, carried as `reliable-message` messages on the stream's own session
 * (reserved stream ids 65001–65499): a header, chunks with an index, and a trailer.
 *
 *   0x00 + UTF-8 JSON StreamHeader
 *   0x01 + u32 chunk index + bytes
 *   0x02 + UTF-8 JSON StreamTrailer
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';

/** What a stream announces before its data. */
export interface StreamHeader {
  /** Unique stream id (not a stream id of a data session). */
  id: string;
  topic: string;
  kind: 'text' | 'bytes';
  mimeType: string;
  name?: string;
  /** Total bytes, when known in advance. */
  totalLength?: number;
  attributes: Record<string, string>;
  /** When the stream started, ms since the epoch. */
  timestamp: number;
}

/** What ends a stream: an empty reason is a normal end; anything else is abnormal. */
export interface StreamTrailer {
  reason: string;
  /** SHA-256 (hex) of all chunk bytes, for byte streams. */
  sha256?: string;
  attributes?: Record<string, string>;
}

export type StreamMessage =
  | { type: 'header'; header: StreamHeader }
  | { type: 'chunk'; index: number; data: Uint8Array }
  | { type: 'trailer'; trailer: StreamTrailer };

/** Bytes of framing in a chunk message (tag + index). */
export const CHUNK_OVERHEAD = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function withTag(tag: number, json: unknown): Uint8Array {
  const body = encoder.encode(JSON.stringify(json));
  const out = new Uint8Array(1 + body.byteLength);
  out[0] = tag;
  out.set(body, 1);
  return out;
}

export const encodeHeader = (h: StreamHeader) => withTag(0, h);
export const encodeTrailer = (t: StreamTrailer) => withTag(2, t);

export function encodeChunk(index: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHUNK_OVERHEAD + data.byteLength);
  out[0] = 1;
  new DataView(out.buffer).setUint32(1, index >>> 0);
  out.set(data, CHUNK_OVERHEAD);
  return out;
}

/** Decodes one stream message; throws `bad-frame` for anything malformed. */
export function decodeStreamMessage(msg: Uint8Array): StreamMessage {
  const bad = (why: string) => new BackchannelError(ErrorCode.BadFrame, `malformed data-stream message: ${why}`);
  if (msg.byteLength < 1) throw bad('empty');
  if (msg[0] === 1) {
    if (msg.byteLength < CHUNK_OVERHEAD) throw bad('short chunk');
    return { type: 'chunk', index: new DataView(msg.buffer, msg.byteOffset, msg.byteLength).getUint32(1), data: msg.subarray(CHUNK_OVERHEAD) };
  }
  if (msg[0] !== 0 && msg[0] !== 2) throw bad(`unknown tag ${msg[0]}`);
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(msg.subarray(1)));
  } catch {
    throw bad('not JSON');
  }
  if (typeof json !== 'object' || json === null) throw bad('not an object');
  const o = json as Record<string, unknown>;
  if (msg[0] === 0) {
    if (typeof o.id !== 'string' || typeof o.topic !== 'string' || (o.kind !== 'text' && o.kind !== 'bytes')) throw bad('header fields');
    return { type: 'header', header: { attributes: {}, mimeType: 'application/octet-stream', timestamp: 0, ...(o as object) } as StreamHeader };
  }
  if (typeof o.reason !== 'string') throw bad('trailer reason');
  return { type: 'trailer', trailer: o as unknown as StreamTrailer };
}

/**
 * Splits UTF-8 bytes into pieces of at most `max` bytes without cutting a multi-byte character
 * (a cut never lands before a continuation byte 0b10xxxxxx).
 */
export function splitUtf8(bytes: Uint8Array, max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  while (bytes.byteLength - start > max) {
    let end = start + max;
    while (end > start && (bytes[end]! & 0xc0) === 0x80) end--;
    if (end === start) end = start + max; // not UTF-8; cannot happen for encoded strings
    out.push(bytes.subarray(start, end));
    start = end;
  }
  out.push(bytes.subarray(start));
  return out;
}
