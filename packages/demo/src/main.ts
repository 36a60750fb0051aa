/**
 * The Backchannel demo: join a conference by name, then chat, share cursors and files, call
 * someone 1:1 and watch the traffic, all through the public browser SDK. Tokens come from the
 * server's demo endpoint (docs/demo.md) or are pasted by the user.
 */
import { Client, type Conference } from '@backchannel/client';
import './style.css';
import { h, replace } from './dom.js';
import { explain, type Explained } from './explain.js';
import { RoomView } from './room-view.js';
import { allowedRoom, fetchDemoToken, renewDemoToken, type DemoToken } from './token.js';
import { QuietWebSocket, serverUrl } from './transports.js';

const app = document.getElementById('app')!;
const banner = document.getElementById('banner')!;
const connection = document.getElementById('connection')!;

/** What the user asked for at the join screen. */
interface JoinRequest {
  displayName: string;
  room: string;
  /** A token the user pasted (else one comes from the demo endpoint). */
  token?: string;
}

let client: Client | undefined;
let view: RoomView | undefined;
let request: JoinRequest | undefined;
let leaving = false;
let bannerTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows a banner: `info` and `ok` fade after a few seconds, `warn` and `error` stay until replaced. */
function showBanner(kind: 'info' | 'ok' | 'warn' | 'error' | 'none', text = '', code?: string): void {
  clearTimeout(bannerTimer);
  banner.dataset.kind = kind;
  banner.hidden = kind === 'none';
  if (code) banner.dataset.code = code;
  else delete banner.dataset.code;
  replace(banner, text, code ? h('code', {}, code) : null);
  if (kind === 'ok' || kind === 'info') bannerTimer = setTimeout(() => showBanner('none'), 5000);
}

function showConnection(): void {
  const state = client?.connectionState ?? 'disconnected';
  connection.dataset.state = state;
  const rtt = client?.rtt;
  connection.textContent = state === 'connected' && rtt !== undefined ? `${state} · rtt ${rtt.toFixed(0)} ms` : state;
}
setInterval(showConnection, 1000);

