/**
 * 1:1 calls between two pages: call anyone in the room, an incoming-call dialog with accept and
 * decline, the call's state and duration, and why it ended. A connected call carries its own data
 * session (nudges), like any room.
 */
import type { Call, CallInvite, Client, RecvDataSession, RemoteParticipant, SendDataSession } from '@backchannel/client';
import { Disposer, formatDuration, h, replace } from './dom.js';
import { callEndText, explain } from './explain.js';
import type { LivePanel } from './live.js';
import { STREAM_NUDGE } from './wire.js';

export class Calls {
  /** The call panel (idle, ringing, connected, or the last call's outcome). */
  readonly element: HTMLElement;
  readonly #client: Client;
  readonly #live: LivePanel;
  readonly #onChange: () => void;
  readonly #body: HTMLElement;
  readonly #dialog: HTMLDialogElement;
  readonly #disposer = new Disposer();
  #call: Call | undefined;
  #invite: CallInvite | undefined;
  /** Ends the current call's timer, listeners and nudge sessions. */
  #callDisposer: Disposer | undefined;
  /** The current call's nudge sender, once open. */
  #nudge: SendDataSession | undefined;
  /** A `makeCall` request is on its way. */
  #dialing = false;

  /** @param onChange Called when a call starts or ends (call buttons enable and disable). */
  constructor(client: Client, live: LivePanel, onChange: () => void) {
    this.#client = client;
    this.#live = live;
    this.#onChange = onChange;
    this.#body = h('div', { class: 'call-body' });
    this.element = h('section', { class: 'panel call-panel', 'aria-labelledby': 'call-title', 'aria-live': 'polite' }, h('h2', { id: 'call-title' }, '1:1 call'), this.#body);
    this.#dialog = h('dialog', { class: 'incoming', 'aria-labelledby': 'incoming-title' });
    document.body.appendChild(this.#dialog);
    this.#disposer.add(() => this.#dialog.remove());
    this.#disposer.add(client.on('incomingCall', (invite) => this.#onIncoming(invite)));
    // Escape on the dialog declines.
    this.#disposer.listen(this.#dialog, 'cancel', (e) => {
      e.preventDefault();
      if (this.#invite) void this.#decline(this.#invite);
    });
    this.#idle('Press Call next to someone to ring them; they get a dialog to accept or decline.');
  }

  /** Whether a call is ringing or connected here. */
  get busy(): boolean {
    return this.#dialing || this.#call !== undefined || this.#invite !== undefined;
  }

  /** Calls `p` (by user id). */
  async call(p: RemoteParticipant): Promise<void> {
    if (this.busy) return;
    this.#dialing = true;
    this.#onChange();
    this.#status('ringing', `Calling ${p.displayName}…`);
    try {
      const call = await this.#client.makeCall(p.userId, { appParam: 'backchannel demo' });
      this.#dialing = false;
      this.#track(call, p.displayName);
    } catch (error) {
      this.#dialing = false;
      const e = explain(error);
      this.#idle(`Could not call ${p.displayName}: ${e.detail} (${e.code})`, 'ended');
      this.#onChange();
    }
  }

  dispose(): void {
    this.#callDisposer?.dispose();
    this.#disposer.dispose();
  }

  #onIncoming(invite: CallInvite): void {
    if (this.busy) {
      void invite.decline('busy').catch(() => undefined);
      return;
    }
    this.#invite = invite;
    this.#onChange();
    const name = invite.caller.displayName;
    const accept = h('button', { type: 'button', class: 'primary accept', autofocus: true }, 'Accept');
    const decline = h('button', { type: 'button', class: 'danger decline' }, 'Decline');
    accept.addEventListener('click', () => void this.#accept(invite, name));
    decline.addEventListener('click', () => void this.#decline(invite));
    replace(
      this.#dialog,
      h('h2', { id: 'incoming-title' }, `${name} is calling`),
      h('p', { class: 'muted' }, `user ${invite.caller.userId}${invite.appParam ? ` · ${invite.appParam}` : ''}`),
      h('div', { class: 'actions' }, decline, accept),
    );
    this.#dialog.showModal();
    accept.focus();
    this.#status('ringing', `${name} is calling you…`);
    const stop = (text: string) => {
      if (this.#invite !== invite) return;
      this.#invite = undefined;
      this.#dialog.close();
      this.#idle(text, 'ended');
      this.#onChange();
    };
    invite.on('ended', ({ reason }) => stop(`Missed call from ${name}: ${callEndText(reason.code)}`));
    invite.on('revoked', (reason) => stop(`Call from ${name} was answered elsewhere (${reason.code})`));
  }

  async #accept(invite: CallInvite, name: string): Promise<void> {
    this.#dialog.close();
    try {
      const call = await invite.accept();
      this.#invite = undefined;
      this.#track(call, name);
    } catch (error) {
      this.#invite = undefined;
      const e = explain(error);
      this.#idle(`Could not answer ${name}: ${e.detail} (${e.code})`, 'ended');
      this.#onChange();
    }
  }

  async #decline(invite: CallInvite): Promise<void> {
    this.#dialog.close();
    this.#invite = undefined;
    this.#idle(`You declined ${invite.caller.displayName}'s call`, 'ended');
    this.#onChange();
    await invite.decline().catch(() => undefined);
  }

  /** Follows `call` until it ends. */
  #track(call: Call, name: string): void {
    this.#call = call;
    this.#onChange();
    const d = (this.#callDisposer = new Disposer());
    let connectedAt = 0;
    const showConnected = () => {
      connectedAt = performance.now();
      const timer = h('span', { class: 'timer' }, '0:00');
      const nudges = h('p', { class: 'nudges muted' }, 'Nudges travel on a reliable-message session inside the call.');
      this.#status('connected', `In a call with ${name} `, { timer, note: nudges, buttons: [this.#button('Nudge', 'nudge', () => this.#nudge?.send('👋')), this.#button('Hang up', 'hang-up danger', () => void call.end())] });
      d.interval(() => (timer.textContent = formatDuration(performance.now() - connectedAt)), 1000);
      void this.#openNudges(call, name, nudges, d);
    };
    if (call.state === 'connected') showConnected();
    else {
      this.#status('ringing', `Calling ${name}…`, { buttons: [this.#button('Cancel', 'cancel-call', () => void call.end())] });
      d.add(call.on('connected', showConnected));
    }
    d.add(
      call.on('ended', ({ reason, durationMs }) => {
        d.dispose();
        this.#call = undefined;
        this.#nudge = undefined;
        this.#idle(`Call with ${name} ended: ${callEndText(reason.code)} · ${formatDuration(durationMs ?? 0)}`, 'ended', reason.code);
        this.#onChange();
      }),
    );
  }

  async #openNudges(call: Call, name: string, log: HTMLElement, d: Disposer): Promise<void> {
    try {
      const tx = await call.makeSendDataSession(STREAM_NUDGE, 'reliable-message');
      this.#nudge = tx;
      let received = 0;
      const rx: RecvDataSession = await call.makeRecvDataSession(STREAM_NUDGE, (data) => {
        log.textContent = `${name} nudged you ${new TextDecoder().decode(data)} (${++received})`;
        log.classList.remove('muted');
      });
      d.add(this.#live.add({ session: 'call nudges', mode: tx.mode, direction: 'out', read: () => ({ messages: tx.stats().messagesSent, bytes: tx.stats().bytesSent, queuedBytes: tx.stats().queuedBytes }) }));
      d.add(this.#live.add({ session: 'call nudges', mode: tx.mode, direction: 'in', read: () => ({ messages: rx.stats().messagesReceived, bytes: rx.stats().bytesReceived }) }));
    } catch (error) {
      // The call may have ended while the sessions opened.
      if (call.state !== 'ended') log.textContent = `nudges unavailable: ${explain(error).detail}`;
    }
  }

  #button(label: string, cls: string, onClick: () => void): HTMLButtonElement {
    const b = h('button', { type: 'button', class: cls }, label);
    b.addEventListener('click', onClick);
    return b;
  }

  #status(state: string, text: string, parts: { timer?: HTMLElement; buttons?: HTMLButtonElement[]; note?: HTMLElement } = {}): void {
    this.element.dataset.state = state;
    delete this.element.dataset.reason;
    replace(this.#body, h('p', { class: 'call-status' }, text, parts.timer), parts.buttons ? h('div', { class: 'actions' }, ...parts.buttons) : null, parts.note);
  }

  #idle(text: string, state = 'idle', reason?: string): void {
    this.element.dataset.state = state;
    if (reason) this.element.dataset.reason = reason;
    else delete this.element.dataset.reason;
    replace(this.#body, h('p', { class: 'call-status' }, text));
  }
}
