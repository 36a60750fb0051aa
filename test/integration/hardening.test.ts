/**
 * What one hostile or careless client can make the server hold, and what it can learn or do beyond
 * its grants: each case was possible before and must now be bounded or refused. Real server
 * process, real sockets.
 */
import { connect as netConnect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Client } from '@backchannel/client';
import { encodeControlFrame, encodeDataFrame } from '@backchannel/protocol';
import { receiver } from '../helpers/api.js';
import { connectPausable } from '../helpers/clients.js';
import { next } from '../helpers/events.js';
import { rawConnect, type RawClient } from '../helpers/raw.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const servers: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});
async function server(config: Record<string, unknown> = {}) {
  const s = await startServerProcess({ maxDataBitrateKbps: 0, ...config });
  servers.push(s);
  return s;
}
const KiB = 1024;
const reply = (raw: RawClient, id: number) => raw.waitFor((m) => 're' in m && m.re === id);

describe('memory a single client can make the server hold', () => {
  it('a client that sends requests and never reads is disconnected as client-too-slow (replies count like data)', async () => {
    const s = await server({ replayBufferMaxBytes: 256 * KiB, sendWindowBytes: 64 * KiB, controlRateLimit: 0 });
    const watcher = await Client.connect(s.url, await s.token('nr-watch'));
    const room = await watcher.joinConference('no-read');
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('nr-bad'));
    raw.send({ t: 'conf.join', id: 2, name: 'no-read', metadata: 'x'.repeat(3000) });
    await reply(raw, 2);
    const left = new Promise<{ code: string }>((resolve) => room.on('participantLeft', (_p, r) => resolve(r)));
    (raw.ws as unknown as { _socket: { pause(): void } })._socket.pause(); // never reads again
    // Each request is answered with an error of ~150 bytes; they pile up unread.
    for (let i = 0; i < 5_000; i++) raw.send({ t: 'call.get', id: 100 + i, callId: `CA_${'n'.repeat(60)}` });
    expect((await left).code).toBe('client-too-slow');
    await watcher.close();
  });

  it('with the default bounds, a client that stops reading is dropped as client-too-slow once reading from it has stopped', async () => {
    const s = await server({ pingIntervalMs: 300 });
    const watcher = await Client.connect(s.url, await s.token('nr2-watch'));
    const room = await watcher.joinConference('no-read-2');
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('nr2-bad'));
    raw.send({ t: 'conf.join', id: 2, name: 'no-read-2', metadata: 'x'.repeat(3000) });
    await reply(raw, 2);
    const left = new Promise<{ code: string }>((resolve) => room.on('participantLeft', (_p, r) => resolve(r)));
    (raw.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const flood = setInterval(() => {
      if (raw.ws.readyState !== WebSocket.OPEN) return clearInterval(flood);
      for (let i = 0; i < 500; i++) raw.send({ t: 'call.get', id: 1000 + i, callId: `CA_${'n'.repeat(60)}` });
    }, 5);
    expect((await left).code).toBe('client-too-slow');
    clearInterval(flood);
    await watcher.close();
  });

  it('empty data frames are not free: a paused receiver of 0-byte messages is detached', async () => {
    const s = await server({ receiverQueueMaxBytes: 64 * KiB, slowReceiverTimeoutMs: 0, socketHighWaterBytes: 16 * KiB });
    const a = await Client.connect(s.url, await s.token('zero-a'), { highWaterMarkBytes: 1 << 30, lowWaterMarkBytes: 1 << 20 });
    const slow = await connectPausable(s, 'zero-slow');
    const ra = await a.joinConference('zero');
    await slow.client.joinConference('zero');
    const tx = await ra.makeSendDataSession(100, 'reliable-bytes');
    const detached = next<{ reason: { code: string } }>(tx, 'receiverDetached', 20_000);
    slow.pause();
    const empty = new Uint8Array(0);
    let sent = 0;
    let done = false;
    void detached.then(() => (done = true));
    while (!done && sent < 200_000) {
      tx.send(empty);
      if (++sent % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    expect((await detached).reason.code).toBe('receiver-too-slow');
    // Every frame counts 128 bytes in the server's send window and queue, so the detach comes
    // after a bounded number of them (before, none ever came).
    expect(sent).toBeLessThan(150_000);
    slow.resume();
    await Promise.all([a.close(), slow.client.close()]);
  });

  it('sessions toward one connection are bounded together (connectionQueueMaxBytes)', async () => {
    const s = await server({ receiverQueueMaxBytes: 1 << 30, connectionQueueMaxBytes: 256 * KiB, slowReceiverTimeoutMs: 0, socketHighWaterBytes: 16 * KiB, sendWindowBytes: 64 * KiB });
    const a = await Client.connect(s.url, await s.token('multi-a'), { highWaterMarkBytes: 1 << 30, lowWaterMarkBytes: 1 << 20 });
    const slow = await connectPausable(s, 'multi-slow');
    const ra = await a.joinConference('multi');
    await slow.client.joinConference('multi');
    const sessions = await Promise.all([101, 102, 103, 104].map((id) => ra.makeSendDataSession(id, 'reliable-bytes')));
    const detached = Promise.race(sessions.map((tx) => next<{ reason: { code: string; message: string } }>(tx, 'receiverDetached', 20_000)));
    slow.pause();
    const chunk = new Uint8Array(8 * KiB);
    for (let i = 0; i < 60; i++) for (const tx of sessions) tx.send(chunk); // 4 × 480 KiB: each under its own limit
    const d = await detached;
    expect(d.reason.code).toBe('receiver-too-slow');
    expect(d.reason.message).toMatch(/over all its sessions/);
    slow.resume();
    await Promise.all([a.close(), slow.client.close()]);
  });
});

describe('slow receivers', () => {
  it('a receiver that reads, only more slowly than the sender writes, is backpressure, not detached', async () => {
    const s = await server({ slowReceiverTimeoutMs: 800, backlogReportMs: 20, socketHighWaterBytes: 16 * KiB, sendWindowBytes: 64 * KiB });
    const a = await Client.connect(s.url, await s.token('slowread-a'), { highWaterMarkBytes: 256 * KiB, lowWaterMarkBytes: 64 * KiB });
    const slow = await connectPausable(s, 'slowread-b');
    const ra = await a.joinConference('slowread');
    const rb = await slow.client.joinConference('slowread');
    const got = await receiver(rb, 100);
    const tx = await ra.makeSendDataSession(100, 'reliable-bytes');
    let detached = false;
    tx.on('receiverDetached', () => (detached = true));
    // The receiver reads in short spells: about a fifth of the time, for three timeouts' worth.
    const reader = setInterval(() => {
      slow.resume();
      setTimeout(() => slow.pause(), 20);
    }, 100);
    const chunk = new Uint8Array(16 * KiB);
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < 2_500) {
      if (!tx.send(chunk)) await tx.drained();
      sent++;
    }
    clearInterval(reader);
    slow.resume();
    await got.until(sent, 20_000);
    expect(detached).toBe(false);
    await Promise.all([a.close(), slow.client.close()]);
  });
});

