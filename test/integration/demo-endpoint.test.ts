/**
 * The demo's HTTP side on real server processes: the page and the dev token endpoint exist on the
 * development key and with the demo flag, and nowhere else — a production key without the flag
 * answers 404 for every demo route. What a demo token may do is limited on a production key.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackchannelError, Client, ErrorCode } from '@backchannel/client';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';

interface TokenAnswer {
  token: string;
  userId: string;
  displayName: string;
  conferences: string[];
  expiresAt: number;
}

const postToken = (base: string, body: unknown = { displayName: 'Ann' }, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${base}/demo/token`, { method: 'POST', headers, body: JSON.stringify(body) });

/** The claims of a JWT (not verified: the server verifies them when the client connects). */
const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string; name: string; exp: number; bc: { conferences: string[]; admin: boolean; hidden: boolean } };

describe('on a production key without the demo flag', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('the token endpoint refuses with 404 not-found and says how the demo is turned on', async () => {
    const res = await postToken(server.httpUrl);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('not-found');
    expect(body.message).toContain('backchannel serve --demo');
  });

  it('the page and its files are not served', async () => {
    for (const path of ['/', '/index.html', '/demo/demo.js', '/demo/demo.css']) {
      const res = await fetch(`${server.httpUrl}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { code: string }).code, path).toBe('not-found');
    }
  });
});

describe('on a production key with the demo flag', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess({ demo: true });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('serves the page with a content security policy, compressed and revalidated', async () => {
    const page = await fetch(`${server.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const html = await page.text();
    expect(html).toContain('<script type="module" crossorigin src="/demo/demo.js"></script>');

    const script = await fetch(`${server.httpUrl}/demo/demo.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('content-encoding')).toBe('gzip');
    const etag = script.headers.get('etag')!;
    await script.arrayBuffer();
    const again = await fetch(`${server.httpUrl}/demo/demo.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);

    for (const path of ['/demo/../package.json', '/demo/%2e%2e/package.json', '/demo/nope.js']) {
      expect((await fetch(`${server.httpUrl}${path}`)).status, path).toBe(404);
    }
  });

  it('mints a token for a new demo user that may join demo-* conferences only', async () => {
    const res = await postToken(server.httpUrl, { displayName: '  Ann  ' });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const answer = (await res.json()) as TokenAnswer;
    expect(answer.displayName).toBe('Ann');
    expect(answer.conferences).toEqual(['demo-*']);
    expect(answer.userId).toMatch(/^demo-[A-Za-z0-9_-]{8}$/);
    const c = claims(answer.token);
    expect(c.sub).toBe(answer.userId);
    expect(c.name).toBe('Ann');
    expect(c.bc).toMatchObject({ conferences: ['demo-*'], admin: false, hidden: false });
    expect(c.exp * 1000).toBeGreaterThan(Date.now());
    // Every request is a new user.
    const second = (await (await postToken(server.httpUrl)).json()) as TokenAnswer;
    expect(second.userId).not.toBe(answer.userId);

    const client = await Client.connect(server.url, answer.token);
    try {
      expect(client.displayName).toBe('Ann');
      const room = await client.joinConference('demo-lobby');
      expect(room.name).toBe('demo-lobby');
      const refused = await client.joinConference('standup').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(BackchannelError);
      expect((refused as BackchannelError).code).toBe(ErrorCode.PermissionDenied);
    } finally {
      await client.close();
    }
  });

  it('renews a demo token for the same user, and nothing else', async () => {
    const first = (await (await postToken(server.httpUrl, { displayName: 'Ann' })).json()) as TokenAnswer;
    const renewed = await postToken(server.httpUrl, { token: first.token });
    expect(renewed.status).toBe(200);
    const answer = (await renewed.json()) as TokenAnswer;
    expect(answer).toMatchObject({ userId: first.userId, displayName: 'Ann', conferences: ['demo-*'] });
    // A connected client takes the renewed token (the SDK's tokenRefresh does this before expiry).
    const client = await Client.connect(server.url, first.token);
    await client.refreshToken(answer.token);
    expect(client.userId).toBe(first.userId);
    await client.close();

    // A token this endpoint did not hand out is not extended, even a valid one.
    const real = await postToken(server.httpUrl, { token: await server.token('alice', { conferences: ['demo-*'] }) });
    expect(real.status).toBe(403);
    expect(((await real.json()) as { code: string }).code).toBe('permission-denied');
    const forged = await postToken(server.httpUrl, { token: 'not-a-token' });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { code: string }).code).toBe('token-malformed');
  });

  it('refuses requests that are not a JSON POST with a valid name', async () => {
    const get = await fetch(`${server.httpUrl}/demo/token`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    // A form post (what another site could make a browser send) is refused.
    const form = await postToken(server.httpUrl, { displayName: 'Ann' }, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(400);
    expect(((await form.json()) as { code: string }).code).toBe('bad-message');
    for (const displayName of ['', 'x'.repeat(65), 'tab\there', 42]) {
      const res = await postToken(server.httpUrl, { displayName });
      expect(res.status, JSON.stringify(displayName)).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('invalid-argument');
    }
    const notJson = await fetch(`${server.httpUrl}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(((await notJson.json()) as { code: string }).code).toBe('bad-message');
  });

  it('rate-limits token requests per address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30 && !statuses.includes(429); i++) statuses.push((await postToken(server.httpUrl)).status);
    expect(statuses).toContain(429);
    const limited = await postToken(server.httpUrl);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { code: string }).code).toBe('rate-limited');
  });
});

describe('on the development key', () => {
  it('serves the demo without a flag, and its tokens may join any conference', async () => {
    const server = await startServerProcess({ apiKeys: { devkey: 'devsecret' } });
    try {
      expect((await fetch(`${server.httpUrl}/`)).status).toBe(200);
      const answer = (await (await postToken(server.httpUrl)).json()) as TokenAnswer;
      expect(answer.conferences).toEqual(['*']);
      const client = await Client.connect(server.url, answer.token);
      await client.joinConference('standup');
      await client.close();
    } finally {
      await server.stop();
    }
  });
});

it('backchannel serve --demo turns the demo on for a production key', async () => {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--api-key', 'prodkey', '--api-secret', 'a-long-production-secret', '--demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => proc.once('exit', r));
  const logs: { msg?: string; url?: string; level?: number }[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string; level?: number };
      logs.push(entry);
      if (entry.msg === 'backchannel server listening') resolve(entry.url!);
    });
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
  });
  const http = url.replace(/^ws/, 'http');
  try {
    expect((await postToken(http)).status).toBe(200);
    // The operator is warned that the endpoint is open.
    expect(logs.some((l) => l.level === 40 && l.msg?.startsWith('the demo is on'))).toBe(true);
  } finally {
    proc.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
});
