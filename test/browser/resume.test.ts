/**
 * Resume from a real browser: the page's client connects through a proxy that cuts its connection
 * several times while it and a Node client exchange reliable data both ways; the browser resumes
 * every time and nothing is lost or duplicated.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from '@backchannel/client';
import type * as BackchannelSdk from '@backchannel/client';
import { openSdkPage, type SdkPage } from '../helpers/browser.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

declare global {
  interface Window {
    resumeState?: { conf: BackchannelSdk.Conference; got: number[]; events: string[]; send(n: number): Promise<void> };
  }
}

let server: ServerProcess;
let proxy: FaultProxy;
let sdk: SdkPage;

beforeAll(async () => {
  server = await startServerProcess();
  proxy = await startFaultProxy(server.port);
  sdk = await openSdkPage();
});
afterAll(async () => {
  await sdk?.close();
  await proxy?.close();
  await server?.stop();
});

it('a browser client resumes after its connection is cut, losing and duplicating nothing', async () => {
  const node = await Client.connect(server.url, await server.token('node-peer'));
  const nodeRoom = await node.joinConference('browser-resume');
  const fromBrowser: number[] = [];
  await nodeRoom.makeRecvDataSession(100, (d) => fromBrowser.push(new DataView(d.buffer, d.byteOffset).getUint32(0)));
  const toBrowser = await nodeRoom.makeSendDataSession(101, 'reliable-message');

  const browserId = await sdk.page.evaluate(
    async ({ url, token }) => {
      const { Client } = window.Backchannel!;
      const client = await Client.connect(url, token);
      const conf = await client.joinConference('browser-resume');
      const events: string[] = [];
      client.on('reconnecting', (e) => events.push(`reconnecting:${e.reason.code}`));
      client.on('reconnected', (e) => events.push(`reconnected:${e.resumed}`));
      const got: number[] = [];
      await conf.makeRecvDataSession(101, (d) => got.push(new DataView(d.buffer, d.byteOffset).getUint32(0)));
      const tx = await conf.makeSendDataSession(100, 'reliable-message');
      let next = 0;
      const send = async (n: number) => {
        for (const end = next + n; next < end; next++) {
          const b = new Uint8Array(512);
          new DataView(b.buffer).setUint32(0, next);
          if (!tx.send(b)) await tx.drained();
        }
      };
      window.resumeState = { conf, got, events, send };
      return client.participantId;
    },
    { url: proxy.url, token: await server.token('browser-peer') },
  );

  const CUTS = 5;
  const PER_ROUND = 400;
  let sentToBrowser = 0;
  for (let round = 0; round < CUTS; round++) {
    const sending = sdk.page.evaluate((n) => window.resumeState!.send(n), PER_ROUND);
    for (let i = 0; i < PER_ROUND; i++) {
      const b = new Uint8Array(512);
      new DataView(b.buffer).setUint32(0, sentToBrowser++);
      if (!toBrowser.send(b)) await toBrowser.drained();
    }
    expect(proxy.cutAll()).toBe(1);
    await sending;
    await sdk.page.waitForFunction((r) => window.resumeState!.events.filter((e) => e === 'reconnected:true').length > r, round);
  }
  await sdk.page.waitForFunction((n) => window.resumeState!.got.length >= n, sentToBrowser);
  const deadline = Date.now() + 10_000;
  while (fromBrowser.length < CUTS * PER_ROUND && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const state = await sdk.page.evaluate(() => ({ got: window.resumeState!.got, events: window.resumeState!.events }));
  expect(state.events.filter((e) => e === 'reconnected:true')).toHaveLength(CUTS);
  expect(state.events).not.toContain('reconnected:false');
  expect(state.got).toEqual(Array.from({ length: sentToBrowser }, (_, i) => i));
  expect(fromBrowser).toEqual(Array.from({ length: CUTS * PER_ROUND }, (_, i) => i));
  expect(nodeRoom.participants.get(browserId)?.connectionState).toBe('connected');
  expect(sdk.errors).toEqual([]);
  await node.close();
}, 60_000);
