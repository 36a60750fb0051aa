/** The CLI's defences against hostile names and text: terminal escapes, file names, JSON output. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { jsonSafe, safeFileName, terminalSafe } from '../../packages/cli/dist/sanitize.js';

const DANGEROUS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('terminalSafe', () => {
  it('shows every control, separator and bidi character as a visible escape and keeps the rest', () => {
    expect(terminalSafe('a\u001b[31mb\rc\u0007d\ne\tf\u0000\u009b\u202Eg\u2028')).toBe('a\\e[31mb\\rc\\x07d\\ne\\tf\\x00\\x9b\\u202Eg\\u2028');
    expect(terminalSafe('héllo wörld ✓ 日本語 \\n')).toBe('héllo wörld ✓ 日本語 \\n');
  });

  it('never lets a dangerous character through (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => !DANGEROUS.test(terminalSafe(s))));
  });
});

describe('safeFileName', () => {
  it('keeps the last path component, readable, with no control or bidi characters', () => {
    expect(safeFileName('../../etc/passwd', 'x')).toBe('passwd');
    expect(safeFileName('..\\..\\boot.ini', 'x')).toBe('boot.ini');
    expect(safeFileName('\u001b]0;pwned\u0007 report\u202E.pdf\r', 'x')).toBe(']0;pwned report.pdf');
    expect(safeFileName('rapport été.pdf', 'x')).toBe('rapport été.pdf');
  });

  it('refuses hidden files, options, reserved device names and what Windows forbids', () => {
    expect(safeFileName('.bashrc', 'x')).toBe('bashrc');
    expect(safeFileName('-rf', 'x')).toBe('rf');
    expect(safeFileName('--. -x', 'x')).toBe('x');
    expect(safeFileName('CON', 'x')).toBe('_CON');
    expect(safeFileName('nul.txt', 'x')).toBe('_nul.txt');
    expect(safeFileName('com1.log', 'x')).toBe('_com1.log');
    expect(safeFileName('console.txt', 'x')).toBe('console.txt');
    expect(safeFileName('a<b>c:d"e|f?g*h', 'x')).toBe('a_b_c_d_e_f_g_h');
    expect(safeFileName('name. . .', 'x')).toBe('name');
  });

  it('falls back when nothing usable is left, and cuts long names keeping the extension', () => {
    for (const name of ['', '..', '.', '/', '\u0000\u0001', '...', ' ']) expect(safeFileName(name, 'ST_1')).toBe('ST_1');
    const long = safeFileName(`${'é'.repeat(300)}.tar.gz`, 'x');
    expect(new TextEncoder().encode(long).byteLength).toBeLessThanOrEqual(200);
    expect(long.endsWith('é.gz')).toBe(true);
  });

  it('always gives a plain, visible name of at most 200 bytes (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
        const name = safeFileName(s, 'fallback');
        return (
          name.length > 0 &&
          !/[/\\<>:"|?*]/.test(name) &&
          !DANGEROUS.test(name) &&
          !/^[.\-\s]/.test(name) &&
          !/[. ]$/.test(name) &&
          name !== '..' &&
          new TextEncoder().encode(name).byteLength <= 200
        );
      }),
    );
  });
});

describe('jsonSafe', () => {
  it('escapes what JSON.stringify leaves raw and keeps the value', () => {
    const value = { name: 'a\u202Eb\u0085c\u2028', n: 1 };
    const text = jsonSafe(JSON.stringify(value, null, 2));
    expect(text).not.toMatch(/[\u007f-\u009f\u202a-\u202e\u2028]/);
    expect(JSON.parse(text)).toEqual(value);
  });
});
