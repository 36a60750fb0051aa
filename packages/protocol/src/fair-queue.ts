/**
 * A priority queue of per-session FIFO queues, shared by the client's send path and the server's
 * per-connection outbound path (pure logic, no I/O).
 *
 * - Strict priority between classes: nothing of a lower class leaves while a higher class has data.
 * - Round-robin between sessions of one class, one item at a time, so a large transfer cannot
 *   block a small message of the same class queued after it.
 * - Droppable (unreliable) items beyond a session's byte cap are dropped oldest-first.
 */

/** Priority classes: 0 = high, 1 = normal, 2 = low. */
export type PriorityClass = 0 | 1 | 2;

/** Maps a priority name to its class. */
export const PRIORITY_CLASS = { high: 0, normal: 1, low: 2 } as const satisfies Record<string, PriorityClass>;

/** Anything queued: `size` counts toward queued bytes; `droppable` items may be dropped. */
export interface QueueItem {
  size: number;
  droppable: boolean;
}

/** Slots of a new session queue's ring (a power of two). */
const INITIAL_SLOTS = 8;

/**
 * One session's FIFO: a ring that doubles when full and is never copied to trim it, so a queue
 * that stays busy allocates nothing per item (trimming by slicing made old-generation garbage at
 * the rate data flowed; issue 17).
 */
