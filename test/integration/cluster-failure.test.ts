/**
 * Cluster mode when things fail, over real processes: a node killed with SIGKILL, Redis
 * restarting, a node draining. Each test has its own cluster (three nodes and a redis-server).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type CallInvite, type Conference } from '@backchannel/client';
import type { WebhookEvent } from '@backchannel/server-sdk';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { startBalancer, type Balancer } from '../helpers/balancer.js';
import { deferred, next } from '../helpers/events.js';
import { webhookReceiver } from '../helpers/api.js';
import type { ServerProcess } from '../helpers/server.js';

type Receiver = Awaited<ReturnType<typeof webhookReceiver>>;
const parse = (body: string) => JSON.parse(body) as WebhookEvent & { participant?: { id: string }; reason?: { code: string }; callId?: string };

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

async function cluster(config: Record<string, unknown> = {}): Promise<{ nodes: ServerProcess[]; cl: TestCluster; hooks: Receiver }> {
  const hooks = await webhookReceiver();
  const cl = await startCluster(3, { webhookUrls: [hooks.url], webhookRetryBaseMs: 20, emptyRoomGraceMs: 100, ...config });
  cleanup.push(() => hooks.close(), () => cl.stop());
  return { nodes: cl.nodes, cl, hooks };
}

async function connect(url: string, node: ServerProcess, user: string, grants: Record<string, unknown> = { conferences: ['*'] }): Promise<Client> {
  const client = await Client.connect(url, await node.token(user, grants), { reconnect: { firstDelayMs: 0, baseDelayMs: 100, maxDelayMs: 200 } });
  cleanup.push(() => client.close());
  return client;
}

/** The node hosting room number `num` (nodes are numbered 1, 2, 3 in start order). */
const hostOf = (nodes: ServerProcess[], num: number) => nodes[(num >>> 20) - 1]!;

/**
 * Joins `name`, retrying while the answer is `cluster-unavailable`: until every survivor has seen a
 * dead node's registration expire, a join may still be sent its way, and the docs tell a client
 * to retry (docs/cluster.md).
 */