describe('per-participant limits', () => {
  it('limits conferences per participant, ringing calls, and control requests per second', async () => {
    const s = await server({ maxConferencesPerParticipant: 3, maxRingingCallsPerParticipant: 2, controlRateLimit: 20, controlRateBurst: 20 });
    const c = await Client.connect(s.url, await s.token('lim', { conferences: ['*'], calls: true }));
    for (let i = 0; i < 3; i++) await c.joinConference(`lim-${i}`);
    await expect(c.joinConference('lim-3')).rejects.toMatchObject({ code: 'too-many-rooms' });
    await c.makeCall('nobody-1');
    await c.makeCall('nobody-2');
    await expect(c.makeCall('nobody-3')).rejects.toMatchObject({ code: 'too-many-calls' });
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => c.getCall(`CA_none${i}`)));
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok'));
    expect(codes.filter((x) => x === 'rate-limited').length).toBeGreaterThan(10);
    await c.close();
  });

  it('refuses connections beyond maxConnectionsPerAddress with 429 too-many-connections', async () => {
    const s = await server({ maxConnectionsPerAddress: 2 });
    const one = await rawConnect(s.url);
    const two = await rawConnect(s.url);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(s.url);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(429);
    one.ws.close();
    await one.closed;
    const three = await rawConnect(s.url); // a slot is free again
    two.ws.close();
    three.ws.close();
  });

  it('closes a TCP connection that never sends its request headers', async () => {
    const s = await server({ httpHeadersTimeoutMs: 300 });
    const socket = netConnect(s.port, '127.0.0.1');
    const t0 = Date.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()).on('error', () => undefined));
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

