/**
 * The client: one connection to a Backchannel server, carrying calls, conferences and data.
 */
import {
  BackchannelError,
  Emitter,
  ErrorCode,
  PROTOCOL_VERSION,
  type CallInfo,
  type Reason,
  type RoomInfo,
  type ServerEvent,
  type WelcomeResult,
} from '@backchannel/protocol';
import { Call, CallInvite } from './call.js';
import { Conference } from './conference.js';
import { Outbound } from './data/outbound.js';
import { Link } from './link.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import type { ClientCore, RoomBase } from './room.js';
import { webSocketTransport, type Transport } from './transport.js';

/** SDK name announced to the server. */
export const SDK_NAME = 'backchannel-js/0.1.0';

export type ClientEvents = {
  /** Someone is calling this user (also fired on connect for calls already ringing). */
  incomingCall: [CallInvite];
  /** The connection is gone; every call and room has ended. */
  disconnected: [Reason];
  /** A problem not tied to a request (e.g. the server rejected a frame). */
  error: [BackchannelError];
};

/** Options of `joinConference`. */
export interface JoinOptions {
  /** Name shown to others (default: the token's name). */
  displayName?: string;
  /** Any small JSON value (size limited by the server, default 4 KiB). */
  metadata?: unknown;
}

export class Client extends Emitter<ClientEvents> {
  readonly userId: string;
  readonly participantId: string;
  readonly displayName: string;
  /** What the token allows, as the server resolved it. */
  readonly grants: WelcomeResult['grants'];
  readonly #core: ClientCore;
  readonly #rooms = new Map<number, RoomBase>();
  readonly #calls = new Map<string, Call>();
  readonly #invites = new Map<string, CallInvite>();
  #goodbye: Reason | undefined;
  #closed = false;

  private constructor(link: Link, welcome: WelcomeResult, options: Readonly<ResolvedClientOptions>) {
    super();
    this.userId = welcome.userId;
    this.participantId = welcome.participantId;
    this.displayName = welcome.displayName;
    this.grants = welcome.grants;
    this.#core = { link, outbound: new Outbound(link, options.socketHighWaterBytes, options.sendWindowBytes), options, limits: welcome.limits, participantId: welcome.participantId };
    link.on('event', (ev) => this.#onEvent(ev));
    link.on('data', (frame) => this.#rooms.get(frame.room)?._onData(frame));
    link.on('closed', (code, reason) => this.#onClosed(code, reason));
  }

  /**
   * Connects and authenticates with `token`. Rejects with a {@link BackchannelError}: a `token-*`
   * code for a refused token, `protocol-version-unsupported`, or `connect-failed`.
   */
  static async connect(url: string, token: string, options: ClientOptions = {}): Promise<Client> {
    const opts = resolveClientOptions(options);
    if (typeof token !== 'string' || !token) throw new BackchannelError(ErrorCode.TokenMissing, 'an access token is required');
    const factory = opts.transport ?? webSocketTransport(opts.WebSocket);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BackchannelError(ErrorCode.ConnectFailed, `could not connect to ${url} within ${opts.connectTimeoutMs} ms`)), opts.connectTimeoutMs);
    });
    let transport: Transport | undefined;
    try {
      transport = await Promise.race([factory(url), timeout]);
      const link = new Link(transport, { requestTimeoutMs: opts.connectTimeoutMs, ackEvery: opts.ackEvery, ackDelayMs: opts.ackDelayMs });
      const capabilities = { protocol: PROTOCOL_VERSION, dataSession: opts.dataSession, ...(opts.streamIds ? { streamIds: opts.streamIds } : {}) };
      // Events right after the welcome (e.g. calls already ringing) wait in the link until the
      // caller's code after `await Client.connect()` has run and attached its listeners.
      const welcome = await Promise.race([link.request<WelcomeResult>({ t: 'hello', token, protocol: PROTOCOL_VERSION, sdk: SDK_NAME, capabilities }), timeout]);
      const client = new Client(link, welcome, { ...opts });
      link.setRequestTimeout(opts.requestTimeoutMs);
      return client;
    } catch (error) {
      transport?.close(1000, 'handshake failed');
      if (error instanceof BackchannelError) throw error;
      throw new BackchannelError(ErrorCode.ConnectFailed, `could not connect to ${url}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether the connection is open. */
  get connected(): boolean {
    return !this.#closed;
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
    if (typeof name !== 'string' || !name) throw new BackchannelError(ErrorCode.InvalidArgument, 'joinConference needs a conference name');
    const msg: Record<string, unknown> & { t: string } = { t: 'conf.join', name };
    if (options.displayName !== undefined) msg.displayName = options.displayName;
    if (options.metadata !== undefined) msg.metadata = options.metadata;
    const info = await this.#core.link.request<RoomInfo>(msg);
    const conf = new Conference(this.#core, info, (c) => this.#rooms.delete(c.roomNum));
    this.#rooms.set(info.room, conf);
    return conf;
  }

  /** Closes the connection (calls end as connection-lost for the other side). */
  async close(): Promise<void> {
    if (this.#closed) return;
    const closed = this.waitFor('disconnected');
    this.#core.link.close(1000, 'client closed');
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

  #onClosed(code: number, reason: string): void {
    this.#closed = true;
    this.#core.outbound.stop();
    const why: Reason = this.#goodbye ?? { code: 'connection-lost', message: `the connection closed (${code}${reason ? ` ${reason}` : ''})` };
    for (const call of [...this.#calls.values()]) call._ended({ code: why.code === 'server-shutdown' ? 'server-shutdown' : 'connection-lost', message: why.message }, 0);
    for (const room of [...this.#rooms.values()]) room._end(why);
    for (const invite of this.#invites.values()) invite._finish();
    this.#invites.clear();
    this.emit('disconnected', why);
  }
}
