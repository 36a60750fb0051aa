import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type Call, type CallInvite } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';

let server: ServerProcess;
/** A server whose calls stop ringing after 400 ms, for the no-answer test only (the others must answer in time on a loaded machine). */
let quick: ServerProcess | undefined;
const clients: Client[] = [];
beforeAll(async () => {
  server = await startServerProcess({ ringTimeoutMs: 10_000 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([server.stop(), quick?.stop()]);
});

let n = 0;
async function pair(s: ServerProcess = server) {
  n++;
  const caller = await Client.connect(s.url, await s.token(`caller${n}`, {}, { name: `Caller ${n}` }));
  const callee = await Client.connect(s.url, await s.token(`callee${n}`));
  clients.push(caller, callee);
  return { caller, callee, calleeId: `callee${n}` };
}

type Ended = { reason: { code: string; message: string }; durationMs?: number };

describe('1:1 calls', () => {
  it('rings, connects, and both sides see the same normal hang-up and duration', async () => {
    const { caller, callee, calleeId } = await pair();
    const invited = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall(calleeId, { appParam: 'order-42' });
    expect(call.state).toBe('ringing');
    expect(call.callId).toMatch(/^CA_/);
    const invite = await invited;
    expect(invite.callId).toBe(call.callId);
    expect(invite.caller).toMatchObject({ userId: caller.userId, displayName: 'Caller 1', participantId: caller.participantId });
    expect(invite.appParam).toBe('order-42');
    const connected = next(call, 'connected');
    const answered = await invite.accept();
    await connected;
    expect(call.state).toBe('connected');
    expect(answered.state).toBe('connected');
    expect(call.isDataSessionSupported()).toBe(true);
    expect(answered.isDataSessionSupported()).toBe(true);
    expect(call.peer?.userId).toBe(calleeId);
    expect(answered.peer?.userId).toBe(caller.userId);
    const endedCallee = next<Ended>(answered, 'ended');
    const endedCaller = next<Ended>(call, 'ended');
    await answered.end();
    const [a, b] = await Promise.all([endedCaller, endedCallee]);
    expect(a.reason.code).toBe('normal');
    expect(b.reason).toEqual(a.reason);
    expect(b.durationMs).toBe(a.durationMs);
    expect(call.state).toBe('ended');
    expect(call.endReason?.code).toBe('normal');
  });

  it('decline: both sides see declined; decline("busy") ends as busy', async () => {
    const { caller, callee, calleeId } = await pair();
    callee.on('incomingCall', (inv) => void inv.decline(inv.appParam === 'second' ? 'busy' : 'in a meeting'));
    const first = await caller.makeCall(calleeId);
    const e1 = await next<Ended>(first, 'ended');
    expect(e1.reason.code).toBe('declined');
    expect(e1.reason.message).toMatch(/in a meeting/);
    const second = await caller.makeCall(calleeId, { appParam: 'second' });
    expect((await next<Ended>(second, 'ended')).reason.code).toBe('busy');
  });

  it('cancel while ringing: the callee invite ends as cancelled', async () => {
    const { caller, callee, calleeId } = await pair();
    const invited = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall(calleeId);
    const invite = await invited;
    const inviteEnded = next<{ reason: { code: string } }>(invite, 'ended');
    const callEnded = next<Ended>(call, 'ended');
    await call.cancel();
    expect((await inviteEnded).reason.code).toBe('cancelled');
    expect((await callEnded).reason.code).toBe('cancelled');
    await expect(invite.accept()).rejects.toMatchObject({ code: ErrorCode.CallNotFound });
  });

  it('no answer: the ring timeout ends the call as no-answer on both sides', async () => {
    quick = await startServerProcess({ ringTimeoutMs: 400 });
    const { caller, callee, calleeId } = await pair(quick);
    const invited = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall(calleeId);
    const invite = await invited;
    const [a, b] = await Promise.all([next<Ended>(call, 'ended'), next<{ reason: { code: string } }>(invite, 'ended')]);
    expect(a.reason.code).toBe('no-answer');
    expect(b.reason.code).toBe('no-answer');
  });

  it('busy: calling someone already in a connected call ends as busy', async () => {
    const { caller, callee, calleeId } = await pair();
    const answered = next<CallInvite>(callee, 'incomingCall').then((inv) => inv.accept());
    const first = await caller.makeCall(calleeId);
    await next(first, 'connected');
    await answered;
    const third = await Client.connect(server.url, await server.token(`third${n}`));
    clients.push(third);
    const second = await third.makeCall(calleeId);
    const ended = await next<Ended>(second, 'ended');
    expect(ended.reason.code).toBe('busy');
    expect(first.state).toBe('connected');
  });

  it('a callee that closes its client hangs up: the other side sees a normal end', async () => {
    const { caller, callee, calleeId } = await pair();
    const accepted = next<CallInvite>(callee, 'incomingCall').then((inv) => inv.accept());
    const call = await caller.makeCall(calleeId);
    await next(call, 'connected');
    // The callee's own answer may still be on its way when the caller sees the call connected.
    await accepted;
    const ended = next<Ended>(call, 'ended');
    await callee.close();
    expect((await ended).reason.code).toBe('normal'); // a lost connection is covered in resume.test.ts
  });

  it('a callee that connects while the call rings can fetch and accept it by id', async () => {
    n++;
    const caller = await Client.connect(server.url, await server.token(`late-caller${n}`));
    clients.push(caller);
    const call = await caller.makeCall(`late-callee${n}`, { appParam: 'push' });
    const callee = await Client.connect(server.url, await server.token(`late-callee${n}`));
    clients.push(callee);
    const invite = (await callee.getCall(call.callId)) as CallInvite;
    expect(invite.appParam).toBe('push');
    const connected = next(call, 'connected');
    const answered = await invite.accept();
    await connected;
    expect(answered.peer?.userId).toBe(`late-caller${n}`);
    await call.end();
  });

  it('a callee with several clients gets the invite on each; the first accept wins', async () => {
    n++;
    const caller = await Client.connect(server.url, await server.token(`multi-caller${n}`));
    const phone = await Client.connect(server.url, await server.token(`multi-callee${n}`));
    const laptop = await Client.connect(server.url, await server.token(`multi-callee${n}`));
    clients.push(caller, phone, laptop);
    const onPhone = next<CallInvite>(phone, 'incomingCall');
    const onLaptop = next<CallInvite>(laptop, 'incomingCall');
    const call = await caller.makeCall(`multi-callee${n}`);
    const [p, l] = await Promise.all([onPhone, onLaptop]);
    const revoked = next<{ code: string }>(l, 'revoked');
    const answered = await p.accept();
    expect((await revoked).code).toBe('answered-elsewhere');
    await expect(l.accept()).rejects.toMatchObject({ code: ErrorCode.CallAnsweredElsewhere });
    expect(answered.state).toBe('connected');
    await call.end();
  });

  it('rejects calling yourself and unknown call ids clearly', async () => {
    const { caller } = await pair();
    await expect(caller.makeCall(caller.userId)).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await expect(caller.getCall('CA_nope')).rejects.toMatchObject({ code: ErrorCode.CallNotFound });
  });
});
