/**
 * Receive backpressure for one queue of data the app has not read yet (a receiver's iterator, a
 * stream reader): above the high-water mark the queue holds the link's acknowledgements, below the
 * low-water mark it releases them. The server stops writing data to a client whose
 * unacknowledged bytes reach its send window, so what the app has not read stays bounded and the
 * server sees a slow receiver (see `Link.holdAcks`).
 */

/**
 * Least bytes a queued item counts for, whatever its payload: the object that holds it and its
 * queue slot cost memory too, so a flood of empty or tiny messages is bounded like large ones.
 */
export const MIN_ITEM_COST_BYTES = 64;

/** What an item of `payloadBytes` counts for in a bounded queue. */
export const itemCost = (payloadBytes: number): number => Math.max(payloadBytes, MIN_ITEM_COST_BYTES);

export class ReceiveGate {
  #bytes = 0;
  #release: (() => void) | undefined;

  constructor(
    /** Starts withholding acknowledgements; returns the release. */
    private readonly hold: () => () => void,
    private readonly highWaterBytes: number,
    private readonly lowWaterBytes: number,
  ) {}

  /** Bytes queued (see {@link itemCost}). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether this queue is withholding acknowledgements. */
  get holding(): boolean {
    return this.#release !== undefined;
  }

  /** Counts an item of `payloadBytes` entering the queue. */
  add(payloadBytes: number): void {
    this.#bytes += itemCost(payloadBytes);
    if (!this.#release && this.#bytes > this.highWaterBytes) this.#release = this.hold();
  }

  /** Counts an item of `payloadBytes` leaving the queue (read by the app). */
  remove(payloadBytes: number): void {
    this.#bytes -= itemCost(payloadBytes);
    if (this.#release && this.#bytes <= this.lowWaterBytes) this.#open();
  }

  /** The queue was emptied for good (closed, failed): releases any hold. */
  clear(): void {
    this.#bytes = 0;
    this.#open();
  }

  #open(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
}
