/** Tiny DOM helpers: the demo has no framework, so that its bundle stays close to the SDK's size. */

type Child = Node | string | number | false | null | undefined;
type Props = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;

/**
 * Creates an element: `h('button', { class: 'primary', onclick: fn }, 'Join')`. Props starting
 * with `on` are listeners, `false`/`undefined` props are left out, `true` sets an empty attribute.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

/** Appends children, skipping empty ones. */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** `1.5 MiB`, `320 B`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** `0:07`, `12:30`, `1:02:03`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A stable colour for an id (used for cursors and avatars). */
export function colorFor(id: string): string {
  let hash = 0;
  for (let i = 0; i < id.length; i++) hash = (hash * 31 + id.charCodeAt(i)) >>> 0;
  return `hsl(${hash % 360} 70% 42%)`;
}

/** Milliseconds since the epoch with sub-millisecond precision (comparable between tabs of one machine). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Collects functions to call on dispose (event unsubscriptions, timers). */
export class Disposer {
  #fns: (() => void)[] = [];

  add(fn: () => void): void {
    this.#fns.push(fn);
  }

  /** Adds a DOM listener and its removal. */
  listen<K extends keyof WindowEventMap>(target: Window, type: K, fn: (e: WindowEventMap[K]) => void): void;
  listen<K extends keyof DocumentEventMap>(target: Document, type: K, fn: (e: DocumentEventMap[K]) => void): void;
  listen<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void): void;
  listen(target: EventTarget, type: string, fn: (e: never) => void): void {
    target.addEventListener(type, fn as EventListener);
    this.add(() => target.removeEventListener(type, fn as EventListener));
  }

  interval(fn: () => void, ms: number): void {
    const timer = setInterval(fn, ms);
    this.add(() => clearInterval(timer));
  }

  dispose(): void {
    for (const fn of this.#fns.splice(0).reverse()) fn();
  }
}
