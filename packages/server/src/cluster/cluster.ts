/**
 * Cluster mode: several server processes (nodes) coordinated through Redis, any client on any
 * node, each room on one node. See docs/cluster.md.
 *
 * A client's connection, session and resume stay on the node it connected to (its edge). A room
 * lives on the node that created it (its host); a participant connected elsewhere takes part there
 * through a stand-in peer (Hub.attachRemote) whose link (RemoteLink) turns what the core sends it
 * into operations on the node link to its edge. The edge forwards the client's requests and data
 * for rooms hosted elsewhere to their host, and applies the host's operations to the client's
 * session. Room numbers, participant handles and call ids name their node, so routing needs no
 * lookup; only where a conference lives is kept in Redis (with the node registry).
 *
 * Operations (field `s` is a participant handle):
 *   edge → host  a attach a stand-in · q request · in data frame · st connection state ·
 *                dt detach (gone) · rf refreshed token · pg queue progress · nt show a ringing call ·
 *                dr unreliable frames dropped for the client
 *   host → edge  r reply · ev event · cf shared control frame (to: handles) · d data frame
 *                (to: [handle, session, priority]…) · se session event · x discard · p pause
 *                reading · c close · de a data frame of the client's that the host refused
 *   any          ring (a call rings for a user) · rpc / rpr (a call between nodes and its answer) ·
 *                la (bytes of the link taken so far: the sender keeps at most a window on the way)
 *
 * The {@link Cluster} here owns the links and the edge's routing, and applies what crosses them;
 * the host's stand-ins are in stand-ins.ts, the edge's progress reports in progress.ts, the calls
 * between nodes in rpc.ts, and the records of this node's rooms in Redis (and the cleanup of a
 * dead node's) in records.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import {
  BackchannelError,
  CallEndReason,
  ErrorCode,
  RoomEndReason,
  encodeControlFrame,
  type ClientMessage,
  type PriorityClass,
  type ServerEvent,
} from '@backchannel/protocol';
import type { ServerConfig } from '../config.js';
import { callNode, type Call } from '../core/calls.js';
import type { HubEvent } from '../core/events.js';
import { nodeOf, type Hub, type HubCluster } from '../core/hub.js';
import type { Peer } from '../core/peer.js';
import { LinkAuth, LinkServer, NodeLink, type LinkHandler, type Op } from './links.js';
import { ProgressReports } from './progress.js';
import { RoomRecords } from './records.js';
import { NodeRpc, type RpcHandler } from './rpc.js';
import { StandIns } from './stand-ins.js';
import type { ClusterStore, NodeInfo } from './store.js';

export type { RpcHandler } from './rpc.js';

/** Bytes on their way to a node (sent, not yet acknowledged as taken) beyond which the clients sending over that link are read no further for a while. */
const LINK_WINDOW_BYTES = 2 * 1024 * 1024;
/** That while, ms (renewed while the link stays above the mark). */
const LINK_PAUSE_MS = 2;

/** What the cluster needs from the server around it. */
export interface ClusterOptions {
  hub: Hub;
  config: Readonly<ServerConfig>;
  log: Logger;
  store: ClusterStore;
  /** Handles a request of a peer connected here in this node's core (and replies to it). */
  handleLocal(peer: Peer, msg: ClientMessage): void;
  /** Reports an error of the data path to a client connected here. */
  reportError(peer: Peer, error: BackchannelError): void;
  /**
   * Emits an event of a dead node's room (webhooks), as its host would have; `after` is the
   * number of events the room had (its sequence continues from there).
   */
  emitForeign(event: HubEvent, after: number): void;
  /** Whether this node is draining (takes no new joins or calls). */
  draining(): boolean;
}

/** What a peer connected here has on another node. */
interface Attachment {
  /** Rooms it is in there (conference rooms and call rooms). */
  rooms: Set<number>;
  /** Calls there it takes part in or is rung for: call id → room number (0 while ringing). */
  calls: Map<string, number>;
}

