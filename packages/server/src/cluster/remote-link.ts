/**
 * The {@link PeerLink} of a stand-in: a peer connected to another node (its edge) taking part in
 * rooms hosted here. What the core asks of it becomes operations on the link to the edge, which
 * applies them to the client's session there. Queue sizes are mirrored: the edge reports, per data
 * session, how many bytes wait in its queue for the client and how many have left it, so
 * backpressure (`ds.backlog`), the slow-receiver detach and the queue bounds see remote receivers as
 * they see local ones. Bytes still crossing between the nodes are not the receiver's backlog.
 */
import type { PriorityClass, Reason, ServerEvent } from '@backchannel/protocol';
import type { OutboundFrame, PeerLink } from '../core/peer.js';
import type { NodeLink, Op } from './links.js';

/** Per data session: bytes sent to the edge; bytes waiting in its queue and written out of it (reported). */
interface Flow {
  sent: number;
  written: number;
  queued: number;
  drained: (() => void) | undefined;
}

export class RemoteLink implements PeerLink {
  readonly #flows = new Map<string, Flow>();
  #queued = 0;

  constructor(
    /** The link to the edge node (undefined once it is gone: everything is dropped). */
    private readonly out: () => NodeLink | undefined,
    /** The peer's handle. */
    readonly sid: number,
    /** Called when the edge reports a new queue size for session `key`. */
    private readonly onQueue: (key: string) => void,
  ) {}

  sendEvent(event: ServerEvent): void {
    this.out()?.send({ o: 'ev', s: this.sid, e: event });
  }

  sendControlFrame(frame: Uint8Array): void {
    const link = this.out();
    if (!link) return;
    // The same frame for several peers of one edge (a presence batch) crosses once.
    const last = link.lastWith(frame);
    if (last?.o === 'cf') (last.to as number[]).push(this.sid);
    else link.send({ o: 'cf', to: [this.sid] }, frame);
  }

  sendData(key: string, priority: PriorityClass, frame: OutboundFrame): number {
    const link = this.out();
    if (!link) return 0;
    this.#add(link, key, priority, frame, undefined);
    let flow = this.#flows.get(key);
    if (!flow) this.#flows.set(key, (flow = { sent: 0, written: 0, queued: 0, drained: undefined }));
    flow.sent += frame.size;
    return flow.queued;
  }

  sendDroppable(key: string, priority: PriorityClass, frame: OutboundFrame, dropCap: number): number {
    const link = this.out();
    if (link) this.#add(link, key, priority, frame, dropCap);
    // Drops happen at the edge, which counts them in the client's stats.
    return 0;
  }

  /** Adds this receiver to the op carrying `frame` if it was the last one queued, else queues one. */
  #add(link: NodeLink, key: string, priority: PriorityClass, frame: OutboundFrame, dropCap: number | undefined): void {
    const last = link.lastWith(frame.wire);
    if (last?.o === 'd' && last.c === dropCap) (last.to as unknown[]).push([this.sid, key, priority]);
    else {
      const op: Op = { o: 'd', to: [[this.sid, key, priority]], n: frame.size };
      if (dropCap !== undefined) op.c = dropCap;
      link.send(op, frame.wire);
    }
  }

  sendSessionEvent(key: string, priority: PriorityClass, event: ServerEvent): void {
    this.out()?.send({ o: 'se', s: this.sid, k: key, p: priority, e: event });
  }

  discard(key: string): void {
    this.out()?.send({ o: 'x', s: this.sid, k: key });
    const flow = this.#flows.get(key);
    if (!flow) return;
    // The edge forgets the session's count too (the link is ordered): both start again from 0.
    this.progress(key, flow.sent, 0);
    this.#flows.delete(key);
  }

  queuedBytes(key: string): number {
    return this.#flows.get(key)?.queued ?? 0;
  }

  backlogOf(key: string): number {
    return this.queuedBytes(key);
  }

  progressOf(key: string): number {
    return this.#flows.get(key)?.written ?? 0;
  }

  get queuedTotal(): number {
    return this.#queued;
  }

  onDrained(key: string, cb: () => void): void {
    const flow = this.#flows.get(key);
    if (!flow || flow.sent === flow.written) cb();
    else flow.drained = cb;
  }

  pauseInbound(ms: number): void {
    this.out()?.send({ o: 'p', s: this.sid, ms });
  }

  close(reason: Reason): void {
    this.out()?.send({ o: 'c', s: this.sid, r: reason });
  }

  /** The edge reports that `written` bytes of session `key` have left its queue in all, and `queued` wait in it. */
  progress(key: string, written: number, queued: number): void {
    const flow = this.#flows.get(key);
    if (!flow) return;
    if (queued !== flow.queued) {
      this.#queued += queued - flow.queued;
      flow.queued = queued;
      this.onQueue(key);
    }
    if (written > flow.written) flow.written = Math.min(written, flow.sent);
    if (flow.written < flow.sent) return;
    const cb = flow.drained;
    flow.drained = undefined;
    cb?.();
  }
}
