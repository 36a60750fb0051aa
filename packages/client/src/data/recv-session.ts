/**
 * The receiving end of a stream id in a room: a callback or an async iterator over messages from
 * every sender on that stream id.
 */
import { Emitter, type DataMode, type Reason } from '@backchannel/protocol';

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
  #onData: OnData | undefined;
  #buffer: ReceivedData[] = [];
  #waiter: ((r: IteratorResult<ReceivedData>) => void) | undefined;
  #ended = false;
  #iterating = false;
  readonly #stats: RecvSessionStats = { messagesReceived: 0, bytesReceived: 0, droppedByServer: 0, droppedBeforeReceiver: 0 };

  constructor(
    streamId: number,
    onData: OnData | undefined,
    private readonly detach: (rx: RecvDataSession) => void,
  ) {
    super();
    this.streamId = streamId;
    this.#onData = onData;
  }

  /** Counters. */
  stats(): RecvSessionStats {
    return { ...this.#stats };
  }

  /** Whether the receiver has stopped (closed, or its room ended). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Stops receiving; later data for this stream id is treated as having no receiver. */
  close(): void {
    if (this.#ended) return;
    this.detach(this);
    this._end();
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedData> {
    if (this.#onData) throw new TypeError('this receiver has a callback; use either the callback or iteration, not both');
    this.#iterating = true;
    return {
      next: () => {
        const item = this.#buffer.shift();
        if (item) return Promise.resolve({ value: item, done: false });
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
    } else this.#buffer.push(item);
  }

  /** @internal */
  _countDropped(byServer: number, beforeReceiver: number): void {
    this.#stats.droppedByServer += byServer;
    this.#stats.droppedBeforeReceiver += beforeReceiver;
  }

  /** @internal */
  _end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
    void this.#iterating;
  }
}
