/**
 * The operator's HTTP endpoints of a real `backchannel serve`: the API index the dev banner links
 * to, and `/readyz` next to `/healthz`.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { CLI, startServerProcess } from '../helpers/server.js';

it('the dev banner’s API link answers with an index that links the OpenAPI document and the docs', async () => {
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const apiUrl = await new Promise<string>((resolve, reject) => {
      createInterface({ input: proc.stderr! }).on('line', (line) => {
        const m = /^\s+API:\s+(\S+)/.exec(line);
        if (m) resolve(m[1]!);
      });
      proc.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
    });
    expect(apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/$/);
    const res = await fetch(apiUrl);
    expect(res.status).toBe(200);
    const index = (await res.json()) as { openapi: string; docs: Record<string, string>; routes: string[] };
    expect(index.docs.serverApi).toBe('docs/server-api.md');
    expect(index.routes).toContain('GET /api/v1/conferences');
    const openapi = await fetch(new URL(index.openapi, apiUrl));
    expect(openapi.status).toBe(200);
    expect(((await openapi.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    // Without the trailing slash too.
    expect((await fetch(apiUrl.replace(/\/$/, ''))).status).toBe(200);
  } finally {
    proc.kill('SIGINT');
  }
});

it('/readyz and /healthz answer GET and HEAD; other methods are refused', async () => {
  const server = await startServerProcess();
  try {
    for (const path of ['/readyz', '/healthz']) {
      const res = await fetch(`${server.httpUrl}${path}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: path === '/readyz' ? 'ready' : 'ok', protocol: expect.any(Number) });
    }
    expect((await fetch(`${server.httpUrl}/readyz`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${server.httpUrl}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  } finally {
    await server.stop();
  }
});
