/**
 * Ordered, retrying, fair delivery of webhook events to one URL.
 *
 * - Per room, in order: a room's next event is not attempted before the previous one was delivered
 *   or given up on. Different rooms proceed independently, up to `concurrency` requests at once.
 * - At least once: a failed attempt (no 2xx, network error, timeout) is retried after
 *   {@link retryDelayMs}, up to `maxAttempts` attempts; then the event is dropped and counted.
 * - Fair between users: every event is charged to a *source* (the user whose action caused it).
 *   Free request slots go to the sources in turn, one room each, so a user with thousands of rooms
 *   waiting does not delay another user's single event by more than one round.
 * - Bounded, and shed from the flood: at most `maxEvents` events are held. When an event arrives
 *   at a full queue, the newest event of the source holding the most is dropped to make room —
 *   unless the new event's own source holds as many, in which case the new event is dropped. So
 *   one user's flood only ever costs that user's events, never another user's (issue 12, item 6).
 *
 * The queue does no I/O itself: the `deliver` function given to it makes each attempt. Pushing is
 * synchronous and O(1) (amortised), so the real-time path that emits events never waits for an
 * endpoint.
 */

/** One event on its way to one URL. */
export interface DeliveryTask {
  /** Ordering key (the room). */
  key: string;
  /** Who the event is charged to for fairness and shedding (e.g. `user:alice`). */
  source: string;
  id: string;
  type: string;
  /** The JSON body, the same on every attempt. */
  body: string;
  /** Attempts made so far. */
  attempts: number;
}

/** Result of one attempt. */
export interface DeliveryOutcome {
  ok: boolean;
  /** HTTP status, when an answer arrived. */
  status?: number;
  /** What went wrong, for the logs. */
  error?: string;
  /** The endpoint asked for this much time before the next attempt (Retry-After), ms. */
  retryAfterMs?: number;
}

/** Makes one attempt; must resolve (not reject) and stop when `signal` aborts. */
export type Deliver = (task: DeliveryTask, signal: AbortSignal) => Promise<DeliveryOutcome>;

/** Why an event was dropped: its attempts ran out, it was shed from a full queue, or the server stopped. */
export type DropReason = 'attempts' | 'queueFull' | 'shutdown';

/** What happened to an attempt, reported to the owner (logs, metrics). */
export type DeliveryReport =
  | { result: 'delivered'; task: DeliveryTask; outcome: DeliveryOutcome }
  | { result: 'retry'; task: DeliveryTask; outcome: DeliveryOutcome; delayMs: number }
  | { result: 'dropped'; task: DeliveryTask; reason: DropReason; outcome?: DeliveryOutcome; why: string };

/** Limits of a {@link DeliveryQueue} (from the `webhook*` settings) and its two callbacks. */
export interface DeliveryQueueOptions {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  concurrency: number;
  maxEvents: number;
  deliver: Deliver;
  report: (r: DeliveryReport) => void;
}

/** Counters of a {@link DeliveryQueue} since it started. */
export interface DeliveryStats {
  delivered: number;
  failedAttempts: number;
  /** Attempts scheduled again after a failure. */
  retries: number;
  dropped: number;
  droppedByReason: Record<DropReason, number>;
  /** Dropped events by event type (types never dropped are absent). */
  droppedByType: Record<string, number>;
}

/**
 * Delay before the attempt after `failedAttempts` failures: `retryBaseMs · 2^(failedAttempts−1)`,
 * at most `retryMaxMs`. With the defaults (1 s, 60 s): 1, 2, 4, 8, 16, 32, 60 s.
 */
export function retryDelayMs(failedAttempts: number, retryBaseMs: number, retryMaxMs: number): number {
  return Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, failedAttempts - 1));
}

/** An event held by the queue. */
interface Held {
  task: DeliveryTask;
  room: RoomQueue;
  source: Source;
  /** Delivered or dropped: no longer held (left in its source's list until compaction). */
  done: boolean;
}

interface RoomQueue {
  key: string;
  tasks: Held[];
  /** idle: nothing to do; ready: waiting for a slot; sending: an attempt is in flight; waiting: retry timer. */
  state: 'idle' | 'ready' | 'sending' | 'waiting';
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Source {
  name: string;
  /** Events held for this source. */
  count: number;
  /** Its events in arrival order, with some already done (compacted lazily). */
  held: Held[];
  /** Rooms that became ready with one of this source's events at their head. */
  ready: RoomQueue[];
  /** Whether it is in the round-robin ring. */
  inRing: boolean;
}

/** The delivery queue of one webhook URL (see the file comment for its guarantees). */
export class DeliveryQueue {
  readonly #opts: DeliveryQueueOptions;
  readonly #rooms = new Map<string, RoomQueue>();
  readonly #sources = new Map<string, Source>();
  /** Sources by how many events they hold (count → sources), to find the heaviest in O(1). */
  readonly #byCount = new Map<number, Set<Source>>();
  #maxCount = 0;
  /** Sources with ready rooms, served in turn. */
  readonly #ring: Source[] = [];
  readonly #inFlight = new Set<AbortController>();
  #size = 0;
  #stopped = false;
  #idle: (() => void)[] = [];
  /** Counters since start. */
  readonly stats: DeliveryStats = { delivered: 0, failedAttempts: 0, retries: 0, dropped: 0, droppedByReason: { attempts: 0, queueFull: 0, shutdown: 0 }, droppedByType: {} };

