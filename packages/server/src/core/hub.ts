/**
 * The core of the server: peers, rooms and the dispatch of requests to the call, conference and
 * data-session managers. No I/O: input arrives through `handle…()` methods, output leaves through
 * each peer's {@link PeerLink} and the `emit` callback (typed {@link HubEvent}s).
 */
import {
  BackchannelError,
  ErrorCode,
  LeaveReason,
  type Capabilities,
  type ClientMessage,
  type DataFrame,
  type PresenceMode,
  type Reason,
} from '@backchannel/protocol';
import type { Identity } from '../auth.js';
import type { ServerConfig } from '../config.js';
import { AppMessenger } from './app-messages.js';
import { CallManager, type Call } from './calls.js';
import { ConferenceManager } from './conferences.js';
import type { HubEvent } from './events.js';
import { createMetricsSink, type MetricsSink } from './metrics.js';
import { randomId, randomSecret, sameSecret } from './ids.js';
import { Peer, type PeerLink } from './peer.js';
import { DEFAULT_PAGE, Room, type Member } from './room.js';
import { SessionRouter } from './sessions.js';

/** Builds a `{ code, message }` reason. */
export function reason(code: string, message: string): Reason {
  return { code, message };
}

/** Throws `permission-denied` unless `allowed`. */
export function requireGrant(allowed: boolean, what: string): void {
  if (!allowed) throw new BackchannelError(ErrorCode.PermissionDenied, `the access token does not allow ${what}`);
}

/** Requests that start something new, and so need an unexpired token. */
const EXPIRING: ReadonlySet<string> = new Set(['call.make', 'call.accept', 'conf.join', 'room.metadata', 'ds.open', 'ds.dest']);

const LEAVE_MESSAGES: Readonly<Record<string, string>> = {
  [LeaveReason.ServerShutdown]: 'the server is shutting down',
  [LeaveReason.Left]: 'closed the connection',
  [LeaveReason.ConnectionLost]: 'the connection was lost',
  [LeaveReason.ResumeBufferOverflow]: 'too much was held for it while its connection was lost',
};

/**
 * What cluster mode adds to the core (see cluster/cluster.ts): told of the connection life of this
 * node's own peers (never of the stand-ins of peers connected elsewhere) and of calls that ring.
 */
export interface HubCluster {
  /** A peer connected here changed connection state (`peer.connection`). */
  connectionChanged(peer: Peer): void;
  /** A peer connected here is gone, with `leaveCode`. */
  peerGone(peer: Peer, leaveCode: string): void;
  /** A call hosted here started ringing: its callee's clients on other nodes are rung too. */
  callRinging(call: Call): void;
  /** Whether `userId` is in a connected call on any node (false if a node does not answer). */
  inConnectedCall(userId: string): Promise<boolean>;
}

/** Room numbers and participant handles made on node `no` of a cluster carry it from this bit on. */
export const NODE_SHIFT = 20;
/** The largest local part of a room number or handle in cluster mode. */
const LOCAL_MAX = (1 << NODE_SHIFT) - 1;

/** The cluster node a room number or participant handle was made on (0 on a single server). */
export function nodeOf(num: number): number {
  return num >>> NODE_SHIFT;
}

export interface HubOptions {
  config: Readonly<ServerConfig>;
  /** Receives every internal event (webhooks, metrics, logs). Must not throw. */
  emit: (event: HubEvent) => void;
  /** Where the core counts data and sessions (read at scrape time). Default: a sink nobody reads. */
  metrics?: MetricsSink;
  /** Bytes queued for all receivers together (the server-wide budget). Default: none counted. */
  queuedBytes?: () => number;
  /** Logs a warning (the core does no I/O of its own). Default: none. */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}

export class Hub {
  readonly config: Readonly<ServerConfig>;
  readonly peers = new Map<string, Peer>();
  readonly peersByUser = new Map<string, Set<Peer>>();
  readonly rooms = new Map<number, Room>();
  readonly calls: CallManager;
  readonly conferences: ConferenceManager;
  readonly sessions: SessionRouter;
  /** App control messages sent by the server API. */
  readonly appMessages: AppMessenger;
  readonly emit: (event: HubEvent) => void;
  /** Counters of the data path, incremented in place (see core/metrics.ts). */
  readonly metrics: MetricsSink;
  #nextSid = 1;
  #nextRoom = 1;
  #sidsWrapped = false;
  /**
   * This node's number in a cluster (0 on a single server): room numbers and participant handles
   * made here carry it (see {@link nodeOf}). Set before the first connection.
   */
  nodeNo = 0;
  /** Cluster mode's hooks; undefined on a single server. */
  cluster: HubCluster | undefined;
  #shuttingDown = false;
  readonly #afterReply = new Map<Peer, (() => void)[]>();
  /** Bytes queued for all receivers together. */
  readonly queuedBytes: () => number;
  /** Logs a warning. */
  readonly warn: (fields: Record<string, unknown>, message: string) => void;

