import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type BackchannelError, type CallInvite, type IncomingSession } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next } from '../helpers/events.js';
import { bytes, roomOf, text } from '../helpers/clients.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ maxMessageBytes: 4 * 1024 * 1024, maxSessionsPerParticipant: 4 });
});
afterAll(async () => {
  await server.stop();
});

/** Collects `count` deliveries of stream `id`. */
async function collect(room: Awaited<ReturnType<typeof roomOf>>[number]['room'], id: number, count: number) {
  const got: { data: Uint8Array; from: string; seq: number }[] = [];
  const done = deferred<typeof got>();
  const rx = await room.makeRecvDataSession(id, (data, info) => {
    got.push({ data, from: info.from, seq: info.seq });
    if (got.length === count) done.resolve(got);
  });
  return { rx, got, done: done.promise };
}

describe('reliable-message', () => {
  it('delivers every send exactly once, in order, with the same bytes, at every destination — including fragmented messages', async () => {
    const [a, b, c] = await roomOf(server, 'rm', ['rm-a', 'rm-b', 'rm-c']);
    const sizes = [0, 1, 100, 65_536, 65_537, 1_000_000, 3 * 1024 * 1024, 5];
    const atB = await collect(b!.room, 100, sizes.length);
    const atC = await collect(c!.room, 100, sizes.length);
    const tx = await a!.room.makeSendDataSession(100, 'reliable-message');
    expect(tx).toMatchObject({ streamId: 100, mode: 'reliable-message', destination: 'broadcast', priority: 'normal' });
    sizes.forEach((n, i) => tx.send(bytes(n, i)));
    for (const got of [await atB.done, await atC.done]) {
      expect(got.map((g) => g.data.byteLength)).toEqual(sizes);
      got.forEach((g, i) => expect(Buffer.from(g.data).equals(Buffer.from(bytes(sizes[i]!, i)))).toBe(true));
      expect(got.map((g) => g.seq)).toEqual(sizes.map((_, i) => i));
      expect(new Set(got.map((g) => g.from))).toEqual(new Set([a!.client.participantId]));
    }
    expect(tx.stats()).toMatchObject({ messagesSent: sizes.length, nextSeq: sizes.length });
    expect(atB.rx.stats().messagesReceived).toBe(sizes.length);
    await Promise.all([a, b, c].map((x) => x!.client.close()));
  });

  it('refuses a message over the limit at send() without harming the connection', async () => {
    const [a, b] = await roomOf(server, 'rm-big', ['big-a', 'big-b']);
    const atB = await collect(b!.room, 100, 1);
    const tx = await a!.room.makeSendDataSession(100);
    expect(() => tx.send(new Uint8Array(4 * 1024 * 1024 + 1))).toThrow(expect.objectContaining({ code: ErrorCode.MessageTooLarge }));
    tx.send('fine');
    expect(text((await atB.done)[0]!.data)).toBe('fine');
    expect((await atB.done)[0]!.seq).toBe(0); // the refused send consumed no sequence number
    await Promise.all([a, b].map((x) => x!.client.close()));
  });

  it('strings are sent as UTF-8', async () => {
    const [a, b] = await roomOf(server, 'utf8', ['u-a', 'u-b']);
    const atB = await collect(b!.room, 120, 1);
    const tx = await a!.room.makeSendDataSession(120);
    tx.send('héllo ✓ 🎉');
    expect(text((await atB.done)[0]!.data)).toBe('héllo ✓ 🎉');
    await Promise.all([a, b].map((x) => x!.client.close()));
  });
});

describe('reliable-bytes and unreliable chunking', () => {
  it('reliable-bytes delivers in order, losslessly, as chunks of the announced chunk size', async () => {
    const [a, b] = await roomOf(server, 'rb', ['rb-a', 'rb-b']);
    const chunk = a!.client.limits.chunkBytes;
    const payload = bytes(chunk * 3 + 10);
    const atB = await collect(b!.room, 101, 4 + 1);
    const tx = await a!.room.makeSendDataSession(101, 'reliable-bytes');
    tx.send(payload);
    tx.send('tail');
    const got = await atB.done;
    expect(got.map((g) => g.data.byteLength)).toEqual([chunk, chunk, chunk, 10, 4]);
    expect(Buffer.concat(got.slice(0, 4).map((g) => g.data)).equals(Buffer.from(payload))).toBe(true);
    expect(got.map((g) => g.seq)).toEqual([0, 0, 0, 0, 1]); // chunks of one send() share its sequence number
    await Promise.all([a, b].map((x) => x!.client.close()));
  });
});

