/**
 * 1:1 calls: ringing → connected → ended. A call owns a room of kind `call` (caller first, callee
 * on accept) so that data sessions work in it exactly as in a conference.
 */
import { BackchannelError, CallEndReason, ErrorCode, InviteRevokedReason, LeaveReason, type CallInfo, type Reason, type RoomInfo } from '@backchannel/protocol';
import type { CallParty } from './events.js';
import { reason, requireGrant, type Hub } from './hub.js';
import { randomId } from './ids.js';
import type { Peer } from './peer.js';
import type { Room } from './room.js';

/** One 1:1 call. */
export class Call {
  state: 'ringing' | 'connected' | 'ended' = 'ringing';
  readonly createdAt = Date.now();
  connectedAt: number | undefined;
  callee: Peer | undefined;
  /** Callee connections that were shown the invite. */
  readonly notified = new Set<Peer>();
  ringTimer: ReturnType<typeof setTimeout> | undefined;
  endReason: Reason | undefined;

  constructor(
    readonly id: string,
    readonly caller: Peer,
    readonly calleeUserId: string,
    readonly appParam: string | undefined,
    readonly room: Room,
  ) {}

  info(): CallInfo {
    const info: CallInfo = {
      callId: this.id,
      caller: party(this.caller),
      callee: { userId: this.calleeUserId },
      state: this.state,
      createdAt: this.createdAt,
    };
    if (this.appParam !== undefined) info.appParam = this.appParam;
    return info;
  }
}

function party(p: Peer): CallParty {
  return { userId: p.userId, displayName: p.displayName, participantId: p.id };
}

/** The cluster node hosting call `callId` (0: a call id of a single server). */
export function callNode(callId: string): number {
  const m = /^CA_(\d{1,4})_/.exec(callId);
  return m ? Number(m[1]) : 0;
}

export class CallManager {
  readonly calls = new Map<string, Call>();

  constructor(private readonly hub: Hub) {}

  /** `call.make`: creates a ringing call and notifies every connected client of the callee. */
  make(peer: Peer, calleeUserId: string, appParam: string | undefined): { call: CallInfo; room: number } {
    requireGrant(peer.grants.calls, 'making calls');
    if (calleeUserId === peer.userId) throw new BackchannelError(ErrorCode.InvalidArgument, 'a user cannot call themselves');
    const limit = this.hub.config.maxRingingCallsPerParticipant;
    if (peer.ringing >= limit) throw new BackchannelError(ErrorCode.TooManyCalls, `a participant may have at most ${limit} outgoing calls ringing`, { details: { limit } });
    // In a cluster a call id names the node hosting it (see callNode).
    const id = this.hub.nodeNo ? `CA_${this.hub.nodeNo}_${randomId(16)}` : `CA_${randomId(16)}`;
    const room = this.hub.createRoom('call', id);
    const call = new Call(id, peer, calleeUserId, appParam, room);
    this.calls.set(id, call);
    peer.ringing++;
    this.hub.enter(room, peer, peer.displayName, null);
    const reply = { call: call.info(), room: room.num };
    if (this.hub.config.busyWhenInCall && this.userInConnectedCall(calleeUserId)) {
      // Reply first so the caller holds a Call object when the `busy` end arrives.
      this.hub.afterReply(peer, () => this.end(call, reason(CallEndReason.Busy, `${calleeUserId} is in another call`)));
      return reply;
    }
    const cluster = this.hub.cluster;
    if (cluster && this.hub.config.busyWhenInCall) {
      // In a cluster the callee may be in a call hosted on another node: asked before it rings.
      cluster.inConnectedCall(calleeUserId).then((busy) => {
        if (call.state !== 'ringing') return;
        if (busy) this.end(call, reason(CallEndReason.Busy, `${calleeUserId} is in another call`));
        else this.#ring(call);
      });
      return reply;
    }
    this.#ring(call);
    return reply;
  }

