/**
 * Cluster mode over real processes: a real redis-server and three `backchannel serve` nodes,
 * clients spread over the nodes. Conferences and calls across nodes, data in every mode, and what
 * happens when a node is killed. (The single-server suites also run against a cluster: see the
 * `cluster` project in vitest.config.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Call, type CallInvite, type Conference, type RemoteParticipant } from '@backchannel/client';
import type { WebhookEvent } from '@backchannel/server-sdk';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { deferred, next, until } from '../helpers/events.js';
import { webhookReceiver } from '../helpers/api.js';
import type { ServerProcess } from '../helpers/server.js';

type Receiver = Awaited<ReturnType<typeof webhookReceiver>>;
const parse = (body: string) => JSON.parse(body) as WebhookEvent;

let cluster: TestCluster;
let hooks: Receiver;
const clients: Client[] = [];

beforeAll(async () => {
  hooks = await webhookReceiver();
  cluster = await startCluster(3, { webhookUrls: [hooks.url], webhookRetryBaseMs: 20, emptyRoomGraceMs: 100, ringTimeoutMs: 5_000 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await cluster?.stop();
  await hooks?.close();
});

async function connect(node: ServerProcess, user: string, grants: Record<string, unknown> = { conferences: ['*'] }): Promise<Client> {
  const client = await Client.connect(node.url, await node.token(user, grants));
  clients.push(client);
  return client;
}

/** Events of room `name` the webhook receiver got, in arrival order. */
const eventsOf = (name: string) => hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.room.name === name);

/** Collects the next `count` messages of stream `id` in `room`. */
async function collect(room: Conference | Call, id: number, count: number) {
  const got: string[] = [];
  const done = deferred<string[]>();
  await room.makeRecvDataSession(id, (data) => {
    got.push(new TextDecoder().decode(data));
    if (got.length === count) done.resolve(got);
  });
  return done.promise;
}

