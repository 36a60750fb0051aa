/**
 * Chat over a `reliable-message` session: every message shows how far it got — queued here
 * (e.g. while reconnecting), sent (it left this page), delivered (other pages confirmed it with a
 * receipt), with who and how long it took.
 */
import type { Client, Conference, RecvDataSession, RemoteParticipant, SendDataSession } from '@backchannel/client';
import { colorFor, Disposer, h, nowMs } from './dom.js';
import type { LivePanel } from './live.js';
import type { Receipts } from './receipts.js';
import { transportFor } from './transports.js';
import { decodeJson, encodeJson, STREAM_CHAT, type ChatMessage } from './wire.js';

const MAX_TEXT = 2000;
const MAX_LINES = 500;

/** A message this page sent, waiting for receipts. */
interface Outgoing {
  sentAt: number;
  /** Participants in the room when it was sent: who should confirm it. */
  expected: Map<string, string>;
  /** Participant id → round trip (send → receipt), ms. */
  delivered: Map<string, number>;
  sent: boolean;
  status: HTMLElement;
}

export class Chat {
  readonly element: HTMLElement;
  readonly #client: Client;
  readonly #room: Conference;
  readonly #tx: SendDataSession;
  readonly #rx: RecvDataSession;
  readonly #receipts: Receipts;
  readonly #log: HTMLOListElement;
  readonly #input: HTMLInputElement;
  readonly #outgoing = new Map<number, Outgoing>();
  readonly #disposer = new Disposer();
  readonly #states = new Map<string, string>();
  #nextId = 1;

