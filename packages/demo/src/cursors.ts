/**
 * Live cursors over an `unreliable` session: this page sends its pointer position at most once
 * per animation frame (60 Hz on most screens), others draw the latest position they got on their
 * next frame. A lost or dropped position is simply superseded by the next one, which is what
 * `unreliable` is for. Arrow keys move the cursor too.
 */
import type { Client, Conference, RecvDataSession, SendDataSession } from '@backchannel/client';
import { colorFor, Disposer, h, nowMs } from './dom.js';
import type { LivePanel } from './live.js';
import { transportFor } from './transports.js';
import { decodeCursor, encodeCursor, STREAM_CURSORS } from './wire.js';

interface Remote {
  el: HTMLElement;
  x: number;
  y: number;
  hidden: boolean;
  dirty: boolean;
}

const KEY_STEP = 0.02;

export class Cursors {
  readonly element: HTMLElement;
  readonly #room: Conference;
  readonly #tx: SendDataSession;
  readonly #rx: RecvDataSession;
  readonly #live: LivePanel;
  readonly #board: HTMLElement;
  readonly #mine: HTMLElement;
  readonly #remotes = new Map<string, Remote>();
  readonly #disposer = new Disposer();
  /** Latest local position not sent yet. */
  #pending: { x: number; y: number; hidden: boolean } | undefined;
  #position = { x: 0.5, y: 0.5 };
  #frame = 0;

