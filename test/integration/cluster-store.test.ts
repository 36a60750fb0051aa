/**
 * The Redis cluster store against a real redis-server: registry and node numbers, concurrent
 * placement, a node that stops heartbeating and its cleanup, and a Redis restart. Short timings
 * (heartbeat 250 ms, TTL 1.5 s: a loaded machine can stall the test process for a few hundred ms);
 * every test has its own key prefix on one redis-server, except the outage test, which has its own
 * server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { ParticipantInfo } from '@backchannel/protocol';
import { RedisClusterStore } from '../../packages/server/dist/cluster/redis-store.js';
import type { NodeInfo, RoomRecord } from '../../packages/server/dist/cluster/store.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { next, until } from '../helpers/events.js';

const HEARTBEAT_MS = 250;
const TTL_MS = 1_500;

let redis: RedisProcess;
let raw: Redis;
const stores = new Set<RedisClusterStore>();
let prefixNo = 0;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true });
  await raw.connect();
});
afterEach(async () => {
  await Promise.all([...stores].map((s) => s.close()));
  stores.clear();
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

/** Starts a store; `load` is read at every heartbeat. */
async function startStore(prefix: string, options: { id?: string; url?: string; load?: { participants: number; rooms: number } } = {}): Promise<RedisClusterStore> {
  const id = options.id ?? `n${Math.random().toString(36).slice(2, 10)}`;
  const store = await RedisClusterStore.start({
    redisUrl: options.url ?? redis.url,
    nodeId: id,
    url: `ws://127.0.0.1:${7000 + stores.size}`,
    heartbeatMs: HEARTBEAT_MS,
    ttlMs: TTL_MS,
    log: pino({ level: 'silent' }),
    load: () => ({ cpu: 0, ...(options.load ?? { participants: 0, rooms: 0 }) }),
    prefix,
  });
  stores.add(store);
  return store;
}

function freshPrefix(): string {
  return `t${++prefixNo}:`;
}

/** Resolves once every store lists `count` nodes. */
async function converge(list: RedisClusterStore[], count: number): Promise<void> {
  await Promise.all(list.map((s) => until(s, 'nodeUp', () => s.nodes().length === count, 5_000)));
}

/** Resolves with the next `event` of `store` about node `id`. */
function nodeEvent(store: RedisClusterStore, event: 'nodeDown' | 'nodeLeft' | 'nodeUp', id: string, timeoutMs = 5_000): Promise<NodeInfo> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} for ${id} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = store.on(event, (node) => {
      if (node.id !== id) return;
      clearTimeout(timer);
      off();
      resolve(node);
    });
  });
}

function member(id: string, userId: string): ParticipantInfo {
  return { id, sid: 1, userId, displayName: userId, metadata: null, joinedAt: 1, capabilities: { protocol: 1, dataSession: true } };
}

function conference(store: RedisClusterStore, name: string, n: number): RoomRecord {
  return { kind: 'conference', name, num: (store.self.no << 20) | n, createdAt: 1 };
}

describe('registry', () => {
  it('gives nodes started together distinct numbers, lists them, and picks the least loaded', async () => {
    const prefix = freshPrefix();
    const [a, b, c] = await Promise.all([
      startStore(prefix, { load: { participants: 9, rooms: 1 } }),
      startStore(prefix, { load: { participants: 2, rooms: 1 } }),
      startStore(prefix, { load: { participants: 3, rooms: 0 } }),
    ]);
    expect(new Set([a!.self.no, b!.self.no, c!.self.no])).toEqual(new Set([1, 2, 3]));
    await converge([a!, b!, c!], 3);
    for (const s of [a!, b!, c!]) {
      expect(s.nodes().map((n) => n.no)).toEqual([1, 2, 3]);
      expect(s.nodeByNo(b!.self.no)?.id).toBe(b!.self.id);
      expect(s.nodeByNo(b!.self.no)?.url).toBe(b!.self.url);
      // b and c both carry 3 (participants + rooms), b has the lower cpu tie → the lower number.
      expect(s.pickNode().id).toBe((b!.self.no < c!.self.no ? b : c)!.self.id);
    }
    b!.setDraining(true);
    c!.setDraining(true);
    await expect.poll(() => a!.pickNode().id, { interval: 20, timeout: 2_000 }).toBe(a!.self.id);
  });

  it('reports a graceful close as nodeLeft, removes its keys, and lets a newcomer reuse its number', async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix);
    const b = await startStore(prefix);
    await converge([a, b], 2);
    const downs: NodeInfo[] = [];
    a.on('nodeDown', (n) => void downs.push(n));
    const left = nodeEvent(a, 'nodeLeft', b.self.id);
    const no = b.self.no;
    await b.close();
    stores.delete(b);
    await left;
    expect(downs).toEqual([]);
    expect(await raw.exists(`${prefix}node:${b.self.id}`, `${prefix}nodeno:${no}`, `${prefix}rooms:${b.self.id}`)).toBe(0);
    expect(await raw.smembers(`${prefix}nodes`)).toEqual([a.self.id]);
    const c = await startStore(prefix);
    expect(c.self.no).toBe(no);
  });
});

