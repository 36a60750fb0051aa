/**
 * RPC between participants of a room, over the room's control channel: a request carries a
 * method name and a string payload; exactly one response (or typed error) comes back.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import type { ControlChannel, ControlMessage } from './control.js';

/** Largest RPC request or response payload, in UTF-8 bytes. Larger data belongs in a data stream. */
export const RPC_MAX_PAYLOAD_BYTES = 15 * 1024;

/** What an RPC method handler receives. */
export interface RpcInvocation {
  requestId: string;
  /** Participant id of the caller. */
  caller: string;
  payload: string;
  /** How long the caller waits for the response, ms. */
  responseTimeout: number;
}

/** An RPC method implementation: returns the response payload. Throw to send an application error. */
export type RpcHandler = (invocation: RpcInvocation) => string | Promise<string>;

/** Arguments of `performRpc`. */
export interface PerformRpcOptions {
  /** Participant id to call. */
  destination: string;
  method: string;
  payload?: string;
  /** Give up after this long, ms. Default 10 000. */
  timeoutMs?: number;
}

interface Pending {
  resolve: (payload: string) => void;
  reject: (error: BackchannelError) => void;
  timer: ReturnType<typeof setTimeout>;
  destination: string;
}

const encoder = new TextEncoder();
const SEEN_LIMIT = 1024;

export class Rpc {
  readonly #methods = new Map<string, RpcHandler>();
  readonly #pending = new Map<string, Pending>();
  /** Request ids already answered, so a handler runs at most once per request. */
  readonly #seen = new Set<string>();

  constructor(
    private readonly control: ControlChannel,
    private readonly isPresent: (participantId: string) => boolean,
  ) {}

  register(method: string, handler: RpcHandler): void {
    if (typeof method !== 'string' || !method) throw new BackchannelError(ErrorCode.InvalidArgument, 'an RPC method needs a name');
    if (typeof handler !== 'function') throw new BackchannelError(ErrorCode.InvalidArgument, 'an RPC method needs a handler function');
    this.#methods.set(method, handler);
  }

  unregister(method: string): void {
    this.#methods.delete(method);
  }

  /** Calls `method` on `destination`; resolves with the response payload. */
  perform({ destination, method, payload = '', timeoutMs = 10_000 }: PerformRpcOptions): Promise<string> {
    if (typeof method !== 'string' || !method) return Promise.reject(new BackchannelError(ErrorCode.InvalidArgument, 'performRpc needs a method name'));
    if (typeof payload !== 'string') return Promise.reject(new BackchannelError(ErrorCode.InvalidArgument, 'an RPC payload is a string'));
    const size = encoder.encode(payload).byteLength;
    if (size > RPC_MAX_PAYLOAD_BYTES) {
      return Promise.reject(
        new BackchannelError(ErrorCode.RpcPayloadTooLarge, `RPC payload is ${size} bytes; the limit is ${RPC_MAX_PAYLOAD_BYTES} (send larger data as a data stream)`, {
          details: { size, limit: RPC_MAX_PAYLOAD_BYTES },
        }),
      );
    }
    if (!this.isPresent(destination)) return Promise.reject(new BackchannelError(ErrorCode.ParticipantNotFound, `participant ${destination} is not in this room`));
    const id = `RQ_${Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(id, new BackchannelError(ErrorCode.RpcTimeout, `no response to "${method}" from ${destination} within ${timeoutMs} ms`)), timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, destination });
      this.control.send(destination, { t: 'rpc.req', id, method, payload, timeoutMs }).catch((error: BackchannelError) => this.#settle(id, error));
    });
  }

  /** Handles an RPC control message from `from`. */
  onControl(msg: ControlMessage, from: string): void {
    if (msg.t === 'rpc.req') void this.#serve(msg, from);
    else if (msg.t === 'rpc.res' && typeof msg.id === 'string') {
      const p = this.#pending.get(msg.id);
      if (!p || p.destination !== from) return;
      const err = msg.error as { code?: unknown; message?: unknown } | undefined;
      if (err) this.#settle(msg.id, BackchannelError.fromWire(err));
      else this.#settle(msg.id, undefined, typeof msg.payload === 'string' ? msg.payload : '');
    }
  }

  /** A participant left: its pending calls fail with `rpc-recipient-disconnected`. */
  participantLeft(participantId: string): void {
    for (const [id, p] of this.#pending) {
      if (p.destination === participantId) this.#settle(id, new BackchannelError(ErrorCode.RpcRecipientDisconnected, `${participantId} left before responding`));
    }
  }

  /** The room ended: every pending call fails. */
  close(): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, new BackchannelError(ErrorCode.RpcRecipientDisconnected, 'the room ended before the response arrived'));
  }

  async #serve(msg: ControlMessage, from: string): Promise<void> {
    const id = msg.id;
    if (typeof id !== 'string' || typeof msg.method !== 'string' || this.#seen.has(id)) return;
    this.#seen.add(id);
    if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.values().next().value as string);
    const reply = (body: Record<string, unknown>) => this.control.send(from, { t: 'rpc.res', id, ...body }).catch(() => undefined);
    const handler = this.#methods.get(msg.method);
    if (!handler) return void reply({ error: { code: ErrorCode.RpcUnsupportedMethod, message: `method "${msg.method}" is not registered` } });
    let result: string;
    try {
      result = await handler({ requestId: id, caller: from, payload: typeof msg.payload === 'string' ? msg.payload : '', responseTimeout: typeof msg.timeoutMs === 'number' ? msg.timeoutMs : 10_000 });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return void reply({ error: { code: ErrorCode.RpcApplicationError, message: message || 'the RPC handler failed' } });
    }
    if (typeof result !== 'string') result = result === undefined ? '' : JSON.stringify(result);
    const size = encoder.encode(result).byteLength;
    if (size > RPC_MAX_PAYLOAD_BYTES) {
      return void reply({ error: { code: ErrorCode.RpcPayloadTooLarge, message: `the response is ${size} bytes; the limit is ${RPC_MAX_PAYLOAD_BYTES}` } });
    }
    void reply({ payload: result });
  }

  #settle(id: string, error: BackchannelError | undefined, payload = ''): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(payload);
  }
}
