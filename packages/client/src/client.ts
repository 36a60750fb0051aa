/**
 * The client: one connection to a Backchannel server, carrying calls, conferences and data.
 */
import {
  BackchannelError,
  EARLY_SUBPROTOCOL,
  Emitter,
  ErrorCode,
  LeaveReason,
  PROTOCOL_VERSION,
  earlyProtocols,
  type CallInfo,
  type PresenceMode,
  type Reason,
  type ResumeResult,
  type RoomInfo,
  type ServerEvent,
  type WelcomeResult,
} from '@backchannel/protocol';
import { Call, CallInvite } from './call.js';
import { Conference } from './conference.js';
import { Outbound } from './data/outbound.js';
import { handshake, handshakeFrame, type HandshakeResult } from './handshake.js';
import { Link } from './link.js';
import { platform } from './platform.js';
import { randomSecret } from './util.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { reconnectDelay, type ResolvedReconnectOptions } from './reconnect.js';
import type { ClientCore, RoomBase } from './room.js';
import type { Transport, TransportFactory } from './transport.js';
import { WebRtcPath, type TransportInfo, type TransportStats } from './webrtc.js';

/** SDK name announced to the server. */
export const SDK_NAME = 'backchannel-js/0.1.0';

/** The state of the client's connection. */
export type ConnectionState = 'connected' | 'reconnecting' | 'disconnected';

export type ClientEvents = {
  /** Someone is calling this user (also fired on connect for calls already ringing). */
  incomingCall: [CallInvite];
  /**
   * The connection was lost and the client is trying again: fired before each attempt, with its
   * number (1 = the first), the delay before it and why the connection was lost. Calls, rooms and
   * sessions stay as they are; `send()` queues; unreliable data sent meanwhile is dropped (counted).
   */
  reconnecting: [{ attempt: number; delayMs: number; reason: Reason }];
  /**
   * Connected again. `resumed: true`: the same participant, calls, rooms and sessions carry on, and
   * no reliable data was lost or duplicated. `resumed: false`: the server could not resume (its
   * window passed, it restarted, …): every call and room has ended (reason `connection-lost`), the
   * client is a new participant (new `participantId`) and the app may rejoin; `reason` says why
   * the server could not resume (`resume-not-found`, …).
   */
  reconnected: [{ resumed: boolean; reason?: Reason }];
  /** The connection is gone for good (closed, refused, or reconnecting gave up); every call and room has ended. */
  disconnected: [Reason];
  /** A problem not tied to a request (e.g. the server rejected a frame). */
  error: [BackchannelError];
  /**
   * The path of `unreliable` data changed (WebRTC data channel opened, failed or was lost, so it
   * goes over the WebSocket), or the WebRTC path's state did: see {@link Client.transport}.
   */
  transportChanged: [TransportInfo];
};

/** Options of `joinConference`. */
export interface JoinOptions {
  /** Name shown to others (default: the token's name). */
  displayName?: string;
  /** Any small JSON value (size limited by the server, default 4 KiB). */
  metadata?: unknown;
  /**
   * What this client hears of the others. `'full'` (default): `participants` lists everyone and
   * every join, leave and update is an event. `'none'`: no list and no presence events (for very
   * large rooms where each member need not follow everyone); page through the members with
   * `fetchParticipants()`. Either way the others see this participant (only the `hidden` grant
   * hides it).
   */
  presence?: PresenceMode;
}

/** Longest time `close()` waits for answers owed to other participants to leave. */
export const CLOSE_FLUSH_MS = 1_000;

/** Handshake request ids (each handshake is one request on a fresh transport). */
const RESUME_ID = 1;
/** Close code for a transport given up during a handshake (not 1000: that means leaving). */
const ABANDONED = 4000;
const HELLO_ID = 2;
/** Resume credentials kept while replies are lost (the server closes a socket after its 8th refusal). */
const MAX_CREDENTIALS = 6;