export class Cluster implements HubCluster, LinkHandler {
  readonly #o: ClusterOptions;
  readonly #hub: Hub;
  readonly #store: ClusterStore;
  readonly #auth: LinkAuth;
  readonly #server: LinkServer;
  /** Bytes of batches taken from each node's link so far (acknowledged to it with `la`). */
  readonly #taken = new Map<number, number>();
  #takenScheduled = false;
  /** Addresses nodes gave when they opened a link here, by node number. */
  readonly #heardFrom = new Map<number, string>();
  /** Outgoing links, by node number. */
  readonly #links = new Map<number, NodeLink>();
  /** Peers connected here, by handle. */
  readonly #locals = new Map<number, Peer>();
  /** What each peer connected here has on other nodes, by node number. */
  readonly #attached = new Map<Peer, Map<number, Attachment>>();
  /** Stand-ins of peers connected to other nodes, in rooms hosted here. */
  readonly #standIns: StandIns;
  /** New conferences and calls forwarded to the node placed for them, by `node|handle|request id`. */
  readonly #joins = new Map<string, ClientMessage>();
  /** Requests of a client waiting behind its join (see route). */
  readonly #held = new Map<Peer, ClientMessage[]>();
  /** Requests forwarded to each node and not answered yet: node → peer → request ids. */
  readonly #pending = new Map<number, Map<Peer, Set<number>>>();
  /** Progress of the remote data sessions toward clients connected here. */
  readonly #progress = new ProgressReports((no) => this.#links.get(no));
  readonly #rpc: NodeRpc;
  readonly #records: RoomRecords;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #closed = false;
  #muted = false;

