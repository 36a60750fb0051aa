/**
 * The participant list: everyone in the conference with their connection state (connected /
 * reconnecting), capabilities and metadata, kept current from the room's events; this
 * participant's own status is its metadata, which the others see change.
 */
import type { Client, Conference, RemoteParticipant } from '@backchannel/client';
import { colorFor, Disposer, h, replace } from './dom.js';

export interface ParticipantsOptions {
  /** Called when the user asks to call a participant (1:1). */
  onCall(p: RemoteParticipant): void;
  /** Whether a call button should be enabled now (not while a call is on). */
  canCall(): boolean;
}

/** What a participant's metadata shows: `{ status }` from this demo, or any JSON. */
function metadataText(metadata: unknown): string {
  if (metadata === undefined || metadata === null) return '';
  if (typeof metadata === 'object' && typeof (metadata as { status?: unknown }).status === 'string') return (metadata as { status: string }).status;
  return typeof metadata === 'string' ? metadata : JSON.stringify(metadata);
}

function capabilitiesText(p: RemoteParticipant): string {
  const c = p.capabilities;
  const parts = [`protocol ${c.protocol}`, c.dataSession ? 'data sessions' : 'no data sessions'];
  if (c.streamIds) parts.push(`stream ids ${c.streamIds.join(', ')}`);
  return parts.join(' · ');
}

export class ParticipantList {
  readonly element: HTMLElement;
  readonly #room: Conference;
  readonly #client: Client;
  readonly #options: ParticipantsOptions;
  readonly #list: HTMLUListElement;
  readonly #count: HTMLElement;
  readonly #disposer = new Disposer();

  constructor(client: Client, room: Conference, options: ParticipantsOptions) {
    this.#client = client;
    this.#room = room;
    this.#options = options;
    this.#list = h('ul', { class: 'participants', 'aria-live': 'polite' });
    this.#count = h('span', { class: 'count' });
    const status = h('input', { id: 'status', name: 'status', maxlength: 80, placeholder: 'e.g. reviewing the PR', autocomplete: 'off' });
    const statusForm = h(
      'form',
      { class: 'status-form' },
      h('label', { for: 'status' }, 'Your status (metadata)'),
      h('div', { class: 'row' }, status, h('button', { type: 'submit' }, 'Set')),
    );
    statusForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void room.updateMetadata({ status: status.value.trim() }).then(() => this.render(), (err: Error) => status.setCustomValidity(err.message));
    });
    this.element = h('section', { class: 'panel people', 'aria-labelledby': 'people-title' }, h('h2', { id: 'people-title' }, 'People ', this.#count), this.#list, statusForm);
    for (const event of ['participantJoined', 'participantLeft', 'participantUpdated'] as const) {
      this.#disposer.add(room.on(event, () => this.render()));
    }
    this.render();
  }

  /** Redraws the list (cheap: a few rows). */
  render(): void {
    const self = this.#room.self;
    const rows = [
      h(
        'li',
        { class: 'participant self', 'data-user': this.#client.userId },
        h('span', { class: 'avatar', 'aria-hidden': 'true', 'data-color': colorFor(this.#client.participantId) }, (self?.displayName ?? '?').slice(0, 1).toUpperCase()),
        h(
          'div',
          { class: 'who' },
          h('div', { class: 'name' }, self?.displayName ?? this.#client.displayName, ' ', h('span', { class: 'tag' }, 'you')),
          h('div', { class: 'meta' }, this.#client.userId),
          metadataText(self?.metadata) ? h('div', { class: 'status' }, metadataText(self?.metadata)) : null,
        ),
        h('span', { class: `state ${this.#client.connectionState}` }, this.#client.connectionState),
      ),
    ];
    for (const p of [...this.#room.participants.values()].sort((a, b) => a.joinedAt - b.joinedAt)) {
      const call = h('button', { class: 'call', type: 'button', 'aria-label': `Call ${p.displayName}`, disabled: !this.#options.canCall() || p.userId === this.#client.userId }, 'Call');
      call.addEventListener('click', () => this.#options.onCall(p));
      rows.push(
        h(
          'li',
          { class: 'participant', 'data-participant': p.id, 'data-user': p.userId },
          h('span', { class: 'avatar', 'aria-hidden': 'true', 'data-color': colorFor(p.id) }, p.displayName.slice(0, 1).toUpperCase()),
          h(
            'div',
            { class: 'who' },
            h('div', { class: 'name' }, p.displayName),
            h('div', { class: 'meta' }, `${p.userId} · ${capabilitiesText(p)}`),
            metadataText(p.metadata) ? h('div', { class: 'status' }, metadataText(p.metadata)) : null,
          ),
          h('span', { class: `state ${p.connectionState}`, title: p.connectionState === 'reconnecting' ? 'its connection dropped; the server keeps its place while it resumes' : 'connected' }, p.connectionState),
          call,
        ),
      );
    }
    // Keep the keyboard focus on the same participant's call button across a redraw.
    const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>('[data-participant]')?.dataset.participant;
    replace(this.#list, ...rows);
    if (focused) this.#list.querySelector<HTMLButtonElement>(`[data-participant="${CSS.escape(focused)}"] .call`)?.focus();
    for (const a of this.#list.querySelectorAll<HTMLElement>('.avatar')) a.style.background = a.dataset.color ?? '';
    this.#count.textContent = `(${this.#room.participants.size + 1})`;
  }

  dispose(): void {
    this.#disposer.dispose();
  }
}
