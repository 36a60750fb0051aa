/**
 * The receiving end of a stream id in a room: a callback or an async iterator over messages from
 * every sender on that stream id, or from one sender only. The iterator's queue is bounded by
 * backpressure: above the receive high-water mark the SDK withholds its acknowledgements, so the
 * server stops sending and a receiver that stays behind is treated as a slow receiver.
 */
import { Emitter, type DataMode, type Reason } from '@backchannel/protocol';
import type { ReceiveGate } from './receive-gate.js';

/** What accompanies each received message or chunk. */
export interface DataInfo {
  /** Participant id of the sender (`'server'` for app control messages). */
  from: string;
  /** The sender session's sequence number of the `send()` this came from. */
  seq: number;
  streamId: number;
  mode: DataMode;
}

/** One received message (reliable-message) or chunk (other modes). */
export interface ReceivedData extends DataInfo {
  data: Uint8Array;
}

/** Counters of a receiver. */
export interface RecvSessionStats {
  messagesReceived: number;
  bytesReceived: number;
  /** Unreliable chunks the server dropped for this receiver (congestion). */
  droppedByServer: number;
  /** Messages lost before this receiver existed (pending buffer overflow or expiry). */
  droppedBeforeReceiver: number;
  /** Messages received and not yet read from the iterator. */
  queuedMessages: number;
  /** Bytes of those messages. */
  queuedBytes: number;
}

/** Options of `makeRecvDataSession`. */
export interface RecvSessionOptions {
  /**
   * Receive only this participant's session on the stream id (a receiver per sender and stream
   * id). Its data then never reaches a receiver made for the stream id without `from`, and closing
   * this receiver stops that sender's flow to the app without refusing the stream id.
   */
  from?: string;
}

type RecvEvents = {
  /** One sender's session on this stream id closed (after its last data). */
  closed: [{ from: string; reason: Reason }];
  /** The server dropped `count` unreliable chunks from `from` for this receiver (congestion). */
  dropped: [{ from: string; count: number }];
};

export type OnData = (data: Uint8Array, info: DataInfo) => void;

export class RecvDataSession extends Emitter<RecvEvents> implements AsyncIterable<ReceivedData> {
  readonly streamId: number;
  /** The one sender this receiver takes (undefined: every sender without a receiver of its own). */
  readonly from: string | undefined;
  #onData: OnData | undefined;
  #buffer: ReceivedData[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<ReceivedData>) => void) | undefined;
  #ended = false;
  readonly #gate: ReceiveGate;
  readonly #stats = { messagesReceived: 0, bytesReceived: 0, droppedByServer: 0, droppedBeforeReceiver: 0 };

  /** @internal */
  constructor(
    streamId: number,
    onData: OnData | undefined,
    from: string | undefined,
    gate: ReceiveGate,
    private readonly detach: (rx: RecvDataSession) => void,
  ) {
    super();
    this.streamId = streamId;
    this.from = from;
    this.#onData = onData;
    this.#gate = gate;
  }

  /** Counters. */
  stats(): RecvSessionStats {
    let queuedBytes = 0;
    for (let i = this.#head; i < this.#buffer.length; i++) queuedBytes += this.#buffer[i]!.data.byteLength;
    return { ...this.#stats, queuedMessages: this.#buffer.length - this.#head, queuedBytes };
  }

  /** Whether the receiver has stopped (closed, or its room ended). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Stops receiving; messages not yet read are dropped. Later data for this stream id is treated as
   * having no receiver; for a receiver made with `from`, that sender's later data on the stream id
   * is discarded (its flow to the app stops) until a receiver is made for it again.
   */
  close(): void {
    if (this.#ended) return;
    this.detach(this);
    this._end();
    this.#buffer = [];
    this.#head = 0;
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedData> {
    if (this.#onData) throw new TypeError('this receiver has a callback; use either the callback or iteration, not both');
    return {
      next: () => {
        if (this.#head < this.#buffer.length) {
          const item = this.#buffer[this.#head]!;
          this.#buffer[this.#head++] = undefined as unknown as ReceivedData;
          if (this.#head === this.#buffer.length) {
            this.#buffer = [];
            this.#head = 0;
          } else if (this.#head >= 1024 && this.#head * 2 >= this.#buffer.length) {
            this.#buffer = this.#buffer.slice(this.#head);
            this.#head = 0;
          }
          if (!this.#ended) this.#gate.remove(item.data.byteLength);
          return Promise.resolve({ value: item, done: false });
        }
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.#waiter = resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** @internal */
  _deliver(data: Uint8Array, info: DataInfo): void {
    if (this.#ended) return;
    this.#stats.messagesReceived++;
    this.#stats.bytesReceived += data.byteLength;
    if (this.#onData) {
      try {
        this.#onData(data, info);
      } catch (error) {
        console.error(`[backchannel] onData for stream ${this.streamId} threw:`, error);
      }
      return;
    }
    const item = { data, ...info };
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w({ value: item, done: false });
    } else {
      this.#buffer.push(item);
      this.#gate.add(data.byteLength);
    }
  }

  /** @internal */
  _countDropped(byServer: number, beforeReceiver: number): void {
    this.#stats.droppedByServer += byServer;
    this.#stats.droppedBeforeReceiver += beforeReceiver;
  }

  /**
   * @internal No more data will come (closed, or the room ended). Messages already queued can still
   * be read, but no longer hold back the connection's other data.
   */
  _end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#gate.clear();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }
}
