/**
 * The SDK's outbound data path for one connection: a fair priority queue drained into the
 * transport while its buffer is below the high-water mark and the data the server has not yet
 * acknowledged fits in the send window.
 */
import { FairQueue, type PriorityClass, type QueueItem } from '@backchannel/protocol';
import type { DataEntry, Link } from '../link.js';

/** A chunk waiting to be written (kept, once written, until the server acknowledges it). */
export interface OutItem extends QueueItem, DataEntry {
  /** Told when the chunk has been handed to the transport. */
  onSent: (item: OutItem) => void;
}

/** Returned by `push` when nothing was dropped (shared: no allocation per push). */
const NOTHING_DROPPED: readonly OutItem[] = Object.freeze([]);

export class Outbound {
  readonly queue = new FairQueue<OutItem>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pumping = false;

  constructor(
    private readonly link: Link,
    private readonly socketHighWaterBytes: number,
    private readonly sendWindowBytes: number,
    private readonly sendWindowFrames: number,
  ) {
    link.onwritable = () => this.pump();
    link.onack = () => this.pump();
  }

  /** Queues a chunk; returns the chunks dropped to respect `dropCap` (unreliable sessions). */
  push(key: string, priority: PriorityClass, item: OutItem, dropCap?: number): readonly OutItem[] {
    if (this.queue.length === 0 && this.#writable()) {
      // Nothing waits that the chunk could overtake: it goes straight to the transport, as the
      // pump would send it, without a trip through the queue (the usual case at light load).
      this.#pumping = true;
      try {
        this.link.sendData(item);
        item.onSent(item);
      } finally {
        this.#pumping = false;
      }
      return NOTHING_DROPPED;
    }
    const dropped = this.queue.push(key, priority, item, dropCap);
    this.pump();
    return dropped;
  }

  /** Whether a chunk may be written now: a transport is attached, below its high-water mark, and the send window is open. */
  #writable(): boolean {
    if (this.#pumping || this.link.closed) return false;
    const transport = this.link.transport;
    return transport !== undefined && transport.bufferedAmount < this.socketHighWaterBytes && this.#windowOpen();
  }

  /** Whether what the server has not acknowledged is below the send window, in bytes and in frames. */
  #windowOpen(): boolean {
    return this.link.unackedBytes < this.sendWindowBytes && this.link.unackedFrames < this.sendWindowFrames;
  }

  /**
   * Writes queued chunks while the transport buffer has room and the send window is open. A full
   * window reopens with the server's next acknowledgement; a full buffer when the transport says
   * it is writable again (browsers never do, so then it is polled). While reconnecting nothing is
   * written: chunks wait here until a transport is attached again.
   */
  pump(): void {
    if (this.#pumping || this.link.closed) return;
    const transport = this.link.transport;
    if (!transport) return;
    this.#pumping = true;
    try {
      while (transport.bufferedAmount < this.socketHighWaterBytes) {
        if (!this.#windowOpen()) return;
        const item = this.queue.next();
        if (!item) return;
        this.link.sendData(item);
        item.onSent(item);
      }
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.pump();
      }, 2);
    } finally {
      this.#pumping = false;
    }
  }

  /** Stops polling (connection closed). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
