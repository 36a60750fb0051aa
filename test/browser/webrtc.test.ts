/**
 * The WebRTC datagram path from a real browser: the browser bundle in headless Chromium uses the
 * native RTCPeerConnection to reach a real server process, and exchanges `unreliable` data with a
 * Node client in the same room. The path is negotiated on first use (the browser's first
 * `unreliable` session) and asserted (the browser's `client.transport` and datagram counters, the
 * server's metrics), in a room that mixes WebRTC and WebSocket-only participants; the browser stays on (or falls back to) the WebSocket when it has WebRTC off, when
 * the server has, and when UDP to the server is blocked (nftables).
 * On loopback, Chromium needs two flags to use host candidates at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@backchannel/client';
import type * as BackchannelSdk from '@backchannel/client';
import { deferred } from '../helpers/events.js';
import { scrape } from '../helpers/metrics.js';
import { openSdkPage, type SdkPage } from '../helpers/browser.js';
import { blockUdpPorts, nftUnavailable } from '../helpers/netns.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const WEBRTC_ARGS = ['--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'];

interface PageState {
  client: BackchannelSdk.Client;
  conf: BackchannelSdk.Conference;
  tx?: BackchannelSdk.SendDataSession;
  received: number;
  changes: string[];
}

declare global {
  interface Window {
    rtcTest?: PageState;
  }
}

let sdk: SdkPage;
const servers: ServerProcess[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  sdk = await openSdkPage({ args: WEBRTC_ARGS });
});

afterAll(async () => {
  await sdk?.close();
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
});

/** Connects the page's client, joins `room` and counts data on stream 21 (no `unreliable` session yet). */
async function pageJoin(s: ServerProcess, user: string, room: string, webrtc: boolean) {
  const token = await s.token(user);
  return sdk.page.evaluate(
    async ({ url, token, room, webrtc }) => {
      const B = window.Backchannel!;
      const client = await B.Client.connect(url, token, { webrtc });
      const changes: string[] = [];
      client.on('transportChanged', (i) => changes.push(`${i.webrtc}/${i.unreliable}`));
      const conf = await client.joinConference(room);
      const state: PageState = { client, conf, received: 0, changes };
      await conf.makeRecvDataSession(21, () => void state.received++);
      window.rtcTest = state;
      return { transport: client.transport, participantId: client.participantId };
    },
    { url: s.url, token, room, webrtc },
  );
}

/** Opens the page's `unreliable` session on stream 22, which negotiates the path; resolves once it has settled. */
async function pageOpen() {
  return sdk.page.evaluate(async () => {
    const state = window.rtcTest!;
    const { client } = state;
    state.tx = await state.conf.makeSendDataSession(22, 'unreliable');
    const pending = (i: BackchannelSdk.TransportInfo) => i.webrtc === 'idle' || i.webrtc === 'connecting';
    if (pending(client.transport)) await new Promise<void>((resolve) => client.on('transportChanged', (i) => !pending(i) && resolve()));
    return client.transport;
  });
}

async function pageSend(count: number, size: number) {
  return sdk.page.evaluate(
    async ({ count, size }) => {
      const state = window.rtcTest!;
      const tx = state.tx ?? (state.tx = await state.conf.makeSendDataSession(22, 'unreliable'));
      for (let i = 0; i < count; i++) {
        tx.send(new Uint8Array(size).fill(i & 0xff));
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
      }
    },
    { count, size },
  );
}

const pageState = () =>
  sdk.page.evaluate(() => {
    const s = window.rtcTest!;
    return { received: s.received, transport: s.client.transport, stats: s.client.transportStats, changes: s.changes };
  });

const pageClose = () => sdk.page.evaluate(() => window.rtcTest?.client.close());

