/**
 * The sending end of a data stream: chunks text (never splitting a character) or bytes into
 * indexed chunk messages on the stream's own reliable session, with backpressure, progress and,
 * for byte streams, a SHA-256 of everything sent, carried in the trailer. Closing waits until
 * every destination's SDK confirmed the whole stream, or says which did not get it and why.
 */
import { BackchannelError, Emitter, ErrorCode, StreamFailReason, type Reason } from '@backchannel/protocol';
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

/** A destination that did not get a stream, and why (`reason.code`: see `StreamFailReason`). */
export interface StreamFailure {
  participantId: string;
  reason: Reason;
}

type WriterEvents = {
  /** A receiver refused the stream (no handler for the topic, too many streams, idle, …). */
  refused: [{ participantId: string; reason: Reason }];
};

/** @internal How a writer learns who must confirm its stream. */
export interface WriterOptions {
  onProgress?: (p: StreamProgress) => void;
  /** Participants whose confirmation the stream waits for. */
  expected: string[];
  /** Whether the destination was named (then a destination that does not take data is a failure). */
  explicit: boolean;
  chunkBytes: number;
  confirmTimeoutMs: number;
}

/** Writes one data stream. `T` is `string` for text streams and `Uint8Array` for byte streams. */
export class StreamWriter<T extends string | Uint8Array> extends Emitter<WriterEvents> {
  readonly info: StreamHeader;
  readonly #tx: SendDataSession;
  readonly #hasher: Hasher | undefined;
  readonly #onProgress: ((p: StreamProgress) => void) | undefined;
  readonly #finished: () => void;
  readonly #maxChunk: number;
  readonly #explicit: boolean;
  readonly #confirmTimeoutMs: number;
  /** Destinations not yet settled (neither confirmed nor failed). */
  readonly #awaiting: Set<string>;
  readonly #expectedCount: number;
  readonly #delivered = new Set<string>();
  readonly #failed = new Map<string, { reason: Reason; refusal: boolean }>();
  #settledWaiter: (() => void) | undefined;
  #index = 0;
  #bytes = 0;
  #sinceYield = 0;
  #done = false;
  #failure: BackchannelError | undefined;

  /** @internal */
  constructor(tx: SendDataSession, header: StreamHeader, options: WriterOptions, finished: () => void) {
    super();
    this.#tx = tx;
    this.info = header;
    this.#hasher = header.kind === 'bytes' ? platform.createHasher() : undefined;
    this.#onProgress = options.onProgress;
    this.#awaiting = new Set(options.expected);
    this.#expectedCount = this.#awaiting.size;
    this.#explicit = options.explicit;
    this.#confirmTimeoutMs = options.confirmTimeoutMs;
    this.#maxChunk = options.chunkBytes - CHUNK_OVERHEAD;
    this.#finished = finished;
    tx.send(encodeHeader(header));
  }

  /** Payload bytes written so far. */
  get bytesWritten(): number {
    return this.#bytes;
  }

