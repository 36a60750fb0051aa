/**
 * Sessions that outlive a connection: a real server process, real clients, and a fault-injecting
 * TCP proxy between them that cuts, black-holes and refuses connections.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client, type ClientOptions, type RoomBase } from '@backchannel/client';
import { verifyWebhook, type WebhookEvent } from '@backchannel/server-sdk';
import { receiver, webhookReceiver } from '../helpers/api.js';
import { next, until } from '../helpers/events.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { rawConnect } from '../helpers/raw.js';
import { API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';

const FAST_PING = { pingIntervalMs: 300, pingTimeoutMs: 900 } satisfies ClientOptions;
const u32 = (n: number, size = 8) => {
  const b = new Uint8Array(Math.max(4, size));
  new DataView(b.buffer).setUint32(0, n);
  for (let i = 4; i < b.length; i++) b[i] = (n + i) & 0xff;
  return b;
};
const read32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
const intact = (b: Uint8Array) => {
  const n = read32(b);
  for (let i = 4; i < b.length; i++) if (b[i] !== ((n + i) & 0xff)) return false;
  return true;
};

describe('resume after a lost connection', () => {
  let server: ServerProcess;
  let proxy: FaultProxy;
  const clients: Client[] = [];
  beforeAll(async () => {
    server = await startServerProcess({ pingIntervalMs: 500 });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await proxy?.close();
  });
  afterAll(async () => {
    await server.stop();
  });

  const via = async (user: string, options: ClientOptions = {}) => {
    const c = await Client.connect(proxy.url, await server.token(user), options);
    clients.push(c);
    return c;
  };
  const direct = async (user: string, options: ClientOptions = {}) => {
    const c = await Client.connect(server.url, await server.token(user), options);
    clients.push(c);
    return c;
  };

  it('keeps the participant, its rooms and its sessions; others see it reconnecting, not leaving', async () => {
    proxy = await startFaultProxy(server.port);
    const a = await via('res-a');
    const b = await direct('res-b');
    const ra = await a.joinConference('res-1');
    const rb = await b.joinConference('res-1');
    const toB = await ra.makeSendDataSession(100, 'reliable-message');
    const atB = await receiver(rb, 100);
    const states: string[] = [];
    rb.on('participantUpdated', (p) => states.push(p.connectionState));
    const left: string[] = [];
    rb.on('participantLeft', (p) => left.push(p.id));
    const id = a.participantId;

    const reconnecting = next(a, 'reconnecting');
    const reconnected = next(a, 'reconnected');
    expect(proxy.cutAll()).toBe(1);
    expect(await reconnecting).toMatchObject({ attempt: 1, delayMs: 0 });
    expect(a.connectionState).toBe('reconnecting');
    expect(toB.send('sent while reconnecting')).toBe(true); // queues, never throws
    expect(await reconnected).toEqual({ resumed: true });
    expect(a.connectionState).toBe('connected');
    expect(a.participantId).toBe(id);
    expect((await atB.until(1))[0]!.text).toBe('sent while reconnecting');
    await until(rb, 'participantUpdated', () => states.includes('connected'));
    expect(states).toEqual(['reconnecting', 'connected']);
    expect(rb.participants.get(id)?.connectionState).toBe('connected');
    expect(left).toEqual([]);
    // The room still works both ways after the resume.
    const toA = await rb.makeSendDataSession(101, 'reliable-message');
    const atA = await receiver(ra, 101);
    toA.send('back');
    expect((await atA.until(1))[0]!.text).toBe('back');
  });

  it('a dead (half-open) connection is noticed by the heartbeat on both ends, and the client resumes', async () => {
    proxy = await startFaultProxy(server.port);
    // The client's first attempt waits long enough for the server's own heartbeat (500 ms here)
    // to notice the dead connection first; an immediate resume would replace it before that.
    const a = await via('half-a', { ...FAST_PING, reconnect: { firstDelayMs: 2_000 } });
    const b = await direct('half-b');
    await a.joinConference('res-half');
    const rb = await b.joinConference('res-half');
    const reconnecting = next(a, 'reconnecting', 5_000);
    const seenReconnecting = until(rb, 'participantUpdated', () => rb.participants.get(a.participantId)?.connectionState === 'reconnecting', 5_000);
    const t0 = Date.now();
    proxy.blackholeAll(); // nothing is forwarded, nothing is closed
    const ev = await reconnecting;
    expect(ev.reason.code).toBe('heartbeat-timeout');
    expect(Date.now() - t0).toBeLessThan(2_500);
    await seenReconnecting; // the server noticed too (its ping went unanswered)
    expect(await next(a, 'reconnected', 5_000)).toEqual({ resumed: true });
  });

  it('unreliable data sent while reconnecting is dropped and counted, never delivered late', async () => {
    proxy = await startFaultProxy(server.port);
    const a = await via('unrel-a', { reconnect: { firstDelayMs: 300 } });
    const b = await direct('unrel-b');
    const ra = await a.joinConference('res-unrel');
    const rb = await b.joinConference('res-unrel');
    const s = await ra.makeSendDataSession(102, 'unreliable');
    const got = await receiver(rb, 102);
    s.send('before');
    await got.until(1);
    const reconnecting = next(a, 'reconnecting');
    proxy.cutAll();
    await reconnecting;
    for (let i = 0; i < 5; i++) s.send(`during ${i}`);
    expect(s.stats().droppedLocal).toBe(5);
    await next(a, 'reconnected');
    s.send('after');
    await got.until(2);
    expect(got.got.map((g) => g.text)).toEqual(['before', 'after']);
  });

  it('send() while reconnecting queues against the high-water mark, with queueTooLong, and everything follows the resume', async () => {
    proxy = await startFaultProxy(server.port);
    const a = await via('hwm-a', { reconnect: { firstDelayMs: 300 }, highWaterMarkBytes: 64 * 1024, lowWaterMarkBytes: 16 * 1024 });
    const b = await direct('hwm-b');
    const ra = await a.joinConference('res-hwm');
    const rb = await b.joinConference('res-hwm');
    const s = await ra.makeSendDataSession(105, 'reliable-message');
    const got = await receiver(rb, 105);
    const water: boolean[] = [];
    s.on('queueTooLong', ({ triggered }) => water.push(triggered));
    const reconnecting = next(a, 'reconnecting');
    proxy.cutAll();
    await reconnecting;
    const below = [];
    for (let i = 0; i < 10; i++) below.push(s.send(u32(i, 16 * 1024)));
    expect(below.slice(0, 3)).toEqual([true, true, true]);
    expect(below.at(-1)).toBe(false);
    expect(water).toEqual([true]);
    expect(s.stats().localQueuedBytes).toBeGreaterThan(64 * 1024);
    await s.drained();
    expect(water).toEqual([true, false]);
    const all = await got.until(10);
    expect(all.map((g) => read32(g.bytes))).toEqual([...Array(10).keys()]);
    expect(all.every((g) => intact(g.bytes))).toBe(true);
  });

  it('a deliberate close is a leave (reason left), not a reconnect', async () => {
    proxy = await startFaultProxy(server.port);
    const a = await via('bye-a');
    const b = await direct('bye-b');
    await a.joinConference('res-bye');
    const rb = await b.joinConference('res-bye');
    const left = new Promise<{ code: string }>((resolve) => rb.on('participantLeft', (_p, r) => resolve(r)));
    const disconnected = next(a, 'disconnected');
    let reconnects = 0;
    a.on('reconnecting', () => reconnects++);
    await a.close();
    expect((await disconnected).code).toBe('left');
    expect((await left).code).toBe('left');
    expect(reconnects).toBe(0);
    expect(a.connectionState).toBe('disconnected');
  });

  it('refuses a resume with another participant’s credential, changing nothing', async () => {
    const a = await direct('steal-a');
    const ra = await a.joinConference('res-steal');
    const raw = await rawConnect(server.url);
    raw.send({ t: 'resume', id: 1, protocol: 3, participantId: a.participantId, credential: 'x'.repeat(43), next: 'y'.repeat(43), received: 0 });
    const reply = await raw.waitFor((m) => 're' in m && m.re === 1);
    expect(reply).toMatchObject({ t: 'err', error: { code: 'resume-credential-invalid' } });
    raw.send({ t: 'resume', id: 2, protocol: 3, participantId: 'PA_nobody', credential: 'x'.repeat(43), next: 'y'.repeat(43), received: 0 });
    expect(await raw.waitFor((m) => 're' in m && m.re === 2)).toMatchObject({ t: 'err', error: { code: 'resume-not-found' } });
    raw.ws.close();
    // The real participant is untouched.
    expect(a.connectionState).toBe('connected');
    const b = await direct('steal-b');
    const rb = await b.joinConference('res-steal');
    expect(rb.participants.get(a.participantId)?.connectionState).toBe('connected');
    const got = await receiver(ra, 103);
    await (await rb.makeSendDataSession(103)).send('still here');
    expect((await got.until(1))[0]!.text).toBe('still here');
  });

  it('resumes after the access token has expired (resuming needs the resume credential, not the token)', async () => {
    proxy = await startFaultProxy(server.port);
    const a = await Client.connect(proxy.url, await server.token('exp-res', { conferences: ['*'] }, { ttl: 3 }));
    const ra = await a.joinConference('res-expired');
    await new Promise((r) => setTimeout(r, Math.max(0, a.tokenExpiresAt - Date.now() + 50)));
    proxy.cutAll();
    expect(await next(a, 'reconnected')).toEqual({ resumed: true });
    expect(ra.isEnded).toBe(false);
    clients.push(a);
  });

  it('refuses an old protocol version with a clear code', async () => {
    const raw = await rawConnect(server.url);
    raw.send({ t: 'hello', id: 1, token: await server.token('old'), protocol: 1, capabilities: { protocol: 1, dataSession: true } });
    expect(await raw.waitFor((m) => 're' in m && m.re === 1)).toMatchObject({ t: 'err', error: { code: 'protocol-version-unsupported', details: { min: 3, max: 3 } } });
    expect((await raw.closed).code).toBe(4002);
  });
});

describe('resume limits', () => {
  it('after the window the participant leaves as connection-lost (one webhook), and the client starts over (resumed: false)', async () => {
    const hooks = await webhookReceiver();
    const server = await startServerProcess({ resumeWindowMs: 400, emptyRoomGraceMs: 30_000, webhookUrls: [hooks.url] });
    const proxy = await startFaultProxy(server.port);
    try {
      const a = await Client.connect(proxy.url, await server.token('win-a'), { reconnect: { firstDelayMs: 1_500, baseDelayMs: 1_500, maxDelayMs: 1_500 } });
      const b = await Client.connect(server.url, await server.token('win-b'));
      const ra = await a.joinConference('res-window');
      const rb = await b.joinConference('res-window');
      const aEnded = next(ra, 'ended', 5_000);
      const left = new Promise<{ code: string }>((resolve) => rb.on('participantLeft', (_p, r) => resolve(r)));
      const oldId = a.participantId;
      proxy.cutAll();
      expect((await left).code).toBe('connection-lost');
      expect(await next(a, 'reconnected', 5_000)).toMatchObject({ resumed: false, reason: { code: 'resume-not-found' } });
      expect((await aEnded).reason.code).toBe('connection-lost');
      expect(a.participantId).not.toBe(oldId);
      expect(a.connectionState).toBe('connected');
      // The app can rejoin from the clean state.
      const again = await a.joinConference('res-window');
      expect(again.participants.has(b.participantId)).toBe(true);
      const lefts = async () => {
        const out: WebhookEvent[] = [];
        for (const d of hooks.deliveries) {
          const e = await verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET, toleranceSec: 300 });
          if (e.type === 'participant.left' && (e as { participant: { id: string } }).participant.id === oldId) out.push(e);
        }
        return out;
      };
      await hooks.until((d) => d.some((x) => x.body.includes(oldId) && x.body.includes('participant.left')));
      const events = await lefts();
      expect(events).toHaveLength(1);
      expect((events[0] as unknown as { reason: { code: string } }).reason.code).toBe('connection-lost');
      await a.close();
      await b.close();
    } finally {
      await proxy.close();
      await server.stop();
      await hooks.close();
    }
  });

  it('a 1:1 call ends as connection-lost for both when the window passes', async () => {
    const server = await startServerProcess({ resumeWindowMs: 300 });
    const proxy = await startFaultProxy(server.port);
    try {
      const caller = await Client.connect(server.url, await server.token('call-a', { calls: true }));
      const callee = await Client.connect(proxy.url, await server.token('call-b', { calls: true }), { reconnect: false });
      const incoming = next(callee, 'incomingCall');
      const call = await caller.makeCall('call-b');
      await (await incoming).accept();
      const ended = next(call, 'ended', 5_000);
      proxy.cutAll();
      expect((await ended).reason.code).toBe('connection-lost');
      await caller.close();
    } finally {
      await proxy.close();
      await server.stop();
    }
  });

  it('data held for a receiver that is away beyond the limit closes its session as resume-buffer-overflow on both ends', async () => {
    const server = await startServerProcess({ receiverQueueMaxBytes: 256 * 1024 });
    const proxy = await startFaultProxy(server.port);
    try {
      const a = await Client.connect(server.url, await server.token('ovf-a'));
      const b = await Client.connect(proxy.url, await server.token('ovf-b'), { reconnect: { firstDelayMs: 2_000 } });
      const ra = await a.joinConference('res-ovf');
      const rb = await b.joinConference('res-ovf');
      const s = await ra.makeSendDataSession(104, 'reliable-bytes');
      const rx = await rb.makeRecvDataSession(104, () => undefined);
      const closed = next(rx, 'closed', 10_000);
      const detached = next(s, 'receiverDetached', 10_000);
      const reconnecting = next(b, 'reconnecting');
      proxy.cutAll();
      await reconnecting;
      const chunk = new Uint8Array(16 * 1024);
      for (let i = 0; i < 32; i++) s.send(chunk); // 512 KiB for a receiver that is away
      expect(await detached).toMatchObject({ participantId: b.participantId, reason: { code: 'resume-buffer-overflow' } });
      expect(await next(b, 'reconnected', 10_000)).toEqual({ resumed: true });
      expect((await closed).reason.code).toBe('resume-buffer-overflow');
      await a.close();
      await b.close();
    } finally {
      await proxy.close();
      await server.stop();
    }
  });

  it('a restarted server cannot resume: the client starts over (resumed: false) with a fresh token', async () => {
    const first = await startServerProcess();
    let second: ServerProcess | undefined;
    try {
      let refreshed = 0;
      const a = await Client.connect(first.url, await first.token('restart-a'), {
        reconnect: { baseDelayMs: 50, maxDelayMs: 100 },
        tokenRefresh: async () => {
          refreshed++;
          return first.token('restart-a');
        },
      });
      const ra = await a.joinConference('res-restart');
      const ended = next(ra, 'ended', 10_000);
      const reconnecting = next(a, 'reconnecting');
      first.proc.kill('SIGKILL'); // a crash: no goodbye, the state is gone
      await reconnecting;
      second = await startServerProcess({ port: first.port });
      expect(await next(a, 'reconnected', 10_000)).toMatchObject({ resumed: false, reason: { code: 'resume-not-found' } });
      expect((await ended).reason.code).toBe('connection-lost');
      expect(refreshed).toBe(1);
      expect((await a.joinConference('res-restart')).isEnded).toBe(false);
      await a.close();
    } finally {
      await second?.stop();
    }
  });
});

/** Counts every reliable message a room receives on `streamId`, per sender, checking order and bytes. */
function orderedReceiver(room: RoomBase, streamId: number, problems: string[]) {
  const next = new Map<string, number>();
  let total = 0;
  const waiters = new Set<() => void>();
  const ready = room.makeRecvDataSession(streamId, (data, { from }) => {
    const n = read32(data);
    const want = next.get(from) ?? 0;
    if (n !== want) problems.push(`stream ${streamId} from ${from}: got #${n}, expected #${want}`);
    if (!intact(data)) problems.push(`stream ${streamId} from ${from}: #${n} has wrong bytes`);
    next.set(from, n + 1);
    total++;
    for (const w of waiters) w();
  });
  return {
    ready,
    get total() {
      return total;
    },
    until: (count: number, timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        if (total >= count) return resolve();
        const timer = setTimeout(() => reject(new Error(`stream ${streamId}: ${total} of ${count} messages after ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (total < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      }),
  };
}

describe('soak: reliable data across many forced disconnects', () => {
  it('over 1,000 cuts, every reliable message, stream and RPC arrives exactly once, in order, intact', async () => {
    const server = await startServerProcess();
    const proxy = await startFaultProxy(server.port, { seed: 11 });
    const problems: string[] = [];
    let resumes = 0;
    let restarts = 0;
    // Generous timeouts: on a loaded machine a round trip across many cuts can take seconds.
    const options: ClientOptions = { connectTimeoutMs: 5_000, requestTimeoutMs: 60_000 };
    const connect = async (user: string) => {
      const c = await Client.connect(proxy.url, await server.token(user, { conferences: ['*'], calls: true }), options);
      c.on('reconnected', ({ resumed, reason }) => {
        if (resumed) resumes++;
        else {
          restarts++;
          console.log('not resumed', user, reason);
        }
      });
      return c;
    };
    try {
      // A 5-party conference where everyone broadcasts, and a 1:1 call with data both ways.
      const party = await Promise.all(['s0', 's1', 's2', 's3', 's4'].map(connect));
      const rooms = [];
      for (const c of party) rooms.push(await c.joinConference('soak'));
      const caller = await connect('c0');
      const callee = await connect('c1');
      const incoming = next(callee, 'incomingCall');
      const call = await caller.makeCall('c1');
      const answered = await (await incoming).accept();
      if (call.state !== 'connected') await next(call, 'connected');

      const CUTS = 1_000;
      const bcast = rooms.map((r) => orderedReceiver(r, 200, problems));
      const toCallee = orderedReceiver(answered, 201, problems);
      const toCaller = orderedReceiver(call, 202, problems);
      await Promise.all([...bcast.map((b) => b.ready), toCallee.ready, toCaller.ready]);
      // RPC and a data stream between two of the party, checked end to end.
      rooms[1]!.registerRpcMethod('echo', ({ payload }) => payload);
      const streamed: string[] = [];
      let streamArrived = () => {};
      rooms[3]!.registerStreamHandler('blob', async (reader) => {
        const all = (await reader.readAll()) as Uint8Array;
        streamed.push(`${reader.info.name}:${all.byteLength}:${all.every((x, i) => x === (i * 7) % 251)}`);
        streamArrived();
      });

      // Cut one connection every few milliseconds once every client is connected again, and every
      // connection after a random number of bytes past its handshake (so cuts land inside frames
      // too), until over 1,000 resumes. Handshakes are left alone so that reconnecting never backs
      // off: the test is about what survives a cut, on a machine of any speed.
      proxy.cutAtRandomOffsets({ minBytes: 16 * 1024, maxBytes: 4 * 1024 * 1024 });
      let cutting = true;
      const clients = 7;
      const cutter = (async () => {
        while (cutting) {
          if (proxy.connections >= clients) proxy.cutOne();
          await new Promise((r) => setTimeout(r, 8));
        }
      })();

      // Every sender keeps sending until the cuts are done; each returns how many it sent.
      const send = async (s: Awaited<ReturnType<RoomBase['makeSendDataSession']>>, size: (i: number) => number) => {
        let i = 0;
        for (; resumes < CUTS; i++) {
          if (!s.send(u32(i, size(i)))) await s.drained();
          if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
        }
        return i;
      };
      const senders = await Promise.all(rooms.map((r) => r.makeSendDataSession(200, 'reliable-message')));
      const callOut = await call.makeSendDataSession(201, 'reliable-message');
      const callIn = await answered.makeSendDataSession(202, 'reliable-bytes');
      const rpcs = (async () => {
        let n = 0;
        while (resumes < CUTS || n < 50) {
          const reply = await rooms[0]!.performRpc({ destination: party[1]!.participantId, method: 'echo', payload: `rpc ${n}`, timeoutMs: 60_000 });
          if (reply !== `rpc ${n}`) problems.push(`rpc ${n} answered ${reply}`);
          n++;
        }
        return n;
      })();
      const streams = (async () => {
        let n = 0;
        const blob = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251);
        while (resumes < CUTS || n < 5) {
          // Like a file-sharing app, the next file goes once the receiver has this one.
          const arrived = new Promise<void>((resolve) => (streamArrived = resolve));
          await rooms[2]!.sendBytes('blob', blob, { name: `b${n}`, destination: [party[3]!.participantId] });
          await arrived;
          n++;
        }
        return n;
      })();
      const [sent, [callSent, calleeSent], [rpcCount, streamCount]] = await Promise.all([
        Promise.all(senders.map((s, k) => send(s, (i) => 8 + ((i * 37 + k) % 3000)))),
        Promise.all([send(callOut, (i) => 8 + (i % 2000)), send(callIn, () => 1024)]),
        Promise.all([rpcs, streams]),
      ]);
      cutting = false;
      proxy.cutAtRandomOffsets(undefined);
      await cutter;
      const totalSent = sent.reduce((a, b) => a + b, 0);
      await Promise.all([...bcast.map((b, k) => b.until(totalSent - sent[k]!, 60_000)), toCallee.until(callSent, 60_000), toCaller.until(calleeSent, 60_000)]);
      const delivered = bcast.reduce((n, b) => n + b.total, 0) + toCallee.total + toCaller.total;
      console.log(`soak: ${resumes} resumes over ${proxy.accepted} connections, ${delivered} messages, ${rpcCount} RPCs, ${streamCount} streams delivered exactly once`);
      expect(problems).toEqual([]);
      expect(restarts).toBe(0);
      expect(resumes).toBeGreaterThanOrEqual(CUTS);
      expect(bcast.map((b) => b.total)).toEqual(sent.map((n) => totalSent - n));
      expect(toCallee.total).toBe(callSent);
      expect(toCaller.total).toBe(calleeSent);
      expect(streamed.every((s) => s.endsWith(':200000:true'))).toBe(true);
      for (const c of [...party, caller, callee]) await c.close();
    } finally {
      await proxy.close();
      await server.stop();
    }
  }, 180_000);
});
