/**
 * 1:1 calls: the caller's and the callee's {@link Call}, and the callee's {@link CallInvite}.
 */
import { BackchannelError, Emitter, ErrorCode, type CallInfo, type Reason, type RoomInfo } from '@backchannel/protocol';
import { RoomBase, type ClientCore, type RoomEvents } from './room.js';

/** State of a call. */
export type CallState = 'ringing' | 'connected' | 'ended';

export type CallEvents = RoomEvents & {
  /** The callee answered (caller side; the callee's Call starts connected). */
  connected: [];
};

/** A 1:1 call: a room of exactly two, with everything a conference has for data sessions. */
export class Call extends RoomBase<CallEvents> {
  readonly callId: string;
  readonly info: CallInfo;
  #state: CallState;
  #endReason: Reason | undefined;
  #durationMs = 0;

  /** @internal */
  constructor(
    core: ClientCore,
    info: CallInfo,
    state: CallState,
    private readonly detachFn: (call: Call) => void,
  ) {
    super(core);
    this.callId = info.callId;
    this.info = info;
    this.#state = state;
  }

  get state(): CallState {
    return this.#state;
  }

  /** Why the call ended (once ended). */
  get endReason(): Reason | undefined {
    return this.#endReason;
  }

  /** Connected time of an ended call, ms. */
  get durationMs(): number {
    return this.#durationMs;
  }

  /** The other party, once connected. */
  get peer() {
    return [...this.participants.values()][0];
  }

  /** Whether the other party supports data sessions (false until connected). */
  isDataSessionSupported(): boolean {
    return this.peer?.supportsDataSession ?? false;
  }

  /** Hangs up (a ringing call is cancelled). Resolves when the server confirmed. */
  async end(): Promise<void> {
    if (this.#state === 'ended') return;
    await this.core.link.request({ t: 'call.end', callId: this.callId });
  }

  /** Cancels a ringing call (caller only). */
  async cancel(): Promise<void> {
    if (this.#state !== 'ringing') throw new BackchannelError(ErrorCode.CallNotRinging, `the call is ${this.#state}`);
    await this.core.link.request({ t: 'call.cancel', callId: this.callId });
  }

  /** @internal */
  _connected(room: RoomInfo): void {
    this._applyInfo(room);
    this.#state = 'connected';
    this.emit('connected');
  }

  /** @internal */
  _ended(reason: Reason, durationMs: number): void {
    if (this.#state === 'ended') return;
    this.#state = 'ended';
    this.#endReason = reason;
    this.#durationMs = durationMs;
    this._end(reason, durationMs);
  }

  protected _detach(): void {
    this.detachFn(this);
  }
}

type InviteEvents = {
  /** The invite stopped ringing here because another client of this user answered or declined. */
  revoked: [Reason];
  /** The call ended before it was answered here (cancelled, no answer, declined elsewhere). */
  ended: [{ reason: Reason }];
};

/** An incoming 1:1 call, ringing. */
export class CallInvite extends Emitter<InviteEvents> {
  readonly callId: string;
  readonly caller: CallInfo['caller'];
  readonly appParam: string | undefined;
  readonly info: CallInfo;
  #done = false;

  /** @internal */
  constructor(
    info: CallInfo,
    private readonly acceptFn: (invite: CallInvite) => Promise<Call>,
    private readonly declineFn: (invite: CallInvite, reason?: string) => Promise<void>,
  ) {
    super();
    this.info = info;
    this.callId = info.callId;
    this.caller = info.caller;
    this.appParam = info.appParam;
  }

  /** Whether the invite is over (accepted, declined, revoked or ended). */
  get done(): boolean {
    return this.#done;
  }

  /** Answers the call; resolves with the connected {@link Call}. */
  accept(): Promise<Call> {
    return this.acceptFn(this);
  }

  /** Declines; pass `'busy'` to end the call with reason `busy`. */
  decline(reason?: string): Promise<void> {
    return this.declineFn(this, reason);
  }

  /** @internal */
  _finish(): void {
    this.#done = true;
  }
}
