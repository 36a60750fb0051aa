/**
 * Pipelining (PROTOCOL.md): requests sent right behind `hello`, before the welcome, are handled by
 * the new session after the welcome, in order; `Client.connectAndJoin` joins that way, in one
 * round trip. Real server process, real sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type BackchannelError } from '@backchannel/client';
import { PROTOCOL_VERSION } from '@backchannel/protocol';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { rawConnect } from '../helpers/raw.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({});
});
afterAll(async () => {
  await server.stop();
});

const hello = (token: string) => ({ t: 'hello', id: 1, token, protocol: PROTOCOL_VERSION, capabilities: { protocol: PROTOCOL_VERSION, dataSession: true } });

describe('pipelining behind hello', () => {
  it('handles requests sent before the welcome after it, in order, as the session\'s first frames', async () => {
    const raw = await rawConnect(server.url);
    raw.send(hello(await server.token('pipe-a')));
    raw.send({ t: 'conf.join', id: 2, name: 'pipe-room', displayName: 'A' });
    raw.send({ t: 'room.leave', id: 3, room: 1 }); // the room the join above gets (1: the first)
    raw.send({ t: 'conf.join', id: 4, name: 'pipe-room-2' });
    await raw.waitFor((m) => 're' in m && m.re === 4);
    const replies = raw.messages.filter((m) => 're' in m).map((m) => [(m as { re: number }).re, m.t]);
    expect(replies).toEqual([
      [1, 'ok'],
      [2, 'ok'],
      [3, 'ok'],
      [4, 'ok'],
    ]);
    expect(raw.messages.find((m) => 're' in m && m.re === 2)).toMatchObject({ data: { room: 1, name: 'pipe-room', self: { displayName: 'A' } } });
    raw.ws.close();
  });

  it('discards what was pipelined behind a refused hello (nothing joins)', async () => {
    const watcher = await Client.connect(server.url, await server.token('pipe-watch'));
    const room = await watcher.joinConference('pipe-refused');
    const raw = await rawConnect(server.url);
    raw.send(hello('not-a-jwt'));
    raw.send({ t: 'conf.join', id: 2, name: 'pipe-refused' });
    const closed = await raw.closed;
    expect(closed.code).toBe(4001);
    expect(raw.messages.filter((m) => 're' in m)).toEqual([expect.objectContaining({ t: 'err', re: 1, error: expect.objectContaining({ code: ErrorCode.TokenMalformed }) })]);
    // A join that had slipped through would be announced to the watcher before this one.
    const b = await Client.connect(server.url, await server.token('pipe-b'));
    await b.joinConference('pipe-refused');
    await expect.poll(() => room.participants.size).toBe(1);
    expect([...room.participants.values()].map((p) => p.userId)).toEqual(['pipe-b']);
    await Promise.all([watcher.close(), b.close()]);
  });

  it('refuses frames beyond the first 16 pipelined ones as it does any request before a welcome (not-authenticated)', async () => {
    const raw = await rawConnect(server.url);
    // All in one write, so that the server reads them together with the hello.
    const socket = (raw.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    socket.cork();
    raw.send(hello(await server.token('pipe-many')));
    for (let i = 0; i < 20; i++) raw.send({ t: 'conf.join', id: 10 + i, name: `pipe-many-${i}` });
    socket.uncork();
    await raw.waitFor((m) => 're' in m && m.re === 25);
    await raw.waitFor((m) => 're' in m && m.re === 29);
    const byId = (id: number) => raw.messages.find((m) => 're' in m && m.re === id);
    for (let i = 0; i < 16; i++) expect(byId(10 + i)).toMatchObject({ t: 'ok' });
    for (let i = 16; i < 20; i++) expect(byId(10 + i)).toMatchObject({ t: 'err', error: { code: ErrorCode.NotAuthenticated } });
    raw.ws.close();
  });
});

describe('Client.connectAndJoin', () => {
  it('connects and joins in one call; the conference works like one from joinConference', async () => {
    const a = await Client.connect(server.url, await server.token('cj-a'));
    const ra = await a.joinConference('cj-room');
    const { client: b, conference: rb } = await Client.connectAndJoin(server.url, await server.token('cj-b'), 'cj-room', { displayName: 'Bee', metadata: { x: 1 } });
    expect(rb.name).toBe('cj-room');
    expect([...rb.participants.values()].map((p) => p.userId)).toEqual(['cj-a']);
    await expect.poll(() => [...ra.participants.values()].map((p) => [p.userId, p.displayName])).toEqual([['cj-b', 'Bee']]);
    // Data flows both ways on the pipelined session.
    const got: string[] = [];
    await ra.makeRecvDataSession(7, (d) => got.push(new TextDecoder().decode(d)));
    const tx = await rb.makeSendDataSession(7);
    tx.send(new TextEncoder().encode('hi'));
    await expect.poll(() => got).toEqual(['hi']);
    await Promise.all([a.close(), b.close()]);
  });

  it('rejects like joinConference when the join is refused, and closes the client', async () => {
    const err = await Client.connectAndJoin(server.url, await server.token('cj-denied', { conferences: ['other-*'] }), 'cj-secret').then(
      () => undefined,
      (e: BackchannelError) => e,
    );
    expect(err?.code).toBe(ErrorCode.PermissionDenied);
  });

  it('rejects like connect when the token is refused', async () => {
    await expect(Client.connectAndJoin(server.url, 'not-a-jwt', 'cj-room')).rejects.toMatchObject({ code: ErrorCode.TokenMalformed });
  });
});