describe('input that must be refused cheaply', () => {
  it('before hello only hello/resume are looked at; oversized destination lists and deep JSON are refused', async () => {
    const s = await server();
    const raw = await rawConnect(s.url);
    raw.send({ t: 'ds.open', id: 9, room: 1, streamId: 100, mode: 'unreliable', priority: 'normal', destination: Array.from({ length: 3000 }, (_, i) => `PA_${i}`) });
    expect(await reply(raw, 9)).toMatchObject({ t: 'err', error: { code: 'not-authenticated' } });
    await raw.hello(await s.token('cheap'));
    raw.send({ t: 'conf.join', id: 2, name: 'cheap' });
    const joined = (await reply(raw, 2)) as { data: { room: number } };
    raw.send({ t: 'ds.open', id: 3, room: joined.data.room, streamId: 100, mode: 'unreliable', priority: 'normal', destination: Array.from({ length: 3000 }, (_, i) => `PA_${i}`) });
    expect(await reply(raw, 3)).toMatchObject({ t: 'err', error: { code: 'bad-message' } });
    const deep = '['.repeat(60_000) + ']'.repeat(60_000);
    raw.sendBytes(encodeControlFrame(`{"t":"room.metadata","id":4,"room":${joined.data.room},"metadata":${deep}}`));
    const err = await raw.waitFor((m) => m.t === 'error');
    expect(err).toMatchObject({ error: { code: 'invalid-argument' } });
    raw.send({ t: 'room.metadata', id: 5, room: joined.data.room, metadata: { ok: true } }); // the connection is fine
    expect(await reply(raw, 5)).toMatchObject({ t: 'ok' });
    raw.ws.close();
  });
});

