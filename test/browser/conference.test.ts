/**
 * End to end in a real browser: the browser bundle of the client SDK runs in headless Chromium and
 * meets a Node client in a conference on a real server process. Each side sees the other (lists
 * and events), and data goes both ways over `reliable-message` sessions on stream id 100.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client, ErrorCode, LeaveReason, type DataInfo } from '@backchannel/client';
import type * as BackchannelSdk from '@backchannel/client';
import { createAccessToken } from '@backchannel/server-sdk';
import { deferred, next } from '../helpers/events.js';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '../..');
const BUNDLE = resolve(ROOT, 'packages/client/dist/backchannel.browser.js');
const PAGE = resolve(import.meta.dirname, 'fixtures/index.html');
const STREAM_ID = 100;
/** Larger than the server's default chunk size (64 KiB), so it crosses as several frames. */
const LARGE_BYTES = 200_000;
const WAIT_MS = 10_000;

/** What the page records about a participant. */
interface SeenParticipant {
  id: string;
  userId: string;
  displayName: string;
  metadata: unknown;
}

/** What the page records about each message it receives. */
interface SeenData {
  from: string;
  seq: number;
  streamId: number;
  mode: string;
  length: number;
  /** UTF-8 text and raw bytes, for messages of at most 64 bytes. */
  text: string | null;
  bytes: number[] | null;
  /** Whether every byte follows {@link patternByte}. */
  patternOk: boolean;
}

/** The SDK objects and observations the test keeps inside the page between `evaluate` calls. */
interface PageState {
  client: BackchannelSdk.Client;
  conf: BackchannelSdk.Conference;
  joined: SeenParticipant[];
  left: { id: string; code: string }[];
  incoming: { streamId: number; from: string; mode: string }[];
  received: SeenData[];
  errors: string[];
}

declare global {
  interface Window {
    Backchannel?: typeof BackchannelSdk;
    backchannelLoadError?: string;
    e2e?: PageState;
  }
}

/** Byte `i` of the large test message (the page inlines the same formula). */
const patternByte = (i: number): number => (i * 31 + 7) & 0xff;

function patternBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = patternByte(i);
  return out;
}