  constructor(options: HubOptions) {
    this.config = options.config;
    this.emit = options.emit;
    this.queuedBytes = options.queuedBytes ?? (() => 0);
    this.warn = options.warn ?? (() => undefined);
    this.metrics = options.metrics ?? createMetricsSink();
    this.calls = new CallManager(this);
    this.conferences = new ConferenceManager(this);
    this.sessions = new SessionRouter(this);
    this.appMessages = new AppMessenger(this);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Registers an authenticated connection and returns its peer. */
  handleConnect(identity: Identity, capabilities: Capabilities, link: PeerLink): Peer {
    const peer = new Peer(`PA_${randomId(12)}`, this.#newSid(), identity.userId, identity.displayName, identity.grants, capabilities, link);
    peer.resumeCredential = randomSecret();
    peer.expiresAt = identity.expiresAt;
    return this.#register(peer);
  }

  /**
   * Registers the stand-in of a peer connected to another node of the cluster (its id and handle
   * were made there), reached through `link`. It takes part in this node's rooms and calls like a
   * peer of its own; its connection life is the other node's to tell.
   */
  attachRemote(id: string, sid: number, identity: Identity, capabilities: Capabilities, link: PeerLink): Peer {
    const peer = new Peer(id, sid, identity.userId, identity.displayName, identity.grants, capabilities, link);
    peer.expiresAt = identity.expiresAt;
    peer.remote = true;
    return this.#register(peer);
  }

  /** Sets the connection state of a peer connected elsewhere, and tells its rooms. */
  setConnection(peer: Peer, connection: 'connected' | 'reconnecting'): void {
    if (peer.gone || peer.connection === connection) return;
    peer.connection = connection;
    this.#announceConnection(peer);
  }

  #newSid(): number {
    if (this.nodeNo === 0) {
      const sid = this.#nextSid;
      this.#nextSid = sid >= 0xffff_fffe ? 1 : sid + 1;
      return sid;
    }
    // Handles are unique across the cluster: this node's number above a local part. Once the
    // local part has wrapped, handles still in use are skipped.
    let local = this.#nextSid;
    if (local > LOCAL_MAX) {
      local = 1;
      this.#sidsWrapped = true;
    }
    if (this.#sidsWrapped) {
      const inUse = new Set<number>();
      for (const p of this.peers.values()) inUse.add(p.sid);
      while (inUse.has(((this.nodeNo << NODE_SHIFT) | local) >>> 0)) local = local >= LOCAL_MAX ? 1 : local + 1;
    }
    this.#nextSid = local + 1;
    return ((this.nodeNo << NODE_SHIFT) | local) >>> 0;
  }

  #register(peer: Peer): Peer {
    this.peers.set(peer.id, peer);
    let set = this.peersByUser.get(peer.userId);
    if (!set) this.peersByUser.set(peer.userId, (set = new Set()));
    set.add(peer);
    // Calls ringing for its user are shown to it after its welcome (a stand-in has none).
    if (peer.remote) this.calls.peerConnected(peer);
    else this.afterReply(peer, () => this.calls.peerConnected(peer));
    return peer;
  }