async function joinRetrying(client: Client, name: string): Promise<Conference> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.joinConference(name);
    } catch (error) {
      if ((error as { code?: string }).code !== ErrorCode.ClusterUnavailable || attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Sends `count` messages on a new stream `id` of `from` and resolves once `to` has them all, in order. */
async function exchange(from: Conference, to: Conference, id: number, count: number): Promise<void> {
  const got: string[] = [];
  const done = deferred();
  await to.makeRecvDataSession(id, (d) => {
    got.push(new TextDecoder().decode(d));
    if (got.length === count) done.resolve();
  });
  const tx = await from.makeSendDataSession(id, 'reliable-message');
  for (let i = 0; i < count; i++) tx.send(`${id}:${i}`);
  await done.promise;
  expect(got).toEqual(Array.from({ length: count }, (_, i) => `${id}:${i}`));
}

describe('cluster: node failure', () => {
  it('kill -9 of the node hosting a conference: the others are told node-lost at once, its webhooks are sent once, its clients reconnect elsewhere and rejoin', async () => {
    const { nodes, hooks } = await cluster();
    const starter = await connect(nodes[1]!.url, nodes[1]!, 'k-starter');
    const conf = await starter.joinConference('doomed');
    const host = hostOf(nodes, conf.roomNum);
    const others = nodes.filter((n) => n !== host);
    // `onHost` is connected to the host through a load balancer that sends new connections to the
    // host first, then to the survivors; `remote` is connected to a survivor.
    const lb: Balancer = await startBalancer([host, ...others].map((n) => n.port));
    cleanup.push(() => lb.close());
    const onHost = await connect(lb.url, host, 'k-on-host');
    const remote = await connect(others[0]!.url, others[0]!, 'k-remote');
    const a = await onHost.joinConference('doomed');
    const r = await remote.joinConference('doomed');
    await exchange(a, r, 1, 20);
    await hooks.until((d) => d.filter((x) => parse(x.body).room.name === 'doomed' && parse(x.body).type === 'participant.joined').length === 3);
    const before = hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.room.name === 'doomed');

    const ended = next<{ reason: { code: string } }>(r, 'ended', 5_000);
    const killedAt = Date.now();
    host.proc.kill('SIGKILL');
    // A member connected to a survivor hears at once (the link to the host closed).
    expect((await ended).reason.code).toBe('node-lost');
    const toldAfterMs = Date.now() - killedAt;
    // The client connected to the dead node reconnects through the balancer to a survivor, which
    // cannot resume it: it starts over.
    expect(await next(onHost, 'reconnected', 10_000)).toMatchObject({ resumed: false });

    // One survivor ends the dead node's rooms for the webhooks, once, continuing the room's sequence.
    await hooks.until((d) => d.some((x) => parse(x.body).room.name === 'doomed' && parse(x.body).type === 'conference.ended'), 10_000);
    const after = hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.room.name === 'doomed').slice(before.length);
    expect(after.map((e) => e.type).sort()).toEqual(['conference.ended', 'participant.left', 'participant.left', 'participant.left']);
    expect(new Set(after.filter((e) => e.type === 'participant.left').map((e) => e.participant!.id))).toEqual(new Set([starter.participantId, a.self!.id, remote.participantId].filter(Boolean)));
    for (const e of after) expect(e.reason!.code).toBe('node-lost');
    const last = Math.max(...before.map((e) => e.sequence));
    expect(after.map((e) => e.sequence).sort((x, y) => x - y)).toEqual([last + 1, last + 2, last + 3, last + 4]);
    expect(toldAfterMs).toBeLessThan(5_000);

    // New rooms go to live nodes: the same name again, from both survivors' clients.
    const again = await joinRetrying(onHost, 'doomed');
    expect(others).toContain(hostOf(nodes, again.roomNum));
    const r2 = await joinRetrying(remote, 'doomed');
    expect(r2.roomNum).toBe(again.roomNum);
    await exchange(again, r2, 2, 20);
  }, 40_000);

  it('kill -9 of the node hosting a call: each party on another node sees it end as node-lost, and call.ended is sent once', async () => {
    const { nodes, hooks } = await cluster();
    const caller = await connect(nodes[0]!.url, nodes[0]!, 'kc-caller', { calls: true });
    const callee = await connect(nodes[1]!.url, nodes[1]!, 'kc-callee', { calls: true });
    const rung = next<CallInvite>(callee, 'incomingCall');
    const call = await caller.makeCall('kc-callee');
    const answered = await (await rung).accept();
    // Calls are placed by load, on any node: the test kills whichever hosts this one.
    const hostNo = Number(/^CA_(\d+)_/.exec(call.callId)![1]);
    const parties = [
      { on: 1, side: call },
      { on: 2, side: answered },
    ].filter((p) => p.on !== hostNo);
    const ends = parties.map((p) => next<{ reason: { code: string } }>(p.side, 'ended', 5_000));
    nodes[hostNo - 1]!.proc.kill('SIGKILL');
    for (const end of ends) expect((await end).reason.code).toBe('node-lost');
    await hooks.until((d) => d.some((x) => parse(x.body).type === 'call.ended' && parse(x.body).callId === call.callId), 10_000);
    const webhooks = hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.type === 'call.ended' && e.callId === call.callId);
    expect(webhooks).toHaveLength(1);
    expect(webhooks[0]!.reason!.code).toBe('node-lost');
  }, 40_000);
});

