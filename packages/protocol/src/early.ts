/**
 * Early frames: a client's first frames (its `hello` and the requests pipelined behind it) carried
 * in the WebSocket upgrade request, so that the server handles them as it opens the socket and
 * connecting (and joining) takes no round trip after the upgrade. See PROTOCOL.md, "Early frames".
 *
 * They travel as WebSocket subprotocols, the one header a browser lets a page set: the client
 * offers {@link SUBPROTOCOL} first, {@link EARLY_SUBPROTOCOL} second, then one
 * `bcf.<base64url of the frame>` per frame, in order. A server that took the frames selects
 * {@link EARLY_SUBPROTOCOL}; one that did not (an older server picks the first offered) selects
 * {@link SUBPROTOCOL}, and the client then sends them on the socket as usual.
 */

/** The subprotocol a server selects when it did not take early frames. */
export const SUBPROTOCOL = 'backchannel';
/** The subprotocol a server selects when it took the early frames offered. */
export const EARLY_SUBPROTOCOL = 'backchannel.early';
/** Prefix of an early frame's subprotocol token. */
const FRAME_PREFIX = 'bcf.';
/**
 * Characters of all early-frame tokens together beyond which a client sends its frames on the
 * socket instead: the header stays well inside what proxies and servers accept (nginx keeps a
 * header line within 8 KiB by default; Node's whole request head within 16 KiB).
 */
export const MAX_EARLY_CHARS = 4096;
/** Early frames a server takes at most (the hello and what may be pipelined behind it). */
export const MAX_EARLY_FRAMES = 17;

function toBase64Url(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  try {
    const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

/**
 * The subprotocols to offer for `frames`, or `undefined` when they do not fit
 * {@link MAX_EARLY_CHARS} (or there are too many): the client then offers none and sends them on
 * the socket.
 */
export function earlyProtocols(frames: readonly Uint8Array[]): string[] | undefined {
  if (frames.length === 0 || frames.length > MAX_EARLY_FRAMES) return undefined;
  const tokens = frames.map((f) => FRAME_PREFIX + toBase64Url(f));
  let chars = 0;
  for (const t of tokens) chars += t.length;
  return chars > MAX_EARLY_CHARS ? undefined : [SUBPROTOCOL, EARLY_SUBPROTOCOL, ...tokens];
}

/**
 * The early frames in `offered` (the client's subprotocols, in order): `undefined` if the client
 * offered none, `null` if what it offered is not well-formed or over the bounds (the server then
 * selects {@link SUBPROTOCOL} and the client sends the frames on the socket).
 */
export function takeEarlyFrames(offered: Iterable<string>): Uint8Array[] | null | undefined {
  let early = false;
  let chars = 0;
  const frames: Uint8Array[] = [];
  for (const p of offered) {
    if (p === EARLY_SUBPROTOCOL) early = true;
    if (!p.startsWith(FRAME_PREFIX)) continue;
    chars += p.length;
    // The bounds first: this runs on every upgrade, before authentication.
    if (frames.length === MAX_EARLY_FRAMES || chars > MAX_EARLY_CHARS) return null;
    const frame = fromBase64Url(p.slice(FRAME_PREFIX.length));
    if (!frame || frame.length === 0) return null;
    frames.push(frame);
  }
  if (!early) return undefined;
  return frames.length > 0 ? frames : null;
}
