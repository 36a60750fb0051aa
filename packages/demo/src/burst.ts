/**
 * A burst: 8 MiB of 16 KiB messages handed to a `reliable-message` session at once, so the live
 * panel shows backpressure at work — the queue climbing past the high-water mark
 * (`queueTooLong` triggered), then draining at the pace of the slowest receiver (`queueTooLong`
 * cleared) — without a byte lost.
 */
import type { Conference, RecvDataSession, SendDataSession } from '@backchannel/client';
import { Disposer, formatBytes, h } from './dom.js';
import type { LivePanel } from './live.js';
import { STREAM_BURST } from './wire.js';

const MESSAGE_BYTES = 16 * 1024;
const BURST_BYTES = 8 * 1024 * 1024;

export class Burst {
  readonly element: HTMLElement;
  readonly #tx: SendDataSession;
  readonly #rx: RecvDataSession;
  readonly #button: HTMLButtonElement;
  readonly #status: HTMLElement;
  readonly #disposer = new Disposer();

  private constructor(room: Conference, tx: SendDataSession, rx: RecvDataSession, live: LivePanel) {
    this.#tx = tx;
    this.#rx = rx;
    this.#button = h('button', { type: 'button', class: 'burst' }, `Send a burst (${formatBytes(BURST_BYTES)})`);
    this.#status = h('span', { class: 'burst-status muted', 'aria-live': 'polite' });
    this.element = h('div', { class: 'burst-row' }, this.#button, this.#status);
    this.#button.addEventListener('click', () => void this.#send(room));
    const d = this.#disposer;
    d.add(live.add({ session: 'burst', mode: tx.mode, direction: 'out', read: () => { const s = tx.stats(); return { messages: s.messagesSent, bytes: s.bytesSent, queuedBytes: s.queuedBytes }; } }));
    d.add(live.add({ session: 'burst', mode: tx.mode, direction: 'in', read: () => ({ messages: rx.stats().messagesReceived, bytes: rx.stats().bytesReceived }) }));
    d.add(tx.on('queueTooLong', ({ triggered }) => live.queueTooLong('burst', triggered)));
  }

  static async open(room: Conference, live: LivePanel): Promise<Burst> {
    const tx = await room.makeSendDataSession(STREAM_BURST, 'reliable-message');
    // Received bursts are only counted (the live panel reads the receiver's stats).
    const rx = await room.makeRecvDataSession(STREAM_BURST, () => undefined);
    return new Burst(room, tx, rx, live);
  }

  dispose(): void {
    this.#disposer.dispose();
    this.#rx.close();
    void this.#tx.close().catch(() => undefined);
  }

  async #send(room: Conference): Promise<void> {
    this.#button.disabled = true;
    const started = performance.now();
    const message = new Uint8Array(MESSAGE_BYTES);
    // Everything at once, on purpose: send() queues and says when the queue is above its high-water mark.
    for (let sent = 0; sent < BURST_BYTES; sent += MESSAGE_BYTES) this.#tx.send(message);
    const others = room.participants.size;
    this.#status.textContent = `queued ${formatBytes(BURST_BYTES)} for ${others === 0 ? 'the server alone (no one else is here)' : others === 1 ? '1 other' : `${others} others`}…`;
    try {
      await this.#tx.drained();
      const secs = (performance.now() - started) / 1000;
      this.#status.textContent = `${formatBytes(BURST_BYTES)} drained in ${secs.toFixed(1)} s (${formatBytes(BURST_BYTES / secs)}/s)`;
    } catch {
      this.#status.textContent = 'the session closed before the burst was sent';
    } finally {
      this.#button.disabled = false;
    }
  }
}