describe('destinations and sequence numbers', () => {
  it('one participant, a subset, broadcast incl. later joiners; changeDestination applies after it resolves; removal shows as a gap', async () => {
    const [a, b, c] = await roomOf(server, 'dest', ['d-a', 'd-b', 'd-c']);
    const seen: Record<string, number[]> = { b: [], c: [], d: [] };
    await b!.room.makeRecvDataSession(100, (_d, i) => seen.b!.push(i.seq));
    await c!.room.makeRecvDataSession(100, (_d, i) => seen.c!.push(i.seq));
    const tx = await a!.room.makeSendDataSession(100, 'reliable-message', { destination: b!.client.participantId });
    tx.send('0'); // b only
    await tx.changeDestination([b!.client.participantId, c!.client.participantId]);
    tx.send('1'); // b and c
    await tx.changeDestination(c!.client.participantId);
    tx.send('2'); // c only
    await tx.changeDestination('broadcast');
    const d = await Client.connect(server.url, await server.token('d-d'));
    const dRoom = await d.joinConference('dest');
    await dRoom.makeRecvDataSession(100, (_d, i) => seen.d!.push(i.seq));
    tx.send('3'); // everyone, including the later joiner
    // A final marker on a second session, received by everyone, proves every earlier message has
    // been delivered (each receiver may be on another node of a cluster: each has its own fence).
    const fences = [deferred(), deferred(), deferred()];
    await Promise.all([b!.room, c!.room, dRoom].map((r, i) => r.makeRecvDataSession(101, () => fences[i]!.resolve())));
    const marker = await a!.room.makeSendDataSession(101);
    await tx.drained();
    marker.send('fence');
    await Promise.all(fences.map((f) => f.promise));
    expect(seen.d).toEqual([3]);
    expect(seen.c).toEqual([1, 2, 3]);
    expect(seen.b).toEqual([0, 1, 3]); // seq 2 is a gap: b was not a destination
    await Promise.all([a!.client.close(), b!.client.close(), c!.client.close(), d.close()]);
  }, 20_000);

  it('refuses unknown destinations and invalid stream ids clearly; auto-allocates ids', async () => {
    const [a] = await roomOf(server, 'dest-bad', ['db-a']);
    await expect(a!.room.makeSendDataSession(100, 'reliable-message', { destination: 'PA_nobody' })).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound });
    await expect(a!.room.makeSendDataSession(70000)).rejects.toMatchObject({ code: ErrorCode.StreamIdInvalid });
    await expect(a!.room.makeSendDataSession(65000)).rejects.toMatchObject({ code: ErrorCode.StreamIdInvalid });
    await expect(a!.room.makeSendDataSession(100, 'carrier-pigeon' as never)).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    const auto1 = await a!.room.makeSendDataSession(0);
    const auto2 = await a!.room.makeSendDataSession(undefined);
    expect(auto1.streamId).toBeGreaterThanOrEqual(1000);
    expect(auto2.streamId).not.toBe(auto1.streamId);
    await expect(a!.room.makeSendDataSession(auto1.streamId)).rejects.toMatchObject({ code: ErrorCode.StreamIdInUse });
    await a!.client.close();
  });
});

