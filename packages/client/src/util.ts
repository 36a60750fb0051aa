/** Small isomorphic helpers. */

/** Runs `fn` on a later macrotask (after every pending microtask). */
export const nextMacrotask: (fn: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
    ? (fn) => (globalThis as unknown as { setImmediate: (f: () => void) => void }).setImmediate(fn)
    : typeof MessageChannel === 'function'
      ? (fn) => {
          const ch = new MessageChannel();
          ch.port1.onmessage = () => {
            ch.port1.close();
            fn();
          };
          ch.port2.postMessage(null);
        }
      : (fn) => setTimeout(fn, 0);

/** Resolves on a later macrotask: lets I/O (e.g. server feedback) be processed in between. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => nextMacrotask(resolve));

/** An unguessable secret: 32 random bytes (platform CSPRNG), base64url. */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