describe('data integrity', () => {
  it('a receiver that joins in the middle of a fragmented message starts at the next whole one', async () => {
    const s = await server();
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('frag-tx'));
    raw.send({ t: 'conf.join', id: 2, name: 'frag' });
    const room = ((await reply(raw, 2)) as { data: { room: number } }).data.room;
    raw.send({ t: 'ds.open', id: 3, room, streamId: 100, mode: 'reliable-message', priority: 'normal', destination: 'broadcast' });
    await reply(raw, 3);
    const frame = (seq: number, fin: boolean, text: string) => encodeDataFrame({ mode: 'reliable-message', fin, streamId: 100, room, sender: 0, seq }, new TextEncoder().encode(text));
    raw.sendBytes(frame(0, false, 'first-'));
    const late = await Client.connect(s.url, await s.token('frag-rx'));
    const rl = await late.joinConference('frag');
    const got = await receiver(rl, 100);
    raw.sendBytes(frame(0, true, 'tail'));
    raw.sendBytes(frame(1, false, 'whole-'));
    raw.sendBytes(frame(1, true, 'message'));
    const all = await got.until(1);
    expect(all.map((g) => g.text)).toEqual(['whole-message']);
    expect(all[0]!.seq).toBe(1);
    raw.ws.close();
    await late.close();
  });

  it('auto-allocated stream ids are unique in the room, across senders', async () => {
    const s = await server();
    const a = await Client.connect(s.url, await s.token('auto-a'));
    const b = await Client.connect(s.url, await s.token('auto-b'));
    const ra = await a.joinConference('auto');
    const rb = await b.joinConference('auto');
    const first = await ra.makeSendDataSession(undefined);
    const second = await rb.makeSendDataSession(undefined);
    expect(first.streamId).toBeGreaterThanOrEqual(1000);
    expect(second.streamId).not.toBe(first.streamId);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('grants and privacy', () => {
  it('an expired token stops new actions while the running call goes on; a refreshed token allows them again', async () => {
    const s = await server();
    const a = await Client.connect(s.url, await s.token('exp-a', { conferences: ['*'] }, { ttl: 4 }));
    const b = await Client.connect(s.url, await s.token('exp-b'));
    const ra = await a.joinConference('exp');
    const rb = await b.joinConference('exp');
    const tx = await ra.makeSendDataSession(100);
    const got = await receiver(rb, 100);
    await new Promise((r) => setTimeout(r, Math.max(0, a.tokenExpiresAt - Date.now() + 50)));
    await expect(a.joinConference('exp-2')).rejects.toMatchObject({ code: 'token-expired' });
    await expect(ra.makeSendDataSession(101)).rejects.toMatchObject({ code: 'token-expired' });
    tx.send('still flowing');
    expect((await got.until(1))[0]!.text).toBe('still flowing');
    await expect(a.refreshToken(await s.token('someone-else'))).rejects.toMatchObject({ code: 'permission-denied' });
    await a.refreshToken(await s.token('exp-a'));
    expect(a.tokenExpiresAt).toBeGreaterThan(Date.now() + 60_000);
    await a.joinConference('exp-2');
    await Promise.all([a.close(), b.close()]);
  });

  it('nothing a visible participant observes depends on a hidden one', async () => {
    const s = await server({ maxParticipantsPerRoom: 2 });
    const a = await Client.connect(s.url, await s.token('vis-a'));
    const ghost = await Client.connect(s.url, await s.token('ghost', { conferences: ['*'], hidden: true }), { streamIds: [500] });
    const ra = await a.joinConference('ghosts');
    const rg = await ghost.joinConference('ghosts');
    // ds.unsupported does not name the hidden participant (it does not take stream 100).
    const tx = await ra.makeSendDataSession(100);
    const unsupported: string[] = [];
    tx.on('unsupported', (e) => unsupported.push(e.participantId));
    // Addressing the hidden participant answers as if nobody were there.
    await expect(ra.makeSendDataSession(101, 'reliable-message', { destination: ghost.participantId })).rejects.toMatchObject({ code: 'participant-not-found' });
    // The room is full at 2 visible members: the hidden one does not count.
    const b = await Client.connect(s.url, await s.token('vis-b'));
    await b.joinConference('ghosts');
    const c = await Client.connect(s.url, await s.token('vis-c'));
    await expect(c.joinConference('ghosts')).rejects.toMatchObject({ code: 'room-full' });
    tx.send('x');
    await next(rg, 'dataSessionIncoming').catch(() => undefined);
    expect(unsupported).toEqual([]);
    await Promise.all([a.close(), ghost.close(), b.close(), c.close()]);
  });

  it('metadata and display name at join need updateOwnMetadata; declining needs the calls grant', async () => {
    const s = await server();
    const limited = await Client.connect(s.url, await s.token('nometa', { conferences: ['*'], updateOwnMetadata: false, calls: false }));
    await expect(limited.joinConference('meta', { metadata: { role: 'admin' } })).rejects.toMatchObject({ code: 'permission-denied' });
    await expect(limited.joinConference('meta', { displayName: 'Someone Else' })).rejects.toMatchObject({ code: 'permission-denied' });
    await limited.joinConference('meta');
    const caller = await Client.connect(s.url, await s.token('caller', { calls: true }));
    const call = await caller.makeCall('nometa');
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('nometa', { conferences: ['*'], calls: false }));
    raw.send({ t: 'call.decline', id: 2, callId: call.callId });
    expect(await reply(raw, 2)).toMatchObject({ t: 'err', error: { code: 'permission-denied' } });
    expect(call.state).toBe('ringing');
    raw.ws.close();
    await Promise.all([limited.close(), caller.close()]);
  });

  it('reserved stream ids carry only well-formed built-in protocol traffic', async () => {
    const s = await server();
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('res-raw', { conferences: ['*'], streamIds: [100] }));
    raw.send({ t: 'conf.join', id: 2, name: 'reserved' });
    const room = ((await reply(raw, 2)) as { data: { room: number } }).data.room;
    raw.send({ t: 'ds.open', id: 3, room, streamId: 65535, mode: 'reliable-message', priority: 'normal', destination: 'broadcast' });
    expect(await reply(raw, 3)).toMatchObject({ t: 'err', error: { code: 'stream-id-invalid' } });
    raw.send({ t: 'ds.open', id: 4, room, streamId: 65001, mode: 'reliable-message', priority: 'normal', destination: 'broadcast' });
    expect(await reply(raw, 4)).toMatchObject({ t: 'ok' });
    raw.sendBytes(encodeDataFrame({ mode: 'reliable-message', fin: true, streamId: 65001, room, sender: 0, seq: 0 }, new TextEncoder().encode('arbitrary app data')));
    expect(await raw.waitFor((m) => m.t === 'error')).toMatchObject({ error: { code: 'bad-frame' } });
    raw.ws.close();
  });
});