class SessionQueue<T extends QueueItem> {
  #items: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS);
  #head = 0;
  #count = 0;
  bytes = 0;
  /** Items taken out so far (progress). */
  taken = 0;
  constructor(
    public key: string,
    public priority: PriorityClass,
  ) {}
  /** Slots of the ring (what it grew to). */
  get capacity(): number {
    return this.#items.length;
  }
  /** Makes this empty queue the queue of another session, keeping the ring it grew to. */
  reuse(key: string, priority: PriorityClass): this {
    this.key = key;
    this.priority = priority;
    this.#head = 0;
    this.bytes = 0;
    this.taken = 0;
    return this;
  }
  get length(): number {
    return this.#count;
  }
  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#count === 0 ? undefined : this.#items[this.#head];
  }
  push(item: T): void {
    if (this.#count === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#count) & (this.#items.length - 1)] = item;
    this.#count++;
    this.bytes += item.size;
  }
  shift(): T | undefined {
    if (this.#count === 0) return undefined;
    const item = this.#items[this.#head]!;
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#count--;
    this.taken++;
    this.bytes -= item.size;
    return item;
  }
  #grow(): void {
    const cap = this.#items.length;
    const items = new Array<T | undefined>(cap * 2);
    for (let i = 0; i < this.#count; i++) items[i] = this.#items[(this.#head + i) & (cap - 1)];
    this.#items = items;
    this.#head = 0;
  }
}

/**
 * Slots up to which the ring of a session queue that empties is kept for the next session that
 * gets an item (32,768 slots, 256 KiB). A flow that drains its queue and refills it, as a saturated
 * one does whenever the send window opens, would otherwise grow a new ring from INITIAL_SLOTS each time:
 * arrays that outlive a scavenge, straight into the old generation (and the large-object space
 * past 128 KiB), at the rate the queue cycles.
 */
const SPARE_MAX_SLOTS = 32_768;

/** Returned by `push` when nothing was dropped (shared: no allocation per push). */
const NOTHING_DROPPED: readonly never[] = Object.freeze([]);

/** The fair priority queue. Keys identify sessions; items of one key leave in FIFO order. */
export class FairQueue<T extends QueueItem> {
  /** The session key of the item `next()` returned last. */
  lastKey = '';
  #sessions = new Map<string, SessionQueue<T>>();
  /** The last session queue that emptied, kept for its ring (see SPARE_MAX_SLOTS). */
  #spare: SessionQueue<T> | undefined;
  /**
   * Per class, the sessions that have items: a ring served from `#at[class]` on, wrapping round.
   * Taking an item moves the cursor past its session, which is then last in turn; a session that
   * becomes ready is inserted just before the cursor, last in turn too. Arrays, not a Set that
   * would be deleted from and added to for every item (with a new iterator each time): the queue
   * is on every frame's path and should allocate nothing per item (issue 17).
   */
  #ready: [SessionQueue<T>[], SessionQueue<T>[], SessionQueue<T>[]] = [[], [], []];
  #at = [0, 0, 0];
  #bytes = 0;
  #count = 0;

  /** Total bytes queued over all sessions. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Total items queued. */
  get length(): number {
    return this.#count;
  }

  /**
   * Appends `item` to the session `key`. If `dropCap` is given and the session's queued bytes
   * exceed it, its oldest droppable items are removed; returns the items dropped.
   */
  push(key: string, priority: PriorityClass, item: T, dropCap?: number): readonly T[] {
    let q = this.#sessions.get(key);
    if (!q) {
      q = this.#spare?.reuse(key, priority) ?? new SessionQueue<T>(key, priority);
      this.#spare = undefined;
      this.#sessions.set(key, q);
    }
    q.push(item);
    this.#bytes += item.size;
    this.#count++;
    if (q.length === 1) this.#enlist(q);
    if (dropCap === undefined || q.bytes <= dropCap) return NOTHING_DROPPED;
    return this.#dropOldest(q, dropCap);
  }

  /** Removes and returns the next item by priority and round-robin, with its session key. */
  shift(): { key: string; item: T } | undefined {
    const item = this.next();
    return item === undefined ? undefined : { key: this.lastKey, item };
  }

  /**
   * Removes and returns the next item by priority and round-robin; its session key is then in
   * `lastKey`. The allocation-free form of `shift()`, for hot paths.
   */
  next(): T | undefined {
    for (let c = 0; c < 3; c++) {
      const ready = this.#ready[c]!;
      if (ready.length === 0) continue;
      let at = this.#at[c]!;
      if (at >= ready.length) at = 0;
      const q = ready[at]!;
      const item = q.shift()!;
      this.#bytes -= item.size;
      this.#count--;
      if (q.length > 0) at++;
      else {
        ready.splice(at, 1);
        this.#retire(q);
      }
      this.#at[c] = at;
      this.lastKey = q.key;
      return item;
    }
    return undefined;
  }

  /** Makes `q` (which just got its first item) ready, last in turn in its class. */
  #enlist(q: SessionQueue<T>): void {
    const ready = this.#ready[q.priority];
    const at = Math.min(this.#at[q.priority]!, ready.length);
    if (at === ready.length) ready.push(q);
    else ready.splice(at, 0, q);
    this.#at[q.priority] = at + 1;
  }

  /** Takes `q` out of its class's ring; false if it was not in it. */
  #delist(q: SessionQueue<T>): boolean {
    const ready = this.#ready[q.priority];
    const i = ready.indexOf(q);
    if (i < 0) return false;
    ready.splice(i, 1);
    if (i < this.#at[q.priority]!) this.#at[q.priority]!--;
    return true;
  }

  /** Bytes queued for session `key`. */
  bytesOf(key: string): number {
    return this.#sessions.get(key)?.bytes ?? 0;
  }

  /**
   * Items of session `key` taken out since its queue was last empty; -1 when it is empty. Changes
   * whenever the session's queue moves.
   */
  takenOf(key: string): number {
    return this.#sessions.get(key)?.taken ?? -1;
  }

  /** Items queued for session `key`. */
  lengthOf(key: string): number {
    return this.#sessions.get(key)?.length ?? 0;
  }

  /** Changes the priority class of a session (queued items move with it). */
  setPriority(key: string, priority: PriorityClass): void {
    const q = this.#sessions.get(key);
    if (!q || q.priority === priority) return;
    const ready = this.#delist(q);
    q.priority = priority;
    if (ready) this.#enlist(q);
  }

  /** Removes every item of session `key` and returns them. */
  clear(key: string): T[] {
    const q = this.#sessions.get(key);
    if (!q) return [];
    const out: T[] = [];
    for (let item = q.shift(); item; item = q.shift()) out.push(item);
    for (const item of out) this.#bytes -= item.size;
    this.#count -= out.length;
    this.#delist(q);
    this.#retire(q);
    return out;
  }

  #dropOldest(q: SessionQueue<T>, cap: number): T[] {
    const dropped: T[] = [];
    // Fast path: the oldest items are droppable (the usual case for an unreliable session).
    while (q.bytes > cap && q.length > 0 && q.peek()!.droppable) dropped.push(q.shift()!);
    if (q.bytes > cap) {
      // Slow path: a non-droppable marker sits at the head; keep it and drop behind it.
      let excess = q.bytes - cap;
      const kept: T[] = [];
      for (let item = q.shift(); item; item = q.shift()) {
        if (excess > 0 && item.droppable) {
          dropped.push(item);
          excess -= item.size;
        } else kept.push(item);
      }
      for (const item of kept) q.push(item);
    }
    for (const item of dropped) this.#bytes -= item.size;
    this.#count -= dropped.length;
    if (q.length === 0) {
      this.#delist(q);
      this.#retire(q);
    }
    return dropped;
  }

  /** Lets the spare ring go (called now and then, e.g. on a heartbeat: an idle queue holds little). */
  trim(): void {
    this.#spare = undefined;
  }

  /** Forgets the emptied queue `q`, keeping it as the spare if its ring is worth keeping. */
  #retire(q: SessionQueue<T>): void {
    this.#sessions.delete(q.key);
    if (q.capacity > INITIAL_SLOTS && q.capacity <= SPARE_MAX_SLOTS && (this.#spare === undefined || this.#spare.capacity < q.capacity)) this.#spare = q;
  }
}
