/**
 * The receiving end of a data stream: an async iterable of chunks (strings for text streams,
 * bytes for byte streams), `readAll()`, progress events, and integrity checking. Chunks not yet
 * read are bounded by backpressure (see `ReceiveGate`): a reader the app does not keep up with
 * holds back the connection's data, and the server treats this client as a slow receiver.
 */
import { BackchannelError, Emitter, ErrorCode, type Reason } from '@backchannel/protocol';
import type { ReceiveGate } from '../data/receive-gate.js';
import { platform, type Hasher } from '../platform.js';
import type { StreamHeader, StreamTrailer } from './format.js';
import type { StreamProgress } from './writer.js';

/** A stream's header as the reader sees it, with the sender's participant id. */
export interface StreamInfo extends StreamHeader {
  sender: string;
}

type ReaderEvents = {
  progress: [StreamProgress];
};

const decoder = new TextDecoder();

export class StreamReader<T extends string | Uint8Array = string | Uint8Array> extends Emitter<ReaderEvents> implements AsyncIterable<T> {
  readonly info: StreamInfo;
  #queue: T[] = [];
  /** Bytes of each queued chunk (as received), for the gate. */
  #sizes: number[] = [];
  readonly #gate: ReceiveGate;
  #waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  #ended = false;
  #error: BackchannelError | undefined;
  #bytes = 0;
  #next = 0;
  #trailer: StreamTrailer | undefined;
  readonly #hasher: Hasher | undefined;

  /** @internal */
  constructor(info: StreamInfo, gate: ReceiveGate) {
    super();
    this.info = info;
    this.#gate = gate;
    this.#hasher = info.kind === 'bytes' ? platform.createHasher() : undefined;
  }

  /** Payload bytes received so far. */
  get bytesReceived(): number {
    return this.#bytes;
  }

  /** Attributes the sender put in the trailer (after the end). */
  get trailerAttributes(): Record<string, string> | undefined {
    return this.#trailer?.attributes;
  }

  /** Reads the whole stream: one string for text streams, one Uint8Array for byte streams. */
  async readAll(): Promise<T> {
    const parts: T[] = [];
    for await (const chunk of this) parts.push(chunk);
    if (this.info.kind === 'text') return (parts as string[]).join('') as T;
    const total = (parts as Uint8Array[]).reduce((n, p) => n + p.byteLength, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts as Uint8Array[]) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out as T;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const chunk = this.#queue.shift();
        if (chunk !== undefined) {
          const size = this.#sizes.shift()!;
          if (!this.#ended) this.#gate.remove(size);
          return Promise.resolve({ value: chunk, done: false });
        }
        if (this.#error) return Promise.reject(this.#error);
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
      },
    };
  }

  /** @internal */
  _chunk(index: number, data: Uint8Array): void {
    if (this.#ended) return;
    if (index !== this.#next) return this._fail(new BackchannelError(ErrorCode.StreamAborted, `stream chunk ${index} arrived, expected ${this.#next}`));
    this.#next++;
    this.#hasher?.update(data);
    this.#bytes += data.byteLength;
    this.#push((this.info.kind === 'text' ? decoder.decode(data) : data.slice()) as T, data.byteLength);
    this.emit('progress', { bytes: this.#bytes, total: this.info.totalLength });
  }

  /** @internal Ends the stream; returns the error the reader fails with, if it does. */
  _trailer(trailer: StreamTrailer): BackchannelError | undefined {
    if (this.#ended) return this.#error;
    this.#trailer = trailer;
    let error: BackchannelError | undefined;
    if (trailer.reason) error = new BackchannelError(ErrorCode.StreamAborted, `stream "${this.info.topic}" was aborted: ${trailer.reason}`, { details: { reason: trailer.reason } });
    else if (trailer.sha256 && this.#hasher) {
      const actual = this.#hasher.hex();
      if (actual !== trailer.sha256) error = new BackchannelError(ErrorCode.StreamIntegrity, `stream "${this.info.topic}" failed its SHA-256 check`, { details: { expected: trailer.sha256, actual } });
    }
    if (error) this._fail(error);
    else this.#end();
    return error;
  }

  /** @internal The stream ended without a trailer (sender left, room ended, …). */
  _abort(reason: Reason): void {
    if (this.#ended) return;
    this._fail(new BackchannelError(ErrorCode.StreamAborted, `stream "${this.info.topic}" ended early: ${reason.message}`, { details: { reason: reason.code } }));
  }

  /** @internal */
  _fail(error: BackchannelError): void {
    if (this.#ended) return;
    this.#error = error;
    this.#end();
  }

  /** Whether the stream has ended (normally or not); chunks already received may still be read. */
  get ended(): boolean {
    return this.#ended;
  }

  /** @internal Chunks received and not yet read. */
  get _queued(): number {
    return this.#queue.length;
  }

  /** Nothing more will arrive: what is queued stays readable but no longer holds back other data. */
  #end(): void {
    this.#ended = true;
    this.#gate.clear();
    this.#settle();
  }

  #push(chunk: T, size: number): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w.resolve({ value: chunk, done: false });
    } else {
      this.#queue.push(chunk);
      this.#sizes.push(size);
      this.#gate.add(size);
    }
  }

  #settle(): void {
    const w = this.#waiter;
    if (!w || this.#queue.length > 0) return;
    this.#waiter = undefined;
    if (this.#error) w.reject(this.#error);
    else w.resolve({ value: undefined, done: true });
  }
}
