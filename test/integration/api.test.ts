/**
 * Server API (`/api/v1/`) against the real server process: auth, every endpoint, validation and
 * 404s, app control messages as seen by real clients, rate limiting, the OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackchannelError, Client, ErrorCode, type Call, type CallInvite, type Conference, type RemoteParticipant, type Reason } from '@backchannel/client';
import { ServerApiClient, createAccessToken } from '@backchannel/server-sdk';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';
import { http, receiver } from '../helpers/api.js';

let server: ServerProcess;
let api: ServerApiClient;
let admin: string;

beforeAll(async () => {
  server = await startServerProcess({ emptyRoomGraceMs: 100, maxMetadataBytes: 256, apiMaxBodyBytes: 600_000, apiRateLimit: 0 });
  api = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
  admin = await server.token('app-server', { admin: true });
});
afterAll(async () => {
  await server.stop();
});

const connect = async (user: string, grants: Record<string, unknown> = { conferences: ['*'] }) => Client.connect(server.url, await server.token(user, grants));

async function room(name: string, users: string[]): Promise<{ client: Client; conf: Conference }[]> {
  const out = [];
  for (const u of users) {
    const client = await connect(u);
    out.push({ client, conf: await client.joinConference(name) });
  }
  return out;
}

async function closeAll(list: { client: Client }[]): Promise<void> {
  await Promise.all(list.map((x) => x.client.close()));
}

describe('auth', () => {
  it('refuses a missing, malformed, wrongly signed, unknown-key or expired token with 401 and its code', async () => {
    const cases: [Parameters<typeof http>[3], string][] = [
      [{}, ErrorCode.TokenMissing],
      [{ authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' }, ErrorCode.TokenMalformed],
      [{ token: 'not-a-jwt' }, ErrorCode.TokenMalformed],
      [{ token: await createAccessToken({ apiKey: API_KEY, apiSecret: 'some-other-secret', userId: 'x', grants: { admin: true } }) }, ErrorCode.TokenBadSignature],
      [{ token: await createAccessToken({ apiKey: 'nokey', apiSecret: API_SECRET, userId: 'x', grants: { admin: true } }) }, ErrorCode.TokenUnknownKey],
      [{ token: await createAccessToken({ apiKey: API_KEY, apiSecret: API_SECRET, userId: 'x', ttl: -60, grants: { admin: true } }) }, ErrorCode.TokenExpired],
    ];
    for (const [options, code] of cases) {
      const res = await http(server.httpUrl, 'GET', '/conferences', options);
      expect(res.status, code).toBe(401);
      expect(res.body).toMatchObject({ code, message: expect.any(String) });
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('refuses a valid token without the admin grant with 403 permission-denied', async () => {
    const res = await http(server.httpUrl, 'GET', '/calls', { token: await server.token('user', { conferences: ['*'] }) });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe(ErrorCode.PermissionDenied);
  });

  it('gives SDK callers typed errors with the server code and HTTP status', async () => {
    const wrong = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: 'wrong-secret-123' });
    const error = await wrong.listConferences().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackchannelError);
    expect(error).toMatchObject({ code: ErrorCode.TokenBadSignature, details: { status: 401 } });
    const unreachable = new ServerApiClient('http://127.0.0.1:1', { apiKey: API_KEY, apiSecret: API_SECRET });
    await expect(unreachable.listCalls()).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
  });

  it('answers unknown routes with 404 not-found and wrong methods with 405 and Allow', async () => {
    const missing = await http(server.httpUrl, 'GET', '/nothing-here', { token: admin });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe(ErrorCode.NotFound);
    const wrong = await http(server.httpUrl, 'PUT', '/conferences/x', { token: admin });
    expect(wrong.status).toBe(405);
    expect(wrong.body.code).toBe(ErrorCode.MethodNotAllowed);
    expect(wrong.headers.get('allow')).toBe('GET, DELETE');
  });
});

describe('OpenAPI document', () => {
  it('is served without auth and describes every endpoint, its schemas and the webhooks', async () => {
    const res = await fetch(`${server.httpUrl}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as any;
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap((p) => Object.values(p).map((o) => o.operationId));
    expect(ops.sort()).toEqual(
      [
        'endCall',
        'endConference',
        'getCall',
        'getConference',
        'getOpenApi',
        'kickParticipant',
        'listCalls',
        'listConferences',
        'listParticipants',
        'revokeParticipant',
        'sendData',
        'updateParticipant',
        'webhookStats',
      ].sort(),
    );
    // The same schema the server validates with: streamId bounds and required fields.
    const send = doc.components.schemas.SendDataRequest;
    expect(send.required).toEqual(expect.arrayContaining(['streamId', 'data']));
    expect(send.properties.streamId).toMatchObject({ type: 'integer', minimum: 1, maximum: 64999 });
    expect(send.additionalProperties).toBe(false);
    expect(doc.paths['/rooms/{roomId}/data'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/SendDataRequest' });
    expect(doc.paths['/rooms/{roomId}/data'].post.responses['429'].headers['Retry-After']).toBeDefined();
    // Lists take a page size and a cursor, and answer with the next one.
    for (const path of ['/conferences', '/calls', '/rooms/{roomId}/participants']) {
      const query = doc.paths[path].get.parameters.filter((p: { in: string }) => p.in === 'query');
      expect(query.map((p: { name: string }) => p.name), path).toEqual(['limit', 'cursor']);
      expect(query[0].schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 100 });
    }
    expect(doc.components.schemas.CallList.properties.next).toMatchObject({ type: 'string' });
    expect(doc.paths['/participants/{participantId}/revoke'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RevokeRequest' });
    expect(Object.keys(doc.webhooks).sort()).toEqual(
      ['call.ended', 'call.incoming', 'call.started', 'conference.ended', 'conference.started', 'participant.joined', 'participant.kicked', 'participant.left'].sort(),
    );
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[^"]+"/g) ?? [];
    for (const ref of refs) expect(doc.components.schemas[ref.slice(22, -1)], ref).toBeDefined();
  });
});

describe('conferences', () => {
  it('lists and gets conferences with their participants (hidden ones flagged) and 404s unknown ones', async () => {
    const members = await room('api-list', ['l1', 'l2']);
    const hidden = await connect('watcher', { conferences: ['*'], hidden: true });
    await hidden.joinConference('api-list');
    const { conferences: list } = await api.listConferences();
    const conf = list.find((c) => c.name === 'api-list')!;
    expect(conf.participantCount).toBe(3);
    expect(conf.participants.map((p) => p.userId).sort()).toEqual(['l1', 'l2', 'watcher']);
    expect(conf.participants.find((p) => p.userId === 'watcher')!.hidden).toBe(true);
    expect(conf.participants.find((p) => p.userId === 'l1')).toMatchObject({ id: members[0]!.client.participantId, hidden: false, capabilities: { dataSession: true } });
    expect(await api.getConference('api-list')).toEqual(conf);
    await expect(api.getConference('no-such-conference')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound, details: { status: 404 } });
    await closeAll(members);
    await hidden.close();
  });

  it('ends a conference: participants see ended-by-server, then it is gone', async () => {
    const members = await room('api-end', ['e1', 'e2']);
    const ended = Promise.all(members.map((m) => next<{ reason: Reason }>(m.conf, 'ended')));
    await api.endConference('api-end');
    for (const e of await ended) expect(e.reason.code).toBe('ended-by-server');
    await expect(api.getConference('api-end')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound });
    await expect(api.endConference('api-end')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound });
    await closeAll(members);
  });

  it('finds conferences whose names need escaping in a URL', async () => {
    const [m] = await room('team/α β?', ['esc']);
    expect((await api.getConference('team/α β?')).participantCount).toBe(1);
    expect((await api.listParticipants('team/α β?')).participants.map((p) => p.userId)).toEqual(['esc']);
    await m!.client.close();
  });
});

describe('calls', () => {
  it('lists ringing and connected calls, lists a call’s participants, ends a call for both sides', async () => {
    const caller = await connect('caller');
    const callee = await connect('callee');
    const incoming = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall('callee', { appParam: 'video' });
    const ringing = await api.getCall(call.callId);
    expect(ringing).toMatchObject({ callId: call.callId, state: 'ringing', appParam: 'video', caller: { userId: 'caller', participantId: caller.participantId }, callee: { userId: 'callee' } });
    expect(ringing.connectedAt).toBeUndefined();
    const connected = next(call, 'connected');
    const answered: Call = await (await incoming).accept();
    await connected;
    const listed = (await api.listCalls()).calls.find((c) => c.callId === call.callId)!;
    expect(listed).toMatchObject({ state: 'connected', callee: { userId: 'callee', participantId: callee.participantId } });
    expect(listed.connectedAt).toBeGreaterThanOrEqual(listed.createdAt);
    expect((await api.listParticipants(call.callId)).participants.map((p) => p.userId).sort()).toEqual(['callee', 'caller']);

    const endedCaller = next<{ reason: Reason }>(call, 'ended');
    const endedCallee = next<{ reason: Reason }>(answered, 'ended');
    await api.endCall(call.callId);
    expect((await endedCaller).reason.code).toBe('ended-by-server');
    expect((await endedCallee).reason.code).toBe('ended-by-server');
    await expect(api.getCall(call.callId)).rejects.toMatchObject({ code: ErrorCode.CallNotFound, details: { status: 404 } });
    await expect(api.endCall(call.callId)).rejects.toMatchObject({ code: ErrorCode.CallNotFound });
    await caller.close();
    await callee.close();
  });
});

describe('participants', () => {
  it('lists participants of a room and 404s an unknown room', async () => {
    const members = await room('api-part', ['p1', 'p2']);
    const { participants: list } = await api.listParticipants('api-part');
    expect(list.map((p) => p.id).sort()).toEqual(members.map((m) => m.client.participantId).sort());
    await expect(api.listParticipants('nope')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound });
    await closeAll(members);
  });

  it('kicks a participant: it sees kicked with the reason, the others see it leave with kicked', async () => {
    const members = await room('api-kick', ['k1', 'k2', 'k3']);
    const [victim, ...others] = members;
    const kicked = next<{ reason: Reason }>(victim!.conf, 'ended');
    const left = others.map((o) => new Promise<[RemoteParticipant, Reason]>((resolve) => o.conf.on('participantLeft', (p, r) => resolve([p, r]))));
    await api.kickParticipant('api-kick', victim!.client.participantId, { reason: 'flooding the chat' });
    expect((await kicked).reason).toEqual({ code: 'kicked', message: 'flooding the chat' });
    for (const [p, r] of await Promise.all(left)) {
      expect(p.id).toBe(victim!.client.participantId);
      expect(r).toEqual({ code: 'kicked', message: 'flooding the chat' });
    }
    expect((await api.listParticipants('api-kick')).participants.map((p) => p.userId).sort()).toEqual(['k2', 'k3']);
    await expect(api.kickParticipant('api-kick', victim!.client.participantId)).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound, details: { status: 404 } });
    // The kicked client stays connected and may join again.
    await victim!.client.joinConference('api-kick');
    expect((await api.listParticipants('api-kick')).participants).toHaveLength(3);
    await closeAll(members);
  });

  it('kicking one side of a call ends the call with ended-by-server', async () => {
    const caller = await connect('kc-caller');
    const callee = await connect('kc-callee');
    const incoming = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall('kc-callee');
    const answered = await (await incoming).accept();
    const ended = next<{ reason: Reason }>(answered, 'ended');
    await api.kickParticipant(call.callId, caller.participantId, { reason: 'abuse' });
    const { reason } = await ended;
    expect(reason.code).toBe('ended-by-server');
    expect(reason.message).toContain('abuse');
    await caller.close();
    await callee.close();
  });

  it('updates metadata: everyone is notified; oversize or malformed updates are 400', async () => {
    const members = await room('api-meta', ['m1', 'm2']);
    const [a, b] = members;
    const seen = next<RemoteParticipant>(b!.conf, 'participantUpdated');
    const updated = await api.updateParticipant('api-meta', a!.client.participantId, { metadata: { role: 'moderator' } });
    expect(updated).toMatchObject({ id: a!.client.participantId, metadata: { role: 'moderator' } });
    expect((await seen).metadata).toEqual({ role: 'moderator' });
    await expect(api.updateParticipant('api-meta', a!.client.participantId, { metadata: 'x'.repeat(300) })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      details: { status: 400 },
    });
    const missing = await http(server.httpUrl, 'PATCH', `/rooms/api-meta/participants/${a!.client.participantId}`, { token: admin, body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: ErrorCode.InvalidArgument, details: { field: '/metadata' } });
    const extra = await http(server.httpUrl, 'PATCH', `/rooms/api-meta/participants/${a!.client.participantId}`, { token: admin, body: { metadata: 1, role: 'x' } });
    expect(extra.status).toBe(400);
    expect(extra.body.details.field).toBe('/role');
    await expect(api.updateParticipant('api-meta', 'PA_nobody', { metadata: 1 })).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound });
    await closeAll(members);
  });
});

describe('app control messages', () => {
  it('reach clients like participant data, from "server", to everyone, one participant or a set', async () => {
    const members = await room('api-data', ['d1', 'd2', 'd3']);
    const [a, b, c] = members;
    const incoming = next<{ streamId: number; from: string; mode: string }>(a!.conf, 'dataSessionIncoming');
    const rx = await Promise.all(members.map((m) => receiver(m.conf, 300)));
    const sent = await api.sendData('api-data', { streamId: 300, data: 'hello everyone' });
    expect(sent).toMatchObject({ room: { kind: 'conference', name: 'api-data' }, streamId: 300, seq: 0 });
    expect(sent.recipients.sort()).toEqual(members.map((m) => m.client.participantId).sort());
    expect(await incoming).toEqual({ streamId: 300, from: 'server', mode: 'reliable-message' });
    for (const r of rx) expect((await r.until(1))[0]).toMatchObject({ text: 'hello everyone', from: 'server', seq: 0, mode: 'reliable-message' });

    await api.sendData('api-data', { streamId: 300, data: 'just b', destination: b!.client.participantId });
    await api.sendData('api-data', { streamId: 300, data: 'b and c', destination: [b!.client.participantId, c!.client.participantId] });
    await api.sendData('api-data', { streamId: 300, data: 'all again' });
    const [ra, rb, rc] = await Promise.all(rx.map((r, i) => r.until(i === 0 ? 2 : i === 1 ? 4 : 3)));
    expect(ra!.map((g) => [g.text, g.seq])).toEqual([['hello everyone', 0], ['all again', 3]]);
    expect(rb!.map((g) => [g.text, g.seq])).toEqual([['hello everyone', 0], ['just b', 1], ['b and c', 2], ['all again', 3]]);
    expect(rc!.map((g) => [g.text, g.seq])).toEqual([['hello everyone', 0], ['b and c', 2], ['all again', 3]]);
    await closeAll(members);
  });

  it('carries bytes, large reliable messages in one piece, and other modes', async () => {
    const members = await room('api-bytes', ['b1', 'b2']);
    const [a] = members;
    const bin = await receiver(a!.conf, 301);
    const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff);
    await api.sendData('api-bytes', { streamId: 301, data: new Uint8Array([0, 1, 2, 255]) });
    await api.sendData('api-bytes', { streamId: 301, data: bytes });
    const [small, large] = await bin.until(2);
    expect([...small!.bytes]).toEqual([0, 1, 2, 255]);
    expect(large!.bytes.byteLength).toBe(bytes.byteLength);
    expect(Buffer.from(large!.bytes).equals(bytes)).toBe(true);

    const unreliable = await receiver(a!.conf, 302);
    await api.sendData('api-bytes', { streamId: 302, data: 'tick', mode: 'unreliable', priority: 'high' });
    expect((await unreliable.until(1))[0]).toMatchObject({ text: 'tick', mode: 'unreliable', from: 'server' });
    await closeAll(members);
  });

  it('announces the server session to a late joiner with its next message', async () => {
    const [first] = await room('api-late', ['early']);
    await api.sendData('api-late', { streamId: 303, data: 'before' });
    const late = await connect('late');
    const conf = await late.joinConference('api-late');
    const incoming = next<{ from: string }>(conf, 'dataSessionIncoming');
    const rx = await receiver(conf, 303);
    await api.sendData('api-late', { streamId: 303, data: 'after' });
    expect((await incoming).from).toBe('server');
    expect((await rx.until(1))[0]).toMatchObject({ text: 'after', seq: 1 });
    await first!.client.close();
    await late.close();
  });

  it('rejects invalid messages with 400 naming the field, unknown destinations with 404, big bodies with 413', async () => {
    const members = await room('api-bad', ['x1']);
    const path = '/rooms/api-bad/data';
    const cases: [unknown, string][] = [
      [{ streamId: 0, data: 'x' }, '/streamId'],
      [{ streamId: 65000, data: 'x' }, '/streamId'],
      [{ streamId: 'seven', data: 'x' }, '/streamId'],
      [{ streamId: 5 }, '/data'],
      [{ streamId: 5, data: 'x', mode: 'carrier-pigeon' }, '/mode'],
      [{ streamId: 5, data: '%%%', encoding: 'base64' }, '/data'],
      [{ streamId: 5, data: 'x', colour: 'red' }, '/colour'],
    ];
    for (const [body, field] of cases) {
      const res = await http(server.httpUrl, 'POST', path, { token: admin, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toMatchObject({ code: ErrorCode.InvalidArgument, details: { field } });
      expect(res.body.message).toContain(field);
    }
    const notJson = await http(server.httpUrl, 'POST', path, { token: admin, rawBody: '{"streamId":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.code).toBe(ErrorCode.BadMessage);
    const empty = await http(server.httpUrl, 'POST', path, { token: admin });
    expect(empty.status).toBe(400);
    expect(empty.body.code).toBe(ErrorCode.BadMessage);
    await expect(api.sendData('api-bad', { streamId: 5, data: 'x', destination: 'PA_nobody' })).rejects.toMatchObject({
      code: ErrorCode.ParticipantNotFound,
      details: { status: 404, participantId: 'PA_nobody' },
    });
    await expect(api.sendData('no-room', { streamId: 5, data: 'x' })).rejects.toMatchObject({ code: ErrorCode.RoomNotFound, details: { status: 404 } });
    const big = await http(server.httpUrl, 'POST', path, { token: admin, body: { streamId: 5, data: 'y'.repeat(700_000) } });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe(ErrorCode.MessageTooLarge);
    await closeAll(members);
  });
});

describe('rate limit', () => {
  let limited: ServerProcess;
  beforeAll(async () => {
    limited = await startServerProcess({ apiRateLimit: 1, apiRateBurst: 2, apiKeys: { [API_KEY]: API_SECRET, other: 'other-secret-123' } });
  });
  afterAll(async () => {
    await limited.stop();
  });

  it('answers 429 rate-limited with Retry-After once an API key exceeds its burst, per key', async () => {
    const token = await limited.token('app', { admin: true });
    expect((await http(limited.httpUrl, 'GET', '/conferences', { token })).status).toBe(200);
    expect((await http(limited.httpUrl, 'GET', '/calls', { token })).status).toBe(200);
    const third = await http(limited.httpUrl, 'GET', '/conferences', { token });
    expect(third.status).toBe(429);
    expect(third.body.code).toBe(ErrorCode.RateLimited);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const sdk = new ServerApiClient(limited.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
    await expect(sdk.listCalls()).rejects.toMatchObject({ code: ErrorCode.RateLimited, details: { status: 429, retryAfterSec: expect.any(Number) } });
    // Another API key has its own bucket.
    const other = new ServerApiClient(limited.httpUrl, { apiKey: 'other', apiSecret: 'other-secret-123' });
    expect(await other.listCalls()).toEqual({ calls: [] });
  });

  it('the SDK’s page walk waits out rate-limited answers and goes on', async () => {
    const clients = await Promise.all(
      ['w1', 'w2', 'w3', 'w4'].map(async (u) => {
        const c = await Client.connect(limited.url, await limited.token(u));
        await c.joinConference(`walk-${u}`);
        return c;
      }),
    );
    const statuses: number[] = [];
    const counting: typeof fetch = async (...args) => {
      const res = await fetch(...args);
      statuses.push(res.status);
      return res;
    };
    const sdk = new ServerApiClient(limited.httpUrl, { apiKey: 'other', apiSecret: 'other-secret-123', fetch: counting });
    const names: string[] = [];
    for await (const c of sdk.conferences({ limit: 1 })) names.push(c.name);
    expect(names.sort()).toEqual(['walk-w1', 'walk-w2', 'walk-w3', 'walk-w4']);
    expect(statuses).toContain(429);
    await Promise.all(clients.map((c) => c.close()));
  });
});
