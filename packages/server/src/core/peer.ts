/**
 * A connected, authenticated client as the core sees it. The core never touches sockets: it talks
 * to a peer through the {@link PeerLink} the transport gives it.
 */
import type { Capabilities, PriorityClass, QueueItem, Reason, ServerEvent } from '@backchannel/protocol';
import type { ResolvedGrants } from '@backchannel/server-sdk';
import type { Room } from './room.js';

/**
 * A data frame to forward: the encoded frame (header + payload), the same bytes for every receiver
 * and immutable once queued, so one buffer serves a whole room.
 */
export interface OutboundFrame extends QueueItem {
  wire: Uint8Array;
}

/** What the core may ask of a peer's connection. */
export interface PeerLink {
  /** Sends a control event to this peer now (ahead of queued data). */
  sendEvent(event: ServerEvent): void;
  /** Sends a control event already encoded as a control frame (one buffer shared by many peers). */
  sendControlFrame(frame: Uint8Array): void;
  /**
   * Queues a data frame of session `key`; returns the bytes of the session waiting for the client
   * (its backlog) once more is waiting than is in transit to it, 0 until then.
   */
  sendData(key: string, priority: PriorityClass, frame: OutboundFrame): number;
  /**
   * Queues a droppable data frame of session `key`, dropping the session's oldest droppable frames
   * beyond `dropCap` bytes; returns how many were dropped.
   */
  sendDroppable(key: string, priority: PriorityClass, frame: OutboundFrame, dropCap: number): number;
  /** Sends a control event once the data of session `key` queued before it has been written. */
  sendSessionEvent(key: string, priority: PriorityClass, event: ServerEvent): void;
  /** Discards the queued data of session `key`. */
  discard(key: string): void;
  /** Bytes queued (not yet written to the socket) for session `key`. */
  queuedBytes(key: string): number;
  /** What the senders of session `key` are told this peer holds for it (`ds.backlog`), as `sendData` returns it. */
  backlogOf(key: string): number;
  /** A count that changes whenever data of session `key` leaves its queue (progress of a receiver). */
  progressOf(key: string): number;
  /** Bytes queued for this peer over all its sessions. */
  readonly queuedTotal: number;
  /** Calls `cb` once, when the queue of session `key` has been written out (or discarded). */
  onDrained(key: string, cb: () => void): void;
  /** Stops reading from this peer for `ms` milliseconds (inbound bitrate limit). */
  pauseInbound(ms: number): void;
  /** Says goodbye with `reason` and closes the connection. */
  close(reason: Reason): void;
}

/** A connected client. Identity fields come from its verified token. */
export class Peer {
  /** Rooms this peer is a member of, by room number. */
  readonly rooms = new Map<number, Room>();
  readonly connectedAt = Date.now();
  /** Set once the peer has disconnected; a gone peer takes no further actions. */
  gone = false;
  /** `'reconnecting'` while its connection is lost and it may still be resumed. */
  connection: 'connected' | 'reconnecting' = 'connected';
  /** The single-use credential that resumes this peer (replaced at each resume). */
  resumeCredential = '';
  /** Ends the peer when the resume window passes. */
  resumeTimer: ReturnType<typeof setTimeout> | undefined;
  /** When its access token expires, ms since the epoch: new actions need a refreshed token then. */
  expiresAt = Infinity;
  /** The stand-in of a peer connected to another node of the cluster (see Hub.attachRemote). */
  remote = false;
  /** Conferences joined and outgoing calls ringing (per-participant limits). */
  conferences = 0;
  ringing = 0;
  /**
   * Token buckets of its aggregate data bitrate and frame rate (`SessionRouter.meter`), on the
   * peer itself: read for every data frame it sends.
   */
  readonly dataBucket = { tokens: Infinity, frames: Infinity, last: 0 };

  constructor(
    /** Server-assigned participant id, unique per connection. */
    readonly id: string,
    /** Numeric handle of the participant in data frames. */
    readonly sid: number,
    readonly userId: string,
    readonly displayName: string,
    /** What its token allows (replaced by a refreshed token). */
    public grants: ResolvedGrants,
    readonly capabilities: Capabilities,
    readonly link: PeerLink,
  ) {}
}
