/**
 * The nginx configuration of docs/deployment.md, run by a real nginx (Debian's `nginx`) in front of
 * a real server: the block is taken from the guide as written (only ports, names and paths are
 * replaced), so the guide cannot drift from what works. Clients connect over wss:// through nginx,
 * join, exchange data both ways and resume after a cut; the server API works through it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, type WebSocketConstructor } from '@backchannel/client';
import { freePort } from '../helpers/api.js';
import { next } from '../helpers/events.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { makeServerCert, makeTestCa, trustingWebSocket, type TestCa } from '../helpers/tls.js';

const NGINX = '/usr/sbin/nginx';
const GUIDE = resolve(import.meta.dirname, '../../docs/deployment.md');

/** The guide's nginx block with `replacements` applied; each pattern must be found exactly once. */
function configFromGuide(replacements: [RegExp | string, string][]): string {
  const blocks = [...readFileSync(GUIDE, 'utf8').matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.includes('upstream backchannel'));
  if (!block) throw new Error('docs/deployment.md has no ```nginx block with "upstream backchannel"');
  let text = block;
  for (const [pattern, value] of replacements) {
    const count = text.split(pattern instanceof RegExp ? new RegExp(pattern.source, 'g') : pattern).length - 1;
    if (count !== 1) throw new Error(`docs/deployment.md: expected ${String(pattern)} once in the nginx block, found it ${count} times`);
    text = text.replace(pattern, value);
  }
  return text;
}

/** GET/POST over HTTPS trusting `ca`. */
function https(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    request(url, { ca, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

/** Resolves once `port` accepts TCP connections (nginx has no readiness signal of its own). */
async function untilListening(port: number, proc: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${stderr()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nginx did not listen on ${port}: ${stderr()}`);
}

let ca: TestCa;
let server: ServerProcess;
let nginx: ChildProcess;
let nginxPort: number;
let WebSocket: WebSocketConstructor;
let startNginx: () => Promise<void>;

/** Stops nginx at once (SIGTERM: every connection through it is cut). */
async function stopNginx(signal: NodeJS.Signals): Promise<void> {
  if (!nginx || nginx.exitCode !== null) return;
  const exited = new Promise((r) => nginx.once('exit', r));
  nginx.kill(signal);
  await exited;
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`nginx not found at ${NGINX}: this test needs the Debian "nginx" package (apt-get install -y nginx; .ci/run installs it)`);
  ca = makeTestCa();
  const cert = makeServerCert(ca, 'proxy');
  WebSocket = trustingWebSocket(ca.caPem) as unknown as WebSocketConstructor;
  server = await startServerProcess();
  nginxPort = await freePort();
  const prefix = join(ca.dir, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const site = configFromGuide([
    ['listen 443 ssl;', `listen 127.0.0.1:${nginxPort} ssl;`],
    [/\n\s*listen \[::\]:443 ssl;/, ''],
    ['server 127.0.0.1:7800;', `server 127.0.0.1:${server.port};`],
    ['/etc/letsencrypt/live/rtc.example.com/fullchain.pem', cert.cert],
    ['/etc/letsencrypt/live/rtc.example.com/privkey.pem', cert.key],
  ]);
  const temp = (name: string) => `${name}_temp_path ${join(prefix, name)};`;
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'master_process off;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'logs/error.log')} warn;`,
      'events { worker_connections 256; }',
      'http {',
      '  access_log off;',
      `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
      site,
      '}',
    ].join('\n'),
  );
  const check = spawnSync(NGINX, ['-t', '-p', prefix, '-c', conf, '-e', 'stderr'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t refused the guide's configuration:\n${check.stderr}`);
  startNginx = async () => {
    nginx = spawn(NGINX, ['-p', prefix, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr!.on('data', (d) => (stderr += d));
    await untilListening(nginxPort, nginx, () => stderr);
  };
  await startNginx();
});

afterAll(async () => {
  await stopNginx('SIGQUIT');
  await server?.stop();
});

it('clients connect through nginx over wss://, join, exchange data both ways and resume after a cut', async () => {
  const url = `wss://127.0.0.1:${nginxPort}`;
  const ann = await Client.connect(url, await server.token('ngx-ann'), { WebSocket });
  const ben = await Client.connect(url, await server.token('ngx-ben'), { WebSocket });
  const annRoom = await ann.joinConference('ngx-room');
  const benRoom = await ben.joinConference('ngx-room');
  expect([...benRoom.participants.values()].map((p) => p.userId)).toContain('ngx-ann');

  const toBen: string[] = [];
  const toAnn: string[] = [];
  let benGot: () => void = () => undefined;
  let annGot: () => void = () => undefined;
  await benRoom.makeRecvDataSession(100, (d) => {
    toBen.push(new TextDecoder().decode(d));
    if (toBen.length === 2) benGot();
  });
  await annRoom.makeRecvDataSession(101, (d) => {
    toAnn.push(new TextDecoder().decode(d));
    annGot();
  });
  const annTx = await annRoom.makeSendDataSession(100, 'reliable-message');
  const benTx = await benRoom.makeSendDataSession(101, 'reliable-message');
  const bothToBen = new Promise<void>((r) => (benGot = r));
  const oneToAnn = new Promise<void>((r) => (annGot = r));
  annTx.send('hi Ben');
  annTx.send(new Uint8Array(200_000).fill(0x62)); // fragmented, bigger than nginx's buffers
  benTx.send('hi Ann');
  await Promise.all([bothToBen, oneToAnn]);
  expect(toBen[0]).toBe('hi Ben');
  expect(toBen[1]).toBe('b'.repeat(200_000));
  expect(toAnn).toEqual(['hi Ann']);

  // nginx restarted: every connection through it is cut; both clients resume through the new one.
  const resumed = Promise.all([next(ann, 'reconnected', 15_000), next(ben, 'reconnected', 15_000)]);
  await stopNginx('SIGTERM');
  await startNginx();
  expect(await resumed).toEqual([{ resumed: true }, { resumed: true }]);
  const again = new Promise<void>((r) => (annGot = r));
  benTx.send('still here');
  await again;
  expect(toAnn).toEqual(['hi Ann', 'still here']);
  await ann.close();
  await ben.close();
});

it('the server API, /healthz and /readyz work through nginx; /metrics is not public', async () => {
  const base = `https://127.0.0.1:${nginxPort}`;
  const admin = await server.token('ngx-app', { admin: true });
  const c = await Client.connect(`wss://127.0.0.1:${nginxPort}`, await server.token('ngx-cal'), { WebSocket });
  await c.joinConference('ngx-api-room');
  const rooms = await https(`${base}/api/v1/conferences`, ca.caPem, { authorization: `Bearer ${admin}` });
  expect(rooms.status).toBe(200);
  expect(rooms.body).toContain('ngx-api-room');
  expect((await https(`${base}/readyz`, ca.caPem)).status).toBe(200);
  expect((await https(`${base}/healthz`, ca.caPem)).status).toBe(200);
  expect((await https(`${base}/metrics`, ca.caPem)).status).toBe(404);
  expect((await fetch(`${server.httpUrl}/metrics`)).status).toBe(200); // Prometheus scrapes the server's port
  await c.close();
});
