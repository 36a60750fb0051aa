/**
 * The edge's side of backpressure across nodes: for each data session hosted on another node, how
 * many of the bytes handed to a client's queue here have left it and how many still wait, reported
 * to the host (`pg`, see cluster.ts) when they change: once per turn, when a queue drains, and at
 * every heartbeat (a slow receiver makes progress slowly). The host mirrors the reports in the
 * stand-in's `RemoteLink` (remote-link.ts).
 */
import type { Peer } from '../core/peer.js';
import type { NodeLink } from './links.js';

/** Progress of one remote data session toward a client connected here. */
interface Watch {
  no: number;
  peer: Peer;
  key: string;
  delivered: number;
  /** Written and queued as last reported. */
  reported: number;
  reportedQueued: number;
  waiting: boolean;
}

export class ProgressReports {
  /** Per client connected here: its remote data sessions by session key (unique across nodes: it names the room). */
  readonly #watches = new Map<Peer, Map<string, Watch>>();
  readonly #dirty = new Set<Watch>();
  #scheduled = false;

  constructor(
    /** The link to node `no`, if one is open (a report opens none). */
    private readonly linkOf: (no: number) => NodeLink | undefined,
  ) {}

  /** Counts bytes of a remote session handed to a client's queue here; its host hears how they leave it. */
  delivered(no: number, peer: Peer, key: string, size: number): void {
    let mine = this.#watches.get(peer);
    if (!mine) this.#watches.set(peer, (mine = new Map()));
    let w = mine.get(key);
    if (!w) mine.set(key, (w = { no, peer, key, delivered: 0, reported: 0, reportedQueued: 0, waiting: false }));
    w.delivered += size;
    this.#dirty.add(w);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#report());
  }

  /** Reports the progress of every session still queued (slow receivers make progress slowly). */
  reportAll(): void {
    for (const mine of this.#watches.values()) for (const w of mine.values()) if (w.delivered !== w.reported || w.reportedQueued !== 0) this.#reportOne(w);
  }

  /** The host discarded session `key` of `peer` (both sides count it from 0 again). */
  forget(peer: Peer, key: string): void {
    this.#watches.get(peer)?.delete(key);
  }

  /** Forgets `peer`'s sessions hosted on node `no`. */
  drop(no: number, peer: Peer): void {
    const mine = this.#watches.get(peer);
    if (!mine) return;
    for (const [key, w] of mine) if (w.no === no) mine.delete(key);
    if (mine.size === 0) this.#watches.delete(peer);
  }

  #report(): void {
    this.#scheduled = false;
    for (const w of this.#dirty) this.#reportOne(w);
    this.#dirty.clear();
  }

  #reportOne(w: Watch): void {
    if (w.peer.gone) return void this.#watches.delete(w.peer);
    const queued = w.peer.link.queuedBytes(w.key);
    const written = w.delivered - queued;
    if (written !== w.reported || queued !== w.reportedQueued) {
      w.reported = written;
      w.reportedQueued = queued;
      this.linkOf(w.no)?.send({ o: 'pg', s: w.peer.sid, k: w.key, w: written, q: queued });
    }
    if (queued > 0 && !w.waiting) {
      w.waiting = true;
      w.peer.link.onDrained(w.key, () => {
        w.waiting = false;
        this.#dirty.add(w);
        if (this.#scheduled) return;
        this.#scheduled = true;
        setImmediate(() => this.#report());
      });
    }
  }
}
