/**
 * The cluster store on Redis (ioredis). Key layout, all under a prefix (default `bc:`):
 *
 * | key | type | holds |
 * |---|---|---|
 * | `node:<id>` | string, PX ttl | JSON {@link NodeInfo}, refreshed every heartbeat |
 * | `nodeinfo:<id>` | string | the same at registration, no TTL: names a node that died while nobody watched |
 * | `nodes` | set | ids of registered nodes (left only by `close()` or a survivor's cleanup) |
 * | `nodeno:<n>` | string, PX ttl | id holding node number n |
 * | `nodenos` | hash | n → id that last held it (reserved until that node is cleaned up) |
 * | `conf:<name>` | string | id of the node hosting conference `name` |
 * | `confs:<id>` | set | conference names owned by node `id` |
 * | `rooms:<id>` | hash | room num → JSON {@link RoomRecord} |
 * | `members:<id>:<num>` | hash | participant id → JSON ParticipantInfo |
 * | `dead:<id>` | string, PX 1 h | who claimed the cleanup of node `id` (`!left` after a graceful stop) |
 * | `ring:<userId>` | hash, PX ttl | call id → host node number |
 *
 * Everything this node writes is also kept in memory, so when Redis comes back (even restarted and
 * empty) the node rewrites it by itself, and no node is declared dead for `ttlMs` after that.
 */
import { Redis, ReplyError } from 'ioredis';
import type { Logger } from 'pino';
import { BackchannelError, Emitter, ErrorCode, type ParticipantInfo } from '@backchannel/protocol';
import { ConfigError } from '../config.js';
import { CLAIM_NODE_NO, DROP_NODE, MAX_NODE_NO, PLACE_CONFERENCE, RELEASE_CONFERENCE } from './redis-scripts.js';
import type { ClusterStore, ClusterStoreEvents, DeadNode, NodeInfo, RoomRecord } from './store.js';

/** What `load()` reports each heartbeat; without `cpu` the store measures this process. */
export interface NodeLoad {
  participants: number;
  rooms: number;
  /** Share of one core used since the last heartbeat (0–n). */
  cpu?: number;
}

/** Options of {@link RedisClusterStore.start}. */
export interface RedisClusterStoreOptions {
  /** `redis://` or `rediss://` URL (setting `redis`). */
  redisUrl: string;
  /** This node's id (setting `clusterNodeId`). */
  nodeId: string;
  /** Address other nodes reach this one at (setting `clusterAddress`). */
  url: string;
  /** Registration refresh and poll interval, ms (setting `clusterHeartbeatMs`). */
  heartbeatMs: number;
  /** A registration not refreshed for this long expires, ms (setting `clusterNodeTtlMs`). */
  ttlMs: number;
  /** Where connection changes, number clashes and dead nodes are logged. */
  log: Logger;
  /** Called every heartbeat for the load published with the registration. */
  load: () => NodeLoad;
  /** Prefix of every key. Default `bc:`. */
  prefix?: string;
  /** How long `start` waits for Redis before it gives up with `cluster-unavailable`, ms. Default 10 000. */
  startTimeoutMs?: number;
}

/** Value of `dead:<id>` written by a graceful `close()` (node ids never contain `!`). */
const LEFT = '!left';
/** How long `dead:<id>` keeps losers of a cleanup from claiming it again, ms. */
const CLAIM_TTL_MS = 3_600_000;
/** How long others may take to notice a graceful leave, ms. */
const LEFT_TTL_MS = 60_000;

/**
 * {@link ClusterStore} on one Redis server. Fire-and-forget writes never throw: they update this
 * node's in-memory copy and write through while Redis is up. Commands that need an answer reject
 * with `cluster-unavailable` while it is not. `up` turns true as soon as the connection is ready;
 * the `up` event follows once this node's records are written again, `down` as soon as it is lost.
 */
