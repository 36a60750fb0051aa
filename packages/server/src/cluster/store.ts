/**
 * What cluster mode keeps in Redis, as the rest of the server sees it: the registry of live nodes
 * (heartbeat + TTL), where each conference lives, and a copy of every room and member of this node
 * that lets a survivor end a dead node's rooms (webhooks exactly once). The implementation is
 * `redis-store.ts`; nothing else in the server talks to Redis.
 */
import type { Emitter, ParticipantInfo } from '@backchannel/protocol';

/** A live node of the cluster, as registered in Redis. */
export interface NodeInfo {
  /** Unique per process run (random unless the `clusterNodeId` setting names it). */
  id: string;
  /**
   * Small number (1–2047) unique among live nodes: room numbers and participant handles made on
   * this node carry it in their top bits (`num >>> 20`), so any node can tell where a room lives.
   */
  no: number;
  /** Address other nodes connect to (`clusterAddress`, `ws://` or `wss://`). */
  url: string;
  /** Participants connected to this node. */
  participants: number;
  /** Rooms (conferences and calls) hosted on this node. */
  rooms: number;
  /** Share of one core this process used over the last heartbeat interval (0–n). */
  cpu: number;
  /** Draining: places nothing new. */
  draining: boolean;
  /** ms since the epoch. */
  startedAt: number;
}

/** A room hosted on a node, as kept for the cleanup of that node. */
export interface RoomRecord {
  kind: 'conference' | 'call';
  /** Conference name, or call id. */
  name: string;
  num: number;
  createdAt: number;
  /** Calls: the caller (participant info) and the callee's user id. */
  caller?: { userId: string; displayName: string; participantId: string };
  callee?: string;
  /** Calls: when it was answered (0 while ringing). */
  connectedAt?: number;
}

/** What a survivor gets when it wins the cleanup of a dead node. */
export interface DeadNode {
  node: NodeInfo;
  rooms: (RoomRecord & { members: ParticipantInfo[] })[];
}

export type ClusterStoreEvents = {
  /** Redis is reachable again (also the first time). */
  up: [];
  /** Redis became unreachable. */
  down: [error: Error];
  /** A node joined the live set. */
  nodeUp: [node: NodeInfo];
  /** A node's registration expired (it missed its heartbeats for `clusterNodeTtlMs`). */
  nodeDown: [node: NodeInfo];
  /** A node deregistered (`close()`: a graceful stop that had ended its rooms). Never also `nodeDown`. */
  nodeLeft: [node: NodeInfo];
  /**
   * This node missed its heartbeats for `clusterNodeTtlMs` (a long pause, or cut off from Redis
   * while the others were not) and node `by` claimed it dead, ending its rooms cluster-wide. It is
   * registered again (same number) and its records are rewritten; the rooms it still holds were
   * already reported ended, so the server should end them here too.
   */
  evicted: [by: string];
};

export interface ClusterStore extends Emitter<ClusterStoreEvents> {
  /** This node (its `no` is assigned by `start`). */
  readonly self: NodeInfo;
  /** Whether Redis answered the last command. */
  readonly up: boolean;
  /** Live nodes from the last poll, this one included, sorted by `no`. */
  nodes(): NodeInfo[];
  /** The live node with number `no`. */
  nodeByNo(no: number): NodeInfo | undefined;
  /** The least-loaded live node that is not draining (this one if alone), for a room about to be placed: it counts that room at once. */
  pickNode(avoid?: number): NodeInfo;
  /**
   * The node that hosts conference `name`: its live owner, else a node placed now (least loaded,
   * not draining) and recorded atomically (two nodes placing at once agree). Throws
   * `BackchannelError` `cluster-unavailable` (retryable) while Redis is unreachable. With `avoid`,
   * node number `avoid` is not chosen, and a conference recorded there is placed anew (its node
   * refused it: it is draining).
   */
  conferenceHost(name: string, avoid?: number): Promise<NodeInfo>;
  /** Forgets that this node hosts conference `name` (only if it still does). Never throws. */
  releaseConference(name: string): void;
  /** Records a room of this node (kept until `roomClosed`). Never throws; rewritten after a Redis restart. */
  roomOpened(room: RoomRecord): void;
  /** Updates a call's record (answered). */
  roomUpdated(room: RoomRecord): void;
  roomClosed(num: number): void;
  memberAdded(num: number, member: ParticipantInfo): void;
  memberRemoved(num: number, participantId: string): void;
  /**
   * Claims the cleanup of a dead node: resolves with its rooms and members for exactly one caller
   * cluster-wide (the others get undefined), and deletes them.
   */
  claimDead(node: NodeInfo): Promise<DeadNode | undefined>;
  /** Records that call `callId` hosted on node `hostNo` rings for `userId` (expires after `ttlMs`). */
  ringing(userId: string, callId: string, hostNo: number, ttlMs: number): void;
  ringEnded(userId: string, callId: string): void;
  /** Calls ringing for `userId`: call id → host node number. */
  ringingFor(userId: string): Promise<Map<string, number>>;
  /** Sets whether this node is draining (published at the next heartbeat, and at once). */
  setDraining(draining: boolean): void;
  /** Deregisters this node and closes the Redis connections. */
  close(): Promise<void>;
}
