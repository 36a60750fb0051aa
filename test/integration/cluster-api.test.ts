/**
 * The server API of a cluster (a real redis-server and three real nodes): any node answers for the
 * whole cluster. Asked through a node that hosts none of the rooms concerned, it lists, reads and
 * changes conferences and calls hosted on the other nodes and participants connected anywhere;
 * a node that does not answer makes it answer 503 `cluster-unavailable`.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Client, ErrorCode, type Call, type CallInvite, type Conference, type Reason, type RemoteParticipant } from '@backchannel/client';
import { ServerApiClient } from '@backchannel/server-sdk';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { next } from '../helpers/events.js';
import { http, receiver, webhookReceiver } from '../helpers/api.js';
import { API_KEY, API_SECRET, type ServerProcess } from '../helpers/server.js';

let cluster: TestCluster;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
const clients: Client[] = [];

beforeAll(async () => {
  hooks = await webhookReceiver();
  cluster = await startCluster(3, { emptyRoomGraceMs: 100, apiRateLimit: 0, webhookUrls: [hooks.url], ringTimeoutMs: 10_000 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await cluster?.stop();
  await hooks?.close();
});

/** The cluster number of the node hosting room number `room` (a room's `roomNum`). */
const hostOf = (room: number): number => room >>> 20;
/** The cluster number of node `n`. */
const numberOf = (n: ServerProcess): number => n.logs.find((l) => l.msg === 'joined the cluster')!.no as number;
/** The server API through node `n`. */
const apiVia = (n: ServerProcess) => new ServerApiClient(n.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });

async function connect(n: ServerProcess, user: string, grants: Record<string, unknown> = { conferences: ['*'] }): Promise<Client> {
  const client = await Client.connect(n.url, await n.token(user, grants));
  clients.push(client);
  return client;
}

/** Members of conference `name`, one connected to each node (in node order). */
async function membersOnEveryNode(name: string): Promise<{ client: Client; conf: Conference; no: number }[]> {
  const out = [];
  for (const [i, n] of cluster.nodes.entries()) {
    const client = await connect(n, `${name}-u${i}`);
    out.push({ client, conf: await client.joinConference(name), no: numberOf(n) });
  }
  return out;
}

/**
 * Opens conferences `${prefix}-1`, `${prefix}-2`, … (one member each) until they are hosted on two
 * nodes; returns their names, and the node hosting none. A conference goes to the least loaded node
 * as the nodes last published their load (every heartbeat), so the next one is tried a little later.
 */
async function conferencesOnTwoNodes(prefix: string): Promise<{ names: string[]; via: ServerProcess }> {
  const hosts = new Set<number>();
  const names: string[] = [];
  await vi.waitFor(
    async () => {
      const name = `${prefix}-${names.length + 1}`;
      const conf = await (await connect(cluster.nodes[names.length % 3]!, `${prefix}-owner-${names.length + 1}`)).joinConference(name);
      hosts.add(hostOf(conf.roomNum));
      names.push(name);
      expect(hosts.size).toBe(2);
    },
    { timeout: 10_000, interval: 250 },
  );
  return { names, via: cluster.nodes.find((n) => !hosts.has(numberOf(n)))! };
}

