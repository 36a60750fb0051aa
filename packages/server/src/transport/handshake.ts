/**
 * The first exchange on a new socket, before it carries a session: `hello` (a new participant)
 * or `resume` (a participant whose connection was lost). Until then the socket accepts only those
 * two requests and heartbeats, checked cheaply before any schema validation; the replies are not
 * numbered (numbering belongs to the session the socket then carries). See PROTOCOL.md.
 */
import {
  BackchannelError,
  ErrorCode,
  FrameKind,
  MIN_PROTOCOL_VERSION,
  PONG_FRAME,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeControlFrame,
  parseControlBody,
  validateClientMessage,
  type ClientMessage,
  type Reason,
} from '@backchannel/protocol';
import type { FrameSocket } from './frame-socket.js';
import { CloseCode } from './session.js';

/** Refused resume attempts one socket may make before it is closed. */
const MAX_RESUME_REFUSALS = 8;
/**
 * Frames a client may pipeline behind `hello` (sent before the welcome), and their total size;
 * the session handles them after the welcome. Beyond these they are refused as before.
 */
const MAX_PIPELINED_FRAMES = 16;
const MAX_PIPELINED_BYTES = 64 * 1024;

/** What a handshake needs from the server. */
export interface HandshakeContext {
  /** `helloTimeoutMs` and `maxBadFrames`. */
  config(): { helloTimeoutMs: number; maxBadFrames: number };
  /**
   * Creates the participant and its session on `socket`, and replies; throws a refusal. Resolves
   * with the session's receiver of frames, which is handed the frames pipelined behind `hello`.
   */
  hello(socket: FrameSocket, msg: ClientMessage<'hello'>): Promise<(data: Uint8Array, binary: boolean) => void>;
  /** Continues an existing session on `socket`, and replies; throws a refusal (nothing changed). */
  resume(socket: FrameSocket, msg: ClientMessage<'resume'>): void;
  /** Told the code of every refused hello or resume (metrics). */
  refused?(code: string): void;
}

export class Handshake {
  readonly #socket: FrameSocket;
  readonly #ctx: HandshakeContext;
  readonly #timer: ReturnType<typeof setTimeout>;
  #busy = false;
  #done = false;
  #badFrames = 0;
  #refusals = 0;
  /** Frames that arrived behind `hello` while it was being handled (pipelining), in order. */
  #pipelined: Array<[Uint8Array, boolean]> = [];
  #pipelinedBytes = 0;

