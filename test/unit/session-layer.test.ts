/**
 * The session layer on both ends, wired together through an in-memory network the tests control:
 * the server's `Session` on a fake frame socket, the client's `Link` on a fake transport, and a
 * connection between them that delivers frames when told to and can be cut at any point, dropping
 * what is in flight. A resume is driven as the server and the client drive it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
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
class FakeFrameSocket implements FrameSocket {
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
class FakeTransport implements Transport {
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
class Connection {
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

const SESSION_OPTIONS: SessionOptions = {
  socketHighWaterBytes: 1 << 20,
  ackEvery: 1,
  ackEveryBytes: 1 << 20,
  ackDelayMs: 10,
  maxBadFrames: 3,
  sendWindowBytes: 1 << 20,
  replayBufferMaxBytes: 8 << 20,
  budget: { bytes: 0 },
};

const LINK_OPTIONS: LinkOptions = {
  requestTimeoutMs: 5_000,
  ackEvery: 1,
  ackEveryBytes: 1 << 20,
  ackDelayMs: 10,
  pingIntervalMs: 600_000,
  pingTimeoutMs: 1_200_000,
};

const payloadOf = (n: number) => new TextEncoder().encode(`payload ${n}`);

/** A data frame the server sends, numbered `seq`. */
function outbound(seq: number, mode: DataMode = 'reliable-message'): OutboundFrame {
  const wire = encodeDataFrame({ mode, fin: true, streamId: mode === 'unreliable' ? 2 : 1, room: 7, sender: 3, seq }, payloadOf(seq));
  return { wire, size: wire.byteLength, droppable: mode === 'unreliable' };
}

/** An event the server sends, told apart by `room`. */
const eventOf = (n: number): ServerEvent => ({ t: 'room.ended', room: n, reason: { code: 'test', message: `event ${n}` } });

/**
 * Lets one event-loop turn pass, so that what waits for the end of a turn runs: the session's
 * batched writes and acknowledgements, the frames the link holds back after a reply.
 */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const flushMicrotasks = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/**
 * A server session and a client link, connected. Records what each end hands up, in order:
 * at the server `c<n>` for a request, `d<n>`/`u<n>` for reliable/unreliable data; at the client
 * the events, data and request replies.
 */