describe('conference placement', () => {
  it('agrees on one host when three nodes place the same names at once', async () => {
    const prefix = freshPrefix();
    const list = await Promise.all([startStore(prefix), startStore(prefix), startStore(prefix)]);
    await converge(list, 3);
    const names = Array.from({ length: 20 }, (_, i) => `room-${i}`);
    const hosts = await Promise.all(names.map((name) => Promise.all(list.map((s) => s.conferenceHost(name)))));
    for (const [i, answers] of hosts.entries()) {
      expect(new Set(answers.map((h) => h.id)).size).toBe(1);
      expect(await raw.get(`${prefix}conf:${names[i]}`)).toBe(answers[0]!.id);
    }
    // The owner releases a name; the next placement records a host again.
    const owner = list.find((s) => s.self.id === hosts[0]![0]!.id)!;
    const other = list.find((s) => s !== owner)!;
    other.releaseConference(names[0]!); // not the owner: nothing changes
    owner.releaseConference(names[0]!);
    await owner.ringingFor('flush'); // the writes went before this command on the same connection
    await other.ringingFor('flush');
    expect(await raw.get(`${prefix}conf:${names[0]}`)).toBeNull();
    const again = await other.conferenceHost(names[0]!);
    expect(await raw.get(`${prefix}conf:${names[0]}`)).toBe(again.id);
  });
});

describe('a node that stops heartbeating', () => {
  it('is reported down within ttl + heartbeat, and exactly one survivor gets its rooms and members', async () => {
    const prefix = freshPrefix();
    const [a, b, c] = await Promise.all([startStore(prefix), startStore(prefix), startStore(prefix)]);
    await converge([a!, b!, c!], 3);
    const conf = conference(c!, 'board', 1);
    const call: RoomRecord = { kind: 'call', name: 'call-1', num: (c!.self.no << 20) | 2, createdAt: 2, caller: { userId: 'u1', displayName: 'U1', participantId: 'p1' }, callee: 'u2', connectedAt: 0 };
    c!.roomOpened(conf);
    c!.memberAdded(conf.num, member('p1', 'u1'));
    c!.memberAdded(conf.num, member('p2', 'u2'));
    c!.memberRemoved(conf.num, 'p2');
    c!.roomOpened(call);
    c!.roomUpdated({ ...call, connectedAt: 5 });
    c!.roomOpened(conference(c!, 'gone', 3));
    c!.roomClosed(conference(c!, 'gone', 3).num);
    c!.ringing('u9', 'call-9', c!.self.no, 60_000);
    expect((await a!.conferenceHost('board')).id).toBe(c!.self.id);
    expect(await a!.ringingFor('u9')).toEqual(new Map([['call-9', c!.self.no]]));

    const downs = [nodeEvent(a!, 'nodeDown', c!.self.id), nodeEvent(b!, 'nodeDown', c!.self.id)];
    const killedAt = Date.now();
    c!.kill();
    const [seenByA, seenByB] = await Promise.all(downs);
    expect(Date.now() - killedAt).toBeLessThan(TTL_MS + 2 * HEARTBEAT_MS + 1_000);
    expect(seenByA!.no).toBe(c!.self.no);
    expect(seenByB!.id).toBe(c!.self.id);
    expect(a!.nodes().map((n) => n.id)).not.toContain(c!.self.id);

    const claims = await Promise.all([a!.claimDead(seenByA!), b!.claimDead(seenByB!), a!.claimDead(seenByA!)]);
    const won = claims.filter((x) => x !== undefined);
    expect(won).toHaveLength(1);
    const dead = won[0]!;
    expect(dead.node.id).toBe(c!.self.id);
    const rooms = [...dead.rooms].sort((x, y) => x.num - y.num);
    expect(rooms).toEqual([
      { ...conf, members: [member('p1', 'u1')] },
      { ...call, connectedAt: 5, members: [] },
    ]);
    // Its records and ownerships are gone; the conference is placed again on a live node.
    expect(await raw.exists(`${prefix}rooms:${c!.self.id}`, `${prefix}members:${c!.self.id}:${conf.num}`, `${prefix}confs:${c!.self.id}`, `${prefix}node:${c!.self.id}`)).toBe(0);
    expect((await raw.smembers(`${prefix}nodes`)).sort()).toEqual([a!.self.id, b!.self.id].sort());
    expect([a!.self.id, b!.self.id]).toContain((await b!.conferenceHost('board')).id);
  });
});

