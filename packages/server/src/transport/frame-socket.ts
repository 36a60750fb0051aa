/**
 * The frame-socket seam: what a session needs from one connection that moves whole frames. A
 * session outlives its sockets (a resumed client brings a new one), and a transport other than
 * WebSocket is one more implementation of {@link FrameSocket}.
 */
import type { WebSocket } from 'ws';

/** Receivers of a socket's input; replaced when the socket changes owner (handshake → session). */
export interface FrameSocketHandlers {
  /** One received frame (`binary` false for a WebSocket text message, which the protocol refuses). */
  frame(data: Uint8Array, binary: boolean): void;
  /** The socket closed, for any reason; `code` is the close code the peer sent (1006 if none). */
  close(code: number, reason: string): void;
}

/** One connection that sends and receives whole frames, in order. */
export interface FrameSocket {
  /** Writes one frame; `onWritten` runs once it has been handed to the operating system. */
  send(frame: Uint8Array, onWritten?: () => void): void;
  /** Bytes accepted by `send` not yet handed to the operating system. */
  readonly bufferedAmount: number;
  /** Frames sent until `uncork()` leave together, in one system call where the socket allows it. */
  cork(): void;
  uncork(): void;
  /** Stops / restarts reading (inbound flow control). */
  pause(): void;
  resume(): void;
  /** Sends a transport-level liveness probe; a reply sets `alive`. */
  ping(): void;
  /** Set by any sign of life from the peer; the server's heartbeat clears it before each probe. */
  alive: boolean;
  /** Closes with a close handshake. */
  close(code: number, reason: string): void;
  /** Drops the connection at once (dead peer). */
  terminate(): void;
  /** Whether the socket has closed (or is closing). */
  readonly closed: boolean;
  /** Sets who receives this socket's frames and close from now on. */
  bind(handlers: FrameSocketHandlers): void;
  /** Remote address, for logs and per-address limits. */
  readonly remoteAddress: string;
}

/** The part of the underlying net.Socket that batching uses. */
interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableCorked: number;
  remoteAddress?: string;
}

/** A {@link FrameSocket} over a server-side `ws` WebSocket. */
export class WsFrameSocket implements FrameSocket {
  readonly #ws: WebSocket;
  readonly #socket: Corkable | undefined;
  #handlers: FrameSocketHandlers | undefined;
  #closed = false;
  alive = true;

  /** `onClosed` is told once when the socket has closed (the server tracks its open sockets). */
  constructor(ws: WebSocket, onClosed?: (socket: WsFrameSocket) => void) {
    this.#ws = ws;
    ws.binaryType = 'nodebuffer';
    this.#socket = (ws as unknown as { _socket?: Corkable })._socket;
    ws.on('message', (data, isBinary) => this.#handlers?.frame(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', (code, reason) => {
      this.#closed = true;
      this.#handlers?.close(code, reason.toString());
      onClosed?.(this);
    });
    ws.on('error', () => {
      /* 'close' follows; errors such as oversize frames are reported by the close code */
    });
  }

  get remoteAddress(): string {
    return this.#socket?.remoteAddress ?? '';
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.#closed;
  }

  bind(handlers: FrameSocketHandlers): void {
    this.#handlers = handlers;
  }

  send(frame: Uint8Array, onWritten?: () => void): void {
    if (!this.#closed) this.#ws.send(frame, onWritten);
  }

  cork(): void {
    this.#socket?.cork();
  }

  uncork(): void {
    this.#socket?.uncork();
  }

  pause(): void {
    this.#ws.pause();
  }

  resume(): void {
    if (!this.#closed) this.#ws.resume();
  }

  ping(): void {
    if (!this.#closed) this.#ws.ping();
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ws.close(code, reason.slice(0, 120));
  }

  terminate(): void {
    this.#closed = true;
    // Frames held by a cork (see Session) are written first, as they would have been without it.
    const socket = this.#socket;
    if (socket) while (socket.writableCorked > 0) socket.uncork();
    this.#ws.terminate();
  }
}
