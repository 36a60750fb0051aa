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

class SessionQueue<T extends QueueItem> {
  items: T[] = [];
  head = 0;
  bytes = 0;
  /** Items taken out so far (progress). */
  taken = 0;
  constructor(
    readonly key: string,
    public priority: PriorityClass,
  ) {}
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
    this.bytes += item.size;
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined as unknown as T;
    this.taken++;
    // Compact occasionally so the backing array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    } else if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
    this.bytes -= item.size;
    return item;
  }
}

/** Returned by `push` when nothing was dropped (shared: no allocation per push). */
const NOTHING_DROPPED: readonly never[] = Object.freeze([]);

/** The fair priority queue. Keys identify sessions; items of one key leave in FIFO order. */
export class FairQueue<T extends QueueItem> {
  /** The session key of the item `next()` returned last. */
  lastKey = '';
  #sessions = new Map<string, SessionQueue<T>>();
  // Per class, the sessions that have items, in round-robin order (Set keeps insertion order).
  #ready: [Set<SessionQueue<T>>, Set<SessionQueue<T>>, Set<SessionQueue<T>>] = [new Set(), new Set(), new Set()];
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
    if (!q) this.#sessions.set(key, (q = new SessionQueue(key, priority)));
    q.push(item);
    this.#bytes += item.size;
    this.#count++;
    if (q.length === 1) this.#ready[q.priority].add(q);
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
    for (const ready of this.#ready) {
      if (ready.size === 0) continue;
      const q = ready.values().next().value as SessionQueue<T>;
      const item = q.shift()!;
      this.#bytes -= item.size;
      this.#count--;
      ready.delete(q);
      if (q.length > 0) ready.add(q);
      else this.#sessions.delete(q.key);
      this.lastKey = q.key;
      return item;
    }
    return undefined;
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
    if (this.#ready[q.priority].delete(q)) this.#ready[priority].add(q);
    q.priority = priority;
  }

  /** Removes every item of session `key` and returns them. */
  clear(key: string): T[] {
    const q = this.#sessions.get(key);
    if (!q) return [];
    const out: T[] = [];
    for (let item = q.shift(); item; item = q.shift()) out.push(item);
    for (const item of out) this.#bytes -= item.size;
    this.#count -= out.length;
    this.#ready[q.priority].delete(q);
    this.#sessions.delete(key);
    return out;
  }

  #dropOldest(q: SessionQueue<T>, cap: number): T[] {
    const dropped: T[] = [];
    // Fast path: the oldest items are droppable (the usual case for an unreliable session).
    while (q.bytes > cap && q.length > 0 && q.items[q.head]!.droppable) dropped.push(q.shift()!);
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
      this.#ready[q.priority].delete(q);
      this.#sessions.delete(q.key);
    }
    return dropped;
  }
}
