/** The client commands of the CLI, run as real processes against a real server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client, type StreamReader } from '@backchannel/client';
import { ServerApiClient } from '@backchannel/server-sdk';
import { API_KEY, API_SECRET, CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

function cli(args: string[], token: string) {
  const proc = spawn(process.execPath, [CLI, ...args, '--server', server.url, '--token', token], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  const line = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.find((l) => re.test(l));
        if (hit) return resolve(hit);
        waiters.push(check);
      };
      void exited.then((c) => reject(new Error(`exited (${c}) before a line matching ${re}; got ${JSON.stringify(lines)}`)));
      check();
    });
  return { proc, lines, line, exited };
}

describe('backchannel CLI as a client', () => {
  it('send-file and receive-files move a file intact and report throughput', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-cli-'));
    const src = join(dir, 'report.pdf');
    const content = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 13) & 0xff));
    writeFileSync(src, content);
    const out = join(dir, 'inbox');
    const rx = cli(['receive-files', 'cli-files', '--out', out, '--count', '1'], await server.token('cli-rx', { conferences: ['cli-files'] }));
    await rx.line(/waiting for files/);
    const tx = cli(['send-file', 'cli-files', src], await server.token('cli-tx', { conferences: ['cli-files'] }));
    expect(await tx.line(/^sent report\.pdf: 3\.0 MiB in [\d.]+ s \([\d.]+ MiB\/s\)$/)).toBeTruthy();
    expect(await rx.line(/^received report\.pdf → .*: 3\.0 MiB in .*SHA-256 verified$/)).toBeTruthy();
    expect(await rx.exited).toBe(0);
    expect(await tx.exited).toBe(0);
    expect(readFileSync(join(out, 'report.pdf')).equals(content)).toBe(true);
  });

  it('send-file --to a user that never comes fails clearly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-cli-'));
    const src = join(dir, 'x.bin');
    writeFileSync(src, 'x');
    const tx = cli(['send-file', 'cli-lonely', src, '--to', 'ghost', '--wait-ms', '200'], await server.token('cli-tx2', { conferences: ['cli-lonely'] }));
    expect(await tx.exited).toBe(1);
    expect(tx.proc.stderr).toBeTruthy();
  });

  it('join prints what others send and sends what you type', async () => {
    const joiner = cli(['join', 'cli-chat'], await server.token('cli-joiner', { conferences: ['cli-chat'] }, { name: 'Terminal' }));
    await joiner.line(/^joined cli-chat as PA_/);
    const app = await Client.connect(server.url, await server.token('app-user', { conferences: ['cli-chat'] }, { name: 'App' }));
    const room = await app.joinConference('cli-chat', { displayName: 'App' });
    const typed = deferred<string>();
    room.registerStreamHandler('chat', async (r: StreamReader) => typed.resolve((await r.readAll()) as string));
    await joiner.line(/\* App \(PA_.*\) joined/);
    await room.sendText('chat', 'hello terminal');
    expect(await joiner.line(/<App> hello terminal/)).toBeTruthy();
    const raw = await room.makeSendDataSession(150);
    raw.send('raw bytes here');
    expect(await joiner.line(/\[150\] <App> #0 raw bytes here/)).toBeTruthy();
    joiner.proc.stdin!.write('hi from the shell\n');
    expect(await typed.promise).toBe('hi from the shell');
    joiner.proc.stdin!.end();
    expect(await joiner.exited).toBe(0);
    await app.close();
  });

  it('join says why it was removed from the room and exits: kicked (1), room ended (0)', async () => {
    const api = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
    const kicked = cli(['join', 'cli-kick'], await server.token('cli-kicked', { conferences: ['cli-kick'] }));
    const participantId = /as (PA_\S+);/.exec(await kicked.line(/^joined cli-kick as /))![1]!;
    await api.kickParticipant('cli-kick', participantId, { reason: 'spam' });
    expect(await kicked.line(/^\* left /)).toBe('* left cli-kick: kicked (spam)');
    expect(await kicked.exited).toBe(1);

    const ended = cli(['join', 'cli-end'], await server.token('cli-ended', { conferences: ['cli-end'] }));
    await ended.line(/^joined cli-end as /);
    await api.endConference('cli-end');
    expect(await ended.line(/^\* left /)).toMatch(/^\* left cli-end: ended-by-server\b/);
    expect(await ended.exited).toBe(0);
  });
});
