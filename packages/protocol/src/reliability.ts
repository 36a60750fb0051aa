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

/** Slots of a new or trimmed {@link ReplayBuffer} (a power of two). */
const INITIAL_SLOTS = 16;
/** An empty ring with more slots than this goes back to {@link INITIAL_SLOTS} when trimmed. */
const KEPT_SLOTS = 256;

/**
 * Frames kept by the sender until the receiver acknowledges them. Holds references, never copies.
 *
 * The frames sit in a ring that doubles when full and is never copied to trim it: under a steady
 * flow it settles at the size of the send window and allocates nothing more, where trimming by
 * slicing made a new array (of the large-object space, when the window holds tens of thousands of
 * small frames) every few windows — old-generation garbage at the rate data flows (issue 17, server
 * RSS under a 100 B flood). An emptied ring keeps its slots: a saturated flow empties it whenever
 * the receiver catches up, and growing it again from a few slots each time made the same garbage.
 * The owner calls {@link ReplayBuffer.trim} now and then (on its heartbeat), which takes an idle
 * session back to a small ring.
 */
export class ReplayBuffer<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS);
  #sizes = new Float64Array(INITIAL_SLOTS);
  /** Slot of the oldest frame kept. */
  #head = 0;
  /** Frames kept. */
  #count = 0;
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
    return this.#count;
  }

  /** Bytes of the frames kept, as given to `push`. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Numbers `item` (its size in bytes is `size`) and keeps it until acknowledged; returns its number. */
  push(item: T, size: number): number {
    if (this.#count === this.#items.length) this.#grow();
    const slot = (this.#head + this.#count) & (this.#items.length - 1);
    this.#items[slot] = item;
    this.#sizes[slot] = size;
    this.#count++;
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
    const mask = this.#items.length - 1;
    let head = this.#head;
    for (let i = 0; i < n; i++) {
      this.#bytes -= this.#sizes[head]!;
      this.#items[head] = undefined;
      head = (head + 1) & mask;
    }
    this.#head = head;
    this.#count -= n;
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
    const out = new Array<T>(this.#count);
    const mask = this.#items.length - 1;
    for (let i = 0; i < this.#count; i++) out[i] = this.#items[(this.#head + i) & mask]!;
    return out;
  }

  /** Forgets every frame (a session that starts over). */
  clear(): void {
    this.#count = 0;
    this.#bytes = 0;
    this.#reset();
  }

  /** Empty: back to a small ring if it grew large. Call it now and then, not per frame. */
  trim(): void {
    if (this.#count === 0) this.#reset();
  }

  /** Empty: back to a small ring (a large one is kept only while it is in use). */
  #reset(): void {
    this.#head = 0;
    if (this.#items.length > KEPT_SLOTS) {
      this.#items = new Array<T | undefined>(INITIAL_SLOTS);
      this.#sizes = new Float64Array(INITIAL_SLOTS);
    } else this.#items.fill(undefined);
  }

  /** Full: twice the slots, the frames moved to the start in order. */
  #grow(): void {
    const cap = this.#items.length;
    const items = new Array<T | undefined>(cap * 2);
    const sizes = new Float64Array(cap * 2);
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) & (cap - 1);
      items[i] = this.#items[slot];
      sizes[i] = this.#sizes[slot]!;
    }
    this.#items = items;
    this.#sizes = sizes;
    this.#head = 0;
  }
}

/** The receiving half: counts numbered frames and says when an acknowledgement is due. */
export class AckCounter {
  #received = 0;
  #unacked = 0;
  #unackedBytes = 0;

  constructor(
    /** Acknowledge after this many frames… */
    private every: number,
    /** …or this many bytes of them, whichever comes first. */
    private everyBytes: number,
  ) {}

  /** Acknowledges after at most `bytes` bytes from now on (the sender's window announced late). */
  capBytes(bytes: number): void {
    if (bytes >= 1 && bytes < this.everyBytes) this.everyBytes = Math.floor(bytes);
  }

  /** Acknowledges after at most `frames` frames from now on (the sender's window announced late). */
  capFrames(frames: number): void {
    if (frames >= 1 && frames < this.every) this.every = Math.floor(frames);
  }

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