  private constructor(client: Client, room: Conference, tx: SendDataSession, rx: RecvDataSession, receipts: Receipts, live: LivePanel) {
    this.#client = client;
    this.#room = room;
    this.#tx = tx;
    this.#rx = rx;
    this.#receipts = receipts;
    this.#log = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
    this.#input = h('input', { id: 'chat-input', name: 'message', maxlength: MAX_TEXT, placeholder: 'Say something', autocomplete: 'off', required: true });
    const form = h('form', { class: 'chat-form' }, h('label', { for: 'chat-input', class: 'visually-hidden' }, 'Message'), this.#input, h('button', { type: 'submit' }, 'Send'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send(this.#input.value);
    });
    const transport = transportFor(client, tx.mode);
    this.element = h(
      'section',
      { class: 'panel chat', 'aria-labelledby': 'chat-title' },
      h('h2', { id: 'chat-title' }, 'Chat ', h('span', { class: 'badge', title: transport.note }, `${tx.mode} · ${transport.name}`)),
      this.#log,
      form,
    );
    for (const p of room.participants.values()) this.#states.set(p.id, p.connectionState);
    this.#disposer.add(live.add({ session: 'chat', mode: tx.mode, direction: 'out', read: () => ({ messages: tx.stats().messagesSent, bytes: tx.stats().bytesSent, queuedBytes: tx.stats().queuedBytes }) }));
    this.#disposer.add(live.add({ session: 'chat', mode: tx.mode, direction: 'in', read: () => ({ messages: rx.stats().messagesReceived, bytes: rx.stats().bytesReceived }) }));
    this.#disposer.add(tx.on('queueTooLong', ({ triggered }) => live.queueTooLong('chat', triggered)));
    this.#disposer.add(receipts.on((r, from) => r.kind === 'chat' && this.#onReceipt(r.ids, from)));
    this.#disposer.add(room.on('participantJoined', (p) => this.#system(`${p.displayName} joined`, p)));
    this.#disposer.add(room.on('participantLeft', (p, reason) => this.#onLeft(p, reason.code)));
    this.#disposer.add(room.on('participantUpdated', (p) => this.#onUpdated(p)));
    this.#disposer.interval(() => this.#checkSent(), 100);
  }

  static async open(client: Client, room: Conference, receipts: Receipts, live: LivePanel): Promise<Chat> {
    const tx = await room.makeSendDataSession(STREAM_CHAT, 'reliable-message');
    let chat: Chat | undefined;
    const early: [Uint8Array, string][] = [];
    const rx = await room.makeRecvDataSession(STREAM_CHAT, (data, { from }) => (chat ? chat.#onData(data, from) : early.push([data, from])));
    chat = new Chat(client, room, tx, rx, receipts, live);
    for (const [data, from] of early) chat.#onData(data, from);
    return chat;
  }

  /** Sends `text` to everyone in the room. */
  send(text: string): void {
    const trimmed = text.trim();
    if (!trimmed || this.#tx.closeReason) return;
    const msg: ChatMessage = { id: this.#nextId++, text: trimmed.slice(0, MAX_TEXT) };
    const expected = new Map([...this.#room.participants.values()].map((p) => [p.id, p.displayName]));
    const status = h('span', { class: 'delivery', 'data-state': 'queued' }, 'queued');
    this.#outgoing.set(msg.id, { sentAt: nowMs(), expected, delivered: new Map(), sent: false, status });
    this.#tx.send(encodeJson(msg));
    this.#input.value = '';
    this.#line(true, this.#client.participantId, this.#room.self?.displayName ?? 'me', msg.text, status);
    this.#checkSent();
  }

  dispose(): void {
    this.#disposer.dispose();
    this.#rx.close();
    void this.#tx.close().catch(() => undefined);
  }

  #onData(data: Uint8Array, from: string): void {
    const msg = decodeJson<ChatMessage>(data);
    if (!msg || typeof msg.text !== 'string' || typeof msg.id !== 'number') return;
    const name = this.#room.participants.get(from)?.displayName ?? from;
    this.#line(false, from, name, msg.text.slice(0, MAX_TEXT));
    this.#receipts.chatReceived(from, msg.id);
  }

  #onReceipt(ids: number[], from: string): void {
    const at = nowMs();
    for (const id of ids) {
      const out = this.#outgoing.get(id);
      if (!out || out.delivered.has(from)) continue;
      out.sent = true;
      out.delivered.set(from, at - out.sentAt);
      if (!out.expected.has(from)) out.expected.set(from, this.#room.participants.get(from)?.displayName ?? from);
      this.#render(out);
    }
  }

  /** A message has left this page once nothing of the session waits in the SDK's local queue. */
  #checkSent(): void {
    const left = this.#tx.stats().localQueuedBytes === 0 && this.#client.connectionState === 'connected';
    for (const out of this.#outgoing.values()) {
      if (out.sent) continue;
      out.sent = left;
      this.#render(out);
    }
  }

  #render(out: Outgoing): void {
    const names = [...out.delivered.keys()].map((id) => `${out.expected.get(id) ?? id} (${out.delivered.get(id)!.toFixed(1)} ms)`);
    const everyone = out.expected.size > 0 && [...out.expected.keys()].every((id) => out.delivered.has(id));
    let state: string;
    let text: string;
    if (out.delivered.size > 0) {
      state = everyone ? 'delivered' : 'partial';
      text = everyone ? (out.expected.size === 1 ? `delivered to ${out.expected.values().next().value}` : `delivered to all ${out.expected.size}`) : `delivered to ${out.delivered.size} of ${out.expected.size}`;
    } else if (out.sent) {
      state = 'sent';
      text = out.expected.size === 0 ? 'sent (no one else is here)' : 'sent';
    } else {
      state = 'queued';
      text = this.#client.connectionState === 'reconnecting' ? 'queued until reconnected' : 'queued';
    }
    out.status.dataset.state = state;
    out.status.textContent = text;
    out.status.title = names.length ? `confirmed by ${names.join(', ')}` : text;
    // Fully confirmed messages need no more bookkeeping.
    if (everyone || (out.sent && out.expected.size === 0)) for (const [id, o] of this.#outgoing) if (o === out) this.#outgoing.delete(id);
  }

  #onLeft(p: RemoteParticipant, reason: string): void {
    this.#states.delete(p.id);
    this.#system(`${p.displayName} left (${reason})`, p);
    // Nobody gone can confirm anything any more.
    for (const out of this.#outgoing.values()) {
      if (out.expected.delete(p.id)) this.#render(out);
    }
  }

  #onUpdated(p: RemoteParticipant): void {
    const before = this.#states.get(p.id);
    this.#states.set(p.id, p.connectionState);
    if (before === p.connectionState) return;
    if (p.connectionState === 'reconnecting') this.#system(`${p.displayName} lost the connection and is reconnecting…`, p);
    else if (before === 'reconnecting') this.#system(`${p.displayName} is back (resumed)`, p);
  }

  #line(mine: boolean, from: string, name: string, text: string, status?: HTMLElement): void {
    const author = h('span', { class: 'author' }, name);
    author.style.color = colorFor(from);
    const time = h('time', { datetime: new Date().toISOString() }, new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    this.#push(h('li', { class: mine ? 'msg mine' : 'msg', 'data-from': from }, author, h('span', { class: 'text' }, text), time, status));
  }

  #system(text: string, p: RemoteParticipant): void {
    this.#push(h('li', { class: 'system', 'data-from': p.id }, text));
  }

  #push(li: HTMLElement): void {
    const atBottom = this.#log.scrollHeight - this.#log.scrollTop - this.#log.clientHeight < 40;
    this.#log.appendChild(li);
    while (this.#log.children.length > MAX_LINES) this.#log.firstElementChild?.remove();
    if (atBottom) this.#log.scrollTop = this.#log.scrollHeight;
  }
}
