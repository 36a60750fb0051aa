/**
 * Receipts: each receiver tells the sender that its app got a chat message or verified a file.
 * Broadcast on one `reliable-message` session (the one sender a receipt is for acts on it), so
 * "delivered" in the page means another participant's page had it, not merely that it left here.
 */
import type { Conference, RecvDataSession, SendDataSession } from '@backchannel/client';
import type { LivePanel } from './live.js';
import { decodeJson, encodeJson, STREAM_RECEIPTS, type Receipt } from './wire.js';

type Listener = (receipt: Receipt, from: string) => void;

export class Receipts {
  readonly #tx: SendDataSession;
  readonly #rx: RecvDataSession;
  readonly #selfId: () => string;
  readonly #listeners = new Set<Listener>();
  /** Chat receipts waiting to go, by sender: batched into one message per sender per turn. */
  readonly #pendingChat = new Map<string, number[]>();
  #flushQueued = false;
  readonly #removeProbes: (() => void)[];

  private constructor(tx: SendDataSession, rx: RecvDataSession, selfId: () => string, live: LivePanel) {
    this.#tx = tx;
    this.#rx = rx;
    this.#selfId = selfId;
    this.#removeProbes = [
      live.add({ session: 'receipts', mode: tx.mode, direction: 'out', read: () => ({ messages: tx.stats().messagesSent, bytes: tx.stats().bytesSent, queuedBytes: tx.stats().queuedBytes }) }),
      live.add({ session: 'receipts', mode: tx.mode, direction: 'in', read: () => ({ messages: rx.stats().messagesReceived, bytes: rx.stats().bytesReceived }) }),
    ];
    tx.on('queueTooLong', ({ triggered }) => live.queueTooLong('receipts', triggered));
  }

  static async open(room: Conference, selfId: () => string, live: LivePanel): Promise<Receipts> {
    const tx = await room.makeSendDataSession(STREAM_RECEIPTS, 'reliable-message');
    let receipts: Receipts | undefined;
    const early: [Uint8Array, string][] = [];
    const rx = await room.makeRecvDataSession(STREAM_RECEIPTS, (data, { from }) => (receipts ? receipts.#onData(data, from) : early.push([data, from])));
    receipts = new Receipts(tx, rx, selfId, live);
    for (const [data, from] of early) receipts.#onData(data, from);
    return receipts;
  }

  /** Listens to receipts addressed to this participant. */
  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Acknowledges chat message `id` from `sender` (batched). */
  chatReceived(sender: string, id: number): void {
    const ids = this.#pendingChat.get(sender) ?? [];
    ids.push(id);
    this.#pendingChat.set(sender, ids);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  /** Reports the outcome of a received file to its sender. */
  fileReceived(receipt: Extract<Receipt, { kind: 'file' }>): void {
    if (!this.#tx.closeReason) this.#tx.send(encodeJson(receipt));
  }

  dispose(): void {
    for (const remove of this.#removeProbes) remove();
    this.#rx.close();
    void this.#tx.close().catch(() => undefined);
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#tx.closeReason) return this.#pendingChat.clear();
    for (const [to, ids] of this.#pendingChat) this.#tx.send(encodeJson({ kind: 'chat', to, ids } satisfies Receipt));
    this.#pendingChat.clear();
  }

  #onData(data: Uint8Array, from: string): void {
    const receipt = decodeJson<Receipt>(data);
    if (!receipt || receipt.to !== this.#selfId()) return;
    for (const listener of this.#listeners) listener(receipt, from);
  }
}