export class RedisClusterStore extends Emitter<ClusterStoreEvents> implements ClusterStore {
  readonly #redis: Redis;
  readonly #opts: Required<Omit<RedisClusterStoreOptions, 'startTimeoutMs'>>;
  readonly #p: string;
  readonly #self: NodeInfo;
  #up = false;
  /** When Redis last became reachable (ms since the epoch); no `nodeDown` for `ttlMs` after it. */
  #upAt = 0;
  #wasUp = false;
  #closed = false;
  #lastError: Error | undefined;
  /** Everything must be written again at the next chance (Redis was down). */
  #dirty = false;
  #numberClashLogged = false;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #tickPending = false;
  #cpu = { usage: process.cpuUsage(), at: performance.now() };

  /** Other live nodes from the last poll, by id. */
  readonly #known = new Map<string, NodeInfo>();
  /** Nodes already reported down (until they leave the `nodes` set). */
  readonly #reported = new Set<string>();
  #sorted: NodeInfo[] = [];
  #byNo = new Map<number, NodeInfo>();

  // What this node has published, to write again after a Redis outage.
  readonly #rooms = new Map<number, RoomRecord>();
  readonly #members = new Map<number, Map<string, ParticipantInfo>>();
  readonly #confs = new Set<string>();
  readonly #releases = new Set<string>();
  readonly #ringing = new Map<string, { userId: string; callId: string; hostNo: number; until: number }>();