  /** Rings every connected client of the callee (on every node of a cluster) until the ring timeout. */
  #ring(call: Call): void {
    const { caller, calleeUserId, appParam } = call;
    this.hub.emit({ type: 'call.incoming', at: call.createdAt, callId: call.id, caller: party(caller), callee: calleeUserId, ...(appParam !== undefined ? { appParam } : {}) });
    for (const p of this.hub.peersByUser.get(calleeUserId) ?? []) this.notify(call, p);
    this.hub.cluster?.callRinging(call);
    call.ringTimer = setTimeout(() => this.end(call, reason(CallEndReason.NoAnswer, `no answer within ${this.hub.config.ringTimeoutMs} ms`)), this.hub.config.ringTimeoutMs);
  }

  /** Whether user `userId` is in a connected call hosted here. */
  userInConnectedCall(userId: string): boolean {
    for (const call of this.calls.values()) {
      if (call.state === 'connected' && (call.caller.userId === userId || call.callee?.userId === userId)) return true;
    }
    return false;
  }

  /** `call.get`: a call the peer takes part in (a callee that connected late uses this to accept). */
  get(peer: Peer, callId: string): { call: CallInfo } {
    const call = this.find(callId);
    if (call.caller !== peer && call.calleeUserId !== peer.userId) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}"`);
    if (call.calleeUserId === peer.userId && call.state === 'ringing') call.notified.add(peer);
    return { call: call.info() };
  }

  /** `call.accept`: the first accepting client wins; the callee's other clients see it revoked. */
  accept(peer: Peer, callId: string): { call: CallInfo; room: RoomInfo } {
    const call = this.find(callId);
    if (call.calleeUserId !== peer.userId) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}" for this user`);
    requireGrant(peer.grants.calls, 'receiving calls');
    if (call.state === 'connected') throw new BackchannelError(ErrorCode.CallAnsweredElsewhere, 'the call was answered on another client');
    if (call.state !== 'ringing') throw new BackchannelError(ErrorCode.CallNotRinging, `the call is ${call.state}`);
    clearTimeout(call.ringTimer);
    call.caller.ringing--;
    call.state = 'connected';
    call.connectedAt = Date.now();
    call.callee = peer;
    const member = this.hub.enter(call.room, peer, peer.displayName, null);
    for (const other of call.notified) {
      if (other !== peer && !other.gone) other.link.sendEvent({ t: 'call.revoked', callId, reason: reason(InviteRevokedReason.AnsweredElsewhere, 'answered on another client') });
    }
    const callerMember = call.room.member(call.caller.id);
    if (callerMember) call.caller.link.sendEvent({ t: 'call.connected', callId, room: call.room.infoFor(callerMember, this.hub.sessions.openSessionsFor) });
    this.hub.emit({ type: 'call.started', at: call.connectedAt, callId, caller: party(call.caller), callee: party(peer) });
    return { call: call.info(), room: call.room.infoFor(member, this.hub.sessions.openSessionsFor) };
  }

  /** `call.decline`: ends a ringing call as `declined` (or `busy` if the callee says so). */
  decline(peer: Peer, callId: string, why: string | undefined): Record<string, never> {
    const call = this.find(callId);
    if (call.calleeUserId !== peer.userId) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}" for this user`);
    requireGrant(peer.grants.calls, 'declining calls');
    if (call.state !== 'ringing') throw new BackchannelError(ErrorCode.CallNotRinging, `the call is ${call.state}`);
    for (const other of call.notified) {
      if (other !== peer && !other.gone) other.link.sendEvent({ t: 'call.revoked', callId, reason: reason(InviteRevokedReason.DeclinedElsewhere, 'declined on another client') });
    }
    call.notified.clear();
    call.notified.add(peer);
    const code = why === 'busy' ? CallEndReason.Busy : CallEndReason.Declined;
    this.end(call, reason(code, why ? `declined by the callee: ${why}` : 'declined by the callee'));
    return {};
  }

  /** `call.cancel`: the caller gives up while it rings. */
  cancel(peer: Peer, callId: string): Record<string, never> {
    const call = this.find(callId);
    if (call.caller !== peer) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}" placed by this client`);
    if (call.state !== 'ringing') throw new BackchannelError(ErrorCode.CallNotRinging, `the call is ${call.state}`);
    this.end(call, reason(CallEndReason.Cancelled, 'cancelled by the caller'));
    return {};
  }

  /** `call.end`: hang up (a ringing call is cancelled by the caller or declined by the callee). */
  hangUp(peer: Peer, callId: string): Record<string, never> {
    const call = this.find(callId);
    const isCaller = call.caller === peer;
    const isCallee = call.callee === peer || (call.state === 'ringing' && call.calleeUserId === peer.userId);
    if (!isCaller && !isCallee) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}" for this client`);
    if (call.state === 'ringing') {
      return isCaller ? this.cancel(peer, callId) : this.decline(peer, callId, undefined);
    }
    if (call.state === 'connected') this.end(call, reason(CallEndReason.Normal, `hung up by ${peer.userId}`));
    return {};
  }

  /** Ends `call` with `why`: both sides and the webhook see the same reason and duration. */
  end(call: Call, why: Reason): void {
    if (call.state === 'ended') return;
    clearTimeout(call.ringTimer);
    if (call.state === 'ringing') call.caller.ringing--;
    call.state = 'ended';
    call.endReason = why;
    const durationMs = call.connectedAt ? Date.now() - call.connectedAt : 0;
    const event = { t: 'call.ended' as const, callId: call.id, reason: why, durationMs };
    const told = new Set<Peer>([call.caller, ...call.notified]);
    if (call.callee) told.add(call.callee);
    for (const p of told) if (!p.gone) p.link.sendEvent(event);
    for (const member of [...call.room.members.values()]) this.hub.exit(call.room, member, reason(LeaveReason.CallEnded, why.message), { announce: false });
    this.hub.dropRoom(call.room);
    this.calls.delete(call.id);
    this.hub.emit({ type: 'call.ended', at: Date.now(), callId: call.id, caller: party(call.caller), callee: call.calleeUserId, reason: why, durationMs });
  }

  /** A newly connected client of a callee is shown every call ringing for it. */
  peerConnected(peer: Peer): void {
    if (!peer.grants.calls) return;
    for (const call of this.calls.values()) if (call.state === 'ringing' && call.calleeUserId === peer.userId) this.notify(call, peer);
  }

  /** A gone caller or answering callee ends the call as connection-lost (or server-shutdown). */
  peerGone(peer: Peer, leaveCode: string): void {
    const why =
      leaveCode === LeaveReason.ServerShutdown
        ? reason(CallEndReason.ServerShutdown, 'the server is shutting down')
        : leaveCode === LeaveReason.Left
          ? reason(CallEndReason.Normal, `${peer.userId} closed the connection`)
          : reason(CallEndReason.ConnectionLost, `${peer.userId}'s connection was lost`);
    for (const call of [...this.calls.values()]) {
      call.notified.delete(peer);
      if (call.caller === peer || call.callee === peer) this.end(call, why);
    }
  }

  /** Ends every call (server shutdown). */
  endAll(why: Reason): void {
    for (const call of [...this.calls.values()]) this.end(call, why);
  }

  /** Ends a call on behalf of the server API. */
  endByServer(callId: string, message = 'ended by the server'): void {
    this.end(this.find(callId), reason(CallEndReason.EndedByServer, message));
  }

  /** Shows ringing call `callId` to `peer`, a callee's client connected to another node. */
  notifyRemote(callId: string, peer: Peer): void {
    const call = this.calls.get(callId);
    if (call?.state === 'ringing' && call.calleeUserId === peer.userId) this.notify(call, peer);
  }

  private notify(call: Call, peer: Peer): void {
    if (!peer.grants.calls || call.notified.has(peer)) return;
    call.notified.add(peer);
    peer.link.sendEvent({ t: 'call.incoming', call: call.info() });
  }

  private find(callId: string): Call {
    const call = this.calls.get(callId);
    if (!call) throw new BackchannelError(ErrorCode.CallNotFound, `no call "${callId}"`);
    return call;
  }

}
