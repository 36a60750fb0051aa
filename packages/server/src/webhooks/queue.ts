/**
 * Ordered, retrying delivery of webhook events to one URL.
 *
 * - Per room, in order: a room's next event is not attempted before the previous one was delivered
 *   or given up on. Different rooms proceed independently, up to `concurrency` requests at once.
 * - At least once: a failed attempt (no 2xx, network error, timeout) is retried after
 *   {@link retryDelayMs}, up to `maxAttempts` attempts; then the event is dropped and counted.
 * - Bounded: at most `maxEvents` events are held; more are dropped and counted.
 *
 * The queue does no I/O itself: the `deliver` function given to it makes each attempt. Pushing is
 * synchronous and O(1), so the real-time path that emits events never waits for an endpoint.
 */

/** One event on its way to one URL. */
export interface DeliveryTask {
  /** Ordering key (the room). */
  key: string;
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

/** What happened to an attempt, reported to the owner (logs, metrics). */
export type DeliveryReport =
  | { result: 'delivered'; task: DeliveryTask; outcome: DeliveryOutcome }
  | { result: 'retry'; task: DeliveryTask; outcome: DeliveryOutcome; delayMs: number }
  | { result: 'dropped'; task: DeliveryTask; outcome?: DeliveryOutcome; why: string };

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

/**
 * Delay before the attempt after `failedAttempts` failures: `retryBaseMs · 2^(failedAttempts−1)`,
 * at most `retryMaxMs`. With the defaults (1 s, 60 s): 1, 2, 4, 8, 16, 32, 60 s.
 */
export function retryDelayMs(failedAttempts: number, retryBaseMs: number, retryMaxMs: number): number {
  return Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, failedAttempts - 1));
}

interface RoomQueue {
  tasks: DeliveryTask[];
  /** idle: nothing to do; ready: waiting for a slot; sending: an attempt is in flight; waiting: retry timer. */
  state: 'idle' | 'ready' | 'sending' | 'waiting';
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The delivery queue of one webhook URL (see the file comment for its guarantees). */
export class DeliveryQueue {
  readonly #opts: DeliveryQueueOptions;
  readonly #rooms = new Map<string, RoomQueue>();
  readonly #ready: string[] = [];
  readonly #inFlight = new Set<AbortController>();
  #size = 0;
  #stopped = false;
  #idle: (() => void)[] = [];
  /** Counters since start. */
  readonly stats = { delivered: 0, failedAttempts: 0, dropped: 0 };

  constructor(options: DeliveryQueueOptions) {
    this.#opts = options;
  }

  /** Events queued, waiting for a retry, or in flight. */
  get pending(): number {
    return this.#size;
  }

  /** Queues `task` behind the earlier events of its room. Returns false if it was dropped. */
  push(task: DeliveryTask): boolean {
    if (this.#stopped || this.#size >= this.#opts.maxEvents) {
      this.#drop(task, this.#stopped ? 'the server has stopped delivering webhooks' : `the queue holds ${this.#opts.maxEvents} events already`);
      return false;
    }
    let rq = this.#rooms.get(task.key);
    if (!rq) this.#rooms.set(task.key, (rq = { tasks: [], state: 'idle', timer: undefined }));
    rq.tasks.push(task);
    this.#size++;
    if (rq.state === 'idle') this.#makeReady(task.key, rq);
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
      for (const task of rq.tasks) this.#drop(task, 'the server stopped before it could be delivered');
    }
    this.#rooms.clear();
    this.#ready.length = 0;
    this.#size = 0;
    this.#settle();
    return left;
  }

  #makeReady(key: string, rq: RoomQueue): void {
    rq.state = 'ready';
    this.#ready.push(key);
  }

  #pump(): void {
    while (!this.#stopped && this.#inFlight.size < this.#opts.concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      const rq = this.#rooms.get(key);
      if (!rq || rq.state !== 'ready' || rq.tasks.length === 0) continue;
      rq.state = 'sending';
      void this.#attempt(rq, rq.tasks[0]!);
    }
  }

  async #attempt(rq: RoomQueue, task: DeliveryTask): Promise<void> {
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
      this.#finish(task.key, rq);
    } else {
      this.stats.failedAttempts++;
      if (task.attempts >= this.#opts.maxAttempts) {
        this.#drop(task, `no success after ${task.attempts} attempts`, outcome);
        this.#finish(task.key, rq);
      } else {
        const backoff = retryDelayMs(task.attempts, this.#opts.retryBaseMs, this.#opts.retryMaxMs);
        const delayMs = Math.max(backoff, Math.min(outcome.retryAfterMs ?? 0, this.#opts.retryMaxMs));
        rq.state = 'waiting';
        rq.timer = setTimeout(() => {
          rq.timer = undefined;
          this.#makeReady(task.key, rq);
          this.#pump();
        }, delayMs);
        this.#opts.report({ result: 'retry', task, outcome, delayMs });
      }
    }
    this.#pump();
    this.#settle();
  }

  /** The head of `rq` is done (delivered or dropped): move on to the room's next event. */
  #finish(key: string, rq: RoomQueue): void {
    rq.tasks.shift();
    this.#size--;
    if (rq.tasks.length > 0) this.#makeReady(key, rq);
    else this.#rooms.delete(key);
  }

  #drop(task: DeliveryTask, why: string, outcome?: DeliveryOutcome): void {
    this.stats.dropped++;
    this.#opts.report(outcome ? { result: 'dropped', task, outcome, why } : { result: 'dropped', task, why });
  }

  #settle(): void {
    if (this.#size > 0 || this.#idle.length === 0) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }
}