  private constructor(client: Client, room: Conference, tx: SendDataSession, rx: RecvDataSession, live: LivePanel) {
    this.#room = room;
    this.#tx = tx;
    this.#rx = rx;
    this.#live = live;
    const transport = transportFor(client, tx.mode);
    this.#mine = h('div', { class: 'cursor mine', hidden: true, 'aria-hidden': 'true' }, h('span', { class: 'label' }, 'you'));
    this.#board = h(
      'div',
      { class: 'board', tabindex: 0, role: 'application', 'aria-label': 'Cursor board: move the pointer over it, or focus it and use the arrow keys', 'aria-describedby': 'board-hint' },
      this.#mine,
      h('p', { class: 'board-hint', id: 'board-hint' }, 'Move your pointer here (or focus and use the arrow keys). Everyone in the room sees it.'),
    );
    this.element = h(
      'section',
      { class: 'panel cursors', 'aria-labelledby': 'cursors-title' },
      h('h2', { id: 'cursors-title' }, 'Cursors ', h('span', { class: 'badge', title: transport.note, 'data-transport': transport.name }, `${tx.mode} · ${transport.name}`)),
      this.#board,
    );
    const d = this.#disposer;
    // The path of unreliable data changes when the WebRTC data channel opens or fails.
    d.add(
      client.on('transportChanged', () => {
        const badge = this.element.querySelector<HTMLElement>('.badge')!;
        const now = transportFor(client, tx.mode);
        badge.textContent = `${tx.mode} · ${now.name}`;
        badge.title = now.note;
        badge.dataset.transport = now.name;
      }),
    );
    d.listen(this.#board, 'pointermove', (e) => this.#moveTo(e.clientX, e.clientY));
    d.listen(this.#board, 'pointerdown', (e) => this.#moveTo(e.clientX, e.clientY));
    d.listen(this.#board, 'pointerleave', () => this.#queue({ ...this.#position, hidden: true }));
    d.listen(this.#board, 'keydown', (e) => this.#onKey(e));
    d.listen(this.#board, 'blur', () => this.#queue({ ...this.#position, hidden: true }));
    d.add(room.on('participantLeft', (p) => this.#forget(p.id)));
    d.add(room.on('participantUpdated', (p) => this.#remotes.get(p.id)?.el.classList.toggle('away', p.connectionState === 'reconnecting')));
    d.add(rx.on('closed', ({ from }) => this.#forget(from)));
    d.add(live.add({ session: 'cursors', mode: tx.mode, direction: 'out', read: () => { const s = tx.stats(); return { messages: s.messagesSent, bytes: s.bytesSent, queuedBytes: s.queuedBytes, dropped: s.droppedLocal + s.droppedServer }; } }));
    d.add(live.add({ session: 'cursors', mode: tx.mode, direction: 'in', read: () => { const s = rx.stats(); return { messages: s.messagesReceived, bytes: s.bytesReceived, dropped: s.droppedByServer }; } }));
    d.add(tx.on('queueTooLong', ({ triggered }) => live.queueTooLong('cursors', triggered)));
    d.add(() => cancelAnimationFrame(this.#frame));
  }

  static async open(client: Client, room: Conference, live: LivePanel): Promise<Cursors> {
    const tx = await room.makeSendDataSession(STREAM_CURSORS, 'unreliable');
    let cursors: Cursors | undefined;
    // Positions that arrive before the view exists are stale by the time it does: dropped.
    const rx = await room.makeRecvDataSession(STREAM_CURSORS, (data, { from }) => {
      if (cursors) cursors.#onData(data, from);
    });
    cursors = new Cursors(client, room, tx, rx, live);
    return cursors;
  }

  dispose(): void {
    this.#disposer.dispose();
    this.#rx.close();
    void this.#tx.close().catch(() => undefined);
  }

  #moveTo(clientX: number, clientY: number): void {
    const rect = this.#board.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return;
    this.#queue({ x: (clientX - rect.left) / rect.width, y: (clientY - rect.top) / rect.height, hidden: false });
  }

  #onKey(e: KeyboardEvent): void {
    const delta: Record<string, [number, number]> = { ArrowLeft: [-KEY_STEP, 0], ArrowRight: [KEY_STEP, 0], ArrowUp: [0, -KEY_STEP], ArrowDown: [0, KEY_STEP] };
    const step = delta[e.key];
    if (!step) return;
    e.preventDefault();
    const clamp = (v: number) => Math.min(1, Math.max(0, v));
    this.#queue({ x: clamp(this.#position.x + step[0]), y: clamp(this.#position.y + step[1]), hidden: false });
  }

  #queue(pos: { x: number; y: number; hidden: boolean }): void {
    if (!pos.hidden) this.#position = { x: pos.x, y: pos.y };
    this.#pending = pos;
    this.#schedule();
  }

  #onData(data: Uint8Array, from: string): void {
    const c = decodeCursor(data);
    if (!c) return;
    this.#live.cursorDelay(nowMs() - c.sentAt);
    let r = this.#remotes.get(from);
    if (!r) {
      const p = this.#room.participants.get(from);
      if (!p) return;
      const el = h('div', { class: 'cursor', 'data-participant': from, 'aria-hidden': 'true' }, h('span', { class: 'label' }, p.displayName));
      el.style.setProperty('--color', colorFor(from));
      this.#board.appendChild(el);
      r = { el, x: 0, y: 0, hidden: true, dirty: true };
      this.#remotes.set(from, r);
    }
    r.x = c.x;
    r.y = c.y;
    r.hidden = c.hidden;
    r.dirty = true;
    this.#schedule();
  }

  #schedule(): void {
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#onFrame());
  }

  /** Once per frame: send the latest local position, draw the latest remote ones. */
  #onFrame(): void {
    this.#frame = 0;
    const pending = this.#pending;
    if (pending) {
      this.#pending = undefined;
      if (!this.#tx.closeReason) this.#tx.send(encodeCursor({ ...pending, sentAt: nowMs() }));
      this.#place(this.#mine, pending.x, pending.y, pending.hidden);
    }
    for (const r of this.#remotes.values()) {
      if (!r.dirty) continue;
      r.dirty = false;
      this.#place(r.el, r.x, r.y, r.hidden);
    }
  }

  #place(el: HTMLElement, x: number, y: number, hidden: boolean): void {
    el.hidden = hidden;
    if (hidden) return;
    const w = this.#board.clientWidth;
    const hgt = this.#board.clientHeight;
    el.style.transform = `translate(${(x * w).toFixed(1)}px, ${(y * hgt).toFixed(1)}px)`;
    el.dataset.x = x.toFixed(3);
    el.dataset.y = y.toFixed(3);
  }

  #forget(participantId: string): void {
    this.#remotes.get(participantId)?.el.remove();
    this.#remotes.delete(participantId);
  }
}
