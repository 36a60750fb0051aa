/**
 * The session layer on both ends, wired together through an in-memory network the tests control
 * (see test/helpers/session-layer.ts): reliable frames cross any number of cuts and resumes exactly
 * once, in order. A resume is driven as the server and the client drive it.
 */
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { ErrorCode } from '@backchannel/protocol';
import { outbound, eventOf, turn, flushMicrotasks, Ends, kinds, useFakeClock } from '../helpers/session-layer.js';

useFakeClock();

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
