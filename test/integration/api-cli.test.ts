/**
 * The server-API CLI commands (`rooms`, `participants`, `send`) and `webhook listen`, run as real
 * processes against a real server.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Conference, type Reason, type RemoteParticipant } from '@backchannel/client';
import { ServerApiClient, signWebhook, WebhookHeader } from '@backchannel/server-sdk';
import { API_KEY, API_SECRET, CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';
import { receiver } from '../helpers/api.js';

const exec = promisify(execFile);

let server: ServerProcess;
let listener: ChildProcess;
let listenerUrl: string;
const listenerOut: string[] = [];
const listenerErr: string[] = [];
const lineWaiters = new Set<() => void>();

function untilLine(pattern: RegExp, lines = listenerOut): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}`)), 10_000);
    const check = () => {
      const line = lines.find((l) => pattern.test(l));
      if (!line) return;
      clearTimeout(timer);
      lineWaiters.delete(check);
      resolve(line);
    };
    lineWaiters.add(check);
    check();
  });
}

beforeAll(async () => {
  listener = spawn(process.execPath, [CLI, 'webhook', 'listen', '--port', '0', '--api-secret', API_SECRET], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const [stream, lines] of [
    [listener.stdout!, listenerOut],
    [listener.stderr!, listenerErr],
  ] as const) {
    createInterface({ input: stream }).on('line', (l) => {
      lines.push(l);
      for (const w of lineWaiters) w();
    });
  }
  listenerUrl = (await untilLine(/^listening for webhooks on /)).split(' on ')[1]!;
  server = await startServerProcess({ webhookUrls: [listenerUrl], emptyRoomGraceMs: 60_000 });
});
afterAll(async () => {
  await server.stop();
  listener.kill('SIGTERM');
});

/** Runs `backchannel <args>` against the test server; resolves with exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, BACKCHANNEL_URL: server.httpUrl, BACKCHANNEL_API_KEY: API_KEY, BACKCHANNEL_API_SECRET: API_SECRET };
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('backchannel CLI: server API commands', () => {
  it('lists rooms and participants, updates, sends, kicks and ends', async () => {
    const a = await Client.connect(server.url, await server.token('cli-a', { conferences: ['*'] }));
    const b = await Client.connect(server.url, await server.token('cli-b', { conferences: ['*'] }));
    const ra: Conference = await a.joinConference('cli-room');
    const rb = await b.joinConference('cli-room');

    // Independent reads run side by side (each CLI run is a process start).
    const [list, table, people] = await Promise.all([cli('rooms', 'list', '--json'), cli('rooms', 'list'), cli('participants', 'list', 'cli-room')]);
    expect(list.code).toBe(0);
    const parsed = JSON.parse(list.stdout);
    expect(parsed.conferences.find((c: { name: string }) => c.name === 'cli-room').participantCount).toBe(2);
    expect(table.stdout).toMatch(/conference\s+cli-room\s+2 participant\(s\)/);
    expect(people.stdout).toContain(a.participantId);
    expect(people.stdout).toContain(b.participantId);

    const updated = next<RemoteParticipant>(rb, 'participantUpdated');
    expect((await cli('participants', 'update', 'cli-room', a.participantId, '--metadata', '{"role":"host"}')).code).toBe(0);
    expect((await updated).metadata).toEqual({ role: 'host' });

    const rx = await receiver(rb, 700);
    // The form docs/cli.md shows: the message right after --to is the message, not another id.
    const sent = await cli('send', '--room', 'cli-room', '--stream-id', '700', '--to', b.participantId, 'hello from the CLI');
    expect(sent.stdout).toMatch(/sent #0 on stream 700 to 1 participant/);
    expect((await rx.until(1))[0]).toMatchObject({ text: 'hello from the CLI', from: 'server' });

    const kicked = next<{ reason: Reason }>(ra, 'ended');
    expect((await cli('participants', 'kick', 'cli-room', a.participantId, '--reason', 'cli test')).stdout).toContain('kicked');
    expect((await kicked).reason).toEqual({ code: 'kicked', message: 'cli test' });

    const ended = next<{ reason: Reason }>(rb, 'ended');
    expect((await cli('rooms', 'end', 'cli-room')).stdout).toBe('ended cli-room\n');
    expect((await ended).reason.code).toBe('ended-by-server');

    const [missing, badSecret] = await Promise.all([cli('rooms', 'end', 'cli-room'), cli('rooms', 'list', '--api-secret', 'not-the-secret')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('room-not-found');
    expect(badSecret.code).toBe(1);
    expect(badSecret.stderr).toContain('token-bad-signature');
    await a.close();
    await b.close();
  });

  it('webhook listen verified and printed the room’s events in order', async () => {
    await untilLine(/conference cli-room #7\s+conference\.ended/);
    const heads = listenerOut.filter((l) => / conference cli-room #\d+ /.test(l)).map((l) => l.replace(/^\S+\s+/, ''));
    expect(heads).toEqual([
      'conference cli-room #1  conference.started',
      expect.stringMatching(/^conference cli-room #2  participant\.joined  cli-a \(PA_/),
      expect.stringMatching(/^conference cli-room #3  participant\.joined  cli-b \(PA_/),
      expect.stringMatching(/^conference cli-room #4  participant\.kicked  cli-a .* kicked \(cli test\)$/),
      expect.stringMatching(/^conference cli-room #5  participant\.left  cli-a .* kicked \(cli test\)$/),
      expect.stringMatching(/^conference cli-room #6  participant\.left  cli-b .* room-ended/),
      expect.stringMatching(/^conference cli-room #7  conference\.ended  ended-by-server/),
    ]);
  });

  it('webhook listen refuses a forged delivery with 401 and acknowledges a duplicate', async () => {
    const body = JSON.stringify({ id: 'EV_forged', type: 'conference.started', createdAt: Date.now(), room: { kind: 'conference', name: 'x' }, sequence: 1 });
    const ts = Math.floor(Date.now() / 1000);
    const forged = await fetch(listenerUrl, {
      method: 'POST',
      body,
      headers: { [WebhookHeader.Signature]: await signWebhook('guessed-secret', ts, body), [WebhookHeader.Timestamp]: String(ts) },
    });
    expect(forged.status).toBe(401);
    expect((await forged.json()).code).toBe('webhook-signature-invalid');
    await untilLine(/^rejected delivery: webhook-signature-invalid/, listenerErr);
    const genuine = { [WebhookHeader.Signature]: await signWebhook(API_SECRET, ts, body), [WebhookHeader.Timestamp]: String(ts) };
    expect((await fetch(listenerUrl, { method: 'POST', body, headers: genuine })).status).toBe(204);
    expect((await fetch(listenerUrl, { method: 'POST', body, headers: genuine })).status).toBe(204);
    await untilLine(/^duplicate delivery of EV_forged/);
  });

  it('serve takes repeatable --webhook flags and refuses a URL that is not http(s)', async () => {
    const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--api-key', API_KEY, '--api-secret', API_SECRET, '--webhook', 'http://127.0.0.1:9/a', '--webhook', 'http://127.0.0.1:9/b'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((r) => proc.once('exit', r));
    const url = await new Promise<string>((resolve) => {
      createInterface({ input: proc.stdout! }).on('line', (l) => {
        const entry = JSON.parse(l) as { msg?: string; url?: string };
        if (entry.msg === 'backchannel server listening') resolve(entry.url!);
      });
    });
    const api = new ServerApiClient(url, { apiKey: API_KEY, apiSecret: API_SECRET });
    expect((await api.webhookStats()).endpoints.map((e) => e.url)).toEqual(['http://127.0.0.1:9/a', 'http://127.0.0.1:9/b']);
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    const bad = await cli('serve', '--port', '0', '--webhook', 'ftp://127.0.0.1/x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('webhookUrls');
  });
});