  constructor(options: DeliveryQueueOptions) {
    this.#opts = options;
  }

  /** Events queued, waiting for a retry, or in flight. */
  get pending(): number {
    return this.#size;
  }

  /** Events held for `source`. */
  heldFor(source: string): number {
    return this.#sources.get(source)?.count ?? 0;
  }

  /**
   * Queues `task` behind the earlier events of its room. At a full queue, an event of the source
   * holding the most is shed to make room (see the file comment). Returns false if `task` itself
   * was dropped.
   */
  push(task: DeliveryTask): boolean {
    if (this.#stopped) {
      this.#drop(task, 'shutdown', 'the server has stopped delivering webhooks');
      return false;
    }
    if (this.#size >= this.#opts.maxEvents) {
      const heaviest = this.#heaviest();
      const mine = this.#sources.get(task.source)?.count ?? 0;
      if (!heaviest || heaviest.count <= mine || !this.#shedFrom(heaviest)) {
        this.#drop(task, 'queueFull', `the queue holds ${this.#opts.maxEvents} events and ${task.source} holds the most of them`);
        return false;
      }
    }
    const source = this.#source(task.source);
    let rq = this.#rooms.get(task.key);
    if (!rq) this.#rooms.set(task.key, (rq = { key: task.key, tasks: [], state: 'idle', timer: undefined }));
    const held: Held = { task, room: rq, source, done: false };
    rq.tasks.push(held);
    source.held.push(held);
    this.#count(source, +1);
    this.#size++;
    if (rq.state === 'idle') this.#makeReady(rq);
    this.#pump();
    return true;
  }

  /**
   * Resolves once every held event was delivered or dropped, or when `timeoutMs` has passed; then
   * stops the queue (in-flight attempts are aborted, what is left is dropped). Resolves with the
   * number of events left undelivered.
   */
  async flush(timeoutMs: number): Promise<number> {
    if (this.#size > 0 && timeoutMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idle.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    return this.stop();
  }

  /** Stops at once: aborts attempts in flight, drops what is held. Returns how many were dropped. */
  stop(): number {
    this.#stopped = true;
    const left = this.#size;
    for (const ac of this.#inFlight) ac.abort();
    this.#inFlight.clear();
    for (const rq of this.#rooms.values()) {
      clearTimeout(rq.timer);
      for (const held of rq.tasks) this.#drop(held.task, 'shutdown', 'the server stopped before it could be delivered');
    }
    this.#rooms.clear();
    this.#sources.clear();
    this.#byCount.clear();
    this.#maxCount = 0;
    this.#ring.length = 0;
    this.#size = 0;
    this.#settle();
    return left;
  }

  #source(name: string): Source {
    let s = this.#sources.get(name);
    if (!s) this.#sources.set(name, (s = { name, count: 0, held: [], ready: [], inRing: false }));
    return s;
  }

  /** Moves `s` from its count bucket to the next one up or down. */
  #count(s: Source, delta: 1 | -1): void {
    if (s.count > 0) this.#byCount.get(s.count)!.delete(s);
    s.count += delta;
    if (s.count > 0) {
      let bucket = this.#byCount.get(s.count);
      if (!bucket) this.#byCount.set(s.count, (bucket = new Set()));
      bucket.add(s);
    }
    if (s.count > this.#maxCount) this.#maxCount = s.count;
    // Counts move by one, so the highest non-empty bucket is at most one below an emptied maximum.
    while (this.#maxCount > 0 && !this.#byCount.get(this.#maxCount)?.size) this.#byCount.delete(this.#maxCount--);
  }

  #heaviest(): Source | undefined {
    const bucket = this.#byCount.get(this.#maxCount);
    return bucket ? bucket.values().next().value : undefined;
  }

  /**
   * Drops the newest event of `s` that is not being attempted right now. False if every event of
   * `s` is in flight (at most `concurrency` of them).
   */
  #shedFrom(s: Source): boolean {
    const skipped: Held[] = [];
    let victim: Held | undefined;
    while (s.held.length > 0) {
      const h = s.held.pop()!;
      if (h.done) continue;
      if (h.room.state === 'sending' && h.room.tasks[0] === h) {
        skipped.push(h);
        continue;
      }
      victim = h;
      break;
    }
    for (let i = skipped.length - 1; i >= 0; i--) s.held.push(skipped[i]!);
    if (!victim) return false;
    const rq = victim.room;
    const head = rq.tasks[0] === victim;
    rq.tasks.splice(rq.tasks.lastIndexOf(victim), 1);
    this.#release(victim);
    this.#drop(victim.task, 'queueFull', `the queue holds ${this.#opts.maxEvents} events; ${s.name} holds the most of them (${s.count + 1})`);
    if (head && rq.state === 'waiting') {
      // Its retry was pending: the room moves on to its next event.
      clearTimeout(rq.timer);
      rq.timer = undefined;
      if (rq.tasks.length > 0) this.#makeReady(rq);
    }
    if (rq.tasks.length === 0) {
      rq.state = 'idle';
      this.#rooms.delete(rq.key);
    }
    return true;
  }

