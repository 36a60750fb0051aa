/**
 * The server-wide bound on peer connections (`webrtcMaxPeerConnections`): a client beyond it is
 * told `webrtc-unavailable` and its `unreliable` data stays on the WebSocket, still reaching a
 * participant that is on WebRTC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type TransportInfo } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred } from '../helpers/events.js';

let server: ServerProcess;
const clients: Client[] = [];
beforeAll(async () => {
  server = await startServerProcess({ webrtcMaxPeerConnections: 1 });
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await server.stop();
});

/** The client's WebRTC path once it is no longer idle or connecting. */
function settled(c: Client): Promise<TransportInfo> {
  const done = (i: TransportInfo) => i.webrtc !== 'idle' && i.webrtc !== 'connecting';
  if (done(c.transport)) return Promise.resolve(c.transport);
  return new Promise((resolve) => {
    const off = c.on('transportChanged', (i) => {
      if (!done(i)) return;
      off();
      resolve(i);
    });
  });
}

describe('webrtcMaxPeerConnections', () => {
  it('refuses the peer connection beyond the bound; that client stays on the WebSocket and its data still flows both ways', async () => {
    const a = await Client.connect(server.url, await server.token('lim-a'));
    const b = await Client.connect(server.url, await server.token('lim-b'));
    clients.push(a, b);
    const ra = await a.joinConference('lim');
    const rb = await b.joinConference('lim');
    const txA = await ra.makeSendDataSession(5, 'unreliable');
    expect(await settled(a)).toMatchObject({ unreliable: 'webrtc', webrtc: 'open' });
    const txB = await rb.makeSendDataSession(6, 'unreliable');
    const info = await settled(b);
    expect(info).toMatchObject({ unreliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable } });
    expect(info.reason?.message).toMatch(/most peer connections \(1\)/);
    // Both directions still deliver: a's datagrams reach b over b's WebSocket, and back.
    const atB = deferred<Uint8Array>();
    const atA = deferred<Uint8Array>();
    await rb.makeRecvDataSession(5, (d) => atB.resolve(d));
    await ra.makeRecvDataSession(6, (d) => atA.resolve(d));
    const send = (tx: typeof txA, done: Promise<unknown>) => {
      const timer = setInterval(() => tx.send(new Uint8Array([7, 7, 7])), 20); // datagrams may be lost: repeat until one arrives
      return done.finally(() => clearInterval(timer));
    };
    await Promise.all([send(txA, atB.promise), send(txB, atA.promise)]);
    expect([...(await atB.promise)]).toEqual([7, 7, 7]);
    expect([...(await atA.promise)]).toEqual([7, 7, 7]);
  });
});