describe('incoming, late joiners and the pre-receiver buffer', () => {
  it('dataSessionIncoming fires on open and for late joiners on join, once per (sender, stream id)', async () => {
    const [a, b] = await roomOf(server, 'inc', ['i-a', 'i-b']);
    const events: IncomingSession[] = [];
    b!.room.on('dataSessionIncoming', (e) => events.push(e));
    const first = next<IncomingSession>(b!.room, 'dataSessionIncoming');
    const tx = await a!.room.makeSendDataSession(300, 'unreliable');
    expect(await first).toEqual({ streamId: 300, from: a!.client.participantId, mode: 'unreliable' });
    const tx2 = await a!.room.makeSendDataSession(301);
    await tx.changeDestination(b!.client.participantId);
    await tx.changeDestination('broadcast');
    const late = await Client.connect(server.url, await server.token('i-late'));
    const lateRoom = await late.joinConference('inc');
    const lateEvents: IncomingSession[] = [];
    lateRoom.on('dataSessionIncoming', (e) => lateEvents.push(e));
    const last = next(lateRoom, 'dataSessionIncoming');
    await last;
    if (lateEvents.length < 2) await next(lateRoom, 'dataSessionIncoming');
    expect(lateEvents.map((e) => e.streamId).sort()).toEqual([300, 301]);
    expect(lateRoom.incomingSessions.map((e) => e.streamId).sort()).toEqual([300, 301]);
    tx2.send('x');
    await tx2.drained();
    expect(events.map((e) => e.streamId)).toEqual([300, 301]); // no repeat after changeDestination
    await Promise.all([a!.client.close(), b!.client.close(), late.close()]);
  });

  it('holds data that arrives before the receiver is made and delivers it in order', async () => {
    const [a, b] = await roomOf(server, 'hold', ['h-a', 'h-b']);
    const fence = deferred();
    await b!.room.makeRecvDataSession(401, () => fence.resolve());
    const tx = await a!.room.makeSendDataSession(400);
    const probe = await a!.room.makeSendDataSession(401);
    for (let i = 0; i < 5; i++) tx.send(`early-${i}`);
    probe.send('after');
    await fence.promise; // the early messages reached b before any receiver for 400 existed
    const got: string[] = [];
    const rx = await b!.room.makeRecvDataSession(400, (d) => got.push(text(d)));
    expect(got).toEqual(['early-0', 'early-1', 'early-2', 'early-3', 'early-4']);
    expect(rx.stats()).toMatchObject({ messagesReceived: 5, droppedBeforeReceiver: 0 });
    await Promise.all([a!.client.close(), b!.client.close()]);
  });

  it('overflow of the pre-receiver buffer on a reliable session raises an error event and is counted', async () => {
    const a = await Client.connect(server.url, await server.token('o-a'));
    const b = await Client.connect(server.url, await server.token('o-b'), { pendingBufferBytes: 8 * 1024 });
    const ra = await a.joinConference('overflow');
    const rb = await b.joinConference('overflow');
    const error = next<BackchannelError>(rb, 'dataSessionError');
    const tx = await ra.makeSendDataSession(500);
    for (let i = 0; i < 12; i++) tx.send(new Uint8Array(1024));
    const err = await error;
    expect(err.code).toBe(ErrorCode.ReceiverBufferOverflow);
    expect(err.details).toMatchObject({ streamId: 500, from: a.participantId });
    const fence = deferred();
    await rb.makeRecvDataSession(501, () => fence.resolve());
    (await ra.makeSendDataSession(501)).send('fence');
    await fence.promise;
    const rx = await rb.makeRecvDataSession(500);
    expect(rx.stats().messagesReceived).toBe(8);
    expect(rx.stats().droppedBeforeReceiver).toBe(4);
    await Promise.all([a.close(), b.close()]);
  });

  it('held data that waits longer than pendingBufferMs is dropped and reported, never silently', async () => {
    const a = await Client.connect(server.url, await server.token('exp-a'));
    const b = await Client.connect(server.url, await server.token('exp-b'), { pendingBufferMs: 100 });
    const ra = await a.joinConference('expiry');
    const rb = await b.joinConference('expiry');
    const error = next<BackchannelError>(rb, 'dataSessionError');
    const tx = await ra.makeSendDataSession(510);
    tx.send('too early');
    tx.send('also too early');
    const err = await error;
    expect(err).toMatchObject({ code: ErrorCode.ReceiverBufferOverflow, details: { streamId: 510, count: 2 } });
    expect(err.message).toMatch(/100 ms/);
    const got: string[] = [];
    const rx = await rb.makeRecvDataSession(510, (d) => got.push(text(d)));
    expect(rx.stats().droppedBeforeReceiver).toBe(2);
    const arrived = deferred();
    rx.on('closed', () => arrived.resolve());
    tx.send('in time');
    await tx.close();
    await arrived.promise;
    expect(got).toEqual(['in time']);
    await Promise.all([a.close(), b.close()]);
  });

  it('a receiver can be iterated with for await', async () => {
    const [a, b] = await roomOf(server, 'iter', ['it-a', 'it-b']);
    const rx = await b!.room.makeRecvDataSession(600);
    const tx = await a!.room.makeSendDataSession(600);
    ['x', 'y', 'z'].forEach((s) => tx.send(s));
    const got: string[] = [];
    for await (const m of rx) {
      got.push(text(m.data));
      expect(m.from).toBe(a!.client.participantId);
      if (got.length === 3) break;
    }
    expect(got).toEqual(['x', 'y', 'z']);
    await Promise.all([a!.client.close(), b!.client.close()]);
  });
});