  /**
   * The peer's connection was lost without a deliberate close. It stays in its calls, rooms and
   * sessions for the resume window, shown to others as reconnecting; then it leaves as
   * `connection-lost`, unless it resumes first.
   */
  handleLinkLost(peer: Peer): void {
    if (peer.gone || peer.connection === 'reconnecting') return;
    if (this.#shuttingDown) return this.handleDisconnect(peer);
    peer.connection = 'reconnecting';
    this.cluster?.connectionChanged(peer);
    peer.resumeTimer = setTimeout(() => {
      peer.link.close(reason(LeaveReason.ConnectionLost, `not resumed within ${this.config.resumeWindowMs} ms`));
      this.handleDisconnect(peer, LeaveReason.ConnectionLost);
    }, this.config.resumeWindowMs);
    this.#announceConnection(peer);
  }

  /**
   * The peer a resume request names, if `credential` is its current one. Throws
   * `resume-not-found` (no such peer any more: window passed, it ended, or the server restarted)
   * or `resume-credential-invalid`; changes nothing either way.
   */
  findResumable(participantId: string, credential: string): Peer {
    const peer = this.peers.get(participantId);
    if (!peer || peer.gone) throw new BackchannelError(ErrorCode.ResumeNotFound, `participant ${participantId} cannot be resumed: it ended, its resume window passed, or the server restarted`);
    if (!sameSecret(peer.resumeCredential, credential)) throw new BackchannelError(ErrorCode.ResumeCredentialInvalid, 'the resume credential is not valid for this participant');
    if (this.#shuttingDown) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is shutting down');
    return peer;
  }

  /** Completes a resume of `peer`: it is connected again, and `next` is its credential from now on. */
  handleResumed(peer: Peer, next: string): void {
    peer.resumeCredential = next;
    clearTimeout(peer.resumeTimer);
    peer.resumeTimer = undefined;
    if (peer.connection === 'reconnecting') {
      peer.connection = 'connected';
      this.#announceConnection(peer);
      this.cluster?.connectionChanged(peer);
    }
  }

  /**
   * Applies a refreshed access token to `peer`: same user and API key, new expiry and grants. Rooms
   * already joined stay joined (their grants were checked when joining).
   */
  handleTokenRefresh(peer: Peer, identity: Identity): { expiresAt: number } {
    if (identity.userId !== peer.userId) throw new BackchannelError(ErrorCode.PermissionDenied, `a refreshed token must be for the same user (${peer.userId})`);
    if (identity.grants.hidden !== peer.grants.hidden) throw new BackchannelError(ErrorCode.PermissionDenied, 'a refreshed token cannot change whether the participant is hidden');
    peer.expiresAt = identity.expiresAt;
    peer.grants = identity.grants;
    return { expiresAt: identity.expiresAt };
  }

  /** Tells every room of `peer` its connection state (hidden peers are never announced). */
  #announceConnection(peer: Peer): void {
    for (const room of peer.rooms.values()) {
      const member = room.member(peer.id);
      if (member) room.updated(member);
    }
  }

  /** Removes a peer that disconnected (or was shut down), leaving every room with `leaveCode`. */
  handleDisconnect(peer: Peer, leaveCode: string = LeaveReason.ConnectionLost): void {
    if (peer.gone) return;
    peer.gone = true;
    clearTimeout(peer.resumeTimer);
    peer.resumeTimer = undefined;
    this.peers.delete(peer.id);
    this.#afterReply.delete(peer);
    const set = this.peersByUser.get(peer.userId);
    set?.delete(peer);
    if (set?.size === 0) this.peersByUser.delete(peer.userId);
    this.calls.peerGone(peer, leaveCode);
    for (const room of [...peer.rooms.values()]) {
      const member = room.member(peer.id);
      if (member) this.exit(room, member, reason(leaveCode, LEAVE_MESSAGES[leaveCode] ?? 'the connection was lost'));
    }
    if (!peer.remote) this.cluster?.peerGone(peer, leaveCode);
  }

  /**
   * Handles one validated request and returns the reply data, or throws a BackchannelError.
   * Synchronous on purpose: state changes apply before the next frame of the same connection.
   */
  handleRequest(peer: Peer, msg: ClientMessage): unknown {
    if (peer.gone) throw new BackchannelError(ErrorCode.ConnectionClosed, 'the connection is closed');
    if (this.#shuttingDown) throw new BackchannelError(ErrorCode.ServerShutdown, 'the server is shutting down');
    // The token's expiry holds for every new action; what is already running (calls, rooms, data
    // sessions and their data) carries on, and a refreshed token (auth.refresh) allows new ones.
    if (EXPIRING.has(msg.t) && Date.now() >= peer.expiresAt) {
      throw new BackchannelError(ErrorCode.TokenExpired, `the access token expired at ${new Date(peer.expiresAt).toISOString()}; refresh it (auth.refresh) to ${msg.t}`);
    }
    switch (msg.t) {
      case 'auth.refresh':
        throw new BackchannelError(ErrorCode.InternalError, 'auth.refresh is handled by the server edge');
      case 'hello':
      case 'resume':
        throw new BackchannelError(ErrorCode.BadMessage, `${msg.t} was already received on this connection`);
      case 'call.make':
        return this.calls.make(peer, msg.callee, msg.appParam);
      case 'call.get':
        return this.calls.get(peer, msg.callId);
      case 'call.accept':
        return this.calls.accept(peer, msg.callId);
      case 'call.decline':
        return this.calls.decline(peer, msg.callId, msg.reason);
      case 'call.cancel':
        return this.calls.cancel(peer, msg.callId);
      case 'call.end':
        return this.calls.hangUp(peer, msg.callId);
      case 'conf.join':
        return this.conferences.join(peer, msg.name, msg.displayName, msg.metadata, msg.presence);
      case 'room.leave':
        return this.leave(peer, msg.room);
      case 'room.metadata':
        return this.conferences.updateMetadata(peer, this.memberOf(peer, msg.room), msg.metadata);
      case 'room.participants': {
        const { room, member } = this.memberOf(peer, msg.room);
        return room.page(member, msg.after === undefined ? 0 : Number(msg.after), msg.limit ?? DEFAULT_PAGE);
      }
      case 'ds.open': {
        // Others learn of a participant before any session it opens.
        const target = this.memberOf(peer, msg.room);
        target.room.flushPresence();
        return this.sessions.handleRequest(peer, target, msg);
      }
      case 'ds.dest':
      case 'ds.close':
      case 'ds.unsupport':
      case 'ds.support':
        return this.sessions.handleRequest(peer, this.memberOf(peer, msg.room), msg);
    }
  }

  /**
   * Runs `fn` right after the reply to the request `peer` is making has been sent, so events
   * about a new object reach the client after the reply that created it.
   */
  afterReply(peer: Peer, fn: () => void): void {
    const list = this.#afterReply.get(peer);
    if (list) list.push(fn);
    else this.#afterReply.set(peer, [fn]);
  }

  /** Called by the transport once it has sent the reply to `peer`'s request (or an error). */
  flushAfterReply(peer: Peer): void {
    const list = this.#afterReply.get(peer);
    if (!list) return;
    this.#afterReply.delete(peer);
    for (const fn of list) fn();
  }

  /** Handles one data frame from `peer`. Unknown rooms or sessions are reported, never fatal. */
  handleData(peer: Peer, frame: DataFrame, raw: Uint8Array): void {
    const room = peer.rooms.get(frame.room);
    if (!room) throw new BackchannelError(ErrorCode.NotInRoom, `not in room ${frame.room}`);
    this.sessions.handleData(peer, room, frame, raw);
  }

  /** The member record of `peer` in room number `roomNum`, or `not-in-room`. */
  memberOf(peer: Peer, roomNum: number): { room: Room; member: Member } {
    const room = peer.rooms.get(roomNum);
    const member = room?.member(peer.id);
    if (!room || !member) throw new BackchannelError(ErrorCode.NotInRoom, `not a member of room ${roomNum}`);
    return { room, member };
  }

  /** Creates a room with a fresh server-wide number. */
  createRoom(kind: 'conference' | 'call', name: string): Room {
    let num: number;
    if (this.nodeNo === 0) {
      num = this.#nextRoom;
      while (this.rooms.has(num)) num = num >= 0xffff_fffe ? 1 : num + 1;
      this.#nextRoom = num >= 0xffff_fffe ? 1 : num + 1;
    } else {
      // Numbers are unique across the cluster and say which node hosts the room.
      let local = this.#nextRoom > LOCAL_MAX ? 1 : this.#nextRoom;
      while (this.rooms.has(((this.nodeNo << NODE_SHIFT) | local) >>> 0)) local = local >= LOCAL_MAX ? 1 : local + 1;
      this.#nextRoom = local + 1;
      num = ((this.nodeNo << NODE_SHIFT) | local) >>> 0;
    }
    const room = new Room(num, kind, name, this.#presencePending);
    this.rooms.set(num, room);
    return room;
  }

  /**
   * Adds `peer` to `room`, tells the others (in the room's next presence batch) and emits
   * `participant.joined` for conferences. `presence` is what the member hears of the others.
   */
  enter(room: Room, peer: Peer, displayName: string, metadata: unknown, presence: PresenceMode = 'full'): Member {
    const member: Member = { peer, displayName, metadata: metadata ?? null, joinedAt: Date.now(), hidden: peer.grants.hidden, presence, order: 0 };
    room.add(member);
    peer.rooms.set(room.num, room);
    if (room.kind === 'conference') peer.conferences++;
    if (room.kind === 'conference') this.emit({ type: 'participant.joined', at: member.joinedAt, room: { kind: room.kind, name: room.name }, participant: Room.info(member) });
    this.sessions.memberEntered(room, member);
    return member;
  }

  /** Removes `member` from `room` with `why`; an emptied conference starts its grace period. */
  exit(room: Room, member: Member, why: Reason, options: { announce?: boolean } = {}): void {
    if (room.members.get(member.peer.id) !== member) return;
    this.sessions.memberLeaving(room, member, why);
    room.remove(member, { k: 'l', participantId: member.peer.id, reason: why }, options.announce !== false);
    member.peer.rooms.delete(room.num);
    if (room.kind === 'conference') member.peer.conferences--;
    if (room.kind === 'conference') {
      this.emit({ type: 'participant.left', at: Date.now(), room: { kind: room.kind, name: room.name }, participant: Room.info(member), reason: why });
      if (room.size === 0) this.conferences.roomEmptied(room);
    }
  }

  /**
   * Removes `member` from `room` on behalf of the server API, `message` being the reason given.
   * Emits `participant.kicked`; in a conference the kicked client's room ends with reason `kicked`
   * and the others see it leave with reason `kicked`. A 1:1 call cannot lose one side: it ends with
   * `ended-by-server` (the message names the kick).
   */
  kick(room: Room, member: Member, message: string): void {
    const why = reason(LeaveReason.Kicked, message);
    this.emit({ type: 'participant.kicked', at: Date.now(), room: { kind: room.kind, name: room.name }, participant: Room.info(member), reason: why });
    if (room.kind === 'call') {
      this.calls.endByServer(room.name, `${member.peer.userId} was removed by the server: ${message}`);
      return;
    }
    member.peer.link.sendEvent({ t: 'room.ended', room: room.num, reason: why });
    this.exit(room, member, why);
  }

  /**
   * Ends `peer`'s connection for good on behalf of the server API, `message` being the reason
   * given: it is kicked from every room (see {@link kick}), told goodbye with `connection-revoked`,
   * and removed, so its resume credential no longer works.
   */
  revoke(peer: Peer, message: string): void {
    for (const room of [...peer.rooms.values()]) {
      const member = room.member(peer.id);
      if (member) this.kick(room, member, message);
    }
    peer.link.close(reason(ErrorCode.ConnectionRevoked, message));
    this.handleDisconnect(peer, LeaveReason.Kicked);
  }

  /** Handles `room.leave`: for a call that is a hang-up, for a conference a plain leave. */
  leave(peer: Peer, roomNum: number): Record<string, never> {
    const { room, member } = this.memberOf(peer, roomNum);
    if (room.kind === 'call') {
      this.calls.hangUp(peer, room.name);
    } else {
      this.exit(room, member, reason(LeaveReason.Left, 'left the room'));
    }
    return {};
  }

  /**
   * A room has presence changes to send. A room sends at most `presenceEventsPerSecond` presence
   * frames a second over its members that follow presence: after each batch it waits
   * `members ÷ presenceEventsPerSecond` (at most 1 s). A change made after that window leaves at
   * once — in a small room the window is a fraction of a millisecond, so a join is announced in the
   * same write run as the joiner's reply (just after it) — and the changes made within it leave
   * together when it ends.
   */
  readonly #presencePending = (room: Room): void => {
    const windowMs = Math.min(1000, (room.watchers.size * 1000) / this.config.presenceEventsPerSecond);
    const wait = room.lastPresenceFlush + windowMs - performance.now();
    if (wait <= 0) return room.flushPresence();
    room.presenceTimer ??= setTimeout(() => {
      room.presenceTimer = undefined;
      room.flushPresence();
    }, wait);
  };

  /** Deletes a room whose members have all been removed. */
  dropRoom(room: Room): void {
    room.ended = true;
    room.dropPresence();
    if (room.emptyTimer) clearTimeout(room.emptyTimer);
    this.sessions.roomEnded(room);
    this.rooms.delete(room.num);
  }

  /** Ends every call and room (reason server-shutdown) and tells every peer goodbye. */
  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.sessions.stop();
    this.calls.endAll(reason('server-shutdown', 'the server is shutting down'));
    this.conferences.endAll(reason('server-shutdown', 'the server is shutting down'));
    for (const peer of [...this.peers.values()]) {
      // A client connected to another node of the cluster keeps its connection: only its rooms here ended.
      if (!peer.remote) peer.link.close(reason(ErrorCode.ServerShutdown, 'the server is shutting down'));
      this.handleDisconnect(peer, LeaveReason.ServerShutdown);
    }
  }
}
