/**
 * A small typed event emitter shared by the server core and the isomorphic client SDK (no Node
 * `events` import). One listener's exception never stops the others: it is reported through
 * `onListenerError` and emission continues.
 */

/** Maps event names to the tuple of arguments their listeners receive. */
export type EventMap = { [event: string]: unknown[] };

type Listener<A extends unknown[]> = (...args: A) => unknown;

/** Called when a listener throws or rejects; the default logs to the console. */
export type ListenerErrorHandler = (error: unknown, event: string) => void;

const defaultOnError: ListenerErrorHandler = (error, event) => {
  console.error(`[backchannel] listener for "${event}" failed:`, error);
};

/** The listeners of one event, and the array `emit` iterates (rebuilt after a change). */
interface Listeners {
  set: Set<Listener<never>>;
  /** `[...set]` as of the last change: emits in between share it (none is made per emit). */
  list: Listener<never>[] | undefined;
}

/** Typed emitter; `safeEmit` semantics on every `emit`. */
export class Emitter<E extends EventMap> {
  #listeners = new Map<keyof E, Listeners>();
  /** Where listener failures go. */
  protected onListenerError: ListenerErrorHandler = defaultOnError;

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let entry = this.#listeners.get(event);
    if (!entry) this.#listeners.set(event, (entry = { set: new Set(), list: undefined }));
    entry.set.add(listener as Listener<never>);
    entry.list = undefined;
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      return listener(...args);
    }) as Listener<E[K]>);
    return off;
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    const entry = this.#listeners.get(event);
    if (entry?.set.delete(listener as Listener<never>)) entry.list = undefined;
  }

  /** Number of listeners for `event`. */
  listenerCount<K extends keyof E>(event: K): number {
    return this.#listeners.get(event)?.set.size ?? 0;
  }

  /**
   * Calls every listener of `event`; returns whether there was any. The listeners called are those
   * registered when the emit began: one added or removed by a listener takes effect from the next
   * emit (the array iterated here is never changed, only replaced).
   */
  emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const entry = this.#listeners.get(event);
    if (!entry || entry.set.size === 0) return false;
    const list = (entry.list ??= [...entry.set]);
    for (let i = 0; i < list.length; i++) {
      try {
        const result = (list[i] as Listener<E[K]>)(...args);
        if (result && typeof (result as Promise<unknown>).then === 'function') {
          (result as Promise<unknown>).then(undefined, (error) => this.onListenerError(error, String(event)));
        }
      } catch (error) {
        this.onListenerError(error, String(event));
      }
    }
    return true;
  }

  /** Resolves with the arguments of the next `event` (rejects if `signal` aborts first). */
  waitFor<K extends keyof E>(event: K, signal?: AbortSignal): Promise<E[K]> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        off();
        reject(signal?.reason);
      };
      const off = this.once(event, ((...args: E[K]) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(args);
      }) as Listener<E[K]>);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Removes every listener. */
  protected removeAllListeners(): void {
    this.#listeners.clear();
  }
}
