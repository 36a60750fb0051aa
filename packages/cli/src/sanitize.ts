/**
 * Text that other participants choose — display names, chat, file names, reasons — is hostile
 * input for a terminal and a file system. Printed raw, ESC starts a terminal control sequence
 * (recolour, move the cursor, retitle the window, …), CR overwrites the line, BEL rings, and
 * bidirectional overrides make text read differently from what it is; used raw as a file name, a
 * name can climb out of the output directory or hide as a dotfile or an option. These helpers keep
 * such text readable and inert (issue 12, item 13).
 */

/** C0 controls and DEL, C1 controls, line/paragraph separators, and bidirectional formatting characters. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/** `\u202e` → `\u202E`, ESC → `\e`, CR → `\r`, NUL → `\x00`: visible, and inert in a terminal. */
function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * `text` safe to print on a terminal: every control character (C0, DEL, C1), line separator and
 * bidirectional override or isolate is replaced by a visible escape (`\e`, `\r`, `\n`, `\x07`,
 * `\u202E`, …), so one message stays on one line and cannot restyle or rewrite the terminal.
 * Backslashes are kept as they are.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** Names Windows reserves for devices, whatever the extension (`CON`, `nul.txt`, `COM1.log`, …). */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i;
/** Longest file name written, in UTF-8 bytes (most file systems allow 255). */
const MAX_NAME_BYTES = 200;

/**
 * A file name made from `name` (chosen by a sender) that is safe to create in the output
 * directory: no control or bidirectional characters, no path separators (only the last path
 * component is kept), nothing Windows forbids (`<>:"|?*`, trailing dots or spaces, reserved device
 * names), no leading dot or dash (no hidden files, nothing a shell would read as an option), and
 * at most 200 UTF-8 bytes (the extension is kept). Readable characters, Unicode letters included,
 * are kept. Falls back to `fallback` when nothing usable is left.
 */
export function safeFileName(name: string, fallback: string): string {
  const last = name.split(/[/\\]/).pop() ?? '';
  let out = last
    .replace(UNSAFE, '')
    .replace(/[<>:"|?*]/g, '_')
    .replace(/[. ]+$/, '')
    .replace(/^[.\-\s]+/, '')
    .trim();
  if (RESERVED.test(out)) out = `_${out}`;
  out = truncateUtf8(out, MAX_NAME_BYTES);
  return out || fallback;
}

/** `name` cut to at most `max` UTF-8 bytes, keeping a short extension and whole characters. */
function truncateUtf8(name: string, max: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(name).byteLength <= max) return name;
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
  const budget = max - encoder.encode(ext).byteLength;
  let stem = '';
  let bytes = 0;
  for (const ch of name.slice(0, name.length - ext.length)) {
    bytes += encoder.encode(ch).byteLength;
    if (bytes > budget) break;
    stem += ch;
  }
  stem = stem.replace(/[. ]+$/, '');
  return stem + ext;
}

/** What {@link UNSAFE} matches beyond C0: `JSON.stringify` escapes C0 in strings itself and writes newlines between values. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON text as `JSON.stringify` writes it, with every character {@link terminalSafe} escapes
 * written as a `\uXXXX` escape instead: the same JSON value, safe to print on a terminal.
 */
export function jsonSafe(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