export class Client extends Emitter<ClientEvents> {
  #welcome: WelcomeResult;
  readonly #url: string;
  #token: string;
  readonly #factory: TransportFactory;
  readonly #options: Readonly<ResolvedClientOptions>;
  readonly #core: ClientCore;
  readonly #rooms = new Map<number, RoomBase>();
  readonly #calls = new Map<string, Call>();
  readonly #invites = new Map<string, CallInvite>();
  /** Resume credentials, newest first: the server holds one of them (see `#tryResume`). */
  #credentials: string[];
  #state: ConnectionState = 'connected';
  #goodbye: Reason | undefined;
  /** `close()` was called. */
  #closing = false;
  /** Wakes the reconnect loop's wait early (on `close()`). */
  #wake: (() => void) | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** The WebRTC datagram path (docs/webrtc.md). */
  readonly #rtc: WebRtcPath;

  private constructor(url: string, token: string, factory: TransportFactory, link: Link, welcome: WelcomeResult, options: Readonly<ResolvedClientOptions>) {
    super();
    this.#url = url;
    this.#token = token;
    this.#factory = factory;
    this.#options = options;
    this.#welcome = welcome;
    this.#credentials = [welcome.resume.credential];
    this.#rtc = new WebRtcPath(options.webrtc, (info) => this.emit('transportChanged', info));
    link.setServerWindow(welcome.limits.sendWindowBytes, welcome.limits.sendWindowFrames);
    this.#core = {
      link,
      outbound: new Outbound(link, options.socketHighWaterBytes, options.sendWindowBytes, options.sendWindowFrames),
      options,
      limits: welcome.limits,
      participantId: welcome.participantId,
      grants: welcome.grants,
      reassembly: { bytes: 0, max: options.maxReassemblyBytes },
      wantDatagrams: () => this.#rtc.want(),
    };
    this.#bind(link);
    this.#scheduleRefresh();
  }

  /**
   * Connects and authenticates with `token`. Rejects with a {@link BackchannelError}: a `token-*`
   * code for a refused token, `protocol-version-unsupported`, or `connect-failed`.
   */
  static async connect(url: string, token: string, options: ClientOptions = {}): Promise<Client> {
    return (await Client.#open(url, token, options)).client;
  }

  /**
   * Connects and joins the conference `name` in one round trip: the join request leaves right
   * behind `hello`, without waiting for the welcome (see PROTOCOL.md, "Pipelining"). The same as
   * `connect()` followed by `joinConference()`, one network round trip sooner. Rejects like
   * `connect()`, or like `joinConference()` (the client is then closed).
   */
  static async connectAndJoin(url: string, token: string, name: string, join: JoinOptions = {}, options: ClientOptions = {}): Promise<{ client: Client; conference: Conference }> {
    const msg = joinMessage(name, join);
    const { client, pipelined } = await Client.#open(url, token, options, msg);
    try {
      return { client, conference: client.#joined(await pipelined!, join) };
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /**
   * Opens a transport and says hello. `pipelined`, a request, is sent right behind the hello as the
   * session's first numbered frame; its reply comes as `pipelined`.
   */
  static async #open(url: string, token: string, options: ClientOptions, pipelined?: { t: string } & Record<string, unknown>): Promise<{ client: Client; pipelined?: Promise<RoomInfo> }> {
    const opts = resolveClientOptions(options);
    if (typeof token !== 'string' || !token) throw new BackchannelError(ErrorCode.TokenMissing, 'an access token is required');
    const factory = opts.transport ?? platform.transportFor(opts.WebSocket);
    const deadline = Date.now() + opts.connectTimeoutMs;
    const link = newLink(opts);
    // Queued in the link (numbered, kept for a resume) before there is a session to send it on.
    const reply = pipelined && link.request<RoomInfo>(pipelined);
    reply?.catch(() => {}); // a refused hello rejects it too; the caller sees the hello's error
    const helloFrame = handshakeFrame(HELLO_ID, helloMessage(token, opts));
    // The hello and what is pipelined behind it ride in the upgrade request where they fit.
    const protocols = opts.earlyFrames ? earlyProtocols([helloFrame, ...link.pipelined()]) : undefined;
    let transport: Transport;
    try {
      try {
        transport = await openTransport(factory, url, opts.connectTimeoutMs, protocols);
      } catch (error) {
        // A proxy may refuse the larger upgrade request (a header limit): once more without early
        // frames, within the same timeout. No socket opened, so the server took nothing.
        if (!protocols || !isOpenRefused(error) || Date.now() >= deadline) throw error;
        transport = await openTransport(factory, url, deadline - Date.now());
      }
    } catch (error) {
      link.finish(1000, 'connect failed');
      throw error;
    }
    try {
      const early = transport.protocol === EARLY_SUBPROTOCOL;
      const handshaking = handshake<WelcomeResult>(transport, HELLO_ID, 'hello', helloFrame, Math.max(1, deadline - Date.now()), early);
      if (reply && !early) link.pipeline(transport);
      const hello = await handshaking;
      const welcome = hello.data;
      const client = new Client(url, token, factory, link, welcome, opts);
      // Events right after the welcome (e.g. calls already ringing) wait in the link until the
      // caller's code after `await Client.connect()` has run and attached its listeners.
      link.attach(transport, hello);
      client.#rtc.start(link, welcome.webrtc);
      return { client, pipelined: reply };
    } catch (error) {
      transport.close(1000, 'handshake failed');
      link.finish(1000, 'handshake failed');
      if (error instanceof BackchannelError) throw error;
      throw new BackchannelError(ErrorCode.ConnectFailed, `could not connect to ${url}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** This client's participant id (a new one after a reconnect that could not resume). */
  get participantId(): string {
    return this.#welcome.participantId;
  }

  get userId(): string {
    return this.#welcome.userId;
  }

  get displayName(): string {
    return this.#welcome.displayName;
  }

  /** What the token allows, as the server resolved it. */
  get grants(): WelcomeResult['grants'] {
    return this.#welcome.grants;
  }

  /** `'connected'`, `'reconnecting'` (calls and rooms are kept meanwhile) or `'disconnected'` (for good). */
  get connectionState(): ConnectionState {
    return this.#state;
  }

  /** Whether the client has not been disconnected for good (it may be reconnecting). */
  get connected(): boolean {
    return this.#state !== 'disconnected';
  }

  /** When the access token expires, ms since the epoch; new actions then need {@link refreshToken}. */
  get tokenExpiresAt(): number {
    return this.#welcome.expiresAt;
  }

  /**
   * Replaces the connection's access token (same user): calls, rooms and sessions already running
   * carry on regardless, but new actions (joining, calling, opening sessions) need an unexpired
   * token. Without `token`, asks the `tokenRefresh` option for one. With `tokenRefresh` set this
   * happens by itself shortly before the token expires.
   */
  async refreshToken(token?: string): Promise<void> {
    const next = token ?? (await this.#options.tokenRefresh?.());
    if (typeof next !== 'string' || !next) throw new BackchannelError(ErrorCode.TokenMissing, 'refreshToken needs a token, or the tokenRefresh option');
    const { expiresAt } = await this.#core.link.request<{ expiresAt: number }>({ t: 'auth.refresh', token: next });
    this.#token = next;
    this.#welcome = { ...this.#welcome, expiresAt };
    this.#scheduleRefresh();
  }

  /** With `tokenRefresh`: refreshes a minute (or a tenth of the lifetime) before the token expires. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    if (!this.#options.tokenRefresh || this.#state === 'disconnected') return;
    const left = this.#welcome.expiresAt - Date.now();
    if (!Number.isFinite(left)) return;
    const delay = Math.max(0, left - Math.min(60_000, left / 10));
    this.#refreshTimer = setTimeout(() => {
      this.refreshToken().catch((error: unknown) => {
        const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.TokenMissing, `tokenRefresh failed: ${String((error as Error)?.message ?? error)}`);
        this.emit('error', err);
      });
    }, Math.min(delay, 2 ** 31 - 1));
    (this.#refreshTimer as { unref?: () => void }).unref?.();
  }

  /**
   * Which path each kind of data takes: `unreliable` over WebRTC datagrams while the data channel is
   * open, else over the WebSocket (with the reason); signalling and reliable data always over the
   * WebSocket. The data channel is negotiated when the client first has an `unreliable` session
   * (it opens one, or one toward it is announced); until then `webrtc` is `'idle'`.
   * `transportChanged` fires on every change.
   */
  get transport(): TransportInfo {
    return this.#rtc.info;
  }

  /** Counters of the WebRTC path: datagrams in and out, drops, negotiation time. */
  get transportStats(): TransportStats {
    return { ...this.#rtc.stats };
  }

  /** Round-trip time measured by the last heartbeat, ms (undefined until one was answered). */
  get rtt(): number | undefined {
    return this.#core.link.rtt;
  }

  /** Limits the server announced (message size, chunk size, …). */
  get limits() {
    return this.#core.limits;
  }

  /** Calls `calleeUserId`; resolves with the ringing {@link Call}. */
  async makeCall(calleeUserId: string, options: { appParam?: string } = {}): Promise<Call> {
    if (typeof calleeUserId !== 'string' || !calleeUserId) throw new BackchannelError(ErrorCode.InvalidArgument, 'makeCall needs the callee user id');
    const msg: Record<string, unknown> & { t: string } = { t: 'call.make', callee: calleeUserId };
    if (options.appParam !== undefined) msg.appParam = options.appParam;
    const { call: info, room } = await this.#core.link.request<{ call: CallInfo; room: number }>(msg);
    const call = new Call(this.#core, info, 'ringing', (c) => this.#forgetCall(c));
    call.roomNum = room;
    this.#calls.set(info.callId, call);
    this.#rooms.set(room, call);
    return call;
  }

  /**
   * Fetches a call by id, e.g. one announced by a push notification: for the callee of a ringing
   * call, resolves with its {@link CallInvite}.
   */
  async getCall(callId: string): Promise<CallInvite | Call> {
    const existing = this.#calls.get(callId) ?? this.#invites.get(callId);
    if (existing) return existing;
    const { call } = await this.#core.link.request<{ call: CallInfo }>({ t: 'call.get', callId });
    if (call.state !== 'ringing' || call.callee.userId !== this.userId) throw new BackchannelError(ErrorCode.CallNotRinging, `the call is ${call.state}`);
    return this.#invite(call);
  }

  /** Joins (creating if needed) the conference `name`. */
  async joinConference(name: string, options: JoinOptions = {}): Promise<Conference> {
    return this.#joined(await this.#core.link.request<RoomInfo>(joinMessage(name, options)), options);
  }

  /** The conference a `conf.join` reply describes. */
  #joined(info: RoomInfo, options: JoinOptions): Conference {
    const conf = new Conference(this.#core, info, (c) => this.#rooms.delete(c.roomNum));
    conf.presence = options.presence ?? 'full';
    this.#rooms.set(info.room, conf);
    return conf;
  }

  /**
   * Closes the connection on purpose: this participant leaves its rooms as `left` (a 1:1 call
   * ends as a normal hang-up) and `disconnected` follows. Also stops reconnecting. Answers this
   * SDK owes other participants (data-stream confirmations, RPC responses) leave first, waiting
   * at most {@link CLOSE_FLUSH_MS}.
   */
  async close(): Promise<void> {
    if (this.#state === 'disconnected') return;
    const closed = this.waitFor('disconnected');
    if (this.#core.link.attached && !this.#closing) {
      this.#closing = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#rooms.values()].map((r) => r._flushControl())),
        new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_FLUSH_MS))),
      ]);
      clearTimeout(timer);
      if ((this.#state as ConnectionState) === 'disconnected') return;
    }
    this.#closing = true;
    if (this.#core.link.attached) this.#core.link.close(1000, 'client closed');
    else {
      this.#wake?.();
      this.#final({ code: LeaveReason.Left, message: 'closed by the client' });
    }
    await closed;
  }

  #invite(info: CallInfo): CallInvite {
    let invite = this.#invites.get(info.callId);
    if (invite) return invite;
    invite = new CallInvite(
      info,
      async (inv) => {
        const { call: ci, room } = await this.#core.link.request<{ call: CallInfo; room: RoomInfo }>({ t: 'call.accept', callId: inv.callId });
        inv._finish();
        this.#invites.delete(inv.callId);
        const call = new Call(this.#core, ci, 'connected', (c) => this.#forgetCall(c));
        call._applyInfo(room);
        this.#calls.set(ci.callId, call);
        this.#rooms.set(room.room, call);
        return call;
      },
      async (inv, reason) => {
        const msg: Record<string, unknown> & { t: string } = { t: 'call.decline', callId: inv.callId };
        if (reason !== undefined) msg.reason = reason;
        await this.#core.link.request(msg);
      },
    );
    this.#invites.set(info.callId, invite);
    return invite;
  }

  #forgetCall(call: Call): void {
    this.#calls.delete(call.callId);
    if (this.#rooms.get(call.roomNum) === call) this.#rooms.delete(call.roomNum);
  }

  #onEvent(ev: ServerEvent): void {
    switch (ev.t) {
      case 'call.incoming': {
        if (this.#invites.has(ev.call.callId)) return;
        this.emit('incomingCall', this.#invite(ev.call));
        return;
      }
      case 'call.connected':
        this.#calls.get(ev.callId)?._connected(ev.room);
        if (this.#calls.has(ev.callId)) this.#rooms.set(ev.room.room, this.#calls.get(ev.callId)!);
        return;
      case 'call.ended': {
        const invite = this.#invites.get(ev.callId);
        if (invite) {
          this.#invites.delete(ev.callId);
          invite._finish();
          invite.emit('ended', { reason: ev.reason });
        }
        this.#calls.get(ev.callId)?._ended(ev.reason, ev.durationMs);
        return;
      }
      case 'call.revoked': {
        const invite = this.#invites.get(ev.callId);
        if (!invite) return;
        this.#invites.delete(ev.callId);
        invite._finish();
        invite.emit('revoked', ev.reason);
        return;
      }
      case 'error':
        this.emit('error', BackchannelError.fromWire(ev.error));
        return;
      case 'goodbye':
        this.#goodbye = ev.reason;
        return;
      default:
        if ('room' in ev && typeof ev.room === 'number') this.#rooms.get(ev.room)?._onEvent(ev);
    }
  }

  #bind(link: Link): void {
    link.on('event', (ev) => this.#onEvent(ev));
    link.on('data', (frame) => this.#rooms.get(frame.room)?._onData(frame));
    link.on('lost', (reason) => this.#onLost(link, reason));
  }

  /** The transport is gone: reconnect, unless it was closed on purpose or for good by the server. */
  #onLost(link: Link, reason: Reason): void {
    if (link !== this.#core.link) return;
    if (this.#closing || this.#goodbye) this.#rtc.stop();
    else this.#rtc.stop({ code: ErrorCode.WebRtcFailed, message: `the signalling connection was lost (${reason.message})` });
    if (this.#closing) return this.#final({ code: LeaveReason.Left, message: 'closed by the client' });
    if (this.#goodbye) return this.#final(this.#goodbye);
    const schedule = this.#options.reconnect;
    if (!schedule) return this.#final({ code: LeaveReason.ConnectionLost, message: reason.message });
    this.#state = 'reconnecting';
    void this.#reconnect(schedule, reason);
  }

  /** Tries again until resumed, restarted as a new participant, refused for good, or out of time. */
  async #reconnect(schedule: ResolvedReconnectOptions, reason: Reason): Promise<void> {
    const giveUpAt = Date.now() + schedule.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const delayMs = reconnectDelay(attempt, schedule);
      if (Date.now() + delayMs > giveUpAt) {
        return this.#final({ code: LeaveReason.ConnectionLost, message: `not reconnected within ${schedule.timeoutMs} ms (last: ${reason.message})` });
      }
      this.emit('reconnecting', { attempt, delayMs, reason });
      if (delayMs > 0) await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.#wake = () => { clearTimeout(timer); resolve(); };
      });
      this.#wake = undefined;
      if (this.#state !== 'reconnecting') return;
      let transport: Transport | undefined;
      try {
        transport = await openTransport(this.#factory, this.#url, this.#options.connectTimeoutMs);
        const resumed = await this.#tryResume(transport);
        if (resumed === true || (await this.#restart(transport, resumed))) return;
      } catch (error) {
        // Not a normal close: a resume the server completed must not read as leaving on purpose.
        transport?.close(ABANDONED, 'handshake abandoned');
        if (this.#state !== 'reconnecting') return;
        const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.ConnectFailed, String((error as Error)?.message ?? error));
        if (FINAL_CODES.has(err.code)) return this.#final({ code: err.code, message: err.message });
        reason = { code: err.code, message: err.message };
      }
    }
  }

  /**
   * Resumes the participant on `transport`; false if the server cannot (the transport stays open).
   * Each attempt proposes the credential for the next one; when a reply is lost the client does
   * not know which of the two the server now holds, so it keeps both and tries the newer first.
   */
  async #tryResume(transport: Transport): Promise<true | Reason> {
    const link = this.#core.link;
    let refusal: Reason = { code: ErrorCode.ResumeCredentialInvalid, message: 'no resume credential left' };
    for (const credential of [...this.#credentials]) {
      const next = randomSecret();
      const msg = { t: 'resume' as const, protocol: PROTOCOL_VERSION, participantId: this.participantId, credential, next, received: link.received };
      let result: HandshakeResult<ResumeResult>;
      try {
        result = await handshake<ResumeResult>(transport, RESUME_ID, 'resume', handshakeFrame(RESUME_ID, msg), this.#options.connectTimeoutMs);
      } catch (error) {
        if (error instanceof BackchannelError && error.code === ErrorCode.ResumeCredentialInvalid) {
          this.#credentials = this.#credentials.filter((c) => c !== credential);
          refusal = { code: error.code, message: error.message };
          continue;
        }
        if (error instanceof BackchannelError && RESUME_REFUSED.has(error.code)) return { code: error.code, message: error.message };
        // No reply: the server may have taken `next` already.
        this.#credentials = [next, ...this.#credentials].slice(0, MAX_CREDENTIALS);
        throw error;
      }
      this.#credentials = [next];
      if (this.#state !== 'reconnecting') {
        transport.close(1000, 'client closed');
        return true;
      }
      this.#state = 'connected';
      link.attach(transport, result, result.data.received);
      this.#rtc.start(link, this.#welcome.webrtc);
      this.emit('reconnected', { resumed: true });
      return true;
    }
    return refusal;
  }

  /**
   * The participant cannot be resumed: says hello on `transport` as a new participant. Every call
   * and room ends (connection-lost) first, so the app starts from a clean state.
   */
  async #restart(transport: Transport, why: Reason): Promise<boolean> {
    if (this.#options.tokenRefresh) this.#token = await this.#options.tokenRefresh();
    const hello = await handshake<WelcomeResult>(transport, HELLO_ID, 'hello', handshakeFrame(HELLO_ID, helloMessage(this.#token, this.#options)), this.#options.connectTimeoutMs);
    const welcome = hello.data;
    if (this.#state !== 'reconnecting') {
      transport.close(1000, 'client closed');
      return true;
    }
    const old = this.#core.link;
    this.#endAll({ code: LeaveReason.ConnectionLost, message: 'the connection was lost and could not be resumed' });
    old.finish(1006, 'not resumed');
    const link = newLink(this.#options);
    link.setServerWindow(welcome.limits.sendWindowBytes, welcome.limits.sendWindowFrames);
    this.#welcome = welcome;
    this.#credentials = [welcome.resume.credential];
    this.#core.link = link;
    this.#core.outbound = new Outbound(link, this.#options.socketHighWaterBytes, this.#options.sendWindowBytes, this.#options.sendWindowFrames);
    this.#core.limits = welcome.limits;
    this.#core.participantId = welcome.participantId;
    this.#core.grants = welcome.grants;
    this.#core.reassembly = { bytes: 0, max: this.#options.maxReassemblyBytes };
    this.#goodbye = undefined;
    this.#bind(link);
    this.#state = 'connected';
    this.#scheduleRefresh();
    link.attach(transport, hello);
    this.#rtc.start(link, welcome.webrtc, true);
    this.emit('reconnected', { resumed: false, reason: why });
    return true;
  }

  /** Ends every call, room and invite locally with `why`. */
  #endAll(why: Reason): void {
    this.#core.outbound.stop();
    for (const call of [...this.#calls.values()]) call._ended({ code: why.code === 'server-shutdown' ? 'server-shutdown' : 'connection-lost', message: why.message }, 0);
    for (const room of [...this.#rooms.values()]) room._end(why);
    for (const invite of this.#invites.values()) invite._finish();
    this.#invites.clear();
  }

  /** Disconnected for good. */
  #final(why: Reason): void {
    if (this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    clearTimeout(this.#refreshTimer);
    this.#rtc.stop();
    this.#core.link.finish(1000, why.code);
    this.#endAll(why);
    this.emit('disconnected', why);
  }
}

/** Handshake errors after which trying again cannot help. */
const FINAL_CODES: ReadonlySet<string> = new Set([
  ErrorCode.TokenMissing,
  ErrorCode.TokenMalformed,
  ErrorCode.TokenExpired,
  ErrorCode.TokenNotYetValid,
  ErrorCode.TokenBadSignature,
  ErrorCode.TokenUnknownKey,
  ErrorCode.TokenInvalidClaims,
  ErrorCode.PermissionDenied,
  ErrorCode.ProtocolVersionUnsupported,
]);

/** Resume refusals after which the client says hello as a new participant instead. */
const RESUME_REFUSED: ReadonlySet<string> = new Set([ErrorCode.ResumeNotFound, ErrorCode.ResumeCredentialInvalid, ErrorCode.ResumeFailed]);

function helloMessage(token: string, opts: Readonly<ResolvedClientOptions>) {
  const capabilities = { protocol: PROTOCOL_VERSION, dataSession: opts.dataSession, ...(opts.streamIds ? { streamIds: opts.streamIds } : {}) };
  return { t: 'hello' as const, token, protocol: PROTOCOL_VERSION, sdk: SDK_NAME, capabilities };
}

/** The `conf.join` request for `name`; throws `invalid-argument` for a missing name. */
function joinMessage(name: string, options: JoinOptions): { t: string } & Record<string, unknown> {
  if (typeof name !== 'string' || !name) throw new BackchannelError(ErrorCode.InvalidArgument, 'joinConference needs a conference name');
  const msg: Record<string, unknown> & { t: string } = { t: 'conf.join', name };
  if (options.displayName !== undefined) msg.displayName = options.displayName;
  if (options.metadata !== undefined) msg.metadata = options.metadata;
  if (options.presence !== undefined) {
    if (options.presence !== 'full' && options.presence !== 'none') throw new BackchannelError(ErrorCode.InvalidArgument, "presence must be 'full' or 'none'");
    msg.presence = options.presence;
  }
  return msg;
}

function newLink(opts: Readonly<ResolvedClientOptions>): Link {
  return new Link({
    requestTimeoutMs: opts.requestTimeoutMs,
    ackEvery: opts.ackEvery,
    ackEveryBytes: opts.ackEveryBytes,
    ackDelayMs: opts.ackDelayMs,
    pingIntervalMs: opts.pingIntervalMs,
    pingTimeoutMs: opts.pingTimeoutMs,
  });
}

/** Whether `error` from {@link openTransport} is a refused opening, not its timeout. */
function isOpenRefused(error: unknown): boolean {
  return error instanceof BackchannelError && error.code === ErrorCode.ConnectFailed && !(error.details as { timedOut?: boolean } | undefined)?.timedOut;
}

/** Opens a transport, or rejects with `connect-failed` (also after `timeoutMs`, with `details.timedOut`). */
async function openTransport(factory: TransportFactory, url: string, timeoutMs: number, protocols?: string[]): Promise<Transport> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const opening = protocols ? factory(url, { protocols }) : factory(url);
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BackchannelError(ErrorCode.ConnectFailed, `could not connect to ${url} within ${timeoutMs} ms`, { details: { timedOut: true } })), timeoutMs);
      }),
    ]);
  } catch (error) {
    // Opened too late. If early frames were offered the server may have taken the hello (and a
    // join) already: 1000 ends the participant they made, as leaving, instead of keeping it for a
    // resume that will never come.
    opening.then((t) => t.close(protocols ? 1000 : ABANDONED, 'connect timed out'), () => undefined);
    const message = (error as Error)?.message ?? String(error);
    if (error instanceof BackchannelError && (error.code !== ErrorCode.ConnectFailed || message.includes(url))) throw error;
    throw new BackchannelError(ErrorCode.ConnectFailed, `could not connect to ${url} (${message})`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