class Ends {
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
function attach(link: Link, transport: Transport, server?: number): void {
  link.attach(transport, { early: [] }, server);
}

/** The kinds of the frames a socket or transport wrote, as strings (`data:<seq>`, `control:<t>`…). */
function kinds(frames: Uint8Array[]): string[] {
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

// Timers and the clock are fake (heartbeats, acknowledgement delays, request timeouts); the end of
// an event-loop turn (setImmediate) is real, and tests await it.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});

afterEach(() => {
  vi.useRealTimers();
});

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('session layer: delivery across cuts and resumes', () => {
  it('delivers control and data both ways while connected, and both ends acknowledge everything', async () => {
    const ends = new Ends();
    ends.session.sendEvent(eventOf(1));
    ends.session.sendData('file', 1, outbound(1));
    ends.session.sendData('file', 1, outbound(2));
    ends.request(1);
    ends.clientData(1);
    await ends.settle();
    await flushMicrotasks();
    expect(ends.atClient.replies).toEqual([1]);
    expect(ends.atClient.events).toEqual([1]);
    expect(ends.atClient.data).toEqual([1, 2]);
    expect(ends.atServer).toEqual(['c1', 'd1']);
    expect(ends.session.unackedBytes).toBe(0);
    expect(ends.link.unackedBytes).toBe(0);
  });

  it('sends again, after a resume, exactly what was lost in flight, in both directions', async () => {
    const ends = new Ends();
    ends.session.sendEvent(eventOf(1));
    ends.session.sendData('file', 1, outbound(1));
    ends.request(1);
    ends.clientData(1);
    await ends.settle();

    ends.session.sendEvent(eventOf(2));
    ends.session.sendData('file', 1, outbound(2));
    ends.session.sendData('file', 1, outbound(3));
    ends.session.flush();
    ends.request(2);
    ends.clientData(2);
    ends.conn.toClient(2); // event 2 and data 2 arrive; data 3 is still in flight
    ends.conn.toServer(1); // request 2 arrives (its reply is now in flight too); data 2 does not
    await turn();
    ends.conn.cut();
    await turn();

    expect(ends.serverLost).toEqual([{ code: 1006, reason: '' }]);
    expect(ends.clientLost.map((r) => r.code)).toEqual([ErrorCode.ConnectionClosed]);
    expect(ends.link.attached).toBe(false);
    expect(ends.session.socket).toBeUndefined();

    ends.resume();
    await ends.settle();
    await flushMicrotasks();
    expect(ends.atClient.events).toEqual([1, 2]);
    expect(ends.atClient.data).toEqual([1, 2, 3]);
    expect(ends.atClient.replies).toEqual([1, 2]);
    expect(ends.atServer).toEqual(['c1', 'd1', 'c2', 'd2']);
    expect(ends.session.stats.resumes).toBe(1);
    expect(ends.session.unackedBytes).toBe(0);
    expect(ends.link.unackedBytes).toBe(0);
  });

  it('keeps what the server sends while the client is away and sends it on resume', async () => {
    const ends = new Ends();
    ends.conn.cut();
    await turn();
    ends.session.sendEvent(eventOf(1));
    ends.session.sendData('file', 1, outbound(1));
    ends.session.sendEvent(eventOf(2));
    ends.session.sendData('file', 1, outbound(2));
    await turn();
    expect(ends.atClient.events).toEqual([]);
    ends.resume();
    await ends.settle();
    expect(ends.atClient.events).toEqual([1, 2]);
    expect(ends.atClient.data).toEqual([1, 2]);
  });

  it('replaces a socket the server had not yet found dead when the client resumes', async () => {
    const ends = new Ends();
    const old = ends.conn;
    old.cutSeenByClient();
    await turn();
    ends.session.sendEvent(eventOf(1)); // written into the dead connection
    ends.session.sendData('file', 1, outbound(1));
    await turn();
    expect(old.server.written.length).toBe(2);
    ends.resume();
    await ends.settle();
    expect(old.server.terminated).toBe(true);
    expect(ends.serverLost).toEqual([]); // the old socket's end is no loss: the session carries on
    expect(ends.session.socket).toBe(ends.conn.server);
    expect(ends.atClient.events).toEqual([1]);
    expect(ends.atClient.data).toEqual([1]);
  });

  it('does not replay unreliable data, in either direction', async () => {
    const ends = new Ends();
    ends.session.sendDroppable('live', 1, outbound(1, 'unreliable'), 1 << 20);
    ends.session.sendData('file', 1, outbound(1));
    ends.session.flush();
    ends.clientData(1, 'unreliable');
    ends.clientData(1);
    expect(kinds(ends.conn.server.written)).toEqual(['unreliable:1', 'data:1']);
    ends.conn.cut();
    await turn();
    // While the client is away, unreliable data is dropped at once (and counted).
    expect(ends.session.sendDroppable('live', 1, outbound(2, 'unreliable'), 1 << 20)).toBe(1);
    expect(ends.session.stats.dropped).toBe(1);
    ends.resume();
    await ends.settle();
    expect(ends.atClient.data).toEqual([1]);
    expect(ends.atClient.unreliable).toEqual([]);
    expect(ends.atServer).toEqual(['d1']);
    expect(kinds(ends.conn.server.written).filter((k) => k.startsWith('unreliable'))).toEqual([]);
    expect(kinds(ends.conn.client.written).filter((k) => k.startsWith('unreliable'))).toEqual([]);
  });

  it('sends a request made while the client is away once it is back, and starts its timeout then', async () => {
    const ends = new Ends({}, { requestTimeoutMs: 1_000 });
    ends.answer = false;
    ends.conn.cut();
    await turn();
    let outcome: unknown = 'pending';
    ends.link.request({ t: 'probe', n: 1 }).then(
      (data) => (outcome = data),
      (error: { code: string }) => (outcome = error.code),
    );
    vi.advanceTimersByTime(10_000);
    await flushMicrotasks();
    expect(outcome).toBe('pending');
    expect(ends.atServer).toEqual([]);

    ends.resume();
    await ends.settle();
    expect(ends.atServer).toEqual(['c1']);
    vi.advanceTimersByTime(999);
    await flushMicrotasks();
    expect(outcome).toBe('pending');
    vi.advanceTimersByTime(1);
    await flushMicrotasks();
    expect(outcome).toBe(ErrorCode.RequestTimeout);
  });

  it('answers a request made while away once resumed, however long the client was away', async () => {
    const ends = new Ends({}, { requestTimeoutMs: 1_000 });
    ends.conn.cut();
    await turn();
    ends.request(5);
    vi.advanceTimersByTime(60_000);
    ends.resume();
    await ends.settle();
    await flushMicrotasks();
    expect(ends.atClient.replies).toEqual([5]);
    expect(ends.atServer).toEqual(['c5']);
  });

  it('restarts the timeout of a request that was in flight when the connection was lost', async () => {
    const ends = new Ends({}, { requestTimeoutMs: 1_000 });
    ends.answer = false;
    let outcome: unknown = 'pending';
    ends.link.request({ t: 'probe', n: 1 }).then(
      () => (outcome = 'answered'),
      (error: { code: string }) => (outcome = error.code),
    );
    vi.advanceTimersByTime(900);
    ends.conn.cut();
    await turn();
    vi.advanceTimersByTime(5_000);
    ends.resume();
    await ends.settle();
    expect(ends.atServer).toEqual(['c1']); // sent once: the first copy was lost in flight
    vi.advanceTimersByTime(999);
    await flushMicrotasks();
    expect(outcome).toBe('pending');
    vi.advanceTimersByTime(1);
    await flushMicrotasks();
    expect(outcome).toBe(ErrorCode.RequestTimeout);
  });

  type Step =
    | { do: 'server-event' | 'server-data' | 'server-unreliable' | 'client-request' | 'client-data' | 'client-unreliable' }
    | { do: 'to-client' | 'to-server'; frames: number }
    | { do: 'turn' | 'settle' | 'ack-delay' | 'resume' }
    | { do: 'cut'; seenBy: 'both' | 'client' | 'server' };

  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom<Step>({ do: 'server-event' }, { do: 'server-data' }, { do: 'client-request' }, { do: 'client-data' }) },
    { weight: 1, arbitrary: fc.constantFrom<Step>({ do: 'server-unreliable' }, { do: 'client-unreliable' }) },
    { weight: 3, arbitrary: fc.record({ do: fc.constantFrom('to-client' as const, 'to-server' as const), frames: fc.integer({ min: 1, max: 4 }) }) },
    { weight: 2, arbitrary: fc.constantFrom<Step>({ do: 'turn' }, { do: 'settle' }, { do: 'ack-delay' }) },
    { weight: 1, arbitrary: fc.record({ do: fc.constant('cut' as const), seenBy: fc.constantFrom('both' as const, 'client' as const, 'server' as const) }) },
    { weight: 1, arbitrary: fc.constant<Step>({ do: 'resume' }) },
  );

  it('delivers every reliable frame exactly once and in order, in both directions, across any cuts and resumes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.array(stepArb, { minLength: 10, maxLength: 100, size: 'medium' }), async (serverAckEvery, clientAckEvery, steps) => {
        const ends = new Ends({ ackEvery: serverAckEvery }, { ackEvery: clientAckEvery });
        const sent = { events: [] as number[], data: [] as number[], unreliable: [] as number[], toServer: [] as string[], unreliableToServer: [] as string[] };
        let n = 0;
        let cuts = 0;
        let cutsSeenByServer = 0;
        // Reconnects as the client would: once the link has handled the frames it held (a lost
        // transport is reported after them) and has given up on the transport; one that has not
        // noticed the loss finds out by its heartbeat.
        const reconnect = async () => {
          for (let i = 0, before = -1; i < 100 && ends.link.received !== before; i++) {
            before = ends.link.received;
            await turn();
          }
          if (ends.link.attached) ends.link.drop({ code: ErrorCode.HeartbeatTimeout, message: 'nothing received' });
          expect(ends.link.attached).toBe(false);
          ends.resume();
        };
        for (const step of steps) {
          switch (step.do) {
            case 'server-event':
              ends.session.sendEvent(eventOf(++n));
              sent.events.push(n);
              break;
            case 'server-data':
              ends.session.sendData('file', 1, outbound(++n));
              sent.data.push(n);
              break;
            case 'server-unreliable':
              ends.session.sendDroppable('live', 1, outbound(++n, 'unreliable'), 1 << 20);
              sent.unreliable.push(n);
              break;
            case 'client-request':
              ends.request(++n);
              sent.toServer.push(`c${n}`);
              break;
            case 'client-data':
            case 'client-unreliable':
              // The SDK writes data only while a transport is attached; it waits in its queue otherwise.
              if (!ends.link.attached) break;
              if (step.do === 'client-data') {
                ends.clientData(++n);
                sent.toServer.push(`d${n}`);
              } else {
                ends.clientData(++n, 'unreliable');
                sent.unreliableToServer.push(`u${n}`);
              }
              break;
            case 'to-client':
              ends.conn.toClient(step.frames);
              break;
            case 'to-server':
              ends.conn.toServer(step.frames);
              break;
            case 'turn':
              await turn();
              break;
            case 'settle':
              await ends.settle();
              break;
            case 'ack-delay':
              vi.advanceTimersByTime(10);
              break;
            case 'cut':
              if (!ends.conn.up) break;
              cuts++;
              if (step.seenBy !== 'client') cutsSeenByServer++;
              if (step.seenBy === 'both') ends.conn.cut();
              else if (step.seenBy === 'client') ends.conn.cutSeenByClient();
              else ends.conn.cutSeenByServer();
              await turn();
              break;
            case 'resume':
              if (!ends.conn.up) await reconnect();
              break;
          }
        }
        if (!ends.conn.up) await reconnect();
        await ends.settle();
        vi.advanceTimersByTime(10); // acknowledgements batched on a timer
        await ends.settle();
        await flushMicrotasks();

        // In order per kind: a control frame does not wait behind data queued in the session (it
        // overtakes it by design), so only the client's frames keep one order across kinds.
        expect(ends.atClient.events).toEqual(sent.events);
        expect(ends.atClient.data).toEqual(sent.data);
        expect(ends.atClient.replies).toEqual(sent.toServer.filter((s) => s.startsWith('c')).map((s) => Number(s.slice(1))));
        expect(ends.atServer.filter((s) => !s.startsWith('u'))).toEqual(sent.toServer);
        // Unreliable frames may be lost, never doubled nor reordered.
        expect(sent.unreliable).toEqual(expect.arrayContaining(ends.atClient.unreliable));
        expect(ends.atClient.unreliable).toEqual([...new Set(ends.atClient.unreliable)].sort((a, b) => a - b));
        const unreliableAtServer = ends.atServer.filter((s) => s.startsWith('u'));
        expect(unreliableAtServer).toEqual(sent.unreliableToServer.filter((s) => unreliableAtServer.includes(s)));
        expect(new Set(unreliableAtServer).size).toBe(unreliableAtServer.length);

        expect(ends.atClient.other).toEqual([]); // no error events: no frame was refused
        expect(ends.serverLost.length).toBe(cutsSeenByServer);
        expect(ends.clientLost.length).toBe(cuts);
        expect(ends.serverClosed).toEqual([]);
        expect(ends.session.stats.resumes).toBe(cuts);
        expect(ends.session.unackedBytes).toBe(0);
        expect(ends.link.unackedBytes).toBe(0);
        ends.link.finish(1000, 'done');
      }),
      { numRuns: 150 },
    );
  });
});

