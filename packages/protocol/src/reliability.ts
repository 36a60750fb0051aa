/**
 * The sequence/acknowledgement/replay logic both ends of a session share (pure logic, no I/O).
 *
 * Each side numbers the frames it sends that must survive a reconnect (control frames and
 * reliable data frames) 1, 2, 3, … No frame carries its number: the transport is ordered, so the
 * receiver counts. The receiver acknowledges the count it has reached; the sender keeps every
 * numbered frame in a {@link ReplayBuffer} until it is acknowledged, and after a reconnect sends
 * again exactly the frames after the count the receiver reports, so nothing is lost or doubled.
 * Counts travel as u32 and wrap; the arithmetic here is modular.
 */

/** Frames kept by the sender until the receiver acknowledges them. Holds references, never copies. */
export class ReplayBuffer<T> {
  #items: (T | undefined)[] = [];
  #sizes: number[] = [];
  #head = 0;
  /** Frames numbered so far (the number of the last one; u32 on the wire). */
  #sent = 0;
  #bytes = 0;

  /** Number of the last frame numbered (u32). */
  get sent(): number {
    return this.#sent >>> 0;
  }

  /** Number of the last frame the receiver acknowledged (u32). */
  get acked(): number {
    return (this.#sent - this.length) >>> 0;
  }

  /** Frames kept (unacknowledged). */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Bytes of the frames kept, as given to `push`. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Numbers `item` (its size in bytes is `size`) and keeps it until acknowledged; returns its number. */
  push(item: T, size: number): number {
    this.#items.push(item);
    this.#sizes.push(size);
    this.#bytes += size;
    this.#sent++;
    return this.#sent >>> 0;
  }

  /**
   * Drops the frames up to `count` (u32) that the receiver acknowledged. An acknowledgement older
   * than the last one is ignored; one beyond what was sent is refused (returns false).
   */
  ack(count: number): boolean {
    const n = (count - this.acked) >>> 0;
    if (n === 0) return true;
    if (n > this.length) return (this.acked - count) >>> 0 <= 0x7fff_ffff; // stale (older) acks are harmless
    for (let i = 0; i < n; i++) {
      this.#bytes -= this.#sizes[this.#head]!;
      this.#items[this.#head] = undefined;
      this.#head++;
    }
    this.#compact();
    return true;
  }

  /**
   * The frames after `count` (u32), oldest first, after dropping those up to it: what to send
   * again when the receiver reports having received `count` frames. `undefined` if `count` is not
   * between the last acknowledgement and the last frame sent (the frames it needs are gone).
   */
  after(count: number): T[] | undefined {
    const n = (count - this.acked) >>> 0;
    if (n > this.length) return undefined;
    this.ack(count);
    return this.#items.slice(this.#head) as T[];
  }

  /** Forgets every frame (a session that starts over). */
  clear(): void {
    this.#items = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #compact(): void {
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#sizes.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** The receiving half: counts numbered frames and says when an acknowledgement is due. */
export class AckCounter {
  #received = 0;
  #unacked = 0;
  #unackedBytes = 0;

  constructor(
    /** Acknowledge after this many frames… */
    private readonly every: number,
    /** …or this many bytes of them, whichever comes first. */
    private readonly everyBytes: number,
  ) {}

  /** Frames received so far (u32). */
  get received(): number {
    return this.#received >>> 0;
  }

  /** Whether frames were received since the last acknowledgement. */
  get pending(): boolean {
    return this.#unacked > 0;
  }

  /** Counts one numbered frame of `bytes`; returns true when an acknowledgement is due now. */
  count(bytes: number): boolean {
    this.#received++;
    this.#unackedBytes += bytes;
    return ++this.#unacked >= this.every || this.#unackedBytes >= this.everyBytes;
  }

  /** Marks everything received as acknowledged and returns the count to send (u32). */
  take(): number {
    this.#unacked = 0;
    this.#unackedBytes = 0;
    return this.#received >>> 0;
  }
}
