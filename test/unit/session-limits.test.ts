/**
 * The session layer's flow control and limits, how a session ends, and the heartbeat, on the fakes
 * of test/helpers/session-layer.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, PING_FRAME, PONG_FRAME, encodeAckFrame, encodeControlFrame, type Reason } from '@backchannel/protocol';
import { Session } from '../../packages/server/dist/transport/session.js';
import { Link } from '../../packages/client/dist/link.js';
import { FakeFrameSocket, FakeTransport, SESSION_OPTIONS, LINK_OPTIONS, outbound, eventOf, turn, flushMicrotasks, Ends, attach, kinds, useFakeClock } from '../helpers/session-layer.js';

useFakeClock();

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

  it('tells senders of a backlog only beyond what is in transit: the socket high-water mark plus a quarter of the send window', async () => {
    const socket = new FakeFrameSocket();
    const f = outbound(1).size;
    // In transit: 2 frames' worth in the socket, plus 2 (a quarter of the 8-frame window) waiting for the next acknowledgement.
    const session = new Session(socket, { ...SESSION_OPTIONS, socketHighWaterBytes: 2 * f, sendWindowBytes: 8 * f }, {
      control: () => {},
      data: () => {},
      lost: () => {},
      closed: () => {},
      overflow: () => {},
    });
    const send = () => session.sendData('file', 1, outbound(1));
    for (let i = 0; i < 8; i++) expect(send()).toBe(0);
    await turn();
    expect(session.unackedBytes).toBe(8 * f); // the window is full
    // Waiting for the window: not backlog up to a quarter of it beyond the socket's high-water mark.
    expect([send(), send(), send(), send()]).toEqual([0, 0, 0, 0]);
    expect(send()).toBe(5 * f); // beyond it, the session's whole queue is its backlog
    socket.receive(encodeAckFrame(2)); // the client caught up by two frames
    await turn();
    expect(session.queuedTotal).toBe(3 * f);
    expect(send()).toBe(0);
    expect(send()).toBe(5 * f);
  });

  it("stops writing data when the client's unacknowledged frames reach sendWindowFrames, however few bytes they are", async () => {
    const socket = new FakeFrameSocket();
    const session = new Session(socket, { ...SESSION_OPTIONS, sendWindowFrames: 4 }, {
      control: () => {},
      data: () => {},
      lost: () => {},
      closed: () => {},
      overflow: () => {},
    });
    for (let seq = 1; seq <= 10; seq++) session.sendData('chat', 1, outbound(seq));
    await turn();
    const dataWritten = () => kinds(socket.written).filter((k) => k.startsWith('data'));
    expect(dataWritten()).toEqual(['data:1', 'data:2', 'data:3', 'data:4']);
    expect(session.queuedTotal).toBe([5, 6, 7, 8, 9, 10].reduce((sum, seq) => sum + outbound(seq).size, 0));
    // Control frames are not held back, but they are numbered and count in the window.
    session.sendEvent(eventOf(1));
    expect(kinds(socket.written).at(-1)).toBe('control:room.ended');
    socket.receive(encodeAckFrame(3)); // data 1–3: three of the five numbered frames
    await turn();
    expect(dataWritten()).toEqual(['data:1', 'data:2', 'data:3', 'data:4', 'data:5', 'data:6']);
    socket.receive(encodeAckFrame(7)); // everything so far
    await turn();
    expect(dataWritten().length).toBe(10);
    socket.receive(encodeAckFrame(11));
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

describe('session layer: write batching', () => {
  /** Records how many frames each write batch (cork … uncork, or a lone send) carried. */
  class BatchSocket extends FakeFrameSocket {
    readonly batches: number[] = [];
    #depth = 0;
    #frames = 0;
    override cork(): void {
      if (this.#depth++ === 0) this.#frames = 0;
    }
    override uncork(): void {
      if (--this.#depth === 0 && this.#frames > 0) this.batches.push(this.#frames);
    }
    override send(frame: Uint8Array, onWritten?: () => void): void {
      super.send(frame, onWritten);
      if (this.#depth > 0) this.#frames++;
      else this.batches.push(1);
    }
  }
  const noHandlers = { control: () => {}, data: () => {}, lost: () => {}, closed: () => {}, overflow: () => {} };

  it('writes the frames queued in one callback to an idle socket right after it (a microtask), in one batch', async () => {
    const socket = new BatchSocket();
    const session = new Session(socket, SESSION_OPTIONS, noHandlers);
    for (let seq = 1; seq <= 3; seq++) session.sendData('s', 1, outbound(seq));
    expect(socket.batches).toEqual([]); // handed to the corked socket, nothing written inside the callback that queued them
    await Promise.resolve(); // the callback's microtasks: before any other I/O or setImmediate of the turn
    expect(kinds(socket.written)).toEqual(['data:1', 'data:2', 'data:3']);
    expect(socket.batches).toEqual([3]);
  });

  it('holds frames for a socket with output still buffered until the end of the turn, then writes them in one batch', async () => {
    const socket = new BatchSocket();
    socket.bufferedAmount = 1000;
    const session = new Session(socket, SESSION_OPTIONS, noHandlers);
    session.sendData('s', 1, outbound(1));
    await flushMicrotasks();
    expect(socket.written).toEqual([]);
    session.sendData('s', 1, outbound(2)); // another read in the same turn
    await turn();
    expect(kinds(socket.written)).toEqual(['data:1', 'data:2']);
    expect(socket.batches).toEqual([2]);
  });
});

describe('session layer: heartbeat', () => {
  const heartbeat = { pingIntervalMs: 1_000, pingTimeoutMs: 3_000 };

  /** A link with the heartbeat above, attached to a fake transport, past its first turn; `lost` collects why it was lost. */
  async function attachedLink() {
    const link = new Link({ ...LINK_OPTIONS, ...heartbeat });
    const transport = new FakeTransport();
    const lost: Reason[] = [];
    link.on('lost', (reason) => lost.push(reason));
    attach(link, transport);
    await turn(); // the link holds frames for one turn after attaching
    return { link, transport, lost };
  }

  it('pings after pingIntervalMs of silence and gives up after pingTimeoutMs (heartbeat-timeout)', async () => {
    const { link, transport, lost } = await attachedLink();
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
    const { link, transport, lost } = await attachedLink();
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

  it('counts quiet time from the last of a stream of frames, not the first', async () => {
    const { link, transport, lost } = await attachedLink();
    // A frame every 100 ms for 5 s (the last at 4 950 ms): never quiet, so no ping.
    vi.advanceTimersByTime(50);
    for (let i = 0; i < 50; i++) {
      transport.receive(PONG_FRAME);
      vi.advanceTimersByTime(100);
    }
    await turn();
    expect(transport.written).toEqual([]);
    // At 5 950 ms the link has been quiet for 1 000 ms; the heartbeat checks every 500 ms.
    vi.advanceTimersByTime(500);
    expect(transport.written).toEqual([]);
    vi.advanceTimersByTime(500);
    expect(transport.written).toEqual([PING_FRAME]);
    vi.advanceTimersByTime(1_500); // 7 500 ms: 2 550 ms quiet
    expect(lost).toEqual([]);
    vi.advanceTimersByTime(500); // 8 000 ms: 3 050 ms quiet
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
