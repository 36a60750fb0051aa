/**
 * Everything shown while in a conference: people, cursors, chat, files, the 1:1 call and the live
 * panel, each on its own data sessions. Built once joined; disposed when the room ends or the page
 * leaves it.
 */
import type { Client, Conference } from '@backchannel/client';
import { Burst } from './burst.js';
import { Calls } from './calls.js';
import { Chat } from './chat.js';
import { Cursors } from './cursors.js';
import { Disposer, h } from './dom.js';
import { Files } from './files.js';
import { LivePanel } from './live.js';
import { ParticipantList } from './participants.js';
import { Receipts } from './receipts.js';

export class RoomView {
  readonly element: HTMLElement;
  readonly room: Conference;
  readonly #parts: { dispose(): void }[];
  readonly #disposer = new Disposer();

  private constructor(room: Conference, element: HTMLElement, parts: { dispose(): void }[]) {
    this.room = room;
    this.element = element;
    this.#parts = parts;
  }

  /** Opens the room's data sessions and builds its panels. */
  static async open(client: Client, room: Conference, toolbar: HTMLElement): Promise<RoomView> {
    const live = new LivePanel(client);
    const parts: { dispose(): void }[] = [live];
    try {
      const receipts = await Receipts.open(room, () => client.participantId, live);
      parts.push(receipts);
      const chat = await Chat.open(client, room, receipts, live);
      parts.push(chat);
      const cursors = await Cursors.open(client, room, live);
      parts.push(cursors);
      const files = new Files(client, room, receipts, live);
      parts.push(files);
      const burst = await Burst.open(room, live);
      parts.push(burst);
      live.addControl(burst.element);
      let people: ParticipantList | undefined;
      const calls = new Calls(client, live, () => people?.render());
      parts.push(calls);
      people = new ParticipantList(client, room, { onCall: (p) => void calls.call(p), canCall: () => !calls.busy });
      parts.push(people);
      const element = h(
        'div',
        { class: 'room', 'data-room': room.name },
        toolbar,
        h('div', { class: 'grid' }, h('div', { class: 'col side' }, people.element, calls.element), h('div', { class: 'col main' }, cursors.element, chat.element), h('div', { class: 'col extra' }, files.element), live.element),
      );
      const view = new RoomView(room, element, parts);
      view.#disposer.add(client.on('reconnecting', () => people?.render()));
      view.#disposer.add(client.on('reconnected', () => people?.render()));
      return view;
    } catch (error) {
      for (const p of parts.reverse()) p.dispose();
      throw error;
    }
  }

  dispose(): void {
    this.#disposer.dispose();
    for (const p of [...this.#parts].reverse()) p.dispose();
    this.element.remove();
  }
}