/** A Node client in `room` that receives on stream 22 and sends `count` messages on stream 21. */
async function nodePeer(s: ServerProcess, user: string, room: string, webrtc: boolean) {
  const c = await Client.connect(s.url, await s.token(user), { webrtc });
  clients.push(c);
  const conf = await c.joinConference(room);
  let received = 0;
  const got = deferred();
  let want = Infinity;
  await conf.makeRecvDataSession(22, () => {
    if (++received >= want) got.resolve();
  });
  return {
    client: c,
    expect: (n: number) => {
      want = n;
      if (received >= n) got.resolve();
      return Promise.race([got.promise, new Promise((r) => setTimeout(r, 3_000))]).then(() => received);
    },
    send: async (count: number, size: number) => {
      const tx = await conf.makeSendDataSession(21, 'unreliable');
      // The session negotiates the path (if it is not yet): send once it has settled.
      const pending = () => c.transport.webrtc === 'idle' || c.transport.webrtc === 'connecting';
      if (pending()) await new Promise<void>((resolve) => c.on('transportChanged', () => !pending() && resolve()));
      for (let i = 0; i < count; i++) {
        tx.send(new Uint8Array(size).fill(i & 0xff));
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

async function until(check: () => Promise<boolean>, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('WebRTC datagram path (Chromium)', () => {
  it('the browser sends and receives unreliable data as datagrams, in a room with a WebSocket-only Node client', async () => {
    const s = await startServerProcess();
    servers.push(s);
    const joined = await pageJoin(s, 'chrome-rtc', 'chrome-mixed', true);
    // Nothing negotiated until the browser uses unreliable.
    expect(joined.transport).toEqual({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'idle' });
    expect((await scrape(`${s.httpUrl}/metrics`)).value('backchannel_webrtc_peer_connections')).toBe(0);
    const node = await nodePeer(s, 'node-ws', 'chrome-mixed', false);
    expect(node.client.transport.webrtc).toBe('off');
    expect(await pageOpen()).toEqual({ unreliable: 'webrtc', reliable: 'websocket', webrtc: 'open' });

    // Browser → server over the data channel, server → Node over the WebSocket.
    await pageSend(40, 100);
    expect(await node.expect(40)).toBe(40);
    // Node → server over the WebSocket, server → browser over the data channel; 3 000 bytes: fragmented.
    await node.send(20, 3_000);
    await until(async () => (await pageState()).received >= 20);
    const st = await pageState();
    expect(st.received).toBe(20);
    expect(st.transport.unreliable).toBe('webrtc');
    expect(st.stats.datagramsOut).toBeGreaterThanOrEqual(40);
    expect(st.stats.datagramsIn).toBeGreaterThanOrEqual(20 * 3);
    expect(st.changes).toEqual(['connecting/websocket', 'open/webrtc']); // on first use, then none since
    const m = await scrape(`${s.httpUrl}/metrics`);
    expect(m.value('backchannel_webrtc_datagrams_in_total')).toBeGreaterThanOrEqual(40);
    expect(m.value('backchannel_webrtc_datagrams_out_total')).toBeGreaterThanOrEqual(60);
    expect(m.value('backchannel_webrtc_peer_connections')).toBe(1);
    await pageClose();
    expect(sdk.errors).toEqual([]);
  });

  /**
   * 20 unreliable messages from the page to `node` and 20 back all arrive, and the page sent and
   * received none of them as datagrams (its path is the WebSocket). Returns the page's state.
   */
  async function bothWaysOverWebSocket(node: { expect(n: number): Promise<number>; send(n: number, size: number): Promise<unknown> }) {
    await pageSend(20, 100);
    expect(await node.expect(20)).toBe(20);
    await node.send(20, 100);
    await until(async () => (await pageState()).received >= 20);
    const st = await pageState();
    expect(st.received).toBe(20);
    expect(st.stats.datagramsOut + st.stats.datagramsIn).toBe(0);
    return st;
  }

  it('stays on the WebSocket when the browser has WebRTC off, beside a Node client on WebRTC', async () => {
    const s = await startServerProcess();
    servers.push(s);
    const joined = await pageJoin(s, 'chrome-nowebrtc', 'chrome-nowebrtc', false);
    expect(joined.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'off', reason: { code: 'webrtc-unavailable' } });
    const node = await nodePeer(s, 'node-rtc', 'chrome-nowebrtc', true);
    await bothWaysOverWebSocket(node);
    expect(node.client.transportStats.datagramsOut).toBeGreaterThanOrEqual(20);
    await pageClose();
  });

  it('falls back to the WebSocket within the negotiation time when UDP to the server is blocked', async (ctx) => {
    if (nftUnavailable()) {
      ctx.skip();
      return;
    }
    // Below the ephemeral range (32768–60999 on Linux) and apart from webrtc.test.ts's ranges.
    const min = 28_000 + (process.pid % 200) * 20;
    const unblock = blockUdpPorts(min, min + 19);
    try {
      const s = await startServerProcess({ webrtcPortMin: min, webrtcPortMax: min + 19, webrtcNegotiationTimeoutMs: 1_500 });
      servers.push(s);
      await pageJoin(s, 'chrome-blocked', 'chrome-blocked', true);
      const started = Date.now();
      expect(await pageOpen()).toMatchObject({ unreliable: 'websocket', webrtc: 'failed', reason: { code: 'webrtc-failed' } });
      expect(Date.now() - started).toBeLessThan(5_000);
      const node = await nodePeer(s, 'node-blocked', 'chrome-blocked', false);
      await pageSend(20, 100);
      expect(await node.expect(20)).toBe(20);
      await pageClose();
    } finally {
      unblock();
    }
  });

  it('falls back to the WebSocket when the server has WebRTC off, and says why', async () => {
    const s = await startServerProcess({ webrtc: false });
    servers.push(s);
    const joined = await pageJoin(s, 'chrome-off', 'chrome-off', true);
    expect(joined.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'unavailable', reason: { code: 'webrtc-unavailable' } });
    const node = await nodePeer(s, 'node-off', 'chrome-off', true);
    await bothWaysOverWebSocket(node);
    await pageClose();
  });
});