describe('unsupported stream ids and closing', () => {
  it('unsupportDataSession stops forwarding and every sender gets unsupported with the participant id', async () => {
    const [a, b, c] = await roomOf(server, 'unsup', ['us-a', 'us-b', 'us-c']);
    const fromB = await b!.room.makeSendDataSession(700);
    const fromA = await a!.room.makeSendDataSession(700);
    const gotA = next<{ participantId: string }>(fromA, 'unsupported');
    const gotB = next<{ participantId: string }>(fromB, 'unsupported');
    await c!.room.unsupportDataSession(700);
    expect((await gotA).participantId).toBe(c!.client.participantId);
    expect((await gotB).participantId).toBe(c!.client.participantId);
    // A session opened later on that id is reported unsupported at once.
    const fromA2 = await a!.room.makeSendDataSession(701);
    await fromA2.close();
    const d = await Client.connect(server.url, await server.token('us-d'), { streamIds: [100] });
    const later = next<{ participantId: string }>(fromA, 'unsupported');
    await d.joinConference('unsup');
    expect((await later).participantId).toBe(d.participantId); // capabilities.streamIds excludes 700
    await Promise.all([a, b, c].map((x) => x!.client.close()).concat(d.close()));
  });

  it('sessions close when the sender closes (after its last data), leaves, or the room ends; both ends see the reason', async () => {
    const [a, b] = await roomOf(server, 'close', ['cl-a', 'cl-b']);
    const got: string[] = [];
    const rx = await b!.room.makeRecvDataSession(800, (d) => got.push(text(d)));
    const tx = await a!.room.makeSendDataSession(800);
    for (let i = 0; i < 50; i++) tx.send(`m${i}`);
    const closedAtB = next<{ reason: { code: string }; from: string }>(rx, 'closed');
    const closedAtA = next<{ reason: { code: string } }>(tx, 'closed');
    await tx.close();
    expect((await closedAtA).reason.code).toBe('closed');
    const c = await closedAtB;
    expect(c).toMatchObject({ reason: { code: 'closed' }, from: a!.client.participantId });
    expect(got.length).toBe(50); // nothing lost: closed arrives after the last message
    expect(() => tx.send('late')).toThrow(expect.objectContaining({ code: ErrorCode.SessionClosed }));

    const tx2 = await a!.room.makeSendDataSession(801);
    const rx2 = await b!.room.makeRecvDataSession(801);
    const senderLeft = next<{ reason: { code: string } }>(rx2, 'closed');
    const tx2Closed = next<{ reason: { code: string } }>(tx2, 'closed');
    await a!.room.leave();
    expect((await senderLeft).reason.code).toBe('sender-left');
    expect((await tx2Closed).reason.code).toBe('room-ended');
    await Promise.all([a!.client.close(), b!.client.close()]);
  });
});

describe('limits and grants', () => {
  it('max open sessions per participant', async () => {
    const [a] = await roomOf(server, 'lim', ['lim-a']);
    for (let i = 0; i < 4; i++) await a!.room.makeSendDataSession(900 + i);
    await expect(a!.room.makeSendDataSession(950)).rejects.toMatchObject({ code: ErrorCode.TooManySessions, details: { limit: 4 } });
    await a!.client.close();
  });

  it('stream-id allow-list in the token, and subscribeData=false receivers are reported unsupported', async () => {
    const a = await Client.connect(server.url, await server.token('g-a', { conferences: ['*'], streamIds: [100, 101] }));
    const mute = await Client.connect(server.url, await server.token('g-mute', { conferences: ['*'], subscribeData: false }));
    const ra = await a.joinConference('grants');
    await mute.joinConference('grants');
    await expect(ra.makeSendDataSession(102)).rejects.toMatchObject({ code: ErrorCode.StreamIdNotAllowed });
    const tx = await ra.makeSendDataSession(100);
    expect((await next<{ participantId: string }>(tx, 'unsupported')).participantId).toBe(mute.participantId);
    await Promise.all([a.close(), mute.close()]);
  });
});

describe('in a 1:1 call', () => {
  it('data sessions work in a call exactly as in a conference', async () => {
    const alice = await Client.connect(server.url, await server.token('call-a'));
    const bob = await Client.connect(server.url, await server.token('call-b'));
    const invited = next<CallInvite>(bob, 'incomingCall');
    const call = await alice.makeCall('call-b');
    const connected = next(call, 'connected');
    const answered = await (await invited).accept();
    await connected;
    expect(call.isDataSessionSupported()).toBe(true);
    const incoming = next<IncomingSession>(answered, 'dataSessionIncoming');
    const atBob = await collect(answered as never, 100, 2);
    const tx = await call.makeSendDataSession(100, 'reliable-message', { destination: bob.participantId });
    tx.send('ping');
    tx.send(bytes(200_000));
    expect((await incoming).from).toBe(alice.participantId);
    const got = await atBob.done;
    expect(text(got[0]!.data)).toBe('ping');
    expect(got[1]!.data.byteLength).toBe(200_000);
    const back = deferred<string>();
    await call.makeRecvDataSession(101, (d) => back.resolve(text(d)));
    (await answered.makeSendDataSession(101)).send('pong');
    expect(await back.promise).toBe('pong');
    const rxClosed = next<{ reason: { code: string } }>(atBob.rx, 'closed');
    const txClosed = next<{ reason: { code: string } }>(tx, 'closed');
    await call.end();
    expect((await txClosed).reason.code).toBe('room-ended');
    expect((await rxClosed).reason.code).toBe('room-ended');
    await Promise.all([alice.close(), bob.close()]);
  });
});
