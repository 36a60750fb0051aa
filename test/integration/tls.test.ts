/**
 * TLS: `backchannel serve --tls-cert --tls-key` serves HTTPS and WSS on one port with a certificate
 * made at test time; SIGHUP swaps the certificate for new connections while open ones go on; a
 * missing, unreadable or mismatched certificate or key stops the server at start with one coded line.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type WebSocketConstructor } from '@backchannel/client';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { untilLog } from '../helpers/api.js';
import { makeServerCert, makeTestCa, trustingWebSocket, type ServerCert, type TestCa } from '../helpers/tls.js';

const exec = promisify(execFile);

/** GET over HTTPS trusting `ca`; resolves with status and body. */
function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { ca, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
function peerFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** Runs `backchannel serve` expecting it to fail; resolves with exit code and stderr. */
async function serveFails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await exec(process.execPath, [CLI, 'serve', '--port', '0', ...args], { timeout: 20_000 });
    throw new Error('backchannel serve started although it should have failed');
  } catch (error) {
    const e = error as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

let ca: TestCa;
let first: ServerCert;
let second: ServerCert;

beforeAll(() => {
  ca = makeTestCa();
  first = makeServerCert(ca, 'first');
  second = makeServerCert(ca, 'second');
});

describe('serve over TLS', () => {
  let server: ServerProcess;
  let dir: string;
  let live: { cert: string; key: string };

  beforeAll(async () => {
    // The server reads its files from a place the test can overwrite for the reload.
    dir = join(ca.dir, 'live');
    mkdirSync(dir, { recursive: true });
    live = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    server = await startServerProcess({ tlsCertFile: live.cert, tlsKeyFile: live.key });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('announces a wss:// URL and answers HTTPS on the same port', async () => {
    expect(server.url).toBe(`wss://127.0.0.1:${server.port}`);
    const health = await httpsGet(`https://127.0.0.1:${server.port}/healthz`, ca.caPem);
    expect(health.status).toBe(200);
    const ready = await httpsGet(`https://127.0.0.1:${server.port}/readyz`, ca.caPem);
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'ready' });
    const rooms = await httpsGet(`https://127.0.0.1:${server.port}/api/v1/conferences`, ca.caPem, { authorization: `Bearer ${await server.token('app', { admin: true })}` });
    expect(rooms.status).toBe(200);
  });

  it('a client that does not trust the certificate cannot connect', async () => {
    await expect(Client.connect(server.url, await server.token('untrusting'), { reconnect: false })).rejects.toMatchObject({ code: 'connect-failed' });
  });

  it('Node clients exchange data over wss://', async () => {
    const WebSocket = trustingWebSocket(ca.caPem) as unknown as WebSocketConstructor;
    const ann = await Client.connect(server.url, await server.token('tls-ann'), { WebSocket });
    const ben = await Client.connect(server.url, await server.token('tls-ben'), { WebSocket });
    const annRoom = await ann.joinConference('tls-room');
    const benRoom = await ben.joinConference('tls-room');
    const got: string[] = [];
    const received = new Promise<void>((resolve) =>
      void benRoom.makeRecvDataSession(100, (data) => {
        got.push(new TextDecoder().decode(data));
        if (got.length === 3) resolve();
      }),
    );
    const tx = await annRoom.makeSendDataSession(100, 'reliable-message');
    for (const text of ['one', 'two', 'three']) tx.send(text);
    await received;
    expect(got).toEqual(['one', 'two', 'three']);
    await ann.close();
    await ben.close();
  });

  it('SIGHUP serves a new certificate to new connections; an open connection stays up', async () => {
    const WebSocket = trustingWebSocket(ca.caPem) as unknown as WebSocketConstructor;
    expect(await peerFingerprint(server.port, ca.caPem)).toBe(first.fingerprint);
    const ann = await Client.connect(server.url, await server.token('hup-ann'), { WebSocket });
    const ben = await Client.connect(server.url, await server.token('hup-ben'), { WebSocket });
    const annRoom = await ann.joinConference('hup-room');
    const benRoom = await ben.joinConference('hup-room');
    const got: string[] = [];
    let arrived: () => void = () => undefined;
    await benRoom.makeRecvDataSession(100, (data) => {
      got.push(new TextDecoder().decode(data));
      arrived();
    });
    const tx = await annRoom.makeSendDataSession(100, 'reliable-message');
    const lost: string[] = [];
    for (const c of [ann, ben]) c.on('reconnecting', (e) => lost.push(e.reason.code));

    copyFileSync(second.cert, live.cert);
    copyFileSync(second.key, live.key);
    const reloaded = untilLog(server, (l) => l.msg === 'TLS certificate reloaded');
    server.proc.kill('SIGHUP');
    expect(await reloaded).toMatchObject({ fingerprint: second.fingerprint, subject: 'CN=second' });
    expect(await peerFingerprint(server.port, ca.caPem)).toBe(second.fingerprint);

    const after = new Promise<void>((resolve) => (arrived = resolve));
    tx.send('after the reload');
    await after;
    expect(got).toEqual(['after the reload']);
    expect(lost).toEqual([]);
    // A new client connects with the new certificate.
    const cal = await Client.connect(server.url, await server.token('hup-cal'), { WebSocket });
    await cal.joinConference('hup-room');
    await Promise.all([ann.close(), ben.close(), cal.close()]);
  });

  it('SIGHUP with a bad key logs why and keeps the current certificate', async () => {
    const current = await peerFingerprint(server.port, ca.caPem);
    copyFileSync(first.key, live.key); // now the key does not match the certificate
    const refused = untilLog(server, (l) => typeof l.msg === 'string' && l.msg.startsWith('TLS certificate not reloaded'));
    server.proc.kill('SIGHUP');
    expect(await refused).toMatchObject({ level: 50, code: 'tls-key-mismatch' });
    expect(await peerFingerprint(server.port, ca.caPem)).toBe(current);
    copyFileSync(second.key, live.key);
  });
});

describe('serve refuses a bad certificate or key at start', () => {
  it('missing, unreadable, not PEM, mismatched, or only one of the two: one coded line, exit 2', async () => {
    const notPem = join(ca.dir, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    const missing = join(ca.dir, 'missing.pem');
    const cases: [string[], RegExp][] = [
      [['--tls-cert', missing, '--tls-key', first.key], /^backchannel serve: tls-file-unreadable: cannot read TLS certificate file .*missing\.pem: no such file$/],
      [['--tls-cert', first.cert, '--tls-key', ca.dir], /^backchannel serve: tls-file-unreadable: cannot read TLS private key file .*: is a directory$/],
      [['--tls-cert', notPem, '--tls-key', first.key], /^backchannel serve: tls-invalid: TLS certificate file .*not\.pem does not hold a PEM certificate$/],
      [['--tls-cert', first.cert, '--tls-key', notPem], /^backchannel serve: tls-invalid: TLS key file .*not\.pem does not hold a PEM private key$/],
      [['--tls-cert', first.cert, '--tls-key', second.key], /^backchannel serve: tls-key-mismatch: TLS key file .*second\.key does not hold the private key of the certificate in .*first\.pem$/],
      [['--tls-cert', first.cert], /^backchannel serve: config-invalid: settings "tlsCertFile" and "tlsKeyFile" go together/],
    ];
    const results = await Promise.all(cases.map(([args]) => serveFails(args)));
    results.forEach((res, i) => {
      expect(res.code).toBe(2);
      const lines = res.stderr.split('\n').filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(cases[i]![1]);
    });
  });
});
