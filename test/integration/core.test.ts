import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { Client, ErrorCode, type BackchannelError, type CallInvite } from '@backchannel/client';
import { encodeDataFrame } from '@backchannel/protocol';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { rawConnect } from '../helpers/raw.js';
import { next } from '../helpers/events.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ helloTimeoutMs: 2_000, maxBadFrames: 5 });
});
afterAll(async () => {
  await server.stop();
});

async function refusal(token: string): Promise<BackchannelError> {
  const err = await Client.connect(server.url, token).then(
    () => undefined,
    (e: BackchannelError) => e,
  );
  expect(err, 'connect should have been refused').toBeDefined();
  return err!;
}

function sign(claims: Record<string, unknown>, opts: { kid?: string; secret?: string; exp?: number | string; nbf?: number | string } = {}) {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: opts.kid ?? API_KEY }).setIssuedAt();
  if (opts.exp !== undefined) jwt = jwt.setExpirationTime(opts.exp);
  if (opts.nbf !== undefined) jwt = jwt.setNotBefore(opts.nbf);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? API_SECRET));
}

describe('access tokens', () => {
  it('accepts a valid token and reports identity and grants', async () => {
    const c = await Client.connect(server.url, await server.token('alice', { conferences: ['team-*'] }, { name: 'Alice' }));
    expect(c.userId).toBe('alice');
    expect(c.displayName).toBe('Alice');
    expect(c.participantId).toMatch(/^PA_/);
    expect(c.grants).toMatchObject({ calls: true, publishData: true, subscribeData: true, updateOwnMetadata: true, hidden: false, conferences: ['team-*'] });
    await c.close();
  });

  it('refuses each bad token with its own stable code', async () => {
    expect((await refusal('')).code).toBe(ErrorCode.TokenMissing);
    expect((await refusal('not-a-jwt')).code).toBe(ErrorCode.TokenMalformed);
    expect((await refusal(await sign({ sub: 'a' }, { exp: Math.floor(Date.now() / 1000) - 60 }))).code).toBe(ErrorCode.TokenExpired);
    expect((await refusal(await sign({ sub: 'a' }, { exp: '1h', nbf: Math.floor(Date.now() / 1000) + 3600 }))).code).toBe(ErrorCode.TokenNotYetValid);
    expect((await refusal(await sign({ sub: 'a' }, { exp: '1h', secret: 'a-different-secret' }))).code).toBe(ErrorCode.TokenBadSignature);
    expect((await refusal(await sign({ sub: 'a' }, { exp: '1h', kid: 'nokey' }))).code).toBe(ErrorCode.TokenUnknownKey);
    expect((await refusal(await sign({}, { exp: '1h' }))).code).toBe(ErrorCode.TokenInvalidClaims);
    expect((await refusal(await sign({ sub: 'a' }))).code).toBe(ErrorCode.TokenInvalidClaims); // no exp
    expect((await refusal(await sign({ sub: 'a', bc: { calls: 'yes' } }, { exp: '1h' }))).code).toBe(ErrorCode.TokenInvalidClaims);
  });

  it('checks grants on every action, not only at connect', async () => {
    const c = await Client.connect(server.url, await server.token('limited', { calls: false, conferences: ['allowed'], publishData: false, updateOwnMetadata: false }));
    await expect(c.joinConference('other')).rejects.toMatchObject({ code: ErrorCode.PermissionDenied });
    await expect(c.makeCall('bob')).rejects.toMatchObject({ code: ErrorCode.PermissionDenied });
    const room = await c.joinConference('allowed');
    await expect(room.updateMetadata({ x: 1 })).rejects.toMatchObject({ code: ErrorCode.PermissionDenied });
    await expect(room.makeSendDataSession(100)).rejects.toMatchObject({ code: ErrorCode.PermissionDenied });
    await c.close();
  });

  it('a refused token leaves no room state behind', async () => {
    const watcher = await Client.connect(server.url, await server.token('watcher'));
    const room = await watcher.joinConference('clean');
    await refusal(await sign({ sub: 'intruder' }, { exp: '1h', secret: 'wrong-secret-123' }));
    const other = await Client.connect(server.url, await server.token('friend'));
    const joined = next(room, 'participantJoined');
    await other.joinConference('clean');
    expect((await joined).userId).toBe('friend');
    expect([...room.participants.values()].map((p) => p.userId)).toEqual(['friend']);
    await other.close();
    await watcher.close();
  });
});