describe('server API of a cluster', () => {
  it('lists conferences of every node, one page at a time across nodes, and gets one hosted elsewhere', async () => {
    const { names, via } = await conferencesOnTwoNodes('list');
    const api = apiVia(via);
    const { conferences } = await api.listConferences();
    const ours = conferences.filter((c) => names.includes(c.name));
    expect(ours.map((c) => c.name)).toEqual(names);
    for (const c of ours) expect(c).toMatchObject({ participantCount: 1, participants: [{ userId: expect.stringMatching(/^list-owner-/) }] });

    // limit=1: every page holds one conference and names the next, whichever node holds it.
    const walked: string[] = [];
    let cursor: string | undefined;
    const admin = await via.token('app', { admin: true });
    do {
      const res = await http(via.httpUrl, 'GET', `/conferences?limit=1${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
      expect(res.status).toBe(200);
      expect(res.body.conferences).toHaveLength(1);
      walked.push(res.body.conferences[0].name);
      cursor = res.body.next;
    } while (cursor);
    expect(walked.filter((n) => names.includes(n))).toEqual(names);
    expect(walked).toEqual(conferences.map((c) => c.name));

    expect(await api.getConference(names[0]!)).toEqual(ours[0]);
    await expect(api.getConference('list-none')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound, details: { status: 404 } });
  });

  it('lists the participants of a conference hosted elsewhere, connected to three nodes, and updates one’s metadata', async () => {
    const members = await membersOnEveryNode('parts');
    const host = hostOf(members[0]!.conf.roomNum);
    const via = cluster.nodes.find((n) => numberOf(n) !== host)!;
    const api = apiVia(via);
    const { participants } = await api.listParticipants('parts');
    expect(participants.map((p) => p.id)).toEqual(members.map((m) => m.client.participantId));
    const page = await api.listParticipants('parts', { limit: 2 });
    expect(page.participants).toHaveLength(2);
    expect((await api.listParticipants('parts', { limit: 2, cursor: page.next })).participants.map((p) => p.id)).toEqual([members[2]!.client.participantId]);

    // A participant connected to neither the host nor the node asked.
    const target = members.find((m) => m.no !== host && m.no !== numberOf(via)) ?? members.find((m) => m.no !== host)!;
    const others = members.filter((m) => m !== target);
    const seen = others.map((m) => next<RemoteParticipant>(m.conf, 'participantUpdated'));
    const updated = await api.updateParticipant('parts', target.client.participantId, { metadata: { role: 'moderator' } });
    expect(updated).toMatchObject({ id: target.client.participantId, metadata: { role: 'moderator' } });
    for (const p of await Promise.all(seen)) expect(p).toMatchObject({ id: target.client.participantId, metadata: { role: 'moderator' } });
    await expect(api.updateParticipant('parts', 'PA_nobody', { metadata: 1 })).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound, details: { status: 404 } });
  });

  it('kicks a participant connected to another node than the host', async () => {
    const members = await membersOnEveryNode('kick');
    const host = hostOf(members[0]!.conf.roomNum);
    const via = cluster.nodes.find((n) => numberOf(n) !== host)!;
    const victim = members.find((m) => m.no !== host)!;
    const others = members.filter((m) => m !== victim);
    const kicked = next<{ reason: Reason }>(victim.conf, 'ended');
    const left = others.map((o) => new Promise<[RemoteParticipant, Reason]>((resolve) => o.conf.on('participantLeft', (p, r) => resolve([p, r]))));
    await apiVia(via).kickParticipant('kick', victim.client.participantId, { reason: 'off topic' });
    expect((await kicked).reason).toEqual({ code: 'kicked', message: 'off topic' });
    for (const [p, r] of await Promise.all(left)) {
      expect(p.id).toBe(victim.client.participantId);
      expect(r).toEqual({ code: 'kicked', message: 'off topic' });
    }
    expect((await apiVia(via).listParticipants('kick')).participants.map((p) => p.id)).toEqual(others.map((m) => m.client.participantId));
  });

  it('sends data into a room hosted elsewhere to clients on every node', async () => {
    const members = await membersOnEveryNode('data');
    const via = cluster.nodes.find((n) => numberOf(n) !== hostOf(members[0]!.conf.roomNum))!;
    const rx = await Promise.all(members.map((m) => receiver(m.conf, 400)));
    const api = apiVia(via);
    const sent = await api.sendData('data', { streamId: 400, data: 'to all' });
    expect(sent).toMatchObject({ room: { kind: 'conference', name: 'data' }, streamId: 400, seq: 0 });
    expect(sent.recipients.sort()).toEqual(members.map((m) => m.client.participantId).sort());
    await api.sendData('data', { streamId: 400, data: 'to the last', destination: members[2]!.client.participantId });
    const got = await Promise.all(rx.map((r, i) => r.until(i === 2 ? 2 : 1)));
    expect(got.map((g) => g.map((x) => [x.text, x.from, x.seq]))).toEqual([[['to all', 'server', 0]], [['to all', 'server', 0]], [['to all', 'server', 0], ['to the last', 'server', 1]]]);
  });

  it('ends a conference hosted elsewhere: clients on every node see it end', async () => {
    const members = await membersOnEveryNode('end');
    const via = cluster.nodes.find((n) => numberOf(n) !== hostOf(members[0]!.conf.roomNum))!;
    const ended = Promise.all(members.map((m) => next<{ reason: Reason }>(m.conf, 'ended')));
    await apiVia(via).endConference('end');
    for (const e of await ended) expect(e.reason.code).toBe('ended-by-server');
    await expect(apiVia(via).getConference('end')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound, details: { status: 404 } });
    await expect(apiVia(via).endConference('end')).rejects.toMatchObject({ code: ErrorCode.RoomNotFound });
  });

  it('revokes a participant connected to another node: its rooms elsewhere end as kicked, then its connection', async () => {
    const members = await membersOnEveryNode('revoke');
    const host = hostOf(members[0]!.conf.roomNum);
    const target = members.find((m) => m.no !== host)!;
    const via = cluster.nodes.find((n) => numberOf(n) !== target.no)!;
    const disconnected = next<Reason>(target.client, 'disconnected');
    const others = members.filter((m) => m !== target);
    const left = others.map((o) => new Promise<[RemoteParticipant, Reason]>((resolve) => o.conf.on('participantLeft', (p, r) => resolve([p, r]))));
    await apiVia(via).revokeParticipant(target.client.participantId, { reason: 'abuse' });
    expect(await disconnected).toEqual({ code: ErrorCode.ConnectionRevoked, message: 'abuse' });
    for (const [p, r] of await Promise.all(left)) {
      expect(p.id).toBe(target.client.participantId);
      expect(r).toEqual({ code: 'kicked', message: 'abuse' });
    }
    await hooks.until((d) => d.some((x) => JSON.parse(x.body).type === 'participant.kicked' && JSON.parse(x.body).participant.id === target.client.participantId));
    expect((await apiVia(via).listParticipants('revoke')).participants.map((p) => p.id)).toEqual(others.map((m) => m.client.participantId));
    await expect(apiVia(via).revokeParticipant(target.client.participantId)).rejects.toMatchObject({ code: ErrorCode.ParticipantNotFound, details: { status: 404 } });
  });

  it('lists, gets and ends a call hosted on another node', async () => {
    const [n1, n2] = cluster.nodes as [ServerProcess, ServerProcess];
    const caller = await connect(n1, 'api-caller', { calls: true });
    const callee = await connect(n2, 'api-callee', { calls: true });
    const incoming = next<CallInvite>(callee, 'incomingCall');
    const call: Call = await caller.makeCall('api-callee', { appParam: 'video' });
    const host = Number(/^CA_(\d+)_/.exec(call.callId)![1]);
    const via = cluster.nodes.find((n) => numberOf(n) !== host)!;
    const api = apiVia(via);
    expect(await api.getCall(call.callId)).toMatchObject({ callId: call.callId, state: 'ringing', appParam: 'video', caller: { userId: 'api-caller', participantId: caller.participantId } });
    const connected = next(call, 'connected');
    const answered = await (await incoming).accept();
    await connected;
    const listed = (await api.listCalls()).calls.find((c) => c.callId === call.callId);
    expect(listed).toMatchObject({ state: 'connected', callee: { userId: 'api-callee', participantId: callee.participantId } });
    expect((await api.listParticipants(call.callId)).participants.map((p) => p.userId).sort()).toEqual(['api-callee', 'api-caller']);
    const ends = [next<{ reason: Reason }>(call, 'ended'), next<{ reason: Reason }>(answered, 'ended')];
    await api.endCall(call.callId);
    for (const e of await Promise.all(ends)) expect(e.reason.code).toBe('ended-by-server');
    await expect(api.getCall(call.callId)).rejects.toMatchObject({ code: ErrorCode.CallNotFound, details: { status: 404 } });
    // A call id naming no node of the cluster, or no node at all.
    await expect(api.getCall('CA_2047_nosuchcall')).rejects.toMatchObject({ code: ErrorCode.CallNotFound, details: { status: 404 } });
    await expect(api.endCall('CA_nosuchcall')).rejects.toMatchObject({ code: ErrorCode.CallNotFound, details: { status: 404 } });
  });

  it('sums the webhook counters of every node per URL', async () => {
    const admin = await cluster.nodes[0]!.token('app', { admin: true });
    await vi.waitFor(
      async () => {
        const { body } = await http(cluster.nodes[0]!.httpUrl, 'GET', '/webhooks', { token: admin });
        expect(body.endpoints).toHaveLength(1);
        expect(body.endpoints[0]).toMatchObject({ url: hooks.url, pending: 0, delivered: hooks.deliveries.length, dropped: 0 });
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it('answers 503 cluster-unavailable while a node does not answer, then lists without it once it is gone', async () => {
    const [, , n3] = cluster.nodes as [ServerProcess, ServerProcess, ServerProcess];
    const api = apiVia(cluster.nodes[0]!);
    n3.proc.kill('SIGKILL');
    await expect(api.listConferences()).rejects.toMatchObject({ code: ErrorCode.ClusterUnavailable, details: { status: 503 } });
    await vi.waitFor(() => api.listConferences(), { timeout: 10_000, interval: 100 });
  });
});
