/**
 * The sending end of a data stream: chunks text (never splitting a character) or bytes into
 * indexed chunk messages on the stream's own reliable session, with backpressure, progress and,
 * for byte streams, a SHA-256 of everything sent, carried in the trailer.
 */
import { BackchannelError, Emitter, ErrorCode, type Reason } from '@backchannel/protocol';
import type { SendDataSession } from '../data/send-session.js';
import { platform, type Hasher } from '../platform.js';
import { yieldToEventLoop } from '../util.js';
import { CHUNK_OVERHEAD, encodeChunk, encodeHeader, encodeTrailer, splitUtf8, type StreamHeader } from './format.js';

const encoder = new TextEncoder();
/** A writer yields to the event loop after this many bytes sent without waiting. */
const YIELD_EVERY_BYTES = 256 * 1024;

/** Progress of a stream, in payload bytes. */
export interface StreamProgress {
  bytes: number;
  total: number | undefined;
}

type WriterEvents = {
  /** A receiver refused the stream (no handler for the topic, too many streams, …). */
  refused: [{ participantId: string; reason: Reason }];
};

/** Writes one data stream. `T` is `string` for text streams and `Uint8Array` for byte streams. */
export class StreamWriter<T extends string | Uint8Array> extends Emitter<WriterEvents> {
  readonly info: StreamHeader;
  readonly #tx: SendDataSession;
  readonly #hasher: Hasher | undefined;
  readonly #onProgress: ((p: StreamProgress) => void) | undefined;
  readonly #finished: () => void;
  readonly #maxChunk: number;
  /** Participants that must all refuse before the stream fails (undefined = broadcast). */
  readonly #expected: Set<string> | undefined;
  #refusals = new Set<string>();
  #index = 0;
  #bytes = 0;
  #sinceYield = 0;
  #done = false;
  #failure: BackchannelError | undefined;

  /** @internal */
  constructor(tx: SendDataSession, header: StreamHeader, options: { onProgress?: (p: StreamProgress) => void; expected?: string[]; chunkBytes: number }, finished: () => void) {
    super();
    this.#tx = tx;
    this.info = header;
    this.#hasher = header.kind === 'bytes' ? platform.createHasher() : undefined;
    this.#onProgress = options.onProgress;
    this.#expected = options.expected ? new Set(options.expected) : undefined;
    this.#maxChunk = options.chunkBytes - CHUNK_OVERHEAD;
    this.#finished = finished;
    tx.send(encodeHeader(header));
  }

  /** Payload bytes written so far. */
  get bytesWritten(): number {
    return this.#bytes;
  }

  /** Writes a chunk (text for text streams, bytes for byte streams); resolves once queued below the high-water mark. */
  async write(chunk: T): Promise<void> {
    this.#check();
    if (this.info.kind === 'text' && typeof chunk !== 'string') throw new BackchannelError(ErrorCode.InvalidArgument, 'a text stream takes strings');
    if (this.info.kind === 'bytes' && !(chunk instanceof Uint8Array)) throw new BackchannelError(ErrorCode.InvalidArgument, 'a byte stream takes Uint8Arrays');
    const bytes: Uint8Array = typeof chunk === 'string' ? encoder.encode(chunk) : (chunk as Uint8Array);
    const pieces = typeof chunk === 'string' ? splitUtf8(bytes, this.#maxChunk) : slices(bytes, this.#maxChunk);
    for (const piece of pieces) {
      if (piece.byteLength === 0 && pieces.length > 1) continue;
      this.#check();
      this.#hasher?.update(piece);
      const below = this.#tx.send(encodeChunk(this.#index++, piece));
      this.#bytes += piece.byteLength;
      this.#onProgress?.({ bytes: this.#bytes, total: this.info.totalLength });
      if (!below) {
        await this.#tx.drained();
        this.#sinceYield = 0;
      } else if ((this.#sinceYield += piece.byteLength) >= YIELD_EVERY_BYTES) {
        // A large write must let feedback (the server's backlog) in, or it could outrun it.
        this.#sinceYield = 0;
        await yieldToEventLoop();
      }
    }
  }

  /** Ends the stream normally; resolves once everything is sent. */
  async close(attributes?: Record<string, string>): Promise<void> {
    this.#check();
    await this.#finish({ reason: '', ...(this.#hasher ? { sha256: this.#hasher.hex() } : {}), ...(attributes ? { attributes } : {}) });
  }

  /** Ends the stream abnormally: readers' iterators throw `stream-aborted` with `reason`. */
  async abort(reason = 'aborted by the sender'): Promise<void> {
    if (this.#done) return;
    await this.#finish({ reason: reason || 'aborted by the sender' });
  }

  /** @internal A receiver refused the stream. */
  _refused(participantId: string, reason: Reason): void {
    this.#refusals.add(participantId);
    this.emit('refused', { participantId, reason });
    if (this.#expected && [...this.#expected].every((p) => this.#refusals.has(p)) && !this.#failure) {
      this.#failure = new BackchannelError(ErrorCode.StreamRefused, `stream "${this.info.topic}" was refused by ${participantId}: ${reason.message}`, {
        details: { participantId, reason: reason.code },
      });
      void this.#end();
    }
  }

  /** @internal The session under the stream ended (room ended, …). */
  _sessionEnded(reason: Reason): void {
    if (this.#done) return;
    this.#failure ??= new BackchannelError(ErrorCode.StreamAborted, `stream "${this.info.topic}" ended: ${reason.message}`, { details: { reason: reason.code } });
    this.#done = true;
    this.#finished();
  }

  async #finish(trailer: { reason: string; sha256?: string; attributes?: Record<string, string> }): Promise<void> {
    if (this.#done) return;
    this.#tx.send(encodeTrailer(trailer));
    await this.#end();
    if (this.#failure) throw this.#failure;
  }

  async #end(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    // The stream id is free again only once the server has closed its session.
    await this.#tx.close().catch(() => undefined);
    this.#finished();
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#done) throw new BackchannelError(ErrorCode.SessionClosed, `stream "${this.info.topic}" is already closed`);
  }
}

function slices(bytes: Uint8Array, max: number): Uint8Array[] {
  if (bytes.byteLength <= max) return [bytes];
  const out: Uint8Array[] = [];
  for (let off = 0; off < bytes.byteLength; off += max) out.push(bytes.subarray(off, Math.min(off + max, bytes.byteLength)));
  return out;
}