  constructor(socket: FrameSocket, ctx: HandshakeContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    const { helloTimeoutMs } = ctx.config();
    this.#timer = setTimeout(() => this.#refuse(undefined, new BackchannelError(ErrorCode.HelloTimeout, `no hello within ${helloTimeoutMs} ms`), CloseCode.HelloTimeout), helloTimeoutMs);
    socket.bind({ frame: (data, binary) => this.#onFrame(data, binary), close: () => clearTimeout(this.#timer) });
  }

  /**
   * The frames the client carried in its upgrade request (PROTOCOL.md, "Early frames"): handled
   * as if they were the first read from the socket.
   */
  early(frames: readonly Uint8Array[]): void {
    for (const frame of frames) this.#onFrame(frame, true);
  }

  #onFrame(data: Uint8Array, binary: boolean): void {
    if (this.#done) return;
    this.#socket.alive = true;
    if (this.#busy && this.#pipelined.length < MAX_PIPELINED_FRAMES && this.#pipelinedBytes + data.byteLength <= MAX_PIPELINED_BYTES) {
      // Behind a hello being handled: the session takes these once it exists (see #hello).
      this.#pipelined.push([data, binary]);
      this.#pipelinedBytes += data.byteLength;
      return;
    }
    if (!binary) return this.#bad(new BackchannelError(ErrorCode.BadFrame, 'text messages are not part of the protocol; send binary frames'));
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      return this.#bad(error as BackchannelError);
    }
    if (frame.kind === FrameKind.Ping) return this.#socket.send(PONG_FRAME);
    if (frame.kind !== FrameKind.Control) {
      if (frame.kind === FrameKind.Data) this.#bad(new BackchannelError(ErrorCode.NotAuthenticated, 'data before hello'));
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = parseControlBody(frame.body);
    } catch (error) {
      return this.#bad(error as BackchannelError);
    }
    const id = Number.isInteger(body.id) ? (body.id as number) : undefined;
    // The cheap check first: nothing but hello/resume is even validated before a handshake.
    if (body.t !== 'hello' && body.t !== 'resume') {
      return this.#bad(new BackchannelError(ErrorCode.NotAuthenticated, 'send hello (or resume) first'), id);
    }
    if (this.#busy) return this.#bad(new BackchannelError(ErrorCode.BadMessage, `wait for the reply to the handshake before sending ${String(body.t)}`), id);
    let msg: ClientMessage<'hello' | 'resume'>;
    try {
      msg = validateClientMessage(body) as ClientMessage<'hello' | 'resume'>;
    } catch (error) {
      return this.#bad(error as BackchannelError, id);
    }
    if (msg.protocol < MIN_PROTOCOL_VERSION || msg.protocol > PROTOCOL_VERSION) {
      const err = new BackchannelError(
        ErrorCode.ProtocolVersionUnsupported,
        `protocol version ${msg.protocol} is not supported; this server speaks ${MIN_PROTOCOL_VERSION}–${PROTOCOL_VERSION}`,
        { details: { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION } },
      );
      return this.#refuse(msg.id, err, CloseCode.ProtocolUnsupported);
    }
    if (msg.t === 'hello') void this.#hello(msg);
    else this.#resume(msg);
  }

  async #hello(msg: ClientMessage<'hello'>): Promise<void> {
    this.#busy = true;
    // The welcome and the replies to what was pipelined behind the hello leave in one write, so
    // the client reads them together (the hello is handled within this turn).
    const socket = this.#socket;
    socket.cork();
    try {
      let receive: (data: Uint8Array, binary: boolean) => void;
      try {
        receive = await this.#ctx.hello(socket, msg);
        this.#finish();
      } catch (error) {
        const err = asError(error);
        this.#pipelined = []; // a client that is refused has no session for them
        this.#refuse(msg.id, err, err.code === ErrorCode.ServerShutdown ? CloseCode.GoingAway : CloseCode.AuthFailed);
        return;
      } finally {
        this.#busy = false;
      }
      // The session is bound to the socket now; nothing has been read since these (no I/O ran in
      // between), so they come first, in order, after the welcome.
      const pipelined = this.#pipelined;
      this.#pipelined = [];
      for (const [data, binary] of pipelined) receive(data, binary);
    } finally {
      socket.uncork();
    }
  }

  #resume(msg: ClientMessage<'resume'>): void {
    try {
      this.#ctx.resume(this.#socket, msg);
      this.#finish();
    } catch (error) {
      const err = asError(error);
      this.#ctx.refused?.(err.code);
      // A refused resume changes nothing; the client may say hello on this socket instead.
      this.#reply(msg.id, err);
      if (++this.#refusals >= MAX_RESUME_REFUSALS) this.#refuse(undefined, new BackchannelError(ErrorCode.ResumeFailed, `${MAX_RESUME_REFUSALS} refused resume attempts`), CloseCode.AuthFailed);
    }
  }

  #finish(): void {
    this.#done = true;
    clearTimeout(this.#timer);
  }

  #reply(id: number | undefined, err: BackchannelError): void {
    const msg = id === undefined ? { t: 'error', error: err.toJSON() } : { t: 'err', re: id, error: err.toJSON() };
    this.#socket.send(encodeControlFrame(JSON.stringify(msg)));
  }

  /** Answers `id` (or reports) with `err`; too many bad frames close the socket. */
  #bad(err: BackchannelError, id?: number): void {
    this.#reply(id, err);
    if (++this.#badFrames > this.#ctx.config().maxBadFrames) {
      this.#refuse(undefined, new BackchannelError(ErrorCode.BadFrame, `more than ${this.#ctx.config().maxBadFrames} malformed frames`), CloseCode.TooManyBadFrames);
    }
  }

  /** Replies with `err` (if it answers a request), says goodbye and closes with `code`. */
  #refuse(id: number | undefined, err: BackchannelError, code: number): void {
    if (this.#done || this.#socket.closed) return;
    this.#finish();
    this.#ctx.refused?.(err.code);
    if (id !== undefined) this.#reply(id, err);
    const reason: Reason = { code: err.code, message: err.message };
    this.#socket.send(encodeControlFrame(JSON.stringify({ t: 'goodbye', reason })));
    this.#socket.close(code, err.code);
  }
}

function asError(error: unknown): BackchannelError {
  if (error instanceof BackchannelError) return error;
  return new BackchannelError(ErrorCode.InternalError, 'internal server error', { cause: error });
}