  /** `held` is no longer held: uncount it. */
  #release(held: Held): void {
    held.done = true;
    this.#size--;
    const s = held.source;
    this.#count(s, -1);
    if (s.held.length > 2 * s.count + 32) s.held = s.held.filter((h) => !h.done);
    this.#forgetIfUnused(s);
  }

  #forgetIfUnused(s: Source): void {
    if (s.count === 0 && !s.inRing && this.#sources.get(s.name) === s) this.#sources.delete(s.name);
  }

  #makeReady(rq: RoomQueue): void {
    rq.state = 'ready';
    const s = rq.tasks[0]!.source;
    s.ready.push(rq);
    if (!s.inRing) {
      s.inRing = true;
      this.#ring.push(s);
    }
  }

  #pump(): void {
    while (!this.#stopped && this.#inFlight.size < this.#opts.concurrency && this.#ring.length > 0) {
      const s = this.#ring.shift()!;
      let rq: RoomQueue | undefined;
      while (s.ready.length > 0 && !rq) {
        const candidate = s.ready.shift()!;
        // A room shed empty, or started already, may still be listed: skip it.
        if (candidate.state === 'ready' && candidate.tasks.length > 0 && this.#rooms.get(candidate.key) === candidate) rq = candidate;
      }
      if (s.ready.length > 0) this.#ring.push(s);
      else {
        s.inRing = false;
        this.#forgetIfUnused(s);
      }
      if (!rq) continue;
      rq.state = 'sending';
      void this.#attempt(rq, rq.tasks[0]!);
    }
  }

  async #attempt(rq: RoomQueue, held: Held): Promise<void> {
    const task = held.task;
    task.attempts++;
    const ac = new AbortController();
    this.#inFlight.add(ac);
    let outcome: DeliveryOutcome;
    try {
      outcome = await this.#opts.deliver(task, ac.signal);
    } catch (error) {
      outcome = { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    this.#inFlight.delete(ac);
    if (this.#stopped) return; // stop() already dropped (and counted) everything held.
    if (outcome.ok) {
      this.stats.delivered++;
      this.#opts.report({ result: 'delivered', task, outcome });
      this.#finish(rq);
    } else {
      this.stats.failedAttempts++;
      if (task.attempts >= this.#opts.maxAttempts) {
        this.#drop(task, 'attempts', `no success after ${task.attempts} attempts`, outcome);
        this.#finish(rq);
      } else {
        this.stats.retries++;
        const backoff = retryDelayMs(task.attempts, this.#opts.retryBaseMs, this.#opts.retryMaxMs);
        const delayMs = Math.max(backoff, Math.min(outcome.retryAfterMs ?? 0, this.#opts.retryMaxMs));
        rq.state = 'waiting';
        rq.timer = setTimeout(() => {
          rq.timer = undefined;
          if (rq.state !== 'waiting' || rq.tasks[0] !== held) return; // shed meanwhile
          this.#makeReady(rq);
          this.#pump();
        }, delayMs);
        this.#opts.report({ result: 'retry', task, outcome, delayMs });
      }
    }
    this.#pump();
    this.#settle();
  }

  /** The head of `rq` is done (delivered or dropped): move on to the room's next event. */
  #finish(rq: RoomQueue): void {
    this.#release(rq.tasks.shift()!);
    if (rq.tasks.length > 0) this.#makeReady(rq);
    else {
      rq.state = 'idle';
      this.#rooms.delete(rq.key);
    }
  }

  #drop(task: DeliveryTask, reason: DropReason, why: string, outcome?: DeliveryOutcome): void {
    this.stats.dropped++;
    this.stats.droppedByReason[reason]++;
    this.stats.droppedByType[task.type] = (this.stats.droppedByType[task.type] ?? 0) + 1;
    this.#opts.report(outcome ? { result: 'dropped', task, reason, outcome, why } : { result: 'dropped', task, reason, why });
  }

  #settle(): void {
    if (this.#size > 0 || this.#idle.length === 0) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }
}