  private constructor(options: RedisClusterStoreOptions) {
    super();
    this.#opts = { prefix: 'bc:', ...options };
    this.#p = this.#opts.prefix;
    this.#self = { id: options.nodeId, no: 0, url: options.url, participants: 0, rooms: 0, cpu: 0, draining: false, startedAt: Date.now() };
    this.onListenerError = (error, event) => this.#opts.log.error({ err: error, event }, 'cluster store listener failed');
    this.#redis = new Redis(options.redisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Commands in flight when the connection drops fail at once; the caller retries.
      maxRetriesPerRequest: 0,
      connectTimeout: Math.min(2_000, Math.max(500, options.ttlMs)),
      // A Redis that stops answering (frozen, or a partition that drops packets) counts as a lost
      // connection: the socket is destroyed and ioredis reconnects, so `down` is emitted.
      socketTimeout: Math.max(1_000, options.ttlMs),
      // At most a heartbeat apart (and 1 s): every node must be back well within the `ttlMs` grace.
      retryStrategy: (attempt) => Math.min(50 * attempt, options.heartbeatMs, 1_000),
      connectionName: `backchannel:${options.nodeId}`,
    });
    this.#redis.on('error', (error: Error) => {
      if (this.#lastError?.message !== error.message) this.#opts.log.warn({ err: error }, 'Redis connection error');
      this.#lastError = error;
    });
    this.#redis.on('close', () => this.#onClose());
    this.#redis.on('ready', () => this.#onReady());
  }

  /**
   * Connects to Redis, claims the lowest free node number and registers this node, then
   * heartbeats every `heartbeatMs`. Rejects with `cluster-unavailable` when Redis cannot be reached
   * within `startTimeoutMs` or every node number is taken, and with a `ConfigError` when a live
   * node already has this id.
   */
  static async start(options: RedisClusterStoreOptions): Promise<RedisClusterStore> {
    const store = new RedisClusterStore(options);
    try {
      await store.#connect(options.startTimeoutMs ?? 10_000);
      store.#measure();
      await store.#register(false);
      await store.#poll();
    } catch (error) {
      store.#closed = true;
      store.#redis.disconnect();
      throw store.#unavailable(error);
    }
    store.#timer = setInterval(() => store.#onHeartbeat(), options.heartbeatMs);
    store.#timer.unref();
    return store;
  }

  /** This node; `no` is assigned by `start` and kept for the life of the process. */
  get self(): NodeInfo {
    return this.#self;
  }

  /** Whether the connection to Redis is ready. */
  get up(): boolean {
    return this.#up;
  }

  /** Live nodes from the last poll, this one included, sorted by `no`. */
  nodes(): NodeInfo[] {
    return [...this.#sorted];
  }

  /** The live node with number `no`. */
  nodeByNo(no: number): NodeInfo | undefined {
    return this.#byNo.get(no);
  }

  /** Least loaded live node that is not draining (participants + rooms, then cpu, then `no`); this one if none. */
  pickNode(avoid?: number): NodeInfo {
    let best: NodeInfo | undefined;
    for (const n of this.#sorted) {
      if (n.draining || n.no === avoid) continue;
      if (!best || n.participants + n.rooms < best.participants + best.rooms || (n.participants + n.rooms === best.participants + best.rooms && n.cpu < best.cpu)) best = n;
    }
    const chosen = best ?? this.#self;
    // Counted at once: a burst of placements between two polls spreads instead of piling onto
    // the node that was least loaded at the last poll (the next poll brings the real figures).
    chosen.rooms++;
    return chosen;
  }

  /** The node hosting conference `name`, placed now (atomically) if it has no live host. Rejects with `cluster-unavailable` while Redis is down. */
  async conferenceHost(name: string, avoid?: number): Promise<NodeInfo> {
    this.#requireUp();
    try {
      let owner = await this.#redis.get(this.#key('conf:', name));
      // A few rounds: the owner another node recorded just now may have died since our poll.
      for (let round = 0; round < 3; round++) {
        const live = owner ? await this.#liveNode(owner) : undefined;
        if (live && live.no !== avoid) return this.#owned(name, live);
        const choice = this.pickNode(avoid);
        owner = (await this.#redis.eval(PLACE_CONFERENCE, 0, this.#p, name, choice.id, owner ?? '')) as string;
        const placed = owner === choice.id ? choice : await this.#liveNode(owner);
        if (placed) return this.#owned(name, placed);
      }
      throw new BackchannelError(ErrorCode.ClusterUnavailable, `conference "${name}" could not be placed on a live node; retry`);
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Forgets that this node hosts conference `name` (only if it still does). Never throws. */
  releaseConference(name: string): void {
    this.#confs.delete(name);
    this.#releases.add(name);
    this.#write(async (r) => {
      await r.eval(RELEASE_CONFERENCE, 0, this.#p, name, this.#self.id);
      this.#releases.delete(name);
    });
  }

  /** Records a room of this node; a conference also records this node as its host. Never throws. */
  roomOpened(room: RoomRecord): void {
    this.#rooms.set(room.num, room);
    if (!this.#members.has(room.num)) this.#members.set(room.num, new Map());
    this.#write((r) => r.hset(this.#key('rooms:', this.#self.id), String(room.num), JSON.stringify(room)));
    if (room.kind === 'conference') this.#claimConference(room.name);
  }

  /** Updates a room's record (a call answered). Never throws. */
  roomUpdated(room: RoomRecord): void {
    if (!this.#rooms.has(room.num)) return this.roomOpened(room);
    this.#rooms.set(room.num, room);
    this.#write((r) => r.hset(this.#key('rooms:', this.#self.id), String(room.num), JSON.stringify(room)));
  }

  /** Forgets a room and its members. Never throws. */
  roomClosed(num: number): void {
    this.#rooms.delete(num);
    this.#members.delete(num);
    this.#write((r) => r.multi().hdel(this.#key('rooms:', this.#self.id), String(num)).del(this.#membersKey(this.#self.id, num)).exec());
  }

  /** Records a member of room `num`. Never throws. */
  memberAdded(num: number, member: ParticipantInfo): void {
    let members = this.#members.get(num);
    if (!members) this.#members.set(num, (members = new Map()));
    members.set(member.id, member);
    this.#write((r) => r.hset(this.#membersKey(this.#self.id, num), member.id, JSON.stringify(member)));
  }

  /** Forgets a member of room `num`. Never throws. */
  memberRemoved(num: number, participantId: string): void {
    this.#members.get(num)?.delete(participantId);
    this.#write((r) => r.hdel(this.#membersKey(this.#self.id, num), participantId));
  }

  /**
   * Claims the cleanup of dead node `node`: one atomic step marks it claimed, reads its rooms and
   * members and deletes them with its registration, number and conference ownerships. Resolves
   * with them for exactly one caller cluster-wide, undefined for the others. Rejects with
   * `cluster-unavailable` while Redis is down.
   */
  async claimDead(node: NodeInfo): Promise<DeadNode | undefined> {
    this.#requireUp();
    try {
      const result = (await this.#redis.eval(DROP_NODE, 0, this.#p, node.id, this.#self.id, CLAIM_TTL_MS, node.no, 'claim')) as [string | null, [string, string[]][]] | null;
      if (!result) return undefined;
      this.#known.delete(node.id);
      this.#reindex();
      const info = (result[0] && parseNode(result[0])) || node;
      const rooms = result[1].map(([room, members]) => ({ ...(JSON.parse(room) as RoomRecord), members: members.map((m) => JSON.parse(m) as ParticipantInfo) }));
      this.#opts.log.info({ node: node.id, no: node.no, rooms: rooms.length }, 'claimed the cleanup of a dead node');
      return { node: { ...info, no: info.no || node.no }, rooms };
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Records that call `callId` hosted on node `hostNo` rings for `userId`, for `ttlMs`. Never throws. */
  ringing(userId: string, callId: string, hostNo: number, ttlMs: number): void {
    this.#ringing.set(`${userId}\n${callId}`, { userId, callId, hostNo, until: Date.now() + ttlMs });
    this.#write((r) => r.multi().hset(this.#key('ring:', userId), callId, String(hostNo)).pexpire(this.#key('ring:', userId), ttlMs).exec());
  }

  /** Forgets a ringing call. Never throws. */
  ringEnded(userId: string, callId: string): void {
    this.#ringing.delete(`${userId}\n${callId}`);
    this.#write((r) => r.hdel(this.#key('ring:', userId), callId));
  }

  /** Calls ringing for `userId`: call id → host node number. Rejects with `cluster-unavailable` while Redis is down. */
  async ringingFor(userId: string): Promise<Map<string, number>> {
    this.#requireUp();
    try {
      const all = await this.#redis.hgetall(this.#key('ring:', userId));
      return new Map(Object.entries(all).map(([callId, no]) => [callId, Number(no)]));
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Sets whether this node is draining; published at once. */
  setDraining(draining: boolean): void {
    this.#self.draining = draining;
    this.#write((r) => r.set(this.#key('node:', this.#self.id), JSON.stringify(this.#self), 'PX', this.#opts.ttlMs));
  }

  /** Deregisters this node (its records, number and conference ownerships with it) and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#chain;
    if (this.#up) {
      try {
        await this.#redis.eval(DROP_NODE, 0, this.#p, this.#self.id, LEFT, LEFT_TTL_MS, this.#self.no, 'leave');
      } catch (error) {
        this.#opts.log.warn({ err: error }, 'could not deregister from the cluster; the others will see this node expire');
      }
    }
    this.#up = false;
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  /**
   * Stops heartbeating and drops the connection without deregistering, as a crash would: the
   * others see this node expire. For tests.
   * @internal
   */
  kill(): void {
    this.#closed = true;
    this.#up = false;
    clearInterval(this.#timer);
    this.#redis.disconnect();
  }

  // --- connection state ---

  #connect(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(this.#unavailable(this.#lastError ?? new Error(`no answer within ${timeoutMs} ms`)));
      }, timeoutMs);
      const onReady = () => {
        off();
        resolve();
      };
      const off = () => {
        clearTimeout(timer);
        this.#redis.off('ready', onReady);
      };
      this.#redis.on('ready', onReady);
      // Rejects on a first failure while ioredis goes on retrying; the timer decides.
      this.#redis.connect().catch(() => undefined);
    });
  }

  #onReady(): void {
    if (this.#closed) return;
    this.#up = true;
    this.#upAt = Date.now();
    this.#lastError = undefined;
    if (!this.#wasUp) {
      this.#wasUp = true;
      return;
    }
    this.#opts.log.info('Redis is reachable again; writing this node’s records');
    this.#dirty = true;
    void this.#serial(async () => {
      await this.#tick();
      if (this.#up && !this.#closed) this.emit('up');
    });
  }

  #onClose(): void {
    if (!this.#up || this.#closed) return;
    this.#up = false;
    this.#dirty = true;
    const error = this.#lastError ?? new Error('connection closed');
    this.#opts.log.error({ err: error }, 'Redis is unreachable; the cluster runs on what it knows until it is back');
    this.emit('down', error);
  }

  #onHeartbeat(): void {
    if (this.#tickPending || this.#closed) return;
    this.#tickPending = true;
    void this.#serial(() => this.#tick()).finally(() => (this.#tickPending = false));
  }

  /** Runs `task` after the previous ones (heartbeats and recovery never overlap). */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** One heartbeat: load, registration (or everything after an outage), then the others. */
  async #tick(): Promise<void> {
    this.#measure();
    if (!this.#up || this.#closed) return this.#reindex();
    try {
      if (this.#dirty) await this.#republish();
      else await this.#heartbeat();
      await this.#poll();
    } catch (error) {
      this.#opts.log.debug({ err: error }, 'cluster heartbeat failed');
    }
  }

  #measure(): void {
    const load = this.#opts.load();
    this.#self.participants = load.participants;
    this.#self.rooms = load.rooms;
    const now = performance.now();
    const usage = process.cpuUsage(this.#cpu.usage);
    const measured = now > this.#cpu.at ? (usage.user + usage.system) / 1000 / (now - this.#cpu.at) : 0;
    this.#cpu = { usage: process.cpuUsage(), at: now };
    this.#self.cpu = Math.round((load.cpu ?? measured) * 1000) / 1000;
  }

  // --- registry ---

  /** Claims a node number (the lowest free one, or again our own) and writes the registration. */
  async #register(again: boolean): Promise<void> {
    const { ttlMs } = this.#opts;
    const id = this.#self.id;
    if (!again) {
      if (await this.#redis.exists(this.#key('node:', id))) throw new ConfigError(`setting "clusterNodeId": a live node of the cluster already has the id "${id}"`);
      await this.#redis.del(this.#key('dead:', id));
    }
    const no = Number(await this.#redis.eval(CLAIM_NODE_NO, 0, this.#p, id, ttlMs, again ? this.#self.no : 0));
    if (!again && no === 0) throw new BackchannelError(ErrorCode.ClusterUnavailable, `the cluster has no free node number (${MAX_NODE_NO} nodes registered); retry when one has left`);
    if (!again) this.#self.no = no;
    else this.#noteNumber(no);
    const json = JSON.stringify(this.#self);
    // The key before the set: a node in `nodes` without a key is dead.
    await this.#redis.multi().set(this.#key('node:', id), json, 'PX', ttlMs).set(this.#key('nodeinfo:', id), json).sadd(this.#key('nodes'), id).exec();
    if (!again) this.#opts.log.info({ node: id, no, url: this.#self.url }, 'joined the cluster');
  }

  /** Refreshes the registration and the number; notices a claim of this node by another. */
  async #heartbeat(): Promise<void> {
    const id = this.#self.id;
    const [set, , no, dead] = (await this.#redis
      .pipeline()
      .set(this.#key('node:', id), JSON.stringify(this.#self), 'PX', this.#opts.ttlMs)
      .sadd(this.#key('nodes'), id)
      .eval(CLAIM_NODE_NO, 0, this.#p, id, this.#opts.ttlMs, this.#self.no)
      .get(this.#key('dead:', id))
      .exec())!;
    if (set?.[0]) throw set[0];
    this.#noteNumber(Number(no?.[1]));
    const by = dead?.[1] as string | null;
    if (by && by !== LEFT) {
      this.#opts.log.error({ by }, 'another node declared this one dead (missed heartbeats) and ended its rooms; registering again');
      await this.#redis.del(this.#key('dead:', id));
      this.#dirty = true;
      this.emit('evicted', by);
    }
  }

  #noteNumber(no: number): void {
    if (no === this.#self.no) {
      this.#numberClashLogged = false;
      return;
    }
    if (this.#numberClashLogged) return;
    this.#numberClashLogged = true;
    this.#opts.log.error(
      { no: this.#self.no },
      'another node took this node’s number while Redis was unreachable; this node keeps it (its rooms keep their numbers), so rooms of the two may be routed wrongly until one restarts',
    );
  }

  /** Writes everything this node owns again: after Redis was unreachable (perhaps restarted, empty). */
  async #republish(): Promise<void> {
    this.#dirty = false;
    try {
      await this.#register(true);
      const id = this.#self.id;
      const roomsKey = this.#key('rooms:', id);
      const stale = await this.#redis.hkeys(roomsKey);
      const m = this.#redis.multi().del(roomsKey, ...stale.map((num) => this.#membersKey(id, Number(num))));
      for (const [num, room] of this.#rooms) {
        m.hset(roomsKey, String(num), JSON.stringify(room));
        const members = this.#members.get(num);
        m.del(this.#membersKey(id, num));
        if (members?.size) m.hset(this.#membersKey(id, num), Object.fromEntries([...members].map(([pid, info]) => [pid, JSON.stringify(info)])));
      }
      const now = Date.now();
      for (const [key, ring] of this.#ringing) {
        if (ring.until <= now) this.#ringing.delete(key);
        else m.hset(this.#key('ring:', ring.userId), ring.callId, String(ring.hostNo)).pexpire(this.#key('ring:', ring.userId), ring.until - now);
      }
      await m.exec();
      for (const name of this.#releases) await this.#redis.eval(RELEASE_CONFERENCE, 0, this.#p, name, id);
      this.#releases.clear();
      for (const name of this.#confs) await this.#placeOwn(name);
    } catch (error) {
      this.#dirty = true;
      throw error;
    }
  }

  /** Reads the registry: `nodeUp` for newcomers, `nodeDown` / `nodeLeft` for those gone. */
  async #poll(): Promise<void> {
    const ids = (await this.#redis.smembers(this.#key('nodes'))).filter((id) => id !== this.#self.id);
    const values = ids.length ? await this.#redis.mget(ids.map((id) => this.#key('node:', id))) : [];
    const live = new Map<string, NodeInfo>();
    ids.forEach((id, i) => {
      const node = values[i] ? parseNode(values[i]!) : undefined;
      if (node) live.set(id, node);
    });
    const missing = [...new Set([...ids, ...this.#known.keys()])].filter((id) => !live.has(id));
    // Events go out once `nodes()` is up to date.
    const events: [keyof ClusterStoreEvents & `node${string}`, NodeInfo][] = [];
    for (const [id, node] of live) {
      if (!this.#known.has(id)) events.push(['nodeUp', node]);
      this.#known.set(id, node);
      this.#reported.delete(id);
    }
    // Just after Redis came back every key may be gone until each node's next heartbeat: a
    // restart must not look like every node dying. Known nodes stay listed meanwhile.
    if (missing.length && Date.now() >= this.#upAt + this.#opts.ttlMs) {
      const pipe = this.#redis.pipeline();
      for (const id of missing) pipe.get(this.#key('dead:', id)).get(this.#key('nodeinfo:', id));
      const res = (await pipe.exec())!;
      missing.forEach((id, i) => {
        const by = res[2 * i]?.[1] as string | null;
        const last = this.#known.get(id) ?? parseNode((res[2 * i + 1]?.[1] as string | null) ?? '') ?? unknownNode(id);
        const wasKnown = this.#known.delete(id);
        if (this.#reported.has(id)) return;
        if (by === LEFT) {
          if (wasKnown) events.push(['nodeLeft', last]);
          return;
        }
        // A node nobody watched die (not known here) that is already claimed needs nothing.
        if (by && !wasKnown) return;
        this.#reported.add(id);
        this.#opts.log.warn({ node: id, no: last.no }, 'a node missed its heartbeats: it is down');
        events.push(['nodeDown', last]);
      });
    }
    const registered = new Set(ids);
    for (const id of this.#reported) if (!registered.has(id)) this.#reported.delete(id);
    this.#reindex();
    for (const [event, node] of events) this.emit(event, node);
  }

  #reindex(): void {
    this.#sorted = [this.#self, ...this.#known.values()].sort((a, b) => a.no - b.no);
    this.#byNo = new Map(this.#sorted.map((n) => [n.no, n]));
  }

  /** `id` as a live node: from the last poll, else read now (registered since). */
  async #liveNode(id: string): Promise<NodeInfo | undefined> {
    if (id === this.#self.id) return this.#self;
    const known = this.#known.get(id);
    if (known) return known;
    const value = await this.#redis.get(this.#key('node:', id));
    return value ? parseNode(value) : undefined;
  }

  // --- conferences ---

  #owned(name: string, host: NodeInfo): NodeInfo {
    if (host.id === this.#self.id) {
      this.#confs.add(name);
      this.#releases.delete(name);
    }
    return host;
  }

  #claimConference(name: string): void {
    this.#confs.add(name);
    this.#releases.delete(name);
    this.#write(() => this.#placeOwn(name));
  }

  /** Records this node as the host of `name` unless another live node is. */
  async #placeOwn(name: string): Promise<void> {
    const owner = (await this.#redis.eval(PLACE_CONFERENCE, 0, this.#p, name, this.#self.id, this.#self.id)) as string;
    if (owner !== this.#self.id && (await this.#liveNode(owner))) {
      this.#opts.log.error({ conference: name, owner }, 'a conference hosted here is recorded as hosted on another live node');
    } else if (owner !== this.#self.id) {
      await this.#redis.eval(PLACE_CONFERENCE, 0, this.#p, name, this.#self.id, owner);
    }
  }

  // --- helpers ---

  /** Runs a write while Redis is up; a failure is logged and repaired by the rewrite after the outage. */
  #write(op: (redis: Redis) => Promise<unknown>): void {
    if (!this.#up || this.#closed) return;
    op(this.#redis).catch((error: unknown) => {
      this.#dirty = true;
      this.#opts.log.debug({ err: error }, 'cluster store write failed; rewritten when Redis is back');
    });
  }

  #requireUp(): void {
    if (this.#closed) throw new BackchannelError(ErrorCode.ClusterUnavailable, 'the cluster store is closed');
    if (!this.#up) throw this.#unavailable(this.#lastError ?? new Error('not connected'));
  }

  /** `error` as `cluster-unavailable`, unless it is already typed or an error reply of Redis. */
  #unavailable(error: unknown): Error {
    if (error instanceof BackchannelError || error instanceof ConfigError || error instanceof ReplyError) return error as Error;
    const reason = error instanceof Error ? error.message : String(error);
    return new BackchannelError(ErrorCode.ClusterUnavailable, `Redis is unreachable: ${reason}; retry`, { cause: error });
  }

  #key(kind: string, name = ''): string {
    return `${this.#p}${kind}${name}`;
  }

  #membersKey(id: string, num: number): string {
    return `${this.#p}members:${id}:${num}`;
  }
}

function parseNode(json: string): NodeInfo | undefined {
  try {
    const node = JSON.parse(json) as NodeInfo;
    return typeof node?.id === 'string' && typeof node.no === 'number' ? node : undefined;
  } catch {
    return undefined;
  }
}

/** A registered node whose records are all gone (only its id is left). */
function unknownNode(id: string): NodeInfo {
  return { id, no: 0, url: '', participants: 0, rooms: 0, cpu: 0, draining: false, startedAt: 0 };
}
