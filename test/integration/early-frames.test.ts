/**
 * Early frames (PROTOCOL.md): the hello and the requests pipelined behind it carried in the
 * upgrade request as subprotocols, handled by the server as the socket opens; what it does not
 * take is sent on the socket as before. Real server process, real sockets, and the SDK through its
 * public `WebSocket` option.
 */
import { connect as tcpConnect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, LeaveReason, type BackchannelError, type Reason, type WebSocketConstructor } from '@backchannel/client';
import { EARLY_SUBPROTOCOL, MAX_EARLY_CHARS, PROTOCOL_VERSION, SUBPROTOCOL, earlyProtocols, encodeControlFrame } from '@backchannel/protocol';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { rawConnect } from '../helpers/raw.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({});
});
afterAll(async () => {
  await server.stop();
});

const frame = (msg: Record<string, unknown>) => encodeControlFrame(JSON.stringify(msg));
const hello = (token: string) => frame({ t: 'hello', id: 1, token, protocol: PROTOCOL_VERSION, capabilities: { protocol: PROTOCOL_VERSION, dataSession: true } });

/** A `ws` WebSocket that records what each connection offered and what the server selected. */
function recordingWebSocket() {
  const seen: { offered: string[]; selected?: string }[] = [];
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols ?? []);
      const entry: { offered: string[]; selected?: string } = { offered: [protocols ?? []].flat() };
      seen.push(entry);
      this.once('open', () => (entry.selected = this.protocol));
    }
  }
  return { WebSocket: Recording as unknown as WebSocketConstructor, seen };
}

/** A `ws` WebSocket whose `open` event reaches the SDK `delayMs` late, as over a slow link. */
function slowOpenWebSocket(delayMs: number): WebSocketConstructor {
  class SlowOpen extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols ?? []);
    }
    override addEventListener(type: string, listener: (event: any) => void, options?: object): void {
      const delayed = type === 'open' ? (event: unknown) => void setTimeout(() => listener(event), delayMs) : listener;
      (super.addEventListener as (type: string, listener: (event: any) => void, options?: object) => void)(type, delayed, options);
    }
  }
  return SlowOpen as unknown as WebSocketConstructor;
}

/**
 * A TCP relay to the server that answers an upgrade request carrying early frames with
 * `431 Request Header Fields Too Large`, as a proxy with a small header limit would; it counts them.
 */
