import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type RemoteParticipant } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ maxParticipantsPerRoom: 4, emptyRoomGraceMs: 2_000 });
});
afterAll(async () => {
  await server.stop();
});

const connect = async (user: string, grants: Record<string, unknown> = { conferences: ['*'] }) => Client.connect(server.url, await server.token(user, grants));

describe('conferences', () => {
  it('three participants see each other, joins, metadata updates and leaves with reasons', async () => {
    const ann = await connect('ann');
    const ben = await connect('ben');
    const cat = await connect('cat');
    const a = await ann.joinConference('standup', { displayName: 'Ann', metadata: { role: 'host' } });
    expect(a.participants.size).toBe(0);
    expect(a.self?.metadata).toEqual({ role: 'host' });
    const benJoined = next<RemoteParticipant>(a, 'participantJoined');
    const b = await ben.joinConference('standup', { displayName: 'Ben' });
    const seen = await benJoined;
    expect(seen).toMatchObject({ userId: 'ben', displayName: 'Ben', id: ben.participantId });
    expect(seen.capabilities).toMatchObject({ protocol: 3, dataSession: true });
    expect(b.participants.get(ann.participantId)).toMatchObject({ displayName: 'Ann', metadata: { role: 'host' } });
    const c = await cat.joinConference('standup');
    expect([...c.participants.values()].map((p) => p.userId).sort()).toEqual(['ann', 'ben']);
    expect(c.participants.get(ann.participantId)!.joinedAt).toBeLessThanOrEqual(Date.now());

    const updated = next<RemoteParticipant>(a, 'participantUpdated');
    const updatedForCat = next<RemoteParticipant>(c, 'participantUpdated');
    await b.updateMetadata({ mic: 'muted' });
    expect((await updated).metadata).toEqual({ mic: 'muted' });
    expect((await updatedForCat).metadata).toEqual({ mic: 'muted' });

    const left = next<RemoteParticipant>(a, 'participantLeft');
    let leftReason: { code: string } | undefined;
    a.on('participantLeft', (_p, r) => (leftReason = r));
    await c.leave();
    expect((await left).userId).toBe('cat');
    expect(leftReason?.code).toBe('left');
    expect(c.isEnded).toBe(true);

    const lost = next<RemoteParticipant>(a, 'participantLeft');
    a.on('participantLeft', (_p, r) => (leftReason = r));
    await ben.close();
    expect((await lost).userId).toBe('ben');
    expect(leftReason?.code).toBe('left'); // closing the client on purpose is leaving
    expect(a.participants.size).toBe(0);
    await ann.close();
    await cat.close();
  });

  it('refuses joining a full room with room-full, and joining twice with already-in-room', async () => {
    const clients = await Promise.all(['f1', 'f2', 'f3', 'f4', 'f5'].map((u) => connect(u)));
    for (const c of clients.slice(0, 4)) await c.joinConference('full');
    await expect(clients[4]!.joinConference('full')).rejects.toMatchObject({ code: ErrorCode.RoomFull, details: { maxParticipants: 4 } });
    await expect(clients[0]!.joinConference('full')).rejects.toMatchObject({ code: ErrorCode.AlreadyInRoom });
    await Promise.all(clients.map((c) => c.close()));
  });

  it('honours prefix grants and rejects oversized metadata', async () => {
    const c = await connect('prefix', { conferences: ['team-*'] });
    await c.joinConference('team-red');
    await expect(c.joinConference('teamblue')).rejects.toMatchObject({ code: ErrorCode.PermissionDenied });
    await expect(c.joinConference('team-big', { metadata: 'x'.repeat(5000) })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await c.close();
  });

  it('hidden participants are not listed or announced', async () => {
    const host = await connect('host');
    const spy = await connect('recorder', { conferences: ['*'], hidden: true });
    const room = await host.joinConference('hidden-test');
    let announced = false;
    room.on('participantJoined', () => (announced = true));
    const hiddenRoom = await spy.joinConference('hidden-test');
    expect(hiddenRoom.participants.has(host.participantId)).toBe(true);
    const other = await connect('other');
    const joined = next<RemoteParticipant>(room, 'participantJoined');
    const otherRoom = await other.joinConference('hidden-test');
    expect((await joined).userId).toBe('other');
    expect(announced).toBe(true); // only for "other"
    expect([...otherRoom.participants.values()].map((p) => p.userId)).toEqual(['host']);
    await Promise.all([host.close(), spy.close(), other.close()]);
  });

  it('an emptied room ends after the grace period; a rejoin within it keeps the room', async () => {
    const x = await connect('x');
    const r1 = await x.joinConference('grace');
    await r1.leave();
    const r2 = await x.joinConference('grace');
    expect(r2.roomNum).toBe(r1.roomNum);
    await r2.leave();
    // After the grace period a new room (new number) is created. A join that came before a late
    // timer ended the room keeps it: leave again and wait a whole grace period before the next try.
    await new Promise<void>((resolve) => {
      const tryJoin = async () => {
        const r = await x.joinConference('grace');
        if (r.roomNum !== r1.roomNum) return resolve();
        await r.leave();
        setTimeout(tryJoin, 2_050);
      };
      setTimeout(tryJoin, 2_050);
    });
    await x.close();
  });
});