  constructor(options: ClusterOptions) {
    this.#o = options;
    this.#hub = options.hub;
    this.#store = options.store;
    this.#auth = new LinkAuth(options.config.clusterSecret);
    this.#server = new LinkServer(this.#auth, this, options.log);
    const linkTo = (no: number) => this.#linkTo(no);
    this.#standIns = new StandIns({ hub: options.hub, log: options.log, linkTo, draining: () => options.draining() });
    this.#rpc = new NodeRpc({ store: options.store, linkTo });
    this.#records = new RoomRecords({ hub: options.hub, store: options.store, log: options.log, emitForeign: (event, after) => options.emitForeign(event, after) });
    this.#hub.nodeNo = options.store.self.no;
    this.#hub.cluster = this;
    this.#store.on('nodeDown', (node) => this.#nodeDown(node));
    this.#store.on('nodeLeft', (node) => {
      this.#heardFrom.delete(node.no);
      options.log.info({ node: node.id, no: node.no }, 'a node left the cluster');
    });
    const joined = (node: NodeInfo) => options.log.info({ node: node.id, no: node.no, url: node.url }, 'a node joined the cluster');
    this.#store.on('nodeUp', joined);
    for (const node of this.#store.nodes()) if (node.no !== this.no) joined(node); // known before this subscribed
    this.#store.on('evicted', (by) => {
      // Cut off for longer than its registration lived: a survivor has ended this node's rooms
      // and sent their webhooks. So that no room or stand-in outlives what everyone was told, its
      // links are reset and its rooms end here too (node-lost), without a second set of webhooks.
      this.#o.log.error({ by, rooms: this.#hub.rooms.size }, 'this node was taken for dead by the cluster (missed heartbeats); ending its rooms and resetting its links');
      for (const no of [...this.#links.keys(), ...this.#standIns.nodes()]) this.down(no, 'this node was taken for dead');
      this.#muted = true;
      try {
        const why = { code: RoomEndReason.NodeLost, message: 'this node was taken for dead by the cluster' };
        this.#hub.calls.endAll({ code: CallEndReason.NodeLost, message: why.message });
        this.#hub.conferences.endAll(why);
      } finally {
        this.#muted = false;
      }
    });
    const probe = setInterval(() => {
      // A link silent for as long as a node's registration lives is as dead as the node.
      for (const link of this.#links.values()) link.probe(options.config.clusterNodeTtlMs);
      this.#progress.reportAll();
    }, Math.max(100, options.config.clusterHeartbeatMs));
    probe.unref();
    this.#timers.push(probe);
    this.handleRpc('calls.inConnectedCall', (userId) => this.#hub.calls.userInConnectedCall(String(userId)));
  }

  /** True while this node ends rooms a survivor has already sent the webhooks of (see 'evicted'). */
  get muted(): boolean {
    return this.#muted;
  }

  /** This node's number. */
  get no(): number {
    return this.#store.self.no;
  }

  /** Takes a node link's upgrade request. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#server.upgrade(req, socket, head);
  }

  // ---------------------------------------------------------------- edge: this node's clients

  /** A client connected here: it is rung for calls ringing for its user on other nodes. */
  peerConnected(peer: Peer): void {
    this.#locals.set(peer.sid, peer);
    if (!peer.grants.calls) return;
    this.#store.ringingFor(peer.userId).then(
      (calls) => {
        for (const [callId, no] of calls) if (no !== this.no && !peer.gone) this.#ringPeer(peer, no, callId);
      },
      (error: unknown) => this.#o.log.warn({ err: error, participantId: peer.id }, 'could not look up calls ringing on other nodes'),
    );
  }

  /**
   * Routes a request of a client connected here; false if this node's core handles it. A
   * client's requests are taken in order: while a join waits for Redis to say where its
   * conference lives, the requests that follow it wait too.
   */
  route(peer: Peer, msg: ClientMessage): boolean {
    const waiting = this.#held.get(peer);
    if (waiting) {
      waiting.push(msg);
      return true;
    }
    return this.#route(peer, msg);
  }

  #route(peer: Peer, msg: ClientMessage): boolean {
    let no: number;
    switch (msg.t) {
      case 'conf.join': {
        const known = this.#hub.conferences.byName.get(msg.name);
        if (known && !known.ended) return false;
        this.#held.set(peer, []);
        this.#store.conferenceHost(msg.name).then(
          (node) => {
            if (peer.gone) return;
            if (node.no === this.no) this.#o.handleLocal(peer, msg);
            else {
              this.#joins.set(`${node.no}|${peer.sid}|${msg.id}`, msg);
              this.#forward(peer, node.no, msg);
            }
            this.#release(peer);
          },
          (error: unknown) => {
            this.#replyError(peer, msg.id, error);
            this.#release(peer);
          },
        );
        return true;
      }
      case 'call.make':
        no = this.#store.pickNode().no;
        if (no !== this.no) this.#joins.set(`${no}|${peer.sid}|${msg.id}`, msg);
        break;
      case 'call.get':
      case 'call.accept':
      case 'call.decline':
      case 'call.cancel':
      case 'call.end':
        no = callNode(msg.callId);
        break;
      case 'room.leave':
      case 'room.metadata':
      case 'room.participants':
      case 'ds.open':
      case 'ds.dest':
      case 'ds.close':
      case 'ds.unsupport':
      case 'ds.support':
        no = nodeOf(msg.room);
        break;
      default:
        return false;
    }
    if (no === 0 || no === this.no) return false;
    this.#forward(peer, no, msg);
    return true;
  }

  /** Places a new conference or call (`msg`) again, avoiding node `avoid`. */
  #replace(peer: Peer, msg: ClientMessage<'conf.join' | 'call.make'>, avoid: number): void {
    const placed = msg.t === 'conf.join' ? this.#store.conferenceHost(msg.name, avoid) : Promise.resolve(this.#store.pickNode(avoid));
    placed.then(
      (node) => {
        if (peer.gone) return;
        if (node.no === this.no) this.#o.handleLocal(peer, msg);
        else this.#forward(peer, node.no, msg);
      },
      (error: unknown) => this.#replyError(peer, msg.id, error),
    );
  }

  /** Takes the requests that waited behind a join, in order, until one has to wait again. */
  #release(peer: Peer): void {
    const waiting = this.#held.get(peer);
    this.#held.delete(peer);
    while (waiting?.length && !peer.gone) {
      const msg = waiting.shift()!;
      if (!this.#route(peer, msg)) this.#o.handleLocal(peer, msg);
      const again = this.#held.get(peer);
      if (again) {
        again.push(...waiting);
        return;
      }
    }
  }

  /** Routes a data frame of a client connected here; false if it is for a room hosted here. */
  routeData(peer: Peer, room: number, raw: Uint8Array): boolean {
    const no = nodeOf(room);
    if (no === this.no) return false;
    const link = this.#attached.get(peer)?.has(no) ? this.#links.get(no) : undefined;
    if (!link || link.closed) throw new BackchannelError(ErrorCode.NotInRoom, `not in room ${room}`);
    // The data limits are applied here, where reading from the client can be held back in time.
    this.#hub.sessions.meter(peer, raw.byteLength);
    link.send({ o: 'in', s: peer.sid }, raw);
    // A host that takes data more slowly than its senders write holds them back: at most a
    // window of data is on its way to it (in buffers and the network), unseen by its queue limits.
    if (link.unacked > LINK_WINDOW_BYTES) peer.link.pauseInbound(LINK_PAUSE_MS);
    return true;
  }

  /** A refreshed token of a client connected here applies on every node it is on. */
  peerRefreshed(peer: Peer): void {
    for (const no of this.#attached.get(peer)?.keys() ?? []) {
      this.#links.get(no)?.send({ o: 'rf', s: peer.sid, g: peer.grants, x: peer.expiresAt });
    }
  }

  connectionChanged(peer: Peer): void {
    for (const no of this.#attached.get(peer)?.keys() ?? []) this.#links.get(no)?.send({ o: 'st', s: peer.sid, c: peer.connection });
  }

  peerGone(peer: Peer, leaveCode: string): void {
    this.#locals.delete(peer.sid);
    this.#held.delete(peer);
    for (const key of this.#joins.keys()) if (key.includes(`|${peer.sid}|`)) this.#joins.delete(key);
    const attached = this.#attached.get(peer);
    this.#attached.delete(peer);
    for (const no of attached?.keys() ?? []) {
      this.#links.get(no)?.send({ o: 'dt', s: peer.sid, code: leaveCode });
      this.#progress.drop(no, peer);
      this.#pending.get(no)?.delete(peer);
    }
  }

  #forward(peer: Peer, no: number, msg: ClientMessage): void {
    const link = this.#linkTo(no);
    if (!link) {
      const inRoom = 'room' in msg;
      const code = msg.t.startsWith('call.') && msg.t !== 'call.make' ? ErrorCode.CallNotFound : inRoom ? ErrorCode.NotInRoom : ErrorCode.ClusterUnavailable;
      return this.#replyError(peer, msg.id, new BackchannelError(code, `node ${no}, which hosts it, is not in the cluster (any more)`));
    }
    this.#attach(peer, no, link);
    let waiting = this.#pending.get(no);
    if (!waiting) this.#pending.set(no, (waiting = new Map()));
    let ids = waiting.get(peer);
    if (!ids) waiting.set(peer, (ids = new Set()));
    ids.add(msg.id);
    link.send({ o: 'q', s: peer.sid, m: msg });
  }

  /** Makes sure `peer` has a stand-in on node `no`. */
  #attach(peer: Peer, no: number, link: NodeLink): Attachment {
    let nodes = this.#attached.get(peer);
    if (!nodes) this.#attached.set(peer, (nodes = new Map()));
    let a = nodes.get(no);
    if (!a) {
      nodes.set(no, (a = { rooms: new Set(), calls: new Map() }));
      link.send({ o: 'a', s: peer.sid, id: peer.id, u: peer.userId, n: peer.displayName, g: peer.grants, x: peer.expiresAt, cap: peer.capabilities, st: peer.connection });
    }
    return a;
  }

  #ringPeer(peer: Peer, no: number, callId: string): void {
    const link = this.#linkTo(no);
    if (!link) return;
    this.#attach(peer, no, link).calls.set(callId, 0);
    link.send({ o: 'nt', s: peer.sid, call: callId });
  }

  #replyError(peer: Peer, re: number, error: unknown): void {
    const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
    if (!(error instanceof BackchannelError)) this.#o.log.error({ err: error }, 'internal error');
    if (!peer.gone) peer.link.sendControlFrame(encodeControlFrame(JSON.stringify({ t: 'err', re, error: err.toJSON() })));
  }

  /** Operations from host `no` for clients connected here. */
  #edgeOp(no: number, op: Op, blobs: Uint8Array[]): void {
    switch (op.o) {
      case 'd': {
        const size = op.n as number;
        const cap = op.c as number | undefined;
        // One frame object for every receiver here, as on a single server.
        const out = { size, droppable: cap !== undefined, wire: blobs[op.b as number]! };
        for (const [sid, key, priority] of op.to as [number, string, PriorityClass][]) {
          const peer = this.#locals.get(sid);
          if (!peer) continue;
          if (cap !== undefined) {
            const dropped = peer.link.sendDroppable(key, priority, out, cap);
            if (dropped > 0) this.#links.get(no)?.send({ o: 'dr', s: sid, k: key, n: dropped });
            continue;
          }
          peer.link.sendData(key, priority, out);
          this.#progress.delivered(no, peer, key, size);
        }
        return;
      }
      case 'cf': {
        const frame = blobs[op.b as number]!;
        for (const sid of op.to as number[]) this.#locals.get(sid)?.link.sendControlFrame(frame);
        return;
      }
    }
    const peer = this.#locals.get(op.s as number);
    if (!peer) return;
    switch (op.o) {
      case 'r': {
        this.#pending.get(no)?.get(peer)?.delete(op.re as number);
        const joinKey = `${no}|${peer.sid}|${op.re as number}`;
        const join = this.#joins.get(joinKey);
        if (join) {
          this.#joins.delete(joinKey);
          // The node placed for a new conference is draining (the registry had not said so yet):
          // placed again, elsewhere.
          if ((op.e as { details?: { draining?: boolean } } | undefined)?.details?.draining) return this.#replace(peer, join as ClientMessage<'conf.join' | 'call.make'>, no);
        }
        const ok = op.e === undefined;
        if (ok) this.#track(peer, no, op.d);
        peer.link.sendControlFrame(encodeControlFrame(JSON.stringify(ok ? { t: 'ok', re: op.re, data: op.d } : { t: 'err', re: op.re, error: op.e })));
        return;
      }
      case 'ev': {
        const event = op.e as ServerEvent;
        this.#trackEvent(peer, no, event);
        peer.link.sendEvent(event);
        return;
      }
      case 'se':
        peer.link.sendSessionEvent(op.k as string, op.p as PriorityClass, op.e as ServerEvent);
        return;
      case 'x':
        peer.link.discard(op.k as string);
        this.#progress.forget(peer, op.k as string);
        return;
      case 'p':
        peer.link.pauseInbound(op.ms as number);
        return;
      case 'c':
        peer.link.close(op.r as { code: string; message: string });
        return;
      case 'de':
        this.#o.reportError(peer, new BackchannelError(String((op.e as { code: string }).code) as never, String((op.e as { message: string }).message)));
        return;
    }
  }

  /** Notes rooms and calls a reply from host `no` put the client in. */
  #track(peer: Peer, no: number, data: unknown): void {
    if (!data || typeof data !== 'object') return;
    const d = data as { room?: unknown; call?: { callId?: string } };
    const a = this.#attached.get(peer)?.get(no);
    if (!a) return;
    const room = typeof d.room === 'number' ? d.room : (d.room as { room?: number } | undefined)?.room;
    if (typeof room === 'number') a.rooms.add(room);
    if (d.call?.callId) a.calls.set(d.call.callId, typeof room === 'number' ? room : 0);
  }

  #trackEvent(peer: Peer, no: number, event: ServerEvent): void {
    const a = this.#attached.get(peer)?.get(no);
    if (!a) return;
    switch (event.t) {
      case 'room.ended':
        a.rooms.delete(event.room);
        return;
      case 'call.incoming':
        a.calls.set(event.call.callId, 0);
        return;
      case 'call.connected':
        a.calls.set(event.callId, event.room.room);
        a.rooms.add(event.room.room);
        return;
      case 'call.ended':
      case 'call.revoked': {
        const room = a.calls.get(event.callId);
        if (room) a.rooms.delete(room);
        a.calls.delete(event.callId);
        return;
      }
      default:
    }
  }

  // ---------------------------------------------------------------- ringing calls and busy callees across nodes

  callRinging(call: Call): void {
    this.#store.ringing(call.calleeUserId, call.id, this.no, this.#o.config.ringTimeoutMs);
    // Every node the registry lists, and any that opened a link here before the registry listed it.
    const nodes = new Set([...this.#store.nodes().map((n) => n.no), ...this.#heardFrom.keys()]);
    for (const no of nodes) {
      if (no !== this.no) this.#linkTo(no)?.send({ o: 'ring', call: call.id, u: call.calleeUserId });
    }
  }

  async inConnectedCall(userId: string): Promise<boolean> {
    if (this.#hub.calls.userInConnectedCall(userId)) return true;
    const answers = await Promise.all(
      this.#store
        .nodes()
        .filter((n) => n.no !== this.no)
        .map((n) => this.rpc(n.no, 'calls.inConnectedCall', userId).catch(() => false)),
    );
    return answers.some((a) => a === true);
  }

  // ---------------------------------------------------------------- links and node loss

  opened(no: number, url: string): void {
    this.#heardFrom.set(no, url);
  }

  ops(from: number, ops: Op[], blobs: Uint8Array[], bytes: number): void {
    // Taken: the sender hears how much, once per turn (its window of data on the way to here).
    this.#taken.set(from, (this.#taken.get(from) ?? 0) + bytes);
    if (!this.#takenScheduled) {
      this.#takenScheduled = true;
      setImmediate(() => {
        this.#takenScheduled = false;
        for (const [no, total] of this.#taken) this.#linkTo(no)?.send({ o: 'la', n: total });
      });
    }
    for (const op of ops) {
      try {
        switch (op.o) {
          case 'a':
          case 'q':
          case 'in':
          case 'st':
          case 'dt':
          case 'rf':
          case 'pg':
          case 'nt':
          case 'dr':
            this.#standIns.apply(from, op, blobs);
            break;
          case 'ring':
            for (const peer of this.#hub.peersByUser.get(op.u as string) ?? []) {
              if (!peer.remote && peer.grants.calls) this.#ringPeer(peer, from, op.call as string);
            }
            break;
          case 'rpc':
            this.#rpc.answer(from, op);
            break;
          case 'la':
            this.#links.get(from)?.acked(op.n as number);
            break;
          case 'rpr':
            this.#rpc.answered(op);
            break;
          default:
            this.#edgeOp(from, op, blobs);
        }
      } catch (error) {
        this.#o.log.error({ err: error, op: op.o, node: from }, 'failed to apply an operation from another node');
      }
    }
  }

  /** The outgoing link to node `no`, opened if needed; undefined if no such live node. */
  #linkTo(no: number): NodeLink | undefined {
    const link = this.#links.get(no);
    if (link && !link.closed) return link;
    if (this.#closed) return undefined;
    if (no === this.no) return undefined;
    // A node that just started may not be in this node's registry poll yet, but it said where it is.
    const url = this.#store.nodeByNo(no)?.url ?? this.#heardFrom.get(no);
    if (!url) return undefined;
    const fresh = new NodeLink(no, url, this.#auth.credential(this.no), this.#store.self.url, (why) => this.down(no, why));
    this.#links.set(no, fresh);
    return fresh;
  }

  /**
   * The link from or to node `no` closed: whatever went between the two nodes is over. Stand-ins
   * of its clients leave this node's rooms (connection lost); clients here are told their rooms and
   * calls there ended (`node-lost`). A client may join again: a new link is opened on demand.
   */
  down(no: number, why: string): void {
    if (this.#closed) return;
    const link = this.#links.get(no);
    this.#links.delete(no);
    link?.close();
    this.#taken.delete(no);
    const lost = this.#standIns.drop(no);
    // Requests it did not answer fail, retryably.
    const waiting = this.#pending.get(no);
    this.#pending.delete(no);
    for (const key of [...this.#joins.keys()]) if (key.startsWith(`${no}|`)) this.#joins.delete(key);
    for (const [peer, ids] of waiting ?? []) {
      for (const id of ids) this.#replyError(peer, id, new BackchannelError(ErrorCode.ClusterUnavailable, `node ${no} did not answer before its link closed (${why}); retry`));
    }
    let rooms = 0;
    for (const [peer, nodes] of this.#attached) {
      const a = nodes.get(no);
      if (!a) continue;
      nodes.delete(no);
      this.#progress.drop(no, peer);
      const roomReason = { code: RoomEndReason.NodeLost, message: `node ${no}, which hosted it, is gone (${why})` };
      const callRooms = new Set(a.calls.values());
      for (const [callId, room] of a.calls) {
        peer.link.sendEvent({ t: 'call.ended', callId, reason: { code: CallEndReason.NodeLost, message: roomReason.message }, durationMs: 0 });
        if (room) rooms++;
      }
      for (const room of a.rooms) {
        if (callRooms.has(room)) continue;
        peer.link.sendEvent({ t: 'room.ended', room, reason: roomReason });
        rooms++;
      }
    }
    this.#rpc.down(no, why);
    this.#o.log.warn({ node: no, why, standIns: lost, roomsEnded: rooms }, 'lost the link to a node');
  }

  /** A node's registration expired: its links are over, and one survivor ends its rooms for the webhooks. */
  #nodeDown(node: NodeInfo): void {
    this.#heardFrom.delete(node.no);
    if (node.no !== this.no) this.down(node.no, 'its registration expired');
    this.#records.claimDead(node);
  }

  // ---------------------------------------------------------------- remote procedures between nodes (rpc.ts)

  /** Registers what this node answers to `rpc(…, method, …)`. */
  handleRpc(method: string, handler: RpcHandler): void {
    this.#rpc.handle(method, handler);
  }

  /** Calls `method` on node `no` (this one included); rejects with `cluster-unavailable` if it does not answer. */
  rpc(no: number, method: string, args: unknown): Promise<unknown> {
    return this.#rpc.call(no, method, args);
  }

  /** Calls `method` on every live node; resolves with each node's answer. */
  rpcAll(method: string, args: unknown): Promise<{ node: NodeInfo; result: unknown }[]> {
    return this.#rpc.callAll(method, args);
  }

  // ---------------------------------------------------------------- records of this node's rooms

  /**
   * Keeps Redis's copy of this node's rooms and members (for the cleanup if this node dies),
   * with the number of webhook events each room has had, so a survivor's events continue its
   * sequence.
   */
  onHubEvent(e: HubEvent): void {
    this.#records.handle(e);
  }

  /** Closes every link (the node is stopping; its rooms were ended first). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const link of this.#links.values()) link.close();
    this.#links.clear();
    this.#server.close();
    await this.#store.close();
  }
}