describe('protocol', () => {
  it('refuses an incompatible protocol version clearly', async () => {
    const raw = await rawConnect(server.url);
    const reply = await raw.hello(await server.token('old'), 99);
    expect(reply).toMatchObject({ t: 'err', error: { code: ErrorCode.ProtocolVersionUnsupported } });
    expect((reply as { error: { message: string } }).error.message).toMatch(/99/);
    expect((await raw.closed).code).toBe(4002);
  });

  it('closes a connection that never says hello', async () => {
    const raw = await rawConnect(server.url);
    const closed = await raw.closed;
    expect(closed.code).toBe(4003);
    expect(raw.messages).toContainEqual(expect.objectContaining({ t: 'goodbye', reason: expect.objectContaining({ code: ErrorCode.HelloTimeout }) }));
  });

  it('answers requests before hello with not-authenticated', async () => {
    const raw = await rawConnect(server.url);
    raw.send({ t: 'conf.join', id: 7, name: 'x' });
    expect(await raw.waitFor((m) => 're' in m && m.re === 7)).toMatchObject({ t: 'err', error: { code: ErrorCode.NotAuthenticated } });
    raw.ws.close();
  });

  it('malformed frames get an error and the server keeps serving everyone', async () => {
    const a = await Client.connect(server.url, await server.token('steady-a'));
    const b = await Client.connect(server.url, await server.token('steady-b'));
    const ra = await a.joinConference('steady');
    const rb = await b.joinConference('steady');

    const raw = await rawConnect(server.url);
    expect(await raw.hello(await server.token('fuzzer'))).toMatchObject({ t: 'ok' });
    raw.sendBytes(new Uint8Array([0xff, 0x00]));
    expect(await raw.waitFor((m) => m.t === 'error')).toMatchObject({ error: { code: ErrorCode.BadFrame } });
    raw.sendBytes('text is not a frame');
    raw.send({ t: 'conf.join', id: 9, name: 42 });
    expect(await raw.waitFor((m) => 're' in m && m.re === 9)).toMatchObject({ t: 'err', error: { code: ErrorCode.BadMessage, message: expect.stringMatching(/name/) } });
    raw.send({ t: 'no.such.thing', id: 10 });
    expect(await raw.waitFor((m) => 're' in m && m.re === 10)).toMatchObject({ t: 'err', error: { code: ErrorCode.BadMessage } });
    raw.sendBytes(encodeDataFrame({ mode: 'reliable-message', fin: true, streamId: 5, room: 12345, sender: 0, seq: 0 }, new Uint8Array(4)));
    expect(await raw.waitFor((m) => m.t === 'error' && m.error.code === ErrorCode.NotInRoom)).toBeDefined();
    // Flood past the limit: the offender is disconnected, nobody else is.
    for (let i = 0; i < 10; i++) raw.sendBytes(new Uint8Array([0x10 + i]));
    expect((await raw.closed).code).toBe(4008);

    const rx = await rb.makeRecvDataSession(100);
    const tx = await ra.makeSendDataSession(100);
    tx.send('still here');
    const it = rx[Symbol.asyncIterator]();
    expect(new TextDecoder().decode((await it.next()).value!.data)).toBe('still here');
    await a.close();
    await b.close();
  });

  it('serves /healthz', async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', protocol: 3 });
  });
});

describe('graceful shutdown', () => {
  it('tells clients server-shutdown, ends calls with that reason, and exits 0', async () => {
    const s = await startServerProcess();
    const alice = await Client.connect(s.url, await s.token('alice'));
    const bob = await Client.connect(s.url, await s.token('bob'));
    const answered = next<CallInvite>(bob, 'incomingCall').then((inv) => inv.accept());
    const call = await alice.makeCall('bob');
    await next(call, 'connected');
    await answered;
    const conf = await alice.joinConference('shutdown-room');
    const ended = next<{ reason: { code: string } }>(call, 'ended');
    const roomEnded = next<{ reason: { code: string } }>(conf, 'ended');
    const disconnected = next<{ code: string }>(alice, 'disconnected');
    const exitCode = await s.stop();
    expect((await ended).reason.code).toBe('server-shutdown');
    expect((await roomEnded).reason.code).toBe('server-shutdown');
    expect((await disconnected).code).toBe('server-shutdown');
    expect(exitCode).toBe(0);
  });
});
