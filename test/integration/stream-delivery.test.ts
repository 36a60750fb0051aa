/**
 * Success is never reported for lost data: a stream send resolves only once every destination's
 * SDK confirmed the whole stream, and otherwise rejects saying, per destination, why; a session
 * whose destinations are all gone says so; streams that never end do not hold the incoming slots
 * forever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Client, ErrorCode, type BackchannelError, type ClientOptions, type StreamReader, type WebSocketConstructor } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ maxDataBitrateKbps: 0, resumeWindowMs: 300 });
});
afterAll(async () => {
  await server.stop();
});

let n = 0;
async function join(user: string, room: string, options: ClientOptions = {}) {
  const client = await Client.connect(server.url, await server.token(`${user}${n}`), options);
  return { client, room: await client.joinConference(`${room}-${n}`) };
}

/** A client whose socket can be dropped as if its process died (no close handshake, no reconnect). */
async function killable(user: string, room: string) {
  let socket: WebSocket | undefined;
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url);
      socket = this;
    }
  }
  const joined = await join(user, room, { WebSocket: Recording as unknown as WebSocketConstructor, reconnect: false });
  return { ...joined, kill: () => socket!.terminate() };
}

describe('stream sends report what was delivered', () => {
  it('sendBytes to a receiver killed mid-transfer rejects, naming it', async () => {
    n++;
    const { client: a, room: ra } = await join('kill-a', 'kill');
    const b = await killable('kill-b', 'kill');
    b.room.registerStreamHandler('file', (reader) => {
      reader.on('progress', ({ bytes }) => bytes >= 1024 * 1024 && b.kill());
      void reader.readAll().catch(() => undefined);
    });
    const err = await ra.sendBytes('file', new Uint8Array(8 * 1024 * 1024)).catch((e: BackchannelError) => e);
    expect(err).toMatchObject({ code: ErrorCode.StreamNotDelivered, details: { delivered: [] } });
    const failed = (err as BackchannelError).details!.failed as { participantId: string; reason: { code: string } }[];
    expect(failed).toHaveLength(1);
    expect(failed[0]!.participantId).toBe(b.client.participantId);
    expect(['receiver-left', 'resume-buffer-overflow']).toContain(failed[0]!.reason.code);
    await a.close();
    await b.client.close();
  });

  it('sendBytes rejects when the receiver refuses it with too-many-streams; resolves with who got it otherwise', async () => {
    n++;
    const { client: a, room: ra } = await join('tms-a', 'tms');
    const { client: b, room: rb } = await join('tms-b', 'tms', { maxIncomingStreams: 1 });
    const { client: c, room: rc } = await join('tms-c', 'tms');
    const readers: StreamReader[] = [];
    rb.registerStreamHandler('t', (r) => void readers.push(r));
    rc.registerStreamHandler('t', (r) => void r.readAll());
    const open = await ra.streamBytes('t', { destination: b.participantId }); // takes b's only slot
    await open.write(new Uint8Array(10));
    const err = await ra.sendBytes('t', new Uint8Array(1000)).catch((e: BackchannelError) => e);
    expect(err).toMatchObject({
      code: ErrorCode.StreamRefused,
      details: { failed: [{ participantId: b.participantId, reason: { code: 'too-many-streams' } }], delivered: [c.participantId] },
    });
    await open.close();
    const ok = await ra.sendBytes('t', new Uint8Array(1000));
    expect(new Set(ok.delivered)).toEqual(new Set([b.participantId, c.participantId]));
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('a receiver that closes right after reading a stream has confirmed it', async () => {
    n++;
    const { client: a, room: ra } = await join('cls-a', 'cls');
    const { client: b, room: rb } = await join('cls-b', 'cls');
    rb.registerStreamHandler('t', async (reader) => {
      await reader.readAll();
      await b.close();
    });
    expect(await ra.sendText('t', 'bye', { destination: b.participantId })).toMatchObject({ delivered: [b.participantId] });
    await a.close();
  });

  it('incoming streams that never end are aborted after streamIdleTimeoutMs, freeing their slots for other senders', async () => {
    n++;
    const { client: a, room: ra } = await join('idle-a', 'idle');
    const { client: b, room: rb } = await join('idle-b', 'idle', { maxIncomingStreams: 2, streamIdleTimeoutMs: 300 });
    const { client: c, room: rc } = await join('idle-c', 'idle');
    const aborted: unknown[] = [];
    const texts: string[] = [];
    rb.registerStreamHandler('t', async (reader) => {
      try {
        texts.push((await reader.readAll()) as string);
      } catch (e) {
        aborted.push(e);
      }
    });
    const w1 = await ra.streamText('t', { destination: b.participantId });
    const w2 = await ra.streamText('t', { destination: b.participantId });
    const refused = [next<{ reason: { code: string } }>(w1, 'refused'), next<{ reason: { code: string } }>(w2, 'refused')];
    await w1.write('never');
    await w2.write('ending');
    expect((await Promise.all(refused)).map((r) => r.reason.code)).toEqual(['idle-timeout', 'idle-timeout']);
    expect(aborted).toEqual([
      expect.objectContaining({ code: ErrorCode.StreamAborted, details: { reason: 'idle-timeout' } }),
      expect.objectContaining({ code: ErrorCode.StreamAborted, details: { reason: 'idle-timeout' } }),
    ]);
    await expect(w1.write('more')).rejects.toMatchObject({ code: ErrorCode.StreamRefused });
    // The slots are free again: another sender's stream gets through.
    expect((await rc.sendText('t', 'hello', { destination: b.participantId })).delivered).toEqual([b.participantId]);
    expect(texts).toEqual(['hello']);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});

describe('receivers that cannot answer', () => {
  it('a receiver that may not publish still confirms (answers need no publish grant); a hidden one is not waited for', async () => {
    n++;
    const { client: a, room: ra } = await join('ro-a', 'ro', { streamConfirmTimeoutMs: 3_000 });
    const b = await Client.connect(server.url, await server.token(`ro-b${n}`, { conferences: ['*'], publishData: false }));
    const rb = await b.joinConference(`ro-${n}`);
    const h = await Client.connect(server.url, await server.token(`ro-h${n}`, { conferences: ['*'], hidden: true }));
    const rh = await h.joinConference(`ro-${n}`);
    const heard = deferred<string>();
    rb.registerStreamHandler('t', async (reader) => heard.resolve((await reader.readAll()) as string));
    const hiddenHeard = deferred<string>();
    rh.registerStreamHandler('t', async (reader) => hiddenHeard.resolve((await reader.readAll()) as string));
    const err = await ra.sendText('t', 'hello').catch((e: BackchannelError) => e);
    expect(await heard.promise).toBe('hello');
    expect(await hiddenHeard.promise).toBe('hello');
    expect(err).toEqual({ id: expect.any(String), delivered: [b.participantId] });
    // It may answer, but not send anything else on the control channel.
    await expect(rb.performRpc({ destination: a.participantId, method: 'x', payload: '', timeoutMs: 500 })).rejects.toMatchObject({ code: expect.stringMatching(/permission-denied|rpc-/) });
    await Promise.all([a.close(), b.close(), h.close()]);
  });
});

describe('a session with no destination left', () => {
  it('send() returns false and sends nothing once every destination left; noDestination fires once', async () => {
    n++;
    const { client: a, room: ra } = await join('nd-a', 'nd');
    const { client: b } = await join('nd-b', 'nd');
    const { client: c, room: rc } = await join('nd-c', 'nd');
    const tx = await ra.makeSendDataSession(100, 'reliable-message', { destination: [b.participantId, c.participantId] });
    expect(tx.send('to both')).toBe(true);
    const gotC = deferred<string>();
    await rc.makeRecvDataSession(100, (d) => gotC.resolve(new TextDecoder().decode(d)));
    expect(await gotC.promise).toBe('to both');
    const events: unknown[] = [];
    tx.on('noDestination', (e) => events.push(e));
    const bLeft = next(ra, 'participantLeft');
    await b.close();
    await bLeft;
    expect(tx.hasDestination).toBe(true); // c is still there
    expect(tx.send('to c')).toBe(true);
    const cLeft = next(ra, 'participantLeft');
    await c.close();
    await cLeft;
    expect(events).toEqual([{ participantIds: [b.participantId, c.participantId] }]);
    expect(tx.hasDestination).toBe(false);
    expect(tx.send('to nobody')).toBe(false);
    expect(tx.send('to nobody')).toBe(false);
    expect(events).toHaveLength(1);
    expect(tx.stats()).toMatchObject({ messagesSent: 2, unsentNoDestination: 2 });
    await a.close();
  });
});
