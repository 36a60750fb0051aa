/**
 * The browser SDK over `wss://`: Chromium connects to a server serving a certificate made at test
 * time (the test CA is not in Chromium's store, so the page ignores certificate errors — the TLS
 * handshake and the encryption are real) and exchanges data with a Node client that trusts the CA.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, type WebSocketConstructor } from '@backchannel/client';
import { openSdkPage, type SdkPage } from '../helpers/browser.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { makeServerCert, makeTestCa, trustingWebSocket, type TestCa } from '../helpers/tls.js';

declare global {
  interface Window {
    tlsGot?: string[];
  }
}

let ca: TestCa;
let server: ServerProcess;
let sdk: SdkPage;

beforeAll(async () => {
  ca = makeTestCa();
  const cert = makeServerCert(ca, 'browser');
  server = await startServerProcess({ tlsCertFile: cert.cert, tlsKeyFile: cert.key });
  sdk = await openSdkPage({ ignoreHTTPSErrors: true });
});
afterAll(async () => {
  await sdk?.close();
  await server?.stop();
});

it('a Chromium client and a Node client exchange data over wss://', async () => {
  expect(server.url.startsWith('wss://')).toBe(true);
  const node = await Client.connect(server.url, await server.token('tls-node'), { WebSocket: trustingWebSocket(ca.caPem) as unknown as WebSocketConstructor });
  const nodeRoom = await node.joinConference('tls-browser');
  const fromBrowser: string[] = [];
  let gotAll: () => void = () => undefined;
  const all = new Promise<void>((resolve) => (gotAll = resolve));
  await nodeRoom.makeRecvDataSession(100, (d) => {
    fromBrowser.push(new TextDecoder().decode(d));
    if (fromBrowser.length === 2) gotAll();
  });
  const toBrowser = await nodeRoom.makeSendDataSession(101, 'reliable-message');

  await sdk.page.evaluate(
    async ({ url, token }) => {
      const client = await window.Backchannel!.Client.connect(url, token);
      const room = await client.joinConference('tls-browser');
      window.tlsGot = [];
      await room.makeRecvDataSession(101, (d) => window.tlsGot!.push(new TextDecoder().decode(d)));
      const tx = await room.makeSendDataSession(100, 'reliable-message');
      tx.send('hello over wss');
      tx.send(new Uint8Array(40_000).fill(0x61)); // larger than one TLS record
    },
    { url: server.url, token: await server.token('tls-browser') },
  );
  await all;
  expect(fromBrowser[0]).toBe('hello over wss');
  expect(fromBrowser[1]).toBe('a'.repeat(40_000));
  toBrowser.send('hello, browser');
  await sdk.page.waitForFunction(() => window.tlsGot?.length === 1);
  expect(await sdk.page.evaluate(() => window.tlsGot)).toEqual(['hello, browser']);
  expect(sdk.errors).toEqual([]);
  await node.close();
});