describe('dead nodes nobody watched', () => {
  it('reports a registered node without a key that nobody claimed, with its last registration', async () => {
    const prefix = freshPrefix();
    const ghost: NodeInfo = { id: 'ghost', no: 7, url: 'ws://127.0.0.1:7999', participants: 1, rooms: 1, cpu: 0, draining: false, startedAt: 1 };
    const room: RoomRecord = { kind: 'conference', name: 'haunted', num: (7 << 20) | 1, createdAt: 1 };
    await raw
      .multi()
      .sadd(`${prefix}nodes`, ghost.id)
      .set(`${prefix}nodeinfo:${ghost.id}`, JSON.stringify(ghost))
      .hset(`${prefix}nodenos`, '7', ghost.id)
      .hset(`${prefix}rooms:${ghost.id}`, String(room.num), JSON.stringify(room))
      .set(`${prefix}conf:haunted`, ghost.id)
      .sadd(`${prefix}confs:${ghost.id}`, 'haunted')
      .exec();
    const startedAt = Date.now();
    const a = await startStore(prefix);
    const down = await nodeEvent(a, 'nodeDown', ghost.id);
    // Not before the grace that follows Redis becoming reachable (here: the start).
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(TTL_MS);
    expect(down).toEqual(ghost);
    expect(await a.claimDead(down)).toEqual({ node: ghost, rooms: [{ ...room, members: [] }] });
    expect(await raw.exists(`${prefix}conf:haunted`, `${prefix}nodeinfo:${ghost.id}`)).toBe(0);
    expect(await raw.hget(`${prefix}nodenos`, '7')).toBeNull();
  });

  it('tells a node that was claimed dead while it still runs, which registers again', async () => {
    const prefix = freshPrefix();
    const a = await startStore(prefix);
    const b = await startStore(prefix);
    await converge([a, b], 2);
    const conf = conference(a, 'alive', 1);
    a.roomOpened(conf);
    await a.ringingFor('flush');
    const evicted = next<string>(a, 'evicted');
    const back = nodeEvent(b, 'nodeUp', a.self.id);
    const claim = await b.claimDead(a.self);
    expect(claim?.rooms.map((r) => r.name)).toEqual(['alive']);
    expect(await evicted).toBe(b.self.id);
    expect((await back).no).toBe(a.self.no);
    await expect.poll(() => raw.hkeys(`${prefix}rooms:${a.self.id}`), { interval: 20, timeout: 2_000 }).toEqual([String(conf.num)]);
    expect((await b.conferenceHost('alive')).id).toBe(a.self.id);
  });
});

