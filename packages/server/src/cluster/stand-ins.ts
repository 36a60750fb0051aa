/**
 * The host's side of a cluster: the stand-ins of peers connected to other nodes (their edges)
 * taking part in rooms hosted here, and the operations their edges send about them (see the table
 * in cluster.ts): attach and detach, requests (answered with `r`), data frames, connection state,
 * refreshed tokens, queue progress, ringing calls and dropped frames. A stand-in's link
 * ({@link RemoteLink}) carries what the core sends it back to its edge.
 */
import type { Logger } from 'pino';
import { BackchannelError, ErrorCode, LeaveReason, decodeFrame, FrameKind, type ClientMessage } from '@backchannel/protocol';
import type { ResolvedGrants } from '@backchannel/server-sdk';
import type { Hub } from '../core/hub.js';
import type { Peer } from '../core/peer.js';
import type { NodeLink, Op } from './links.js';
import { RemoteLink } from './remote-link.js';

/** What the stand-ins need of the cluster. */
export interface StandInsOptions {
  hub: Hub;
  log: Logger;
  /** The outgoing link to node `no`, opened if needed; undefined if no such live node. */
  linkTo(no: number): NodeLink | undefined;
  /** Whether this node is draining (takes no new joins or calls). */
  draining(): boolean;
}

export class StandIns {
  readonly #o: StandInsOptions;
  readonly #hub: Hub;
  /** Stand-ins of peers connected to other nodes: edge node → handle → peer. */
  readonly #remotes = new Map<number, Map<number, Peer>>();

  constructor(options: StandInsOptions) {
    this.#o = options;
    this.#hub = options.hub;
  }

  /** Edge nodes that have stand-ins here. */
  nodes(): IterableIterator<number> {
    return this.#remotes.keys();
  }

  /** Operations from edge `no` about its clients in rooms hosted here. */
  apply(no: number, op: Op, blobs: Uint8Array[]): void {
    let remotes = this.#remotes.get(no);
    const sid = op.s as number;
    if (op.o === 'a') {
      if (!remotes) this.#remotes.set(no, (remotes = new Map()));
      const old = remotes.get(sid);
      if (old && !old.gone) this.#hub.handleDisconnect(old, LeaveReason.ConnectionLost);
      const link = new RemoteLink(() => this.#o.linkTo(no), sid, (key) => this.#hub.sessions.queueChanged(key));
      const identity = { userId: op.u as string, displayName: op.n as string, grants: op.g as ResolvedGrants, apiKey: '', expiresAt: op.x as number };
      const peer = this.#hub.attachRemote(op.id as string, sid, identity, op.cap as Peer['capabilities'], link);
      if (op.st === 'reconnecting') peer.connection = 'reconnecting';
      remotes.set(sid, peer);
      return;
    }
    const peer = remotes?.get(sid);
    if (!peer || peer.gone) return;
    switch (op.o) {
      case 'q':
        return this.#request(no, peer, op.m as ClientMessage);
      case 'in': {
        const raw = blobs[op.b as number]!;
        try {
          const frame = decodeFrame(raw);
          if (frame.kind !== FrameKind.Data) throw new BackchannelError(ErrorCode.BadFrame, 'not a data frame');
          this.#hub.handleData(peer, frame, raw);
        } catch (error) {
          const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error');
          this.#o.linkTo(no)?.send({ o: 'de', s: sid, e: err.toJSON() });
        }
        return;
      }
      case 'st':
        return this.#hub.setConnection(peer, op.c as 'connected' | 'reconnecting');
      case 'dt':
        remotes!.delete(sid);
        return this.#hub.handleDisconnect(peer, op.code as string);
      case 'rf':
        peer.grants = op.g as ResolvedGrants;
        peer.expiresAt = op.x as number;
        return;
      case 'pg':
        return (peer.link as RemoteLink).progress(op.k as string, op.w as number, op.q as number);
      case 'nt':
        return this.#hub.calls.notifyRemote(op.call as string, peer);
      case 'dr':
        return this.#hub.sessions.droppedFor(op.k as string, peer, op.n as number);
    }
  }

  /**
   * The link from or to edge `no` closed: its clients' stand-ins leave this node's rooms
   * (connection lost). Returns how many there were.
   */
  drop(no: number): number {
    const remotes = this.#remotes.get(no);
    this.#remotes.delete(no);
    const lost = remotes?.size ?? 0;
    for (const peer of remotes?.values() ?? []) this.#hub.handleDisconnect(peer, LeaveReason.ConnectionLost);
    return lost;
  }

  #request(no: number, peer: Peer, msg: ClientMessage): void {
    let reply: Op;
    try {
      if (this.#o.draining() && (msg.t === 'conf.join' || msg.t === 'call.make')) {
        // A new call, or a conference it does not have, is placed elsewhere by the edge (details.draining).
        const absent = msg.t === 'call.make' || !this.#hub.conferences.byName.has(msg.name);
        throw new BackchannelError(ErrorCode.ServerShutdown, `the node hosting it is draining: it takes no new ${msg.t === 'call.make' ? 'calls' : 'joins'}`, absent ? { details: { draining: true } } : {});
      }
      reply = { o: 'r', s: peer.sid, re: msg.id, d: this.#hub.handleRequest(peer, msg) };
    } catch (error) {
      const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
      if (!(error instanceof BackchannelError)) this.#o.log.error({ err: error }, 'internal error');
      reply = { o: 'r', s: peer.sid, re: msg.id, e: err.toJSON() };
    }
    this.#o.linkTo(no)?.send(reply);
    this.#hub.flushAfterReply(peer);
  }
}