describe('cluster', () => {
  it('registers three nodes with distinct numbers, each ready', async () => {
    const numbers = cluster.nodes.map((n) => n.logs.find((l) => l.msg === 'joined the cluster')?.no);
    expect(new Set(numbers).size).toBe(3);
    for (const node of cluster.nodes) {
      const res = await fetch(`${node.httpUrl}/readyz`);
      expect(res.status).toBe(200);
    }
  });

  it('a conference across three nodes: presence, reliable and unreliable data, addressed data', async () => {
    const [n1, n2, n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const ann = await connect(n1, 'x-ann');
    const ben = await connect(n2, 'x-ben');
    const cat = await connect(n3, 'x-cat');
    const a = await ann.joinConference('across');
    const benSeen = next<RemoteParticipant>(a, 'participantJoined');
    const b = await ben.joinConference('across');
    expect((await benSeen).userId).toBe('x-ben');
    const c = await cat.joinConference('across');
    // One room, on one node: its number names the node hosting it.
    expect(b.roomNum).toBe(a.roomNum);
    expect(c.roomNum).toBe(a.roomNum);
    expect(a.roomNum >>> 20).toBeGreaterThan(0);
    await until(a, 'participantJoined', () => a.participants.size === 2);
    expect([...c.participants.values()].map((p) => p.userId).sort()).toEqual(['x-ann', 'x-ben']);

    // Reliable, in order, to receivers on two other nodes.
    const atB = collect(b, 10, 200);
    const atC = collect(c, 10, 200);
    const tx = await a.makeSendDataSession(10, 'reliable-message');
    for (let i = 0; i < 200; i++) tx.send(`m${i}`);
    const expected = Array.from({ length: 200 }, (_, i) => `m${i}`);
    expect(await atB).toEqual(expected);
    expect(await atC).toEqual(expected);

    // From a participant whose room is hosted elsewhere, addressed to one participant.
    const atA = collect(a, 11, 3);
    const toAnn = await b.makeSendDataSession(11, 'reliable-message', { destination: [ann.participantId] });
    for (const m of ['x', 'y', 'z']) toAnn.send(m);
    expect(await atA).toEqual(['x', 'y', 'z']);

    // Unreliable data crosses too (loopback: nothing is lost).
    const unreliable = collect(c, 12, 5);
    const utx = await b.makeSendDataSession(12, 'unreliable');
    for (let i = 0; i < 5; i++) utx.send(`u${i}`);
    expect((await unreliable).sort()).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);

    // Metadata updates and leaves reach every node.
    const updated = next<RemoteParticipant>(c, 'participantUpdated');
    await b.updateMetadata({ mic: 'off' });
    expect((await updated).metadata).toEqual({ mic: 'off' });
    const left = next<RemoteParticipant>(a, 'participantLeft');
    await cat.close();
    expect((await left).userId).toBe('x-cat');
    await until(b, 'participantLeft', () => b.participants.size === 1);
  });

  it('a call across nodes rings every client of the callee; the first accept wins, the other sees it answered elsewhere', async () => {
    const [n1, n2, n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const caller = await connect(n1, 'c-caller', { calls: true });
    const phone = await connect(n2, 'c-callee', { calls: true });
    const laptop = await connect(n3, 'c-callee', { calls: true });
    const ringPhone = next<CallInvite>(phone, 'incomingCall');
    const ringLaptop = next<CallInvite>(laptop, 'incomingCall');
    const call = await caller.makeCall('c-callee');
    const [onPhone, onLaptop] = await Promise.all([ringPhone, ringLaptop]);
    expect(onPhone.callId).toBe(call.callId);
    expect(onLaptop.callId).toBe(call.callId);
    const revoked = next<{ code: string }>(onPhone, 'revoked');
    const connected = next(call, 'connected');
    const answered = await onLaptop.accept();
    await connected;
    expect((await revoked).code).toBe('answered-elsewhere');
    const atCallee = collect(answered, 5, 50);
    const tx = await call.makeSendDataSession(5, 'reliable-message');
    for (let i = 0; i < 50; i++) tx.send(`c${i}`);
    expect(await atCallee).toEqual(Array.from({ length: 50 }, (_, i) => `c${i}`));
    const ended = next<{ reason: { code: string } }>(call, 'ended');
    await answered.end();
    expect((await ended).reason.code).toBe('normal');
    await hooks.until((d) => d.some((x) => parse(x.body).type === 'call.ended' && (parse(x.body) as { callId?: string }).callId === call.callId));
    const ends = hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.type === 'call.ended' && (e as { callId?: string }).callId === call.callId);
    expect(ends).toHaveLength(1);
  });

  it('a client that connects while a call rings for its user is rung too, whatever node it connects to', async () => {
    const [n1, , n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const caller = await connect(n1, 'l-caller', { calls: true });
    const call = await caller.makeCall('l-callee');
    // The callee had no client when the call was made; it connects now, to a node of its choice.
    const late = await Client.connect(n3.url, await n3.token('l-callee', { calls: true }));
    clients.push(late);
    const invite = await next<CallInvite>(late, 'incomingCall');
    expect(invite.callId).toBe(call.callId);
    const connected = next(call, 'connected');
    await invite.accept();
    await connected;
    await call.end();
  });

  it('a callee already in a call hosted on another node is busy', async () => {
    const [n1, n2, n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const busy = await connect(n1, 'b-busy', { calls: true });
    const first = await connect(n2, 'b-first', { calls: true });
    const second = await connect(n3, 'b-second', { calls: true });
    const answered = next<CallInvite>(busy, 'incomingCall').then((inv) => inv.accept());
    const call1 = await first.makeCall('b-busy');
    if (call1.state !== 'connected') await next(call1, 'connected');
    await answered;
    // Calls are placed by load, and each placement counts at once: within a few calls one lands on
    // another node than the first call. Every one of them ends as busy.
    const nodeOf = (callId: string) => callId.split('_')[1];
    const hosts = new Set<string>();
    for (let i = 0; i < 4 && (hosts.size === 0 || hosts.has(nodeOf(call1.callId))); i++) {
      const call2 = await second.makeCall('b-busy');
      const ended = call2.state === 'ended' ? call2.endReason : (await next<{ reason: { code: string } }>(call2, 'ended')).reason;
      expect(ended?.code).toBe('busy');
      hosts.clear();
      hosts.add(nodeOf(call2.callId));
    }
    expect(hosts.has(nodeOf(call1.callId))).toBe(false);
    await call1.end();
  });

  it('sends each webhook of a room once, in order, whichever node its participants are on', async () => {
    const [n1, n2, n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const users = [await connect(n1, 'w-1'), await connect(n2, 'w-2'), await connect(n3, 'w-3')];
    for (const u of users) await u.joinConference('hooked');
    for (const u of users) await u.close();
    await hooks.until(() => eventsOf('hooked').some((e) => e.type === 'conference.ended'));
    const events = eventsOf('hooked');
    expect(events.map((e) => e.type)).toEqual([
      'conference.started',
      'participant.joined',
      'participant.joined',
      'participant.joined',
      'participant.left',
      'participant.left',
      'participant.left',
      'conference.ended',
    ]);
    expect(events.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