  /** Participants whose SDK confirmed the whole stream (after `close()`). */
  get delivered(): string[] {
    return [...this.#delivered];
  }

  /** Destinations that did not get the stream, and why. */
  get failed(): StreamFailure[] {
    return [...this.#failed].map(([participantId, f]) => ({ participantId, reason: f.reason }));
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

  /**
   * Ends the stream normally. Resolves once every destination's SDK has confirmed the whole stream
   * (for a broadcast: every participant in the room when it was opened that takes data). Rejects
   * with `stream-refused` when the destinations that did not get it all refused it, else with
   * `stream-not-delivered`; `details.failed` lists `{ participantId, reason }` for each of them
   * and `details.delivered` the others.
   */
  async close(attributes?: Record<string, string>): Promise<void> {
    this.#check();
    await this.#finish({ reason: '', ...(this.#hasher ? { sha256: this.#hasher.hex() } : {}), ...(attributes ? { attributes } : {}) }, true);
  }

  /** Ends the stream abnormally: readers' iterators throw `stream-aborted` with `reason`. */
  async abort(reason = 'aborted by the sender'): Promise<void> {
    if (this.#done) return;
    await this.#finish({ reason: reason || 'aborted by the sender' }, false);
  }

  /** @internal A receiver refused the stream (a `stream.refuse` from its SDK). */
  _refused(participantId: string, reason: Reason): void {
    this.emit('refused', { participantId, reason });
    this.#fail(participantId, reason, true);
  }

  /** @internal A receiver's SDK confirmed the whole stream, or reported that it arrived damaged. */
  _confirmed(participantId: string, reason: Reason | undefined): void {
    if (reason) return this.#fail(participantId, reason, false);
    if (this.#failed.has(participantId) || this.#delivered.has(participantId)) return;
    this.#delivered.add(participantId);
    this.#settle(participantId);
  }

  /** @internal A destination will not get the stream: it left, or the server detached it. */
  _receiverGone(participantId: string, reason: Reason): void {
    if (this.#awaiting.has(participantId)) this.#fail(participantId, reason, false);
  }

  /** @internal A participant does not take data: a failure for a named destination; otherwise it is no destination. */
  _unsupported(participantId: string): void {
    if (!this.#awaiting.has(participantId)) return;
    if (this.#explicit) this.#fail(participantId, { code: StreamFailReason.Unsupported, message: `${participantId} does not take data` }, false);
    else this.#settle(participantId);
  }

  /** @internal The session under the stream ended (room ended, …). */
  _sessionEnded(reason: Reason): void {
    if (this.#done) return;
    this.#failure ??= new BackchannelError(ErrorCode.StreamAborted, `stream "${this.info.topic}" ended: ${reason.message}`, { details: { reason: reason.code } });
    this.#done = true;
    this.#finished();
    this.#wake();
  }

  #fail(participantId: string, reason: Reason, refusal: boolean): void {
    if (this.#failed.has(participantId) || this.#delivered.has(participantId)) return;
    this.#failed.set(participantId, { reason, refusal });
    this.#settle(participantId);
    // Nobody left to send to: stop early, so the next write (or close) says so.
    if (this.#expectedCount > 0 && this.#delivered.size === 0 && this.#awaiting.size === 0 && this.#failed.size >= this.#expectedCount && !this.#failure && !this.#done) {
      this.#failure = this.#outcomeError();
      void this.#end();
    }
  }

  #settle(participantId: string): void {
    this.#awaiting.delete(participantId);
    if (this.#awaiting.size === 0) this.#wake();
  }

  #wake(): void {
    const w = this.#settledWaiter;
    this.#settledWaiter = undefined;
    w?.();
  }

  /**
   * Resolves when every destination has settled, the session ended, or the confirmation timeout
   * passed. The timeout counts from when the server last held some of the stream for a receiver
   * (its backlog reports), so a slow but moving receiver is not given up on.
   */
  async #confirmations(): Promise<void> {
    if (this.#awaiting.size === 0 || this.#done) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let off: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      this.#settledWaiter = resolve;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(resolve, this.#confirmTimeoutMs);
      };
      arm();
      off = this.#tx.on('backlog', ({ serverBacklogBytes }) => serverBacklogBytes > 0 && arm());
    });
    clearTimeout(timer);
    off?.();
    this.#settledWaiter = undefined;
    for (const id of [...this.#awaiting]) {
      this.#fail(id, { code: StreamFailReason.Unconfirmed, message: `${id} did not confirm the stream within ${this.#confirmTimeoutMs} ms` }, false);
    }
  }

  async #finish(trailer: { reason: string; sha256?: string; attributes?: Record<string, string> }, confirm: boolean): Promise<void> {
    if (this.#done) return;
    this.#tx.send(encodeTrailer(trailer));
    if (confirm) {
      // The session stays open meanwhile, so the server still reports receivers it detaches.
      await this.#tx._flushed();
      await this.#confirmations();
    }
    await this.#end();
    if (this.#failure) throw this.#failure;
    if (confirm) {
      const error = this.#outcomeError();
      if (error) throw error;
    }
  }

  /** The error for the destinations that did not get the stream, if any. */
  #outcomeError(): BackchannelError | undefined {
    if (this.#failed.size === 0) return undefined;
    const failed = this.failed;
    const allRefused = [...this.#failed.values()].every((f) => f.refusal);
    const list = failed.map((f) => `${f.participantId} (${f.reason.code})`).join(', ');
    const what = allRefused ? 'was refused by' : 'did not reach';
    const first = failed[0]!;
    return new BackchannelError(allRefused ? ErrorCode.StreamRefused : ErrorCode.StreamNotDelivered, `stream "${this.info.topic}" ${what} ${list}: ${first.reason.message}`, {
      details: { participantId: first.participantId, reason: first.reason.code, failed, delivered: this.delivered },
    });
  }

  async #end(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#wake();
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