describe('session layer: flow control and limits', () => {
  it("stops writing data when the client's unacknowledged bytes reach the send window, and goes on at each acknowledgement", async () => {
    const socket = new FakeFrameSocket();
    const frameBytes = outbound(1).size;
    const session = new Session(socket, { ...SESSION_OPTIONS, sendWindowBytes: 3 * frameBytes }, {
      control: () => {},
      data: () => {},
      lost: () => {},
      closed: () => {},
      overflow: () => {},
    });
    for (let seq = 1; seq <= 8; seq++) session.sendData('file', 1, outbound(seq));
    await turn();
    expect(kinds(socket.written)).toEqual(['data:1', 'data:2', 'data:3']);
    expect(session.unackedBytes).toBe(3 * frameBytes);
    expect(session.queuedTotal).toBe(5 * frameBytes);
    await turn();
    expect(socket.written.length).toBe(3); // nothing moves without an acknowledgement

    // Control frames are not held by the window.
    session.sendEvent(eventOf(1));
    expect(kinds(socket.written).at(-1)).toBe('control:room.ended');
    const controlBytes = socket.written.at(-1)!.byteLength;
    expect(session.unackedBytes).toBe(3 * frameBytes + controlBytes);

    const dataWritten = () => kinds(socket.written).filter((k) => k.startsWith('data'));
    socket.receive(encodeAckFrame(4)); // data 1–3 and the event: the window is open again
    await turn();
    expect(dataWritten()).toEqual(['data:1', 'data:2', 'data:3', 'data:4', 'data:5', 'data:6']);
    expect(session.unackedBytes).toBe(3 * frameBytes);

    socket.receive(encodeAckFrame(5)); // data 4: room for one more
    await turn();
    expect(dataWritten()).toEqual(['data:1', 'data:2', 'data:3', 'data:4', 'data:5', 'data:6', 'data:7']);
    socket.receive(encodeAckFrame(8));
    await turn();
    expect(dataWritten().length).toBe(8);
    socket.receive(encodeAckFrame(9));
    expect(session.unackedBytes).toBe(0);
    expect(session.queuedTotal).toBe(0);
  });

  it('holds data back across the ends until the client acknowledges, and everything arrives', async () => {
    const frameBytes = outbound(1).size;
    const ends = new Ends({ sendWindowBytes: 2 * frameBytes }, { ackEvery: 3, ackDelayMs: 50 });
    for (let seq = 1; seq <= 9; seq++) ends.session.sendData('file', 1, outbound(seq));
    await ends.settle();
    expect(ends.atClient.data).toEqual([1, 2]); // below the client's ackEvery: its acknowledgement waits ackDelayMs
    const arrived: number[] = [];
    for (let round = 0; round < 10 && ends.atClient.data.length < 9; round++) {
      vi.advanceTimersByTime(50);
      await ends.settle();
      arrived.push(ends.atClient.data.length);
    }
    expect(arrived).toEqual([4, 6, 8, 9]); // two frames per acknowledgement
    expect(ends.atClient.data).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('calls overflow when unacknowledged bytes exceed replayBufferMaxBytes while the client is away', async () => {
    const ends = new Ends({ replayBufferMaxBytes: 1_000 });
    ends.conn.cut();
    await turn();
    const frameBytes = encodeControlFrame(JSON.stringify(eventOf(1))).byteLength;
    const fit = Math.floor(1_000 / frameBytes);
    for (let i = 1; i <= fit; i++) ends.session.sendEvent(eventOf(i));
    expect(ends.session.unackedBytes).toBeLessThanOrEqual(1_000);
    expect(ends.overflows).toBe(0);
    ends.session.sendEvent(eventOf(fit + 1));
    expect(ends.session.unackedBytes).toBeGreaterThan(1_000);
    expect(ends.overflows).toBe(1);
  });

  it('calls overflow when a connected client never acknowledges', async () => {
    const socket = new FakeFrameSocket();
    const overflowed: Session[] = [];
    const session = new Session(socket, { ...SESSION_OPTIONS, replayBufferMaxBytes: 500 }, {
      control: () => {},
      data: () => {},
      lost: () => {},
      closed: () => {},
      overflow: (s) => overflowed.push(s),
    });
    let i = 0;
    while (session.unackedBytes <= 500) {
      expect(overflowed).toEqual([]);
      session.sendEvent(eventOf(++i));
    }
    expect(overflowed).toEqual([session]);
  });
});

describe('session layer: ends of a session', () => {
  it.each([1000, 1001])('a client closing with code %i ends the session on purpose (closed, deliberate)', async (code) => {
    const ends = new Ends();
    await ends.settle();
    ends.link.close(code, 'bye');
    await ends.settle();
    expect(ends.serverClosed).toEqual([true]);
    expect(ends.serverLost).toEqual([]);
    expect(ends.session.closed).toBe(true);
    expect(ends.session.canResume(ends.link.received)).toBe(false);
  });

  it.each([1006, 1011, 4000])('a connection ending with code %i is a loss: the session waits to be resumed', async (code) => {
    const ends = new Ends();
    ends.session.sendEvent(eventOf(1));
    await ends.settle();
    if (code === 1006) ends.conn.cut();
    else ends.link.close(code, 'gone');
    await ends.settle();
    expect(ends.serverLost).toEqual([{ code, reason: code === 1006 ? '' : 'gone' }]);
    expect(ends.serverClosed).toEqual([]);
    expect(ends.session.closed).toBe(false);
    expect(ends.session.canResume(ends.link.received)).toBe(true);
  });

  it('a session the server closes says goodbye first, then ends (closed, not deliberate)', async () => {
    const ends = new Ends();
    ends.session.close({ code: 'kicked', message: 'removed' }, 4004);
    await ends.settle();
    expect(ends.atClient.other).toEqual([{ t: 'goodbye', reason: { code: 'kicked', message: 'removed' } }]);
    expect(ends.serverClosed).toEqual([false]);
    expect(ends.serverLost).toEqual([]);
    expect(ends.clientLost.map((r) => r.code)).toEqual([ErrorCode.ConnectionClosed]);
    expect(ends.session.canResume(ends.link.received)).toBe(false);
  });

  it('a session the server closes while the client is away ends (closed, not deliberate) and cannot be resumed', async () => {
    const ends = new Ends();
    ends.conn.cut();
    await turn();
    expect(ends.serverLost.length).toBe(1);
    ends.session.close({ code: 'connection-lost', message: 'not resumed in time' });
    expect(ends.serverClosed).toEqual([]); // told on a later microtask, not from inside close()
    await flushMicrotasks();
    expect(ends.serverClosed).toEqual([false]);
    expect(ends.session.canResume(ends.link.received)).toBe(false);
  });
});

describe('session layer: heartbeat', () => {
  const heartbeat = { pingIntervalMs: 1_000, pingTimeoutMs: 3_000 };

  it('pings after pingIntervalMs of silence and gives up after pingTimeoutMs (heartbeat-timeout)', async () => {
    const link = new Link({ ...LINK_OPTIONS, ...heartbeat });
    const transport = new FakeTransport();
    const lost: Reason[] = [];
    link.on('lost', (reason) => lost.push(reason));
    attach(link, transport);
    await turn(); // the link holds frames for one turn after attaching
    vi.advanceTimersByTime(999);
    expect(transport.written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(transport.written).toEqual([PING_FRAME]);
    vi.advanceTimersByTime(1_999);
    expect(transport.written).toEqual([PING_FRAME]); // one ping per quiet spell
    expect(lost).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lost.map((r) => r.code)).toEqual([ErrorCode.HeartbeatTimeout]);
    expect(transport.aborted).toBe(true);
    expect(link.attached).toBe(false);
    link.finish(1000, 'done');
  });

  it('counts anything received as a sign of life, and measures the round trip of a ping', async () => {
    const link = new Link({ ...LINK_OPTIONS, ...heartbeat });
    const transport = new FakeTransport();
    const lost: Reason[] = [];
    link.on('lost', (reason) => lost.push(reason));
    attach(link, transport);
    await turn(); // the link holds frames for one turn after attaching
    vi.advanceTimersByTime(1_000);
    expect(transport.written).toEqual([PING_FRAME]);
    vi.advanceTimersByTime(500);
    transport.receive(PONG_FRAME);
    await turn();
    expect(link.rtt).toBe(500);
    vi.advanceTimersByTime(999);
    expect(transport.written).toEqual([PING_FRAME]);
    vi.advanceTimersByTime(1);
    expect(transport.written).toEqual([PING_FRAME, PING_FRAME]);
    vi.advanceTimersByTime(1_000); // 3 500 ms after attaching, but only 2 000 ms after the pong
    expect(lost).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(lost.map((r) => r.code)).toEqual([ErrorCode.HeartbeatTimeout]);
    link.finish(1000, 'done');
  });

  it('stays up against a live server, and notices a silent network; a resume then replaces the server\'s socket', async () => {
    const ends = new Ends({}, heartbeat);
    vi.advanceTimersByTime(1_000);
    await ends.settle(); // ping → pong
    vi.advanceTimersByTime(1_000);
    await ends.settle();
    vi.advanceTimersByTime(1_000);
    await ends.settle();
    expect(kinds(ends.conn.client.written)).toEqual(['ping', 'ping', 'ping']);
    expect(kinds(ends.conn.server.written)).toEqual(['pong', 'pong', 'pong']);
    expect(ends.clientLost).toEqual([]);

    ends.conn.silence();
    vi.advanceTimersByTime(3_000);
    expect(ends.clientLost.map((r) => r.code)).toEqual([ErrorCode.HeartbeatTimeout]);
    expect(ends.conn.client.aborted).toBe(true);
    expect(ends.serverLost).toEqual([]); // nothing reaches the server over a silent network
    const old = ends.conn;
    ends.resume();
    expect(old.server.terminated).toBe(true);
    ends.session.sendEvent(eventOf(1));
    await ends.settle();
    expect(ends.atClient.events).toEqual([1]);
  });
});

describe('session layer: a lost connection after replies', () => {
  it('reports the loss of a transport whose last delivered frame was a reply', async () => {
    const link = new Link(LINK_OPTIONS);
    const transport = new FakeTransport();
    const lost: Reason[] = [];
    link.on('lost', (reason) => lost.push(reason));
    attach(link, transport);
    await turn(); // the link holds frames for one turn after attaching
    const first = link.request({ t: 'probe', n: 1 });
    const second = link.request({ t: 'probe', n: 2 });
    // Both replies and the close come in one read of the socket.
    transport.receive(encodeControlFrame(JSON.stringify({ t: 'ok', re: 1, data: 1 })));
    transport.receive(encodeControlFrame(JSON.stringify({ t: 'ok', re: 2, data: 2 })));
    transport.ended(1006);
    expect(await first).toBe(1);
    expect(await second).toBe(2);
    await turn();
    await turn();
    expect(lost.map((r) => r.code)).toEqual([ErrorCode.ConnectionClosed]);
    expect(link.attached).toBe(false);
  });
});