describe('cluster: a frozen node', () => {
  it('a node frozen for longer than its registration lives is taken for dead; when it wakes it ends its rooms too, without a second set of webhooks', async () => {
    const { nodes, hooks } = await cluster();
    const starter = await connect(nodes[0]!.url, nodes[0]!, 'fz-starter');
    const conf = await starter.joinConference('frozen');
    const host = hostOf(nodes, conf.roomNum);
    const other = nodes.find((n) => n !== host)!;
    const local = await connect(host.url, host, 'fz-local');
    const remote = await connect(other.url, other, 'fz-remote');
    const onHost = await local.joinConference('frozen');
    const elsewhere = await remote.joinConference('frozen');
    const remoteEnded = next<{ reason: { code: string } }>(elsewhere, 'ended', 10_000);
    host.proc.kill('SIGSTOP');
    try {
      expect((await remoteEnded).reason.code).toBe('node-lost');
      await hooks.until((d) => d.some((x) => parse(x.body).room.name === 'frozen' && parse(x.body).type === 'conference.ended'), 10_000);
    } finally {
      host.proc.kill('SIGCONT');
    }
    // Awake, it learns it was taken for dead, and its own client's room ends as well.
    expect((await next<{ reason: { code: string } }>(onHost, 'ended', 10_000)).reason.code).toBe('node-lost');
    // The room's webhooks were sent once: by the survivor, not again by the node that woke up.
    await new Promise((r) => setTimeout(r, 500)); // what a second sender would have sent by now
    const ends = hooks.deliveries.map((d) => parse(d.body)).filter((e) => e.room.name === 'frozen' && e.type === 'conference.ended');
    expect(ends).toHaveLength(1);
    // The woken node works again: it hosts and serves a new room.
    const again = await local.joinConference('after-thaw');
    expect(again.roomNum).toBeGreaterThan(0);
  }, 40_000);
});

describe('cluster: Redis and draining', () => {
  it('a Redis restart ends no room: data keeps flowing, joins fail retryably meanwhile, and the cluster recovers by itself', async () => {
    const { nodes, cl } = await cluster();
    const a = await connect(nodes[0]!.url, nodes[0]!, 'rr-a');
    const b = await connect(nodes[1]!.url, nodes[1]!, 'rr-b');
    const ra = await a.joinConference('steady');
    const rb = await b.joinConference('steady');
    let ended = false;
    ra.on('ended', () => (ended = true));
    rb.on('ended', () => (ended = true));

    cl.redis.kill();
    // Readiness says so on every node, while running rooms carry on.
    await expect.poll(async () => (await fetch(`${nodes[2]!.httpUrl}/readyz`)).status, { timeout: 10_000 }).toBe(503);
    expect(await (await fetch(`${nodes[2]!.httpUrl}/readyz`)).json()).toMatchObject({ status: 'cluster-unavailable' });
    await exchange(ra, rb, 1, 50);
    const c = await connect(nodes[2]!.url, nodes[2]!, 'rr-c');
    await expect(c.joinConference('new-while-down')).rejects.toMatchObject({ code: ErrorCode.ClusterUnavailable });

    await cl.redis.restart();
    for (const node of nodes) await expect.poll(async () => (await fetch(`${node.httpUrl}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    // The directory was rebuilt by the nodes: a join from a third node finds the same room.
    const rc = await c.joinConference('steady');
    expect(rc.roomNum).toBe(ra.roomNum);
    await exchange(rb, rc, 2, 50);
    expect(await c.joinConference('new-after')).toBeDefined();
    expect(ended).toBe(false);
  }, 40_000);

  it('a draining node places nothing new, and ends its rooms within the drain time', async () => {
    const { nodes } = await cluster({ drainTimeoutMs: 1_500 });
    const a = await connect(nodes[0]!.url, nodes[0]!, 'dr-a');
    // Join until a conference lands on node 3, the one that will drain.
    let onThree: Conference | undefined;
    for (let i = 0; i < 30 && !onThree; i++) {
      const conf = await a.joinConference(`drain-${i}`);
      if (conf.roomNum >>> 20 === 3) onThree = conf;
    }
    expect(onThree).toBeDefined();
    const ended = next<{ reason: { code: string } }>(onThree!, 'ended', 10_000);
    void nodes[2]!.stop(); // SIGTERM: drain
    await expect.poll(async () => (await fetch(`${nodes[2]!.httpUrl}/readyz`).catch(() => ({ status: 0 }))).status).not.toBe(200);
    // Nothing new goes to it meanwhile.
    for (let i = 0; i < 10; i++) {
      const conf = await a.joinConference(`after-drain-${i}`);
      expect(conf.roomNum >>> 20).not.toBe(3);
    }
    expect((await ended).reason.code).toBe('server-shutdown');
  }, 40_000);
});
