/**
 * The first exchange on a new transport: `hello` (a new participant) or `resume` (continue one
 * whose connection was lost). Its request and reply are not numbered; the session's numbering
 * starts after them. See PROTOCOL.md.
 */
import { BackchannelError, ErrorCode, FrameKind, decodeFrame, encodeControlFrame, type ServerMessage } from '@backchannel/protocol';
import type { Transport } from './transport.js';

const decoder = new TextDecoder();

/** A successful handshake: the reply's data, and what arrived right after it. */
export interface HandshakeResult<T> {
  data: T;
  /** Frames that arrived after the reply, until the link takes the transport over. */
  early: Uint8Array[];
  /** Set if the transport closed after the reply, before the link took it over. */
  closed?: { code: number; reason: string };
}

/** The frame of handshake message `msg` with request id `id`. */
export function handshakeFrame(id: number, msg: { t: 'hello' | 'resume' } & Record<string, unknown>): Uint8Array {
  return encodeControlFrame(JSON.stringify({ ...msg, id }));
}

/**
 * Sends `frame` (a {@link handshakeFrame} with request id `id`, of a `t` message) as the handshake
 * on `transport`, unless it already went in the upgrade request (`sent`), and resolves with the
 * reply. Rejects with the server's error (the transport stays open after a refused resume), or
 * with `connect-failed` if the transport closes or no reply comes within `timeoutMs`.
 */
export function handshake<T>(transport: Transport, id: number, t: 'hello' | 'resume', frame: Uint8Array, timeoutMs: number, sent = false): Promise<HandshakeResult<T>> {
  return new Promise((resolve, reject) => {
    const early: Uint8Array[] = [];
    let done = false;
    const timer = setTimeout(() => finish(new BackchannelError(ErrorCode.ConnectFailed, `no reply to ${t} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error: BackchannelError | undefined, data?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) {
        transport.onframe = () => {};
        reject(error);
      } else resolve(result = { data: data as T, early });
    };
    let result: HandshakeResult<T> | undefined;
    transport.onframe = (buf) => {
      if (done) {
        early.push(buf); // until the link takes the transport over
        return;
      }
      let reply: ServerMessage;
      try {
        const frame = decodeFrame(buf);
        if (frame.kind !== FrameKind.Control) return;
        reply = JSON.parse(decoder.decode(frame.body)) as ServerMessage;
      } catch {
        return;
      }
      if ((reply.t === 'ok' || reply.t === 'err') && reply.re === id) {
        if (reply.t === 'ok') finish(undefined, reply.data);
        else finish(BackchannelError.fromWire(reply.error));
      }
    };
    transport.onclose = (code, reason) => {
      if (result) result.closed = { code, reason };
      else finish(new BackchannelError(ErrorCode.ConnectFailed, `the connection closed during the handshake (${code}${reason ? ` ${reason}` : ''})`));
    };
    if (!sent) transport.send(frame);
  });
}
