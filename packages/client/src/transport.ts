/**
 * The transport seam: the client core sends and receives whole frames through this interface and
 * never sees a socket, so other transports (e.g. WebRTC data channels) can be added without
 * touching room logic.
 */

import { BackchannelError, ErrorCode } from '@backchannel/protocol';

/** A connected, message-oriented, ordered transport. */
export interface Transport {
  /** Sends one frame. */
  send(frame: Uint8Array): void;
  /** Bytes accepted by `send` but not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Closes the transport; `onclose` follows. */
  close(code?: number, reason?: string): void;
  /** Drops the transport at once, without a closing handshake (a dead connection). Default: `close()`. */
  abort?(): void;
  /**
   * Called with each received frame. Frames that arrive before it is set (with the upgrade's
   * response, see PROTOCOL.md, "Early frames") are handed to it when it is.
   */
  onframe: (frame: Uint8Array) => void;
  /** Called once when the transport has closed. */
  onclose: (code: number, reason: string) => void;
  /**
   * Called when the send buffer has emptied, if the transport can tell (Node's `ws` can; browsers
   * cannot, and the SDK polls `bufferedAmount` instead).
   */
  onwritable?: () => void;
  /**
   * True if `send` has copied the frame by the time it returns, so the caller may reuse the
   * buffer at once (the SDK then encodes outgoing data into one reused buffer).
   */
  readonly copiesOnSend?: boolean;
  /** The subprotocol the server selected, if the transport has one (WebSocket). */
  readonly protocol?: string;
}

/** What a {@link TransportFactory} is asked for besides the URL. */
export interface TransportOpenOptions {
  /**
   * WebSocket subprotocols to offer, in order (the client's early frames; see PROTOCOL.md). A
   * transport that cannot offer them ignores them, and the client then sends the frames after
   * opening. One that offers them must report the server's choice as {@link Transport.protocol}:
   * the client sends the frames again unless it reads `backchannel.early` there.
   */
  protocols?: string[];
}

/** Opens a transport to `url`; resolves once it is open. */
export type TransportFactory = (url: string, options?: TransportOpenOptions) => Promise<Transport>;

/** The subset of the WHATWG WebSocket constructor this SDK needs (browsers and the `ws` package). */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  /** The subprotocol the server selected ('' if none). */
  readonly protocol?: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of {@link webSocketTransport}. */
export interface WebSocketTransportOptions {
  /**
   * Ask for Node `Buffer`s instead of `ArrayBuffer`s (the `ws` package's `'nodebuffer'`), which
   * saves a copy of every received message. Set by the Node entry.
   */
  nodeBuffers?: boolean;
  /**
   * `send` copies each frame before returning (see {@link Transport.copiesOnSend}). Only for a
   * WebSocket implementation known to do so.
   */
  copiesOnSend?: boolean;
}

/** `WebSocket.OPEN`. */
const OPEN = 1;

/** A {@link TransportFactory} over WebSocket, using `WebSocketImpl` (default: the global one). */
export function webSocketTransport(WebSocketImpl?: WebSocketConstructor, options: WebSocketTransportOptions = {}): TransportFactory {
  return (url, open = {}) =>
    new Promise((resolve, reject) => {
      const Impl = WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!Impl) return reject(new BackchannelError(ErrorCode.InvalidArgument, 'no WebSocket implementation: pass options.WebSocket (e.g. the "ws" package)'));
      let ws: WebSocketLike;
      try {
        ws = open.protocols ? new Impl(url, open.protocols) : new Impl(url);
      } catch (error) {
        return reject(error);
      }
      ws.binaryType = options.nodeBuffers ? 'nodebuffer' : 'arraybuffer';
      let opened = false;
      let early: Uint8Array[] | undefined = [];
      let receive: (frame: Uint8Array) => void = (frame) => early?.push(frame);
      // Node's `ws` exposes its socket: batch every frame sent in one synchronous run into one
      // socket write (browsers batch on their own).
      const socket = () =>
        (ws as unknown as { _socket?: { cork(): void; uncork(): void; destroyed?: boolean; on(event: 'drain', listener: () => void): void } })._socket;
      let corked = false;
      const uncork = () => {
        corked = false;
        const s = socket();
        if (s && !s.destroyed) s.uncork();
      };
      const transport: Transport = {
        send: (frame) => {
          // Once closing, a frame cannot leave (browsers log an error for each): what was reliable
          // is still in the session's replay buffer, and goes out again after a resume.
          if (ws.readyState !== OPEN) return;
          if (!corked) {
            const s = socket();
            if (s) {
              corked = true;
              s.cork();
              queueMicrotask(uncork);
            }
          }
          ws.send(frame);
        },
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
        close: (code, reason) => ws.close(code, reason),
        abort: () => {
          const w = ws as unknown as { terminate?: () => void };
          if (typeof w.terminate === 'function') w.terminate();
          else ws.close(4000, 'connection dead');
        },
        copiesOnSend: options.copiesOnSend === true,
        get protocol() {
          return ws.protocol;
        },
        // Frames can come in the same read as the upgrade's response, before whoever awaits the
        // open has set a receiver: they wait here until it does.
        get onframe() {
          return receive;
        },
        set onframe(fn) {
          receive = fn;
          const held = early;
          early = undefined;
          if (held) for (const frame of held) fn(frame);
        },
        onclose: () => {},
      };
      ws.addEventListener('open', () => {
        opened = true;
        socket()?.on('drain', () => transport.onwritable?.());
        resolve(transport);
      });
      const onMessage = (data: unknown) => {
        if (data instanceof ArrayBuffer) receive(new Uint8Array(data));
        else if (data instanceof Uint8Array) receive(data); // a Node Buffer: a view, no copy
      };
      // Node's `ws`: its own 'message' event, without building a MessageEvent per frame.
      const emitter = ws as unknown as { on?: (event: 'message', listener: (data: unknown) => void) => void };
      if (options.nodeBuffers && typeof emitter.on === 'function') {
        // With 'nodebuffer' every message is a Buffer: one check, no second dispatch.
        emitter.on('message', (data) => {
          if (data instanceof Uint8Array) receive(data);
        });
      } else ws.addEventListener('message', (ev: { data: unknown }) => onMessage(ev.data));
      ws.addEventListener('close', (ev: { code: number; reason: string }) => {
        if (!opened) reject(new BackchannelError(ErrorCode.ConnectFailed, `the WebSocket closed before opening (code ${ev.code})`));
        else transport.onclose(ev.code, ev.reason);
      });
      ws.addEventListener('error', () => {
        if (!opened) reject(new BackchannelError(ErrorCode.ConnectFailed, 'the WebSocket failed to open'));
      });
    });
}
