/**
 * Fakes for the session-layer tests: the server's `Session` on a fake frame socket, the client's
 * `Link` on a fake transport, and an in-memory connection between them that delivers frames when
 * told to and can be cut at any point, dropping what is in flight.
 */
import { afterEach, beforeEach, expect, vi } from 'vitest';
import {
  ErrorCode,
  FrameKind,
  PING_FRAME,
  PONG_FRAME,
  decodeFrame,
  encodeAckFrame,
  encodeControlFrame,
  encodeDataFrame,
  type DataMode,
  type Reason,
  type ServerEvent,
} from '@backchannel/protocol';
import { Session, type SessionHandlers, type SessionOptions } from '../../packages/server/dist/transport/session.js';
import type { FrameSocket, FrameSocketHandlers } from '../../packages/server/dist/transport/frame-socket.js';
import type { OutboundFrame } from '../../packages/server/dist/core/peer.js';
import { Link, type LinkOptions } from '../../packages/client/dist/link.js';
import type { Transport } from '../../packages/client/dist/transport.js';

// ---------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------

/** The server end of a {@link Connection}. */
export class FakeFrameSocket implements FrameSocket {
  alive = true;
  bufferedAmount = 0;
  readonly remoteAddress = '192.0.2.1';
  /** Frames written and not yet delivered, with their write callbacks. */
  readonly outbox: { frame: Uint8Array; onWritten?: () => void }[] = [];
  /** Every frame written, in order. */
  readonly written: Uint8Array[] = [];
  closed = false;
  terminated = false;
  /** How a close or a terminate reaches the network (set by the connection). */
  onClose: (code: number, reason: string) => void = () => {};
  onTerminate: () => void = () => {};
  #handlers: FrameSocketHandlers | undefined;
  #ended = false;

  bind(handlers: FrameSocketHandlers): void {
    this.#handlers = handlers;
  }
  send(frame: Uint8Array, onWritten?: () => void): void {
    if (this.closed) return;
    this.written.push(frame);
    this.outbox.push({ frame, onWritten });
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  ping(): void {}
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(code, reason);
  }
  terminate(): void {
    this.closed = true;
    this.terminated = true;
    this.onTerminate();
  }
  /** A frame from the client arrives. */
  receive(frame: Uint8Array): void {
    this.#handlers?.frame(frame, true);
  }
  /** The connection has closed; `code` is the one the peer sent (1006 if none). */
  ended(code: number, reason = ''): void {
    if (this.#ended) return;
    this.#ended = this.closed = true;
    this.#handlers?.close(code, reason);
  }
}

/** The client end of a {@link Connection}. */
export class FakeTransport implements Transport {
  bufferedAmount = 0;
  /** Frames sent and not yet delivered. */
  readonly outbox: Uint8Array[] = [];
  /** Every frame sent, in order. */
  readonly written: Uint8Array[] = [];
  closing = false;
  aborted = false;
  onframe: (frame: Uint8Array) => void = () => {};
  onclose: (code: number, reason: string) => void = () => {};
  onwritable?: () => void;
  /** How a close or an abort reaches the network (set by the connection). */
  onClose: (code: number, reason: string) => void = () => {};
  onAbort: () => void = () => {};
  #ended = false;

