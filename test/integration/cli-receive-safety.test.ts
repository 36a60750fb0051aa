/**
 * What other participants send is hostile input for the CLI, run as real processes against a real
 * server: `receive-files` never leaves a file that failed its SHA-256 or was aborted under a final
 * name (nor a temporary one), sender-chosen file names cannot escape or hide, and neither file
 * names nor chat reach the terminal with control characters in them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Conference } from '@backchannel/client';
import { platform } from '../../packages/client/dist/platform.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

/** Control characters a terminal acts on (LF excepted: it ends the CLI's own lines), DEL, C1, bidi overrides and isolates. */
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Runs the CLI as a client of the test server; collects its raw stdout. */
function cli(args: string[], token: string) {
  const proc = spawn(process.execPath, [CLI, ...args, '--server', server.url, '--token', token], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  const waiters: (() => void)[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  /** Resolves with the `n`-th complete line matching `re` (the first by default). */
  const line = (re: RegExp, n = 1) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hits = stdout.split('\n').slice(0, -1).filter((l) => re.test(l));
        if (hits.length >= n) return resolve(hits[n - 1]!);
        waiters.push(check);
      };
      void exited.then((c) => reject(new Error(`exited (${c}) before ${n} line(s) matching ${re}; got ${JSON.stringify(stdout)}`)));
      check();
    });
  return { proc, line, exited, stdout: () => stdout };
}

async function sender(room: string, name?: string): Promise<{ client: Client; conf: Conference }> {
  const client = await Client.connect(server.url, await server.token(`tx-${Math.random().toString(36).slice(2, 8)}`, { conferences: [room] }, name ? { name } : {}));
  return { client, conf: await client.joinConference(room, name ? { displayName: name } : {}) };
}

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31) & 0xff);

describe('receive-files', () => {
  it('leaves nothing behind for a transfer that fails its SHA-256 or is aborted, and exits 1', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bc-rx-'));
    const rx = cli(['receive-files', 'rx-bad', '--out', out, '--count', '2'], await server.token('rx-bad', { conferences: ['rx-bad'] }));
    await rx.line(/waiting for files/);
    const { client, conf } = await sender('rx-bad');

    // A sender whose trailer carries the wrong SHA-256.
    const real = platform.createHasher;
    platform.createHasher = () => {
      const h = real();
      return { update: (d: Uint8Array) => h.update(d), hex: () => '0'.repeat(64) };
    };
    try {
      // (The sender may learn of the refusal; what matters here is what the receiver leaves on disk.)
      await conf.sendBytes('files', bytes(300_000), { name: 'report.pdf' }).catch(() => undefined);
    } finally {
      platform.createHasher = real;
    }
    expect(await rx.line(/^failed report\.pdf/)).toMatch(/^failed report\.pdf: stream-integrity: /);

    // A sender that gives up half way.
    const writer = await conf.streamBytes('files', { name: 'partial.bin', totalLength: 2_000_000 });
    await writer.write(bytes(1_000_000));
    await writer.abort('changed my mind').catch(() => undefined);
    expect(await rx.line(/^failed partial\.bin/)).toMatch(/^failed partial\.bin: stream-aborted: .*changed my mind/);

    expect(await rx.exited).toBe(1);
    expect(readdirSync(out)).toEqual([]); // neither final names nor temporary files
    await client.close();
  });

  it('keeps a sender-chosen file name inside --out, visible, readable and without control characters', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bc-rx-'));
    const names = [
      '../../\u001b]0;pwned\u0007-rf \u202Etxt.exe\r',
      '.bashrc',
      'CON.txt',
      '..',
      'rapport été.pdf',
    ];
    const rx = cli(['receive-files', 'rx-names', '--out', out, '--count', String(names.length)], await server.token('rx-names', { conferences: ['rx-names'] }));
    await rx.line(/waiting for files/);
    const { client, conf } = await sender('rx-names');
    for (const [i, name] of names.entries()) {
      await conf.sendBytes('files', bytes(1000 + i), { name });
      await rx.line(/^received .*SHA-256 verified$/, i + 1);
    }
    expect(await rx.exited).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toHaveLength(names.length);
    expect(files).toContain(']0;pwned-rf txt.exe');
    expect(files).toContain('bashrc');
    expect(files).toContain('_CON.txt');
    expect(files).toContain('rapport été.pdf');
    for (const f of files) {
      expect(f).not.toMatch(CONTROLS);
      expect(f.startsWith('.') || f.startsWith('-')).toBe(false);
    }
    // Each file holds what was sent under its name.
    expect(readFileSync(join(out, ']0;pwned-rf txt.exe')).equals(Buffer.from(bytes(1000)))).toBe(true);
    expect(rx.stdout()).not.toMatch(CONTROLS);
    expect(readdirSync(join(out, '..')).some((f) => f.includes('pwned'))).toBe(false);
    await client.close();
  });
});

describe('join', () => {
  it('prints names and chat with control characters escaped, one message per line', async () => {
    const joiner = cli(['join', 'rx-chat'], await server.token('rx-joiner', { conferences: ['rx-chat'] }));
    await joiner.line(/^joined rx-chat as PA_/);
    const { client, conf } = await sender('rx-chat', 'Eve\u001b[2J');
    await joiner.line(/joined$/);
    await conf.sendText('chat', 'hi\r\u001b[31mred\u0007\n* Admin joined\u202E');
    const line = await joiner.line(/^<Eve/);
    expect(line).toBe('<Eve\\e[2J> hi\\r\\e[31mred\\x07\\n* Admin joined\\u202E');
    const raw = await conf.makeSendDataSession(150);
    raw.send('\u001b]0;title\u0007');
    expect(await joiner.line(/^\[150\]/)).toMatch(/^\[150\] <Eve\\e\[2J> #0 \\e\]0;title\\x07$/);
    expect(joiner.stdout()).not.toMatch(CONTROLS);
    expect(joiner.stdout().split('\n').filter((l) => l.startsWith('* Admin'))).toEqual([]);
    joiner.proc.stdin!.end();
    expect(await joiner.exited).toBe(0);
    await client.close();
  });
});
