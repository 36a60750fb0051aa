/**
 * The records of a cluster node's rooms in Redis, and the cleanup of a dead node's rooms. Each
 * node keeps a copy of the rooms it hosts and their members (with the number of webhook events
 * each room has had) through the {@link ClusterStore}; when a node's registration expires, the one
 * survivor that claims its cleanup emits what its rooms would have ended with, continuing each
 * room's event sequence.
 */
import type { Logger } from 'pino';
import { CallEndReason, LeaveReason, RoomEndReason } from '@backchannel/protocol';
import type { HubEvent } from '../core/events.js';
import type { Hub } from '../core/hub.js';
import type { ClusterStore, DeadNode, NodeInfo, RoomRecord } from './store.js';

/** A room's record, with the number of webhook events it has had. */
type Recorded = RoomRecord & { events: number };

/** What the records need of the cluster. */
export interface RoomRecordsOptions {
  /** Where the rooms hosted here are looked up when they start. */
  hub: Pick<Hub, 'conferences' | 'calls'>;
  store: ClusterStore;
  log: Logger;
  /**
   * Emits an event of a dead node's room (webhooks), as its host would have; `after` is the
   * number of events the room had (its sequence continues from there).
   */
  emitForeign(event: HubEvent, after: number): void;
}

export class RoomRecords {
  readonly #o: RoomRecordsOptions;
  /** Records of the rooms hosted here, by `kind:name`. */
  readonly #records = new Map<string, Recorded>();

  constructor(options: RoomRecordsOptions) {
    this.#o = options;
  }

  /**
   * Keeps Redis's copy of this node's rooms and members (for the cleanup if this node dies),
   * with the number of webhook events each room has had, so a survivor's events continue its
   * sequence.
   */
  handle(e: HubEvent): void {
    const s = this.#o.store;
    const key = 'room' in e ? `${e.room.kind}:${e.room.name}` : `call:${e.callId}`;
    switch (e.type) {
      case 'conference.started': {
        const room = this.#o.hub.conferences.byName.get(e.room.name);
        if (!room) return;
        const record: Recorded = { kind: 'conference', name: e.room.name, num: room.num, createdAt: room.createdAt, events: 1 };
        this.#records.set(key, record);
        s.roomOpened(record);
        return;
      }
      case 'call.incoming': {
        const call = this.#o.hub.calls.calls.get(e.callId);
        if (!call) return;
        const record: Recorded = { kind: 'call', name: e.callId, num: call.room.num, createdAt: call.createdAt, caller: e.caller, callee: e.callee, connectedAt: 0, events: 1 };
        this.#records.set(key, record);
        s.roomOpened(record);
        return;
      }
      case 'conference.ended':
      case 'call.ended': {
        const record = this.#records.get(key);
        this.#records.delete(key);
        if (record) s.roomClosed(record.num);
        if (e.type === 'conference.ended') s.releaseConference(e.room.name);
        else s.ringEnded(e.callee, e.callId);
        return;
      }
      default:
    }
    const record = this.#records.get(key);
    if (!record) return;
    record.events++;
    if (e.type === 'call.started') {
      record.connectedAt = e.at;
      s.ringEnded(e.callee.userId, e.callId);
    }
    s.roomUpdated(record);
    if (e.type === 'participant.joined') s.memberAdded(record.num, e.participant);
    else if (e.type === 'participant.left') s.memberRemoved(record.num, e.participant.id);
  }

  /** Node `node`'s registration expired: claims the cleanup of its rooms, which one survivor wins. */
  claimDead(node: NodeInfo): void {
    this.#o.store.claimDead(node).then(
      (dead) => dead && this.#endDeadRooms(dead),
      (error: unknown) => this.#o.log.warn({ err: error, node: node.id }, 'could not claim the cleanup of a dead node; another node or a later poll will'),
    );
  }

  /** Emits what the dead node's rooms would have: members leaving, conferences and calls ending. */
  #endDeadRooms(dead: DeadNode): void {
    const at = Date.now();
    const message = `node ${dead.node.no} (${dead.node.id}), which hosted it, is gone`;
    for (const room of dead.rooms) {
      const ref = { kind: room.kind, name: room.name };
      let after = (room as Partial<Recorded>).events ?? 0;
      const emit = (event: HubEvent) => this.#o.emitForeign(event, after++);
      if (room.kind === 'conference') {
        for (const member of room.members) {
          emit({ type: 'participant.left', at, room: ref, participant: member, reason: { code: LeaveReason.NodeLost, message } });
        }
        emit({ type: 'conference.ended', at, room: ref, reason: { code: RoomEndReason.NodeLost, message }, durationMs: at - room.createdAt });
      } else if (room.caller) {
        emit({
          type: 'call.ended',
          at,
          callId: room.name,
          caller: room.caller,
          callee: room.callee ?? '',
          reason: { code: CallEndReason.NodeLost, message },
          durationMs: room.connectedAt ? at - room.connectedAt : 0,
        });
      }
    }
    this.#o.log.warn({ node: dead.node.id, rooms: dead.rooms.length }, 'ended the rooms of a dead node');
  }
}