/** Rejects with a message naming `what` if `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Serves the test page and the SDK bundle (nothing else) on 127.0.0.1. */
async function startStaticServer(): Promise<{ server: Server; origin: string }> {
  const files: Record<string, { file: string; type: string }> = {
    '/': { file: PAGE, type: 'text/html; charset=utf-8' },
    '/backchannel.browser.js': { file: BUNDLE, type: 'text/javascript; charset=utf-8' },
    '/backchannel.browser.js.map': { file: `${BUNDLE}.map`, type: 'application/json' },
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const entry = files[path];
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (!entry || !existsSync(entry.file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
    } else {
      res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-store' }).end(readFileSync(entry.file));
    }
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('browser client SDK (Chromium) with a Node client', () => {
  let server: ServerProcess;
  let statics: { server: Server; origin: string };
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  const nodeClients: Client[] = [];
  /** Browser console errors and warnings, page errors and failed requests of the current test. */
  const diagnostics: string[] = [];

  beforeAll(async () => {
    // Without Chromium, each test fails (below) with the fix instead of being skipped.
    const launch = existsSync(CHROMIUM)
      ? chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        })
      : undefined;
    [server, statics, browser] = await Promise.all([startServerProcess(), startStaticServer(), launch]);
    browser?.on('disconnected', () => diagnostics.push('[browser] disconnected'));
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((done) => (statics ? statics.server.close(done) : done(undefined)));
    await server?.stop();
  });

  beforeEach(({ onTestFailed }) => {
    if (!browser) {
      throw new Error(`Chromium not found at ${CHROMIUM}: the browser tests need the Debian "chromium" package (apt-get install -y chromium).`);
    }
    if (!existsSync(BUNDLE)) throw new Error(`the browser bundle ${BUNDLE} is missing: run "npm run build" first.`);
    diagnostics.length = 0;
    onTestFailed(() => {
      // Server logs are pino JSON: level 40 is warn, 50 error, 60 fatal.
      const serverProblems = (server?.logs ?? []).filter((l) => typeof l.level === 'number' && l.level >= 40).map((l) => `[server] ${JSON.stringify(l)}`);
      const lines = [...diagnostics, ...serverProblems];
      console.error(lines.length > 0 ? `browser and server diagnostics:\n${lines.join('\n')}` : 'no browser console errors, page errors or server warnings were recorded');
    });
  });

  afterEach(async () => {
    await Promise.all(nodeClients.splice(0).map((c) => c.close()));
    await context?.close();
    context = undefined;
  });

  /** A fresh browser context with the test page loaded and the SDK module imported. */
  async function openPage(): Promise<Page> {
    context = await browser!.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') {
        const at = msg.location();
        diagnostics.push(`[console.${msg.type()}] ${msg.text()}${at.url ? ` (${at.url}:${at.lineNumber})` : ''}`);
      }
    });
    page.on('pageerror', (error) => diagnostics.push(`[pageerror] ${error.stack ?? error.message}`));
    page.on('requestfailed', (req) => diagnostics.push(`[requestfailed] ${req.url()}: ${req.failure()?.errorText ?? 'unknown'}`));
    page.on('crash', () => diagnostics.push('[page] crashed'));
    await page.goto(`${statics.origin}/`);
    await page.waitForFunction(() => window.Backchannel !== undefined || window.backchannelLoadError !== undefined);
    const loadError = await page.evaluate(() => window.backchannelLoadError);
    if (loadError) throw new Error(`the page could not load the SDK bundle: ${loadError}`);
    return page;
  }

  async function nodeClient(userId: string, name: string): Promise<Client> {
    const client = await Client.connect(server.url, await server.token(userId, undefined, { name }));
    nodeClients.push(client);
    return client;
  }

  it('joins a conference with a Node client: both see each other and exchange data both ways', async () => {
    const room = `e2e-${Math.random().toString(36).slice(2)}`;
    const page = await openPage();
    const alice = await nodeClient('alice-node', 'Alice');
    const aliceConf = await alice.joinConference(room, { displayName: 'Node Alice', metadata: { runtime: 'node' } });
    const browserJoined = next<BackchannelSdk.RemoteParticipant>(aliceConf, 'participantJoined');

    // The browser joins second: it lists the Node participant, and the Node side gets an event.
    const bob = await page.evaluate(
      async ({ url, token, room, streamId }) => {
        const { Client } = window.Backchannel!;
        const client = await Client.connect(url, token);
        const conf = await client.joinConference(room, { displayName: 'Browser Bob', metadata: { runtime: 'chromium' } });
        const state: PageState = { client, conf, joined: [], left: [], incoming: [], received: [], errors: [] };
        window.e2e = state;
        const seen = (p: BackchannelSdk.RemoteParticipant) => ({ id: p.id, userId: p.userId, displayName: p.displayName, metadata: p.metadata });
        conf.on('participantJoined', (p) => state.joined.push(seen(p)));
        conf.on('participantLeft', (p, reason) => state.left.push({ id: p.id, code: reason.code }));
        conf.on('dataSessionIncoming', (s) => state.incoming.push({ ...s }));
        conf.on('dataSessionError', (e) => state.errors.push(`dataSessionError ${e.code}: ${e.message}`));
        client.on('error', (e) => state.errors.push(`client error ${e.code}: ${e.message}`));
        await conf.makeRecvDataSession(streamId, (data, info) => {
          let patternOk = true;
          for (let i = 0; i < data.length && patternOk; i++) patternOk = data[i] === ((i * 31 + 7) & 0xff);
          const small = data.length <= 64;
          state.received.push({
            from: info.from,
            seq: info.seq,
            streamId: info.streamId,
            mode: info.mode,
            length: data.length,
            text: small ? new TextDecoder().decode(data) : null,
            bytes: small ? Array.from(data) : null,
            patternOk,
          });
        });
        return { participantId: client.participantId, userId: client.userId, participants: [...conf.participants.values()].map(seen) };
      },
      { url: server.url, token: await server.token('bob-browser', undefined, { name: 'Bob' }), room, streamId: STREAM_ID },
    );

    expect(bob.userId).toBe('bob-browser');
    expect(bob.participants).toEqual([{ id: alice.participantId, userId: 'alice-node', displayName: 'Node Alice', metadata: { runtime: 'node' } }]);
    const joinedAtNode = await browserJoined;
    expect({ id: joinedAtNode.id, userId: joinedAtNode.userId, displayName: joinedAtNode.displayName, metadata: joinedAtNode.metadata }).toEqual({
      id: bob.participantId,
      userId: 'bob-browser',
      displayName: 'Browser Bob',
      metadata: { runtime: 'chromium' },
    });
    expect([...aliceConf.participants.keys()]).toEqual([bob.participantId]);

    // The Node client leaves and comes back: now the browser sees the leave and the join as events.
    await aliceConf.leave();
    await page.waitForFunction(() => window.e2e!.left.length > 0);
    expect(await page.evaluate(() => ({ left: window.e2e!.left, listed: window.e2e!.conf.participants.size }))).toEqual({
      left: [{ id: alice.participantId, code: LeaveReason.Left }],
      listed: 0,
    });
    const aliceAgain = await alice.joinConference(room, { displayName: 'Node Alice', metadata: { runtime: 'node' } });
    expect([...aliceAgain.participants.keys()]).toEqual([bob.participantId]);
    await page.waitForFunction(() => window.e2e!.joined.length > 0);
    expect(await page.evaluate(() => ({ joined: window.e2e!.joined, listed: [...window.e2e!.conf.participants.keys()] }))).toEqual({
      joined: [{ id: alice.participantId, userId: 'alice-node', displayName: 'Node Alice', metadata: { runtime: 'node' } }],
      listed: [alice.participantId],
    });

    // Browser → Node: a string with non-ASCII characters, a few raw bytes, and a multi-chunk message.
    const fromBrowser: { data: Uint8Array; info: DataInfo }[] = [];
    const gotAllFromBrowser = deferred();
    await aliceAgain.makeRecvDataSession(STREAM_ID, (data, info) => {
      fromBrowser.push({ data, info });
      if (fromBrowser.length === 3) gotAllFromBrowser.resolve();
    });
    const incomingAtNode = next<BackchannelSdk.IncomingSession>(aliceAgain, 'dataSessionIncoming');
    const browserSend = await page.evaluate(
      async ({ streamId, large }) => {
        const session = await window.e2e!.conf.makeSendDataSession(streamId, 'reliable-message');
        const big = new Uint8Array(large);
        for (let i = 0; i < large; i++) big[i] = (i * 31 + 7) & 0xff;
        const belowHighWater = [session.send('héllo from the browser 👋'), session.send(new Uint8Array([0, 1, 2, 127, 128, 255])), session.send(big)];
        return { streamId: session.streamId, mode: session.mode, belowHighWater };
      },
      { streamId: STREAM_ID, large: LARGE_BYTES },
    );
    expect(browserSend).toEqual({ streamId: STREAM_ID, mode: 'reliable-message', belowHighWater: [true, true, true] });
    expect(await incomingAtNode).toEqual({ streamId: STREAM_ID, from: bob.participantId, mode: 'reliable-message' });
    await within(gotAllFromBrowser.promise, 'the three messages from the browser at the Node client');
    expect(fromBrowser.map((m) => m.info)).toEqual([0, 1, 2].map((seq) => ({ from: bob.participantId, seq, streamId: STREAM_ID, mode: 'reliable-message' })));
    expect(new TextDecoder().decode(fromBrowser[0]!.data)).toBe('héllo from the browser 👋');
    expect([...fromBrowser[1]!.data]).toEqual([0, 1, 2, 127, 128, 255]);
    expect(fromBrowser[2]!.data.byteLength).toBe(LARGE_BYTES);
    expect(Buffer.from(fromBrowser[2]!.data).equals(Buffer.from(patternBytes(LARGE_BYTES)))).toBe(true);

    // Node → browser: the same three kinds of message on the Node client's own session.
    const nodeSession = await aliceAgain.makeSendDataSession(STREAM_ID, 'reliable-message');
    nodeSession.send('grüße from Node 🚀');
    nodeSession.send(new Uint8Array([255, 254, 0, 10, 13]));
    nodeSession.send(patternBytes(LARGE_BYTES));
    await page.waitForFunction(() => window.e2e!.received.length >= 3);
    const atBrowser = await page.evaluate(() => ({ received: window.e2e!.received, incoming: window.e2e!.incoming, errors: window.e2e!.errors }));
    expect(atBrowser.incoming).toEqual([{ streamId: STREAM_ID, from: alice.participantId, mode: 'reliable-message' }]);
    const utf8 = new TextEncoder().encode('grüße from Node 🚀');
    const base = { from: alice.participantId, streamId: STREAM_ID, mode: 'reliable-message' };
    expect(atBrowser.received).toEqual([
      { ...base, seq: 0, length: utf8.length, text: 'grüße from Node 🚀', bytes: [...utf8], patternOk: false },
      { ...base, seq: 1, length: 5, text: expect.any(String), bytes: [255, 254, 0, 10, 13], patternOk: false },
      { ...base, seq: 2, length: LARGE_BYTES, text: null, bytes: null, patternOk: true },
    ]);
    expect(atBrowser.errors).toEqual([]);

    // The browser leaves; the Node client sees it go, with the reason.
    const browserLeft = deferred<{ id: string; code: string }>();
    aliceAgain.on('participantLeft', (p, reason) => browserLeft.resolve({ id: p.id, code: reason.code }));
    await page.evaluate(async () => {
      await window.e2e!.conf.leave();
      await window.e2e!.client.close();
    });
    expect(await within(browserLeft.promise, 'participantLeft at the Node client')).toEqual({ id: bob.participantId, code: LeaveReason.Left });
    expect(diagnostics.filter((d) => d.startsWith('[pageerror]'))).toEqual([]);
  });

  it('gives the browser a typed error code for a refused token', async () => {
    const page = await openPage();
    const wrongSecret = await createAccessToken({ apiKey: API_KEY, apiSecret: 'not-the-server-secret-0123', userId: 'mallory', grants: { conferences: ['*'] } });
    const unknownKey = await createAccessToken({ apiKey: 'no-such-key', apiSecret: API_SECRET, userId: 'mallory', grants: { conferences: ['*'] } });
    const outcomes = await page.evaluate(
      async ({ url, tokens }) => {
        const { Client, BackchannelError } = window.Backchannel!;
        const results: { connected: boolean; isBackchannelError?: boolean; code?: string; message?: string }[] = [];
        for (const token of tokens) {
          try {
            const client = await Client.connect(url, token);
            await client.close();
            results.push({ connected: true });
          } catch (error) {
            const e = error as BackchannelSdk.BackchannelError;
            results.push({ connected: false, isBackchannelError: e instanceof BackchannelError, code: e.code, message: e.message });
          }
        }
        return results;
      },
      { url: server.url, tokens: [wrongSecret, unknownKey, 'not-a-token', ''] },
    );
    const expected = [ErrorCode.TokenBadSignature, ErrorCode.TokenUnknownKey, ErrorCode.TokenMalformed, ErrorCode.TokenMissing];
    expect(outcomes).toEqual(expected.map((code) => ({ connected: false, isBackchannelError: true, code, message: expect.stringMatching(/\S/) })));
    expect(diagnostics.filter((d) => d.startsWith('[pageerror]'))).toEqual([]);
  });
});