  send(frame: Uint8Array): void {
    if (this.closing || this.#ended) return;
    this.written.push(frame);
    this.outbox.push(frame);
  }
  close(code = 1000, reason = ''): void {
    if (this.closing) return;
    this.closing = true;
    this.onClose(code, reason);
  }
  abort(): void {
    this.aborted = true;
    this.onAbort();
  }
  /** A frame from the server arrives. */
  receive(frame: Uint8Array): void {
    if (!this.#ended) this.onframe(frame);
  }
  /** The connection has closed. */
  ended(code: number, reason = ''): void {
    if (this.#ended) return;
    this.#ended = true;
    this.onclose(code, reason);
  }
}

/**
 * One connection between a server socket and a client transport. Frames wait in flight until
 * the test delivers them, in order; a close handshake delivers what is in flight, then both ends
 * see the close; a cut drops what is in flight.
 */
export class Connection {
  readonly server = new FakeFrameSocket();
  readonly client = new FakeTransport();
  /** False once the network between the ends is gone: frames in flight and frames sent later vanish. */
  up = true;
  #closing: [code: number, reason: string] | undefined;

  constructor() {
    this.server.onClose = this.client.onClose = (code, reason) => (this.#closing ??= [code, reason]);
    // Dropping a connection reaches the other end only while the network still carries it.
    this.server.onTerminate = () => (this.up ? this.cut() : this.server.ended(1006));
    this.client.onAbort = () => (this.up ? this.cut() : this.client.ended(1006));
  }

  get inFlight(): number {
    return this.server.outbox.length + this.client.outbox.length;
  }

  get closePending(): boolean {
    return this.#closing !== undefined && this.up;
  }

  /** Delivers up to `max` frames from the server to the client; returns how many moved. */
  toClient(max = Infinity): number {
    let n = 0;
    for (; n < max && this.server.outbox.length > 0; n++) {
      const { frame, onWritten } = this.server.outbox.shift()!;
      if (!this.up) continue;
      this.client.receive(frame);
      onWritten?.();
    }
    return n;
  }

  /** Delivers up to `max` frames from the client to the server; returns how many moved. */
  toServer(max = Infinity): number {
    let n = 0;
    for (; n < max && this.client.outbox.length > 0; n++) {
      const frame = this.client.outbox.shift()!;
      if (this.up) this.server.receive(frame);
    }
    return n;
  }

  /** Delivers everything in flight both ways (replies included), then a close begun by either end. */
  deliver(): void {
    while (this.toClient() + this.toServer() > 0);
    if (this.#closing && this.up) {
      const [code, reason] = this.#closing;
      this.up = false;
      this.server.ended(code, reason);
      this.client.ended(code, reason);
    }
  }

  /** The network fails: frames in flight are lost and both ends see an abnormal close. */
  cut(): void {
    this.#blackHole();
    this.server.ended(1006);
    this.client.ended(1006);
  }

  /** The network goes silent and neither end is told. */
  silence(): void {
    this.#blackHole();
  }

  /** The network fails and only the client notices; the server's socket looks open, and writes to it vanish. */
  cutSeenByClient(): void {
    this.#blackHole();
    this.client.ended(1006);
  }

  /** The network fails and only the server notices; the client's writes vanish until it gives up. */
  cutSeenByServer(): void {
    this.#blackHole();
    this.server.ended(1006);
  }

  #blackHole(): void {
    this.up = false;
    this.server.outbox.length = 0;
    this.client.outbox.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The two ends
// ---------------------------------------------------------------------------------------------

export const SESSION_OPTIONS: SessionOptions = {
  socketHighWaterBytes: 1 << 20,
  ackEvery: 1,
  ackEveryBytes: 1 << 20,
  ackDelayMs: 10,
  maxBadFrames: 3,
  sendWindowBytes: 1 << 20,
  sendWindowFrames: 1_000_000,
  replayBufferMaxBytes: 8 << 20,
  budget: { bytes: 0 },
};

export const LINK_OPTIONS: LinkOptions = {
  requestTimeoutMs: 5_000,
  ackEvery: 1,
  ackEveryBytes: 1 << 20,
  ackDelayMs: 10,
  pingIntervalMs: 600_000,
  pingTimeoutMs: 1_200_000,
};

export const payloadOf = (n: number) => new TextEncoder().encode(`payload ${n}`);

/** A data frame the server sends, numbered `seq`. */
export function outbound(seq: number, mode: DataMode = 'reliable-message'): OutboundFrame {
  const wire = encodeDataFrame({ mode, fin: true, streamId: mode === 'unreliable' ? 2 : 1, room: 7, sender: 3, seq }, payloadOf(seq));
  return { wire, size: wire.byteLength, droppable: mode === 'unreliable' };
}

/** An event the server sends, told apart by `room`. */
export const eventOf = (n: number): ServerEvent => ({ t: 'room.ended', room: n, reason: { code: 'test', message: `event ${n}` } });

/**
 * Lets one event-loop turn pass, so that what waits for the end of a turn runs: the session's
 * batched writes and acknowledgements, the frames the link holds back after a reply.
 */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export const flushMicrotasks = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/**
 * A server session and a client link, connected. Records what each end hands up, in order:
 * at the server `c<n>` for a request, `d<n>`/`u<n>` for reliable/unreliable data; at the client
 * the events, data and request replies.
 */
export class Ends {
  conn = new Connection();
  readonly session: Session;
  readonly link: Link;
  readonly atServer: string[] = [];
  readonly atClient = { events: [] as number[], data: [] as number[], unreliable: [] as number[], replies: [] as unknown[], other: [] as unknown[] };
  readonly serverLost: { code: number; reason: string }[] = [];
  readonly serverClosed: boolean[] = [];
  readonly clientLost: Reason[] = [];
  overflows = 0;
  /** Whether the server answers each request (`ok` with its `n`). */
  answer = true;

  constructor(sessionOptions: Partial<SessionOptions> = {}, linkOptions: Partial<LinkOptions> = {}) {
    const handlers: SessionHandlers = {
      control: (session, body) => {
        const msg = JSON.parse(new TextDecoder().decode(body)) as { t: string; n: number; id: number };
        this.atServer.push(`c${msg.n}`);
        if (this.answer) session.sendControl({ t: 'ok', re: msg.id, data: msg.n });
      },
      data: (_session, frame) => this.atServer.push(`${frame.mode === 'unreliable' ? 'u' : 'd'}${frame.seq}`),
      lost: (_session, code, reason) => this.serverLost.push({ code, reason }),
      closed: (_session, deliberate) => this.serverClosed.push(deliberate),
      overflow: () => this.overflows++,
    };
    this.session = new Session(this.conn.server, { ...SESSION_OPTIONS, ...sessionOptions }, handlers);
    this.link = new Link({ ...LINK_OPTIONS, ...linkOptions });
    this.link.on('event', (event) => {
      if (event.t === 'room.ended') this.atClient.events.push(event.room);
      else this.atClient.other.push(event);
    });
    this.link.on('data', (frame) => (frame.mode === 'unreliable' ? this.atClient.unreliable : this.atClient.data).push(frame.seq));
    this.link.on('lost', (reason) => this.clientLost.push(reason));
    attach(this.link, this.conn.client);
  }

  request(n: number): Promise<unknown> {
    const reply = this.link.request({ t: 'probe', n });
    reply.then((data) => this.atClient.replies.push(data), () => {});
    return reply;
  }

  clientData(seq: number, mode: DataMode = 'reliable-message'): void {
    this.link.sendData({ header: { mode, fin: true, streamId: mode === 'unreliable' ? 2 : 1, room: 7, seq }, payload: payloadOf(seq) });
  }

  /** Delivers frames and lets turns pass until nothing is in flight and neither end moves any more. */
  async settle(): Promise<void> {
    let last = '';
    for (let round = 0; round < 1000; round++) {
      this.conn.deliver();
      await turn();
      const state = [this.link.received, this.session.received, this.link.unackedBytes, this.session.unackedBytes].join();
      if (this.conn.inFlight === 0 && !this.conn.closePending && state === last) return;
      last = state;
    }
    throw new Error('the two ends kept exchanging frames');
  }

  /**
   * Reconnects as the client and the server do: the client reports the count it has received, the
   * server checks it still holds what follows, continues on the new socket, and the client sends
   * again what the server had not received.
   */
  resume(): void {
    const conn = new Connection();
    const count = this.link.received;
    expect(this.session.canResume(count)).toBe(true);
    this.session.resume(conn.server, count);
    attach(this.link, conn.client, this.session.received);
    this.conn = conn;
  }
}

/**
 * Attaches a transport on which no frame arrived after the handshake reply; `server` is the
 * count of numbered frames the server reports in a resume reply.
 */
export function attach(link: Link, transport: Transport, server?: number): void {
  link.attach(transport, { early: [] }, server);
}

/** The kinds of the frames a socket or transport wrote, as strings (`data:<seq>`, `control:<t>`…). */
export function kinds(frames: Uint8Array[]): string[] {
  return frames.map((buf) => {
    const f = decodeFrame(buf);
    switch (f.kind) {
      case FrameKind.Data:
        return `${f.mode === 'unreliable' ? 'unreliable' : 'data'}:${f.seq}`;
      case FrameKind.Control:
        return `control:${(JSON.parse(new TextDecoder().decode(f.body)) as { t: string }).t}`;
      case FrameKind.Ack:
        return `ack:${f.ack}`;
      case FrameKind.Ping:
        return 'ping';
      case FrameKind.Pong:
        return 'pong';
    }
  });
}

/**
 * Timers and the clock are fake in these tests (heartbeats, acknowledgement delays, request
 * timeouts); the end of an event-loop turn (setImmediate) is real, and tests await it. Call once
 * at the top of a test file.
 */
export function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}