function joinScreen(error?: Explained, prefill: Partial<JoinRequest> = {}): void {
  document.title = 'Backchannel demo';
  const params = new URLSearchParams(location.search);
  const name = h('input', { id: 'name', name: 'name', required: true, maxlength: 64, autocomplete: 'nickname', value: prefill.displayName ?? localStorage.getItem('backchannel-demo-name') ?? '' });
  const room = h('input', { id: 'room', name: 'room', required: true, maxlength: 200, value: prefill.room ?? params.get('room') ?? 'lobby', autocomplete: 'off' });
  const token = h('textarea', { id: 'token', name: 'token', rows: 3, placeholder: 'eyJhbGciOi… (from backchannel token create)', spellcheck: 'false' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Join');
  const form = h(
    'form',
    { class: 'join', 'aria-labelledby': 'join-title' },
    h('h1', { id: 'join-title' }, 'Join a room'),
    h('p', { class: 'lead' }, 'Open this page in a second tab (or on your phone) and join the same room: chat, live cursors, file sharing and 1:1 calls all run on Backchannel data sessions.'),
    h('label', { for: 'name' }, 'Your name'),
    name,
    h('label', { for: 'room' }, 'Room'),
    room,
    h('details', {}, h('summary', {}, 'Use my own access token'), h('label', { for: 'token' }, 'Access token (leave empty to get a demo token from this server)'), token),
    error ? h('div', { class: 'error', role: 'alert', 'data-code': error.code }, h('strong', {}, error.title), h('p', {}, error.detail), h('code', {}, error.code)) : null,
    submit,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit.disabled = true;
    submit.textContent = 'Joining…';
    const req: JoinRequest = { displayName: name.value.trim(), room: room.value.trim() };
    if (token.value.trim()) req.token = token.value.trim();
    void join(req);
  });
  replace(app, form);
  app.dataset.screen = 'join';
  (name.value ? room : name).focus();
  performance.mark('demo-interactive');
}

async function join(req: JoinRequest): Promise<void> {
  request = req;
  localStorage.setItem('backchannel-demo-name', req.displayName);
  let roomName = req.room;
  let note: string | undefined;
  try {
    let token = req.token;
    if (!token) {
      const demo: DemoToken = await fetchDemoToken(req.displayName);
      token = demo.token;
      if (!allowedRoom(demo.conferences, roomName)) {
        const prefix = demo.conferences.find((p) => p.endsWith('*'))?.slice(0, -1) ?? '';
        roomName = `${prefix}${roomName}`;
        note = `Demo tokens on this server join rooms named ${demo.conferences.join(', ')}: you are in "${roomName}".`;
      }
    }
    // Demo tokens are renewed for the same user before they expire (and for a reconnect that
    // cannot resume); one that expired meanwhile is replaced by a token for a new user.
    let current = token;
    const tokenRefresh = req.token
      ? undefined
      : async () => {
          current = (await renewDemoToken(current).catch(() => fetchDemoToken(req.displayName))).token;
          return current;
        };
    const c = await Client.connect(serverUrl(), token, { WebSocket: QuietWebSocket, pingIntervalMs: 2000, ...(tokenRefresh ? { tokenRefresh } : {}) });
    client = c;
    watch(c);
    const conf = await c.joinConference(roomName, { displayName: req.displayName });
    await enter(c, conf);
    history.replaceState(null, '', `?room=${encodeURIComponent(req.room)}`);
    showBanner(note ? 'info' : 'none', note ?? '');
  } catch (error) {
    const c = client;
    client = undefined;
    await c?.close().catch(() => undefined);
    showConnection();
    joinScreen(explain(error), req);
  }
}

/** Shows the room once joined (again, after a reconnect that could not resume). */
async function enter(c: Client, conf: Conference): Promise<void> {
  view?.dispose();
  const invite = h('input', { class: 'invite', readonly: true, value: `${location.origin}/?room=${encodeURIComponent(request?.room ?? conf.name)}`, 'aria-label': 'Link to this room' });
  const copy = h('button', { type: 'button' }, 'Copy link');
  copy.addEventListener('click', () => {
    invite.select();
    void navigator.clipboard?.writeText(invite.value).then(() => (copy.textContent = 'Copied'), () => undefined);
  });
  const leave = h('button', { type: 'button', class: 'leave' }, 'Leave');
  leave.addEventListener('click', () => void leaveRoom());
  const toolbar = h('div', { class: 'toolbar' }, h('h1', {}, 'Room ', h('span', { class: 'room-name' }, conf.name)), h('div', { class: 'row' }, invite, copy, leave));
  view = await RoomView.open(c, conf, toolbar);
  replace(app, view.element);
  app.dataset.screen = 'room';
  document.title = `${conf.name} · Backchannel demo`;
  showConnection();
  conf.on('ended', ({ reason }) => {
    if (leaving || view?.room !== conf) return;
    // A reconnect that could not resume ends every room; `reconnected` then rejoins.
    if (reason.code === 'connection-lost' && c.connectionState !== 'disconnected') return;
    view.dispose();
    view = undefined;
    joinScreen({ title: 'You are no longer in the room', detail: reason.message, code: reason.code }, request);
  });
}

/** Follows the connection: reconnecting, resumed or not, gone for good. */
function watch(c: Client): void {
  c.on('reconnecting', ({ attempt, reason }) => {
    showConnection();
    showBanner('warn', `Connection lost (${reason.message}). Reconnecting, attempt ${attempt}… Your messages wait and are sent on resume.`, reason.code);
  });
  c.on('reconnected', ({ resumed, reason }) => {
    showConnection();
    if (resumed) {
      showBanner('ok', 'Reconnected: the session resumed where it was; nothing sent or received was lost.');
      return;
    }
    showBanner('warn', `Reconnected, but the server could not resume this session (${reason?.message ?? 'unknown'}): rejoining as a new participant.`, reason?.code);
    const req = request;
    if (!req || c !== client) return;
    void c.joinConference(view?.room.name ?? req.room, { displayName: req.displayName }).then(
      (conf) => enter(c, conf),
      (error: unknown) => joinScreen(explain(error), req),
    );
  });
  c.on('disconnected', (reason) => {
    showConnection();
    if (leaving || c !== client) return;
    view?.dispose();
    view = undefined;
    client = undefined;
    showBanner('error', `Disconnected: ${reason.message}`, reason.code);
    joinScreen({ title: explain(Object.assign(new Error(reason.message), { code: reason.code })).title, detail: reason.message, code: reason.code }, request);
  });
  c.on('error', (err) => showBanner('error', err.message, err.code));
}

async function leaveRoom(): Promise<void> {
  leaving = true;
  const c = client;
  client = undefined;
  // Closing the client first ends the room and its sessions at once, so disposing the view sends nothing more.
  await c?.close().catch(() => undefined);
  view?.dispose();
  view = undefined;
  leaving = false;
  showConnection();
  showBanner('none');
  joinScreen(undefined, request);
}

joinScreen();
showConnection();
