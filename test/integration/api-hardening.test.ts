/**
 * Server API hardening against the real server process: every list is paginated (10,000 calls no
 * longer come back in one answer), a conference cannot shadow a call, and a participant's
 * connection can be revoked for good.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type Call, type CallInvite, type Reason, type RemoteParticipant } from '@backchannel/client';
import { ServerApiClient, type ApiCall } from '@backchannel/server-sdk';
import { PROTOCOL_VERSION } from '@backchannel/protocol';
import { API_KEY, API_SECRET, CLI, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';
import { http, receiver } from '../helpers/api.js';
import { rawConnect } from '../helpers/raw.js';

const exec = promisify(execFile);

let server: ServerProcess;
let api: ServerApiClient;
let admin: string;

beforeAll(async () => {
  server = await startServerProcess({
    apiRateLimit: 0,
    ringTimeoutMs: 600_000,
    busyWhenInCall: false,
    emptyRoomGraceMs: 60_000,
    // The per-client limits of the core would stop the flood long before 10,000 calls; the API
    // must be bounded on its own.
    maxRingingCallsPerParticipant: 100_000,
    controlRateLimit: 0,
  });
  api = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
  admin = await server.token('app-server', { admin: true });
});
afterAll(async () => {
  await server.stop();
});

const connect = async (user: string, grants: Record<string, unknown> = { conferences: ['*'] }) => Client.connect(server.url, await server.token(user, grants));

describe('pagination', () => {
  const CALLS = 10_000;
  let caller: Client;
  let made: Call[];

  beforeAll(async () => {
    caller = await connect('dialer');
    made = [];
    // Ringing calls to a user who never connects: they ring for ten minutes.
    for (let i = 0; i < CALLS; i += 1000) made.push(...(await Promise.all(Array.from({ length: 1000 }, () => caller.makeCall('nobody')))));
  }, 120_000);
  afterAll(async () => {
    await caller.close();
  });

  it('GET /calls with 10,000 calls answers one page of 100 and a cursor, not everything', async () => {
    const res = await http(server.httpUrl, 'GET', '/calls', { token: admin });
    expect(res.status).toBe(200);
    expect(res.body.calls).toHaveLength(100);
    expect(typeof res.body.next).toBe('string');
    expect(Number(res.headers.get('content-length'))).toBeLessThan(200_000);
  });

  it('walks every call exactly once, oldest first, in pages of up to 1,000', async () => {
    const seen: ApiCall[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await api.listCalls({ limit: 1000, ...(cursor ? { cursor } : {}) });
      expect(page.calls.length).toBeLessThanOrEqual(1000);
      seen.push(...page.calls);
      cursor = page.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(CALLS / 1000);
    expect(new Set(seen.map((c) => c.callId))).toEqual(new Set(made.map((c) => c.callId)));
    expect(seen).toHaveLength(CALLS);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.createdAt).toBeGreaterThanOrEqual(seen[i - 1]!.createdAt);
  });

  it('keeps its place while calls end and start during a walk', async () => {
    const first = await api.listCalls({ limit: 1000 });
    const ids = first.calls.map((c) => c.callId);
    // End one already listed and one not yet listed; start a new one.
    await api.endCall(ids[0]!);
    const later = (await api.listCalls({ limit: 1, cursor: first.next! })).calls[0]!.callId;
    await api.endCall(later);
    const fresh = await caller.makeCall('nobody');
    const rest: string[] = [];
    for await (const c of api.calls({ limit: 1000 })) rest.push(c.callId);
    const tail: string[] = [];
    let cursor: string | undefined = first.next;
    while (cursor) {
      const page = await api.listCalls({ limit: 1000, cursor });
      tail.push(...page.calls.map((c) => c.callId));
      cursor = page.next;
    }
    expect(tail).not.toContain(later);
    expect(new Set([...ids, ...tail]).size).toBe(ids.length + tail.length); // nothing twice
    expect(tail.at(-1)).toBe(fresh.callId); // the new call comes last
    expect(rest).toHaveLength(CALLS - 1); // 10,000 − 2 ended + 1 new
  });

  it('refuses a limit out of range and a cursor it did not issue', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=ten', 'limit=-5', 'cursor=not-a-cursor', `cursor=${Buffer.from('["x",1]').toString('base64url')}`]) {
      const res = await http(server.httpUrl, 'GET', `/calls?${query}`, { token: admin });
      expect(res.status, query).toBe(400);
      expect(res.body.code, query).toBe(ErrorCode.InvalidArgument);
    }
  });

  it('pages participants (by join time) and conferences (by creation time) in the order of one big page', async () => {
    const clients = await Promise.all(['pg1', 'pg2', 'pg3', 'pg4', 'pg5'].map((u) => connect(u)));
    for (const c of clients) await c.joinConference('paged-room');
    const whole = (await api.listParticipants('paged-room', { limit: 1000 })).participants;
    expect(whole.map((p) => p.id).sort()).toEqual(clients.map((c) => c.participantId).sort());
    for (let i = 1; i < whole.length; i++) expect(whole[i]!.joinedAt).toBeGreaterThanOrEqual(whole[i - 1]!.joinedAt);
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await api.listParticipants('paged-room', { limit: 2, ...(cursor ? { cursor } : {}) });
      pages.push(page.participants.map((p) => p.id));
      cursor = page.next;
    } while (cursor);
    const ids = whole.map((p) => p.id);
    expect(pages).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);

    for (const [i, c] of clients.slice(0, 3).entries()) await c.joinConference(`paged-conf-${i}`);
    const names: string[] = [];
    for await (const conf of api.conferences({ limit: 1 })) names.push(conf.name);
    expect(names).toEqual((await api.listConferences({ limit: 1000 })).conferences.map((c) => c.name));
    expect(names.sort()).toEqual(['paged-conf-0', 'paged-conf-1', 'paged-conf-2', 'paged-room']);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('the CLI follows pages and takes --limit', async () => {
    const env = { ...process.env, BACKCHANNEL_URL: server.httpUrl, BACKCHANNEL_API_KEY: API_KEY, BACKCHANNEL_API_SECRET: API_SECRET };
    const limited = JSON.parse((await exec(process.execPath, [CLI, 'rooms', 'list', '--json', '--limit', '1500'], { env, maxBuffer: 64 * 1024 * 1024 })).stdout);
    expect(limited.calls).toHaveLength(1500);
    expect(limited.moreCalls).toBe(true);
    const all = JSON.parse((await exec(process.execPath, [CLI, 'rooms', 'list', '--json'], { env, maxBuffer: 64 * 1024 * 1024 })).stdout);
    expect(all.calls).toHaveLength(CALLS - 1);
    expect(all.moreCalls).toBeUndefined();
  });
});

describe('rooms: a conference cannot shadow a call', () => {
  it('a conference named after a call id gets none of the call’s app data, participants or kicks', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const incoming = next<CallInvite>(bob, 'incomingCall');
    const call = await alice.makeCall('bob');
    const connected = next(call, 'connected');
    const answered = await (await incoming).accept();
    await connected;
    // The attacker's grant matches any name, so it creates a conference named like the call.
    const mallory = await connect('mallory', { conferences: ['*'] });
    const trap = await mallory.joinConference(call.callId);
    const stolen = await receiver(trap, 100);
    const genuine = await receiver(answered, 100);

    const sent = await api.sendData(call.callId, { streamId: 100, data: 'call secret' });
    expect(sent.room).toEqual({ kind: 'call', name: call.callId });
    expect(sent.recipients.sort()).toEqual([alice.participantId, bob.participantId].sort());
    expect((await genuine.until(1))[0]).toMatchObject({ text: 'call secret', from: 'server' });
    expect((await api.listParticipants(call.callId)).participants.map((p) => p.userId).sort()).toEqual(['alice', 'bob']);
    await expect(api.kickParticipant(call.callId, mallory.participantId)).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound });

    // The conference is still reachable, by its qualified id; what arrives there is only what is sent there.
    const marker = await api.sendData(`conference:${call.callId}`, { streamId: 100, data: 'to the conference' });
    expect(marker).toMatchObject({ room: { kind: 'conference', name: call.callId }, recipients: [mallory.participantId] });
    expect((await stolen.until(1)).map((m) => m.text)).toEqual(['to the conference']);
    expect((await api.listParticipants(`call:${call.callId}`)).participants).toHaveLength(2);
    expect((await api.listParticipants(`conference:${call.callId}`)).participants.map((p) => p.userId)).toEqual(['mallory']);
    await Promise.all([alice.close(), bob.close(), mallory.close()]);
  });

  it('an unqualified id is a call id when it starts with CA_, else a conference name; 404 otherwise', async () => {
    const carol = await connect('carol');
    await carol.joinConference('CA_notacall');
    await expect(api.listParticipants('CA_notacall')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound, details: { status: 404 } });
    expect((await api.listParticipants('conference:CA_notacall')).participants).toHaveLength(1);
    await expect(api.listParticipants('call:CA_nosuchcall')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound });
    await carol.close();
  });
});

describe('revoking a participant', () => {
  it('ends its calls and rooms, disconnects it with connection-revoked and the reason, and it cannot resume', async () => {
    const target = await connect('rv-target');
    const peer = await connect('rv-peer');
    const callee = await connect('rv-callee');
    await target.joinConference('rv-room');
    const peerRoom = await peer.joinConference('rv-room');
    const incoming = next<CallInvite>(callee, 'incomingCall');
    const call = await target.makeCall('rv-callee');
    const answered = await (await incoming).accept();

    const disconnected = next<Reason>(target, 'disconnected');
    const left = new Promise<[RemoteParticipant, Reason]>((resolve) => peerRoom.on('participantLeft', (p, r) => resolve([p, r])));
    const callEnded = next<{ reason: Reason }>(answered, 'ended');
    await api.revokeParticipant(target.participantId, { reason: 'abuse of the service' });
    expect(await disconnected).toEqual({ code: ErrorCode.ConnectionRevoked, message: 'abuse of the service' });
    const [who, why] = await left;
    expect(who.id).toBe(target.participantId);
    expect(why).toEqual({ code: 'kicked', message: 'abuse of the service' });
    expect((await callEnded).reason.code).toBe('ended-by-server');
    expect(target.connectionState).toBe('disconnected');
    expect((await api.listParticipants('rv-room')).participants.map((p) => p.userId)).toEqual(['rv-peer']);
    await expect(api.getCall(call.callId)).rejects.toMatchObject({ code: ErrorCode.CallNotFound });
    await expect(api.revokeParticipant(target.participantId)).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound, details: { status: 404 } });
    await Promise.all([peer.close(), callee.close()]);
  });

  it('voids the resume credential, whether the connection is up or already lost', async () => {
    for (const lostFirst of [false, true]) {
      const raw = await rawConnect(server.url);
      const welcome = (await raw.hello(await server.token(`rv-raw-${lostFirst}`))) as { data: { participantId: string; resume: { credential: string } } };
      const { participantId, resume } = welcome.data;
      if (lostFirst) raw.ws.terminate();
      expect((await http(server.httpUrl, 'POST', `/participants/${participantId}/revoke`, { token: admin, body: { reason: 'bye' } })).status).toBe(204);
      if (!lostFirst) {
        expect(await raw.waitFor((m) => m.t === 'goodbye')).toMatchObject({ reason: { code: ErrorCode.ConnectionRevoked, message: 'bye' } });
        await raw.closed;
      }
      const again = await rawConnect(server.url);
      again.send({ t: 'resume', id: 1, protocol: PROTOCOL_VERSION, participantId, credential: resume.credential, next: randomBytes(32).toString('base64url'), received: 0 });
      expect(await again.waitFor((m) => 're' in m && m.re === 1)).toMatchObject({ t: 'err', error: { code: ErrorCode.ResumeNotFound } });
      again.ws.close();
    }
  });

  it('the CLI revokes by participant id', async () => {
    const target = await connect('rv-cli');
    const disconnected = next<Reason>(target, 'disconnected');
    const env = { ...process.env, BACKCHANNEL_URL: server.httpUrl, BACKCHANNEL_API_KEY: API_KEY, BACKCHANNEL_API_SECRET: API_SECRET };
    const { stdout } = await exec(process.execPath, [CLI, 'participants', 'revoke', target.participantId, '--reason', 'from the shell'], { env });
    expect(stdout).toBe(`revoked ${target.participantId}\n`);
    expect(await disconnected).toEqual({ code: ErrorCode.ConnectionRevoked, message: 'from the shell' });
  });
});