async function headerLimitedRelay(port: number): Promise<{ url: string; refused: () => number; close: () => void }> {
  let refused = 0;
  const sockets = new Set<import('node:net').Socket>();
  const relay: TcpServer = createTcpServer((inbound) => {
    sockets.add(inbound);
    inbound.on('error', () => undefined);
    inbound.once('data', (head) => {
      if (head.includes('bcf.')) {
        refused++;
        inbound.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const outbound = tcpConnect(port, '127.0.0.1');
      sockets.add(outbound);
      outbound.on('error', () => inbound.destroy());
      outbound.write(head);
      inbound.pipe(outbound).pipe(inbound);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(relay.address() as { port: number }).port}/`,
    refused: () => refused,
    close: () => {
      for (const s of sockets) s.destroy();
      relay.close();
    },
  };
}

describe('early frames in the upgrade request', () => {
  it('a raw client gets its welcome and join reply without sending a frame on the socket', async () => {
    const protocols = earlyProtocols([hello(await server.token('early-raw')), frame({ t: 'conf.join', id: 2, name: 'early-room' })])!;
    expect(protocols.slice(0, 2)).toEqual([SUBPROTOCOL, EARLY_SUBPROTOCOL]);
    const raw = await rawConnect(server.url, protocols);
    expect(raw.ws.protocol).toBe(EARLY_SUBPROTOCOL);
    await raw.waitFor((m) => 're' in m && m.re === 2);
    expect(raw.messages.filter((m) => 're' in m).map((m) => [(m as { re: number }).re, m.t])).toEqual([
      [1, 'ok'],
      [2, 'ok'],
    ]);
    expect(raw.messages.find((m) => 're' in m && m.re === 2)).toMatchObject({ data: { name: 'early-room' } });
    raw.ws.close();
  });

  it('a refused early hello is answered and closed as on the socket (4001), and what was behind it is discarded', async () => {
    const watcher = await Client.connect(server.url, await server.token('early-watch'));
    const room = await watcher.joinConference('early-refused');
    const raw = await rawConnect(server.url, earlyProtocols([hello('not-a-jwt'), frame({ t: 'conf.join', id: 2, name: 'early-refused' })])!);
    expect((await raw.closed).code).toBe(4001);
    expect(raw.messages.filter((m) => 're' in m)).toEqual([expect.objectContaining({ t: 'err', re: 1, error: expect.objectContaining({ code: ErrorCode.TokenMalformed }) })]);
    const b = await Client.connect(server.url, await server.token('early-b'));
    await b.joinConference('early-refused');
    await expect.poll(() => room.participants.size).toBe(1);
    expect([...room.participants.values()].map((p) => p.userId)).toEqual(['early-b']);
    await Promise.all([watcher.close(), b.close()]);
  });

  it('malformed early frames are not taken: the server selects the plain subprotocol and the hello on the socket works', async () => {
    for (const bad of [['bcf.not*base64'], ['bcf.'], []]) {
      const raw = await rawConnect(server.url, [SUBPROTOCOL, EARLY_SUBPROTOCOL, ...bad]);
      expect(raw.ws.protocol).toBe(SUBPROTOCOL);
      expect(raw.messages).toEqual([]);
      expect(await raw.hello(await server.token('early-bad'))).toMatchObject({ t: 'ok', re: 1 });
      raw.ws.close();
    }
    // Offered without the plain subprotocol and not taken: no subprotocol is selected (the client
    // refuses the connection), never `backchannel.early`.
    await expect(rawConnect(server.url, [EARLY_SUBPROTOCOL, 'bcf.not*base64'])).rejects.toThrow(/subprotocol/i);
    // Early frames that are not a hello are handled as any first frame that is not one.
    const raw = await rawConnect(server.url, earlyProtocols([frame({ t: 'conf.join', id: 7, name: 'x' })])!);
    expect(await raw.waitFor((m) => 're' in m && m.re === 7)).toMatchObject({ t: 'err', error: { code: ErrorCode.NotAuthenticated } });
    raw.ws.close();
  });

  it('an upgrade refused with early frames (a proxy header limit) is tried once more without them', async () => {
    const relay = await headerLimitedRelay(Number(new URL(server.url).port));
    try {
      const { client, conference } = await Client.connectAndJoin(relay.url, await server.token('early-431'), 'early-431-room');
      expect(relay.refused()).toBe(1);
      expect(conference.name).toBe('early-431-room');
      await client.close();
    } finally {
      relay.close();
    }
  });

  it('a client offering no subprotocol is answered with none and connects as before', async () => {
    const raw = await rawConnect(server.url);
    expect(raw.ws.protocol).toBe('');
    expect(await raw.hello(await server.token('early-none'))).toMatchObject({ t: 'ok', re: 1 });
    raw.ws.close();
  });

  it('the SDK carries hello and join in the upgrade by default, sends them on the socket with earlyFrames: false or a token too long for the header, and errors the same way', async () => {
    const rec = recordingWebSocket();
    const a = await Client.connectAndJoin(server.url, await server.token('early-sdk-a'), 'early-sdk', {}, { WebSocket: rec.WebSocket });
    expect(rec.seen.at(-1)).toMatchObject({ selected: EARLY_SUBPROTOCOL });
    expect(rec.seen.at(-1)!.offered).toHaveLength(4); // backchannel, backchannel.early, hello, join
    const b = await Client.connectAndJoin(server.url, await server.token('early-sdk-b'), 'early-sdk', {}, { WebSocket: rec.WebSocket, earlyFrames: false });
    expect(rec.seen.at(-1)).toEqual({ offered: [], selected: '' });
    await expect.poll(() => a.conference.participants.size).toBe(1);
    expect([...b.conference.participants.values()].map((p) => p.userId)).toEqual(['early-sdk-a']);

    // Data flows on a session whose first frames came in the upgrade.
    const got = new Promise<Uint8Array>((resolve) => void b.conference.makeRecvDataSession(5, resolve));
    const tx = await a.conference.makeSendDataSession(5, 'reliable-message');
    await tx.send(new Uint8Array([4, 2]));
    expect([...(await got)]).toEqual([4, 2]);

    // A token that does not fit the header: refused the same way, sent on the socket.
    const long = 'x'.repeat(MAX_EARLY_CHARS);
    const refused = (await Client.connect(server.url, long, { WebSocket: rec.WebSocket }).catch((e: unknown) => e)) as BackchannelError;
    expect(rec.seen.at(-1)).toEqual({ offered: [], selected: '' });
    const refusedEarly = (await Client.connect(server.url, 'not-a-jwt', { WebSocket: rec.WebSocket }).catch((e: unknown) => e)) as BackchannelError;
    expect(rec.seen.at(-1)).toMatchObject({ selected: EARLY_SUBPROTOCOL });
    expect(refused.code).toBe(ErrorCode.TokenMalformed);
    expect(refusedEarly.code).toBe(ErrorCode.TokenMalformed);
    await Promise.all([a.client.close(), b.client.close()]);
  });

  it('a connect that times out after the server took the early hello and join leaves the room at once', async () => {
    const watcher = await Client.connect(server.url, await server.token('early-late-watch'));
    const room = await watcher.joinConference('early-late');
    const left = new Promise<Reason>((resolve) => room.on('participantLeft', (_p, reason) => resolve(reason)));
    const error = (await Client.connectAndJoin(server.url, await server.token('early-late'), 'early-late', {}, { WebSocket: slowOpenWebSocket(300), connectTimeoutMs: 100 }).catch((e: unknown) => e)) as BackchannelError;
    expect(error.code).toBe(ErrorCode.ConnectFailed);
    // Not kept for a resume (30 s) that the caller, told the connect failed, will never make.
    expect(await left).toMatchObject({ code: LeaveReason.Left });
    expect(room.participants.size).toBe(0);
    await watcher.close();
  });
});