describe('Redis outage', () => {
  let own: RedisProcess;
  beforeAll(async () => {
    own = await startRedis();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('rejects commands with cluster-unavailable while Redis is down, and after a restart rewrites everything without a nodeDown', async () => {
    const prefix = 'bc:';
    const a = await startStore(prefix, { url: own.url });
    const b = await startStore(prefix, { url: own.url });
    await converge([a, b], 2);
    const conf = conference(a, 'weekly', 1);
    a.roomOpened(conf);
    a.memberAdded(conf.num, member('p1', 'u1'));
    b.ringing('u5', 'call-5', b.self.no, 60_000);
    expect((await b.conferenceHost('weekly')).id).toBe(a.self.id);
    expect((await a.conferenceHost('placed')).id).toBe(a.self.id);
    const downs: NodeInfo[] = [];
    for (const s of [a, b]) s.on('nodeDown', (n) => void downs.push(n));

    const wentDown = [next(a, 'down'), next(b, 'down')];
    own.kill();
    await Promise.all(wentDown);
    expect(a.up).toBe(false);
    for (const attempt of [a.conferenceHost('weekly'), a.ringingFor('u5'), a.claimDead(b.self)]) {
      await expect(attempt).rejects.toMatchObject({ name: 'BackchannelError', code: 'cluster-unavailable', message: expect.stringMatching(/^Redis is unreachable: .*; retry$/) });
    }
    // Writes while down never throw; they are written when Redis is back.
    const later = conference(a, 'later', 2);
    expect(() => {
      a.roomOpened(later);
      a.memberAdded(later.num, member('p2', 'u2'));
      a.memberRemoved(conf.num, 'p1');
      a.setDraining(false);
    }).not.toThrow();
    expect(a.nodes()).toHaveLength(2);

    const cameUp = [next(a, 'up'), next(b, 'up')];
    await own.restart();
    await Promise.all(cameUp);
    expect(a.up).toBe(true);
    const check = new Redis(own.url);
    try {
      await expect.poll(async () => (await check.smembers('bc:nodes')).sort(), { interval: 20, timeout: 2_000 }).toEqual([a.self.id, b.self.id].sort());
      expect(JSON.parse((await check.get(`bc:node:${a.self.id}`))!)).toMatchObject({ id: a.self.id, no: a.self.no, url: a.self.url });
      expect(await check.get(`bc:nodeno:${a.self.no}`)).toBe(a.self.id);
      expect(await check.get(`bc:nodeno:${b.self.no}`)).toBe(b.self.id);
      expect(await check.get('bc:conf:weekly')).toBe(a.self.id);
      expect(await check.get('bc:conf:later')).toBe(a.self.id);
      expect(await check.hkeys(`bc:rooms:${a.self.id}`)).toEqual(expect.arrayContaining([String(conf.num), String(later.num)]));
      expect(await check.hkeys(`bc:members:${a.self.id}:${conf.num}`)).toEqual([]);
      expect(await check.hkeys(`bc:members:${a.self.id}:${later.num}`)).toEqual(['p2']);
      expect(await b.ringingFor('u5')).toEqual(new Map([['call-5', b.self.no]]));
      expect((await b.conferenceHost('weekly')).id).toBe(a.self.id);
    } finally {
      check.disconnect();
    }
    // The grace after Redis came back has passed, heartbeats went on: nobody was declared dead.
    await new Promise((r) => setTimeout(r, TTL_MS + 3 * HEARTBEAT_MS));
    expect(downs).toEqual([]);
    expect(a.nodes().map((n) => n.id).sort()).toEqual([a.self.id, b.self.id].sort());
  });

  it('fails to start with cluster-unavailable when Redis cannot be reached', async () => {
    const start = RedisClusterStore.start({
      redisUrl: 'redis://127.0.0.1:1',
      nodeId: 'lonely',
      url: 'ws://127.0.0.1:7000',
      heartbeatMs: HEARTBEAT_MS,
      ttlMs: TTL_MS,
      log: pino({ level: 'silent' }),
      load: () => ({ participants: 0, rooms: 0 }),
      startTimeoutMs: 300,
    });
    await expect(start).rejects.toMatchObject({ code: 'cluster-unavailable' });
  });
});
