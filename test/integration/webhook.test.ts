/**
 * Webhooks against the real server process and a real HTTP receiver in the test: signatures,
 * payloads, per-room order, retries, drops, de-duplication, a hanging endpoint that must not slow
 * data, and the flush on graceful shutdown.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type CallInvite, type Conference } from '@backchannel/client';
import { ServerApiClient, WebhookHeader, createMemorySeenStore, verifyWebhook, type WebhookEvent } from '@backchannel/server-sdk';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next } from '../helpers/events.js';
import { receiver, untilLog, webhookReceiver, type Delivery } from '../helpers/api.js';

type Receiver = Awaited<ReturnType<typeof webhookReceiver>>;

const parse = (d: Delivery) => JSON.parse(d.body) as WebhookEvent;
/** Deliveries whose event belongs to room `name`. */
const forRoom = (r: Receiver, name: string) => r.deliveries.filter((d) => parse(d).room.name === name);
/** Events of room `name`, de-duplicated by id, in arrival order. */
const eventsOf = (r: Receiver, name: string) => {
  const seen = new Set<string>();
  return forRoom(r, name)
    .map(parse)
    .filter((e) => !seen.has(e.id) && seen.add(e.id));
};
const hasType = (r: Receiver, name: string, type: string) => () => eventsOf(r, name).some((e) => e.type === type);

/** Fast retry settings so retry tests take milliseconds. */
const FAST = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 80, webhookMaxAttempts: 4, webhookTimeoutMs: 2_000, emptyRoomGraceMs: 30 };

describe('webhooks', () => {
  let hooks: Receiver;
  let server: ServerProcess;
  /** Attempts seen per event id (for the failure policies below). */
  const attempts = new Map<string, number>();

  beforeAll(async () => {
    hooks = await webhookReceiver((d, res) => {
      const e = parse(d);
      const n = (attempts.get(e.id) ?? 0) + 1;
      attempts.set(e.id, n);
      // Room-name policies: "retry-*" fails its first event twice; "dead-*" always fails its first event.
      if (e.room.name.startsWith('retry-') && e.sequence === 1 && n <= 2) return void res.writeHead(500).end('try again');
      if (e.room.name.startsWith('dead-') && e.sequence === 1) return void res.writeHead(503).end();
      if (e.room.name.startsWith('jitter-')) return void setTimeout(() => res.writeHead(204).end(), (e.sequence * 7) % 13);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    server = await startServerProcess({ ...FAST, webhookUrls: [hooks.url] });
  });
  afterAll(async () => {
    await server.stop();
    await hooks.close();
  });

  const connect = async (user: string) => Client.connect(server.url, await server.token(user, { conferences: ['*'] }));

  it('signs every delivery and sends conference events in order with contiguous sequences', async () => {
    const a = await connect('wa');
    const b = await connect('wb');
    const ra = await a.joinConference('hooks-conf');
    await b.joinConference('hooks-conf');
    const bLeft = next(ra, 'participantLeft');
    await b.close();
    await bLeft;
    await ra.leave();
    await hooks.until(hasType(hooks, 'hooks-conf', 'conference.ended'));
    const deliveries = forRoom(hooks, 'hooks-conf');
    const events: WebhookEvent[] = [];
    for (const d of deliveries) {
      const event = await verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET, toleranceSec: 300 });
      expect(d.headers[WebhookHeader.EventId]).toBe(event.id);
      expect(d.headers[WebhookHeader.EventType]).toBe(event.type);
      expect(d.headers[WebhookHeader.KeyId]).toBe(API_KEY);
      expect(d.headers[WebhookHeader.Attempt]).toBe('1');
      expect(d.headers['content-type']).toBe('application/json');
      events.push(event);
    }
    expect(events.map((e) => [e.sequence, e.type])).toEqual([
      [1, 'conference.started'],
      [2, 'participant.joined'],
      [3, 'participant.joined'],
      [4, 'participant.left'],
      [5, 'participant.left'],
      [6, 'conference.ended'],
    ]);
    expect(new Set(events.map((e) => e.id)).size).toBe(6);
    for (const e of events) expect(e.room).toEqual({ kind: 'conference', name: 'hooks-conf' });
    const [started, joinedA, , leftB, leftA, ended] = events;
    expect(started!.createdAt).toBeLessThanOrEqual(ended!.createdAt);
    expect(joinedA).toMatchObject({ participant: { userId: 'wa', id: a.participantId } });
    expect(leftB).toMatchObject({ participant: { userId: 'wb' }, reason: { code: 'left' } });
    expect(leftA).toMatchObject({ participant: { userId: 'wa' }, reason: { code: 'left' } });
    expect(ended).toMatchObject({ reason: { code: 'empty' }, durationMs: expect.any(Number) });
    await a.close();
  });

  it('sends call.incoming with what a push notification needs, then call.started and call.ended', async () => {
    const caller = await connect('hook-caller');
    const call = await caller.makeCall('hook-callee', { appParam: '{"video":true}' });
    await hooks.until(hasType(hooks, call.callId, 'call.incoming'));
    expect(eventsOf(hooks, call.callId)[0]).toMatchObject({
      type: 'call.incoming',
      sequence: 1,
      room: { kind: 'call', name: call.callId },
      callId: call.callId,
      caller: { userId: 'hook-caller', participantId: caller.participantId },
      callee: { userId: 'hook-callee' },
      appParam: '{"video":true}',
    });
    // The callee connects after the "push" and answers.
    const callee = await connect('hook-callee');
    const invite = (await callee.getCall(call.callId)) as CallInvite;
    await invite.accept();
    await call.end();
    await hooks.until(hasType(hooks, call.callId, 'call.ended'));
    const events = eventsOf(hooks, call.callId);
    expect(events.map((e) => [e.sequence, e.type])).toEqual([
      [1, 'call.incoming'],
      [2, 'call.started'],
      [3, 'call.ended'],
    ]);
    expect(events[1]).toMatchObject({ callee: { userId: 'hook-callee', participantId: callee.participantId } });
    expect(events[2]).toMatchObject({ reason: { code: 'normal' }, durationMs: expect.any(Number), callee: { userId: 'hook-callee' } });
    await caller.close();
    await callee.close();
  });

  it('reports a kick as participant.kicked (with the reason) followed by participant.left', async () => {
    const a = await connect('kick-a');
    const b = await connect('kick-b');
    await a.joinConference('hooks-kick');
    await b.joinConference('hooks-kick');
    const api = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
    await api.kickParticipant('hooks-kick', b.participantId, { reason: 'off topic' });
    await hooks.until(hasType(hooks, 'hooks-kick', 'participant.left'));
    const tail = eventsOf(hooks, 'hooks-kick').slice(3);
    expect(tail.map((e) => [e.sequence, e.type])).toEqual([
      [4, 'participant.kicked'],
      [5, 'participant.left'],
    ]);
    for (const e of tail) expect(e).toMatchObject({ participant: { id: b.participantId }, reason: { code: 'kicked', message: 'off topic' } });
    await a.close();
    await b.close();
  });

  it('retries after two 500s; the room’s later events wait for it; de-duplicated by id nothing is lost or doubled', async () => {
    const a = await connect('retry-a');
    const b = await connect('retry-b');
    await a.joinConference('retry-room');
    await b.joinConference('retry-room');
    await hooks.until(() => eventsOf(hooks, 'retry-room').length >= 3);
    const deliveries = forRoom(hooks, 'retry-room');
    const first = deliveries.filter((d) => parse(d).sequence === 1);
    expect(first.map((d) => d.headers[WebhookHeader.Attempt])).toEqual(['1', '2', '3']);
    expect(new Set(first.map((d) => d.body)).size).toBe(1); // the same event, byte for byte
    // Each retry is signed afresh and verifies.
    for (const d of first) await verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET });
    // Nothing of this room was sent before its first event got through.
    const firstOk = deliveries.indexOf(first[2]!);
    expect(deliveries.slice(0, firstOk).every((d) => parse(d).sequence === 1)).toBe(true);
    // Dedupe by id leaves each event exactly once, in sequence order.
    expect(eventsOf(hooks, 'retry-room').map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(deliveries.length).toBe(5);
    await untilLog(server, (l) => l.msg === 'webhook attempt failed; will retry' && l.eventId === parse(first[0]!).id);
    const stats = await new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET }).webhookStats();
    expect(stats.endpoints[0]!.failedAttempts).toBeGreaterThanOrEqual(2);
    await a.close();
    await b.close();
  });

  it('drops an event after the last attempt, logs and counts it, and moves on to the next', async () => {
    const api = new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET });
    const before = (await api.webhookStats()).endpoints[0]!.dropped;
    const a = await connect('dead-a');
    await a.joinConference('dead-room');
    await hooks.until(hasType(hooks, 'dead-room', 'participant.joined'));
    const firstAttempts = forRoom(hooks, 'dead-room').filter((d) => parse(d).sequence === 1);
    expect(firstAttempts.map((d) => d.headers[WebhookHeader.Attempt])).toEqual(['1', '2', '3', '4']);
    const after = (await api.webhookStats()).endpoints[0]!;
    expect(after.dropped).toBe(before + 1);
    expect(after.url).toBe(hooks.url);
    const dropped = await untilLog(server, (l) => l.msg === 'webhook dropped' && l.type === 'conference.started');
    expect(dropped).toMatchObject({ level: 50, attempt: 4, status: 503, url: hooks.url });
    await a.close();
  });

  it('keeps each room in order while rooms are delivered concurrently', async () => {
    const names = ['jitter-1', 'jitter-2', 'jitter-3'];
    const clients = await Promise.all(names.flatMap((n) => [0, 1, 2].map((i) => connect(`${n}-u${i}`))));
    // Interleave joins and leaves across the rooms.
    for (let i = 0; i < 3; i++) await Promise.all(names.map((n, r) => clients[r * 3 + i]!.joinConference(n)));
    for (let i = 0; i < 3; i++) await Promise.all(names.map((_n, r) => clients[r * 3 + i]!.close()));
    await hooks.until(() => names.every((n) => eventsOf(hooks, n).some((e) => e.type === 'conference.ended')));
    for (const n of names) {
      const arrivals = forRoom(hooks, n).map((d) => parse(d).sequence);
      expect(arrivals).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    }
  });

  it('verifyWebhook rejects a tampered body, a stale timestamp and a replayed event', async () => {
    const d = forRoom(hooks, 'hooks-conf')[0]!;
    await expect(verifyWebhook(d.body.replace('hooks-conf', 'other-conf'), d.headers, { apiSecret: API_SECRET })).rejects.toMatchObject({
      code: ErrorCode.WebhookSignatureInvalid,
    });
    await expect(verifyWebhook(d.body, d.headers, { apiSecret: 'not-the-secret' })).rejects.toMatchObject({ code: ErrorCode.WebhookSignatureInvalid });
    await expect(verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET, toleranceSec: 60, now: Date.now() + 10 * 60_000 })).rejects.toMatchObject({
      code: ErrorCode.WebhookTimestampStale,
    });
    const seen = createMemorySeenStore();
    await verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET, seen });
    await expect(verifyWebhook(d.body, d.headers, { apiSecret: API_SECRET, seen })).rejects.toMatchObject({ code: ErrorCode.WebhookReplayed });
  });
});

describe('webhooks and the real-time path', () => {
  it('a hanging webhook endpoint does not hold back data; the room’s events follow once it answers', async () => {
    const held: ServerResponse[] = [];
    const hooks = await webhookReceiver((_d, res) => held.push(res));
    const server = await startServerProcess({ webhookUrls: [hooks.url], webhookTimeoutMs: 60_000 });
    try {
      const connect = async (user: string) => Client.connect(server.url, await server.token(user, { conferences: ['*'] }));
      const a = await connect('slow-a');
      const b = await connect('slow-b');
      const ra: Conference = await a.joinConference('slow-room');
      const rb = await b.joinConference('slow-room');
      // The first event's request is in flight and not answered.
      await hooks.until((d) => d.length === 1);
      const rx = await receiver(rb, 400);
      const tx = await ra.makeSendDataSession(400, 'reliable-message');
      for (let i = 0; i < 50; i++) tx.send(`msg ${i}`);
      const got = await rx.until(50);
      expect(got.map((g) => g.text)).toEqual(Array.from({ length: 50 }, (_, i) => `msg ${i}`));
      // All 50 arrived while the endpoint still sat on the first event; nothing else was sent to it.
      expect(hooks.deliveries.map((d) => parse(d).type)).toEqual(['conference.started']);
      expect(held).toHaveLength(1);
      // Once it answers, the queued events of the room follow in order.
      hooks.respondWith((_d, res) => res.writeHead(200).end());
      held[0]!.writeHead(200).end();
      await hooks.until((d) => d.length === 3);
      expect(hooks.deliveries.map((d) => parse(d).sequence)).toEqual([1, 2, 3]);
      await a.close();
      await b.close();
    } finally {
      await server.stop();
      await hooks.close();
    }
  });
});

describe('webhooks on graceful shutdown', () => {
  it('flushes the shutdown events (server-shutdown reasons) before the process exits', async () => {
    const hooks = await webhookReceiver((_d, res) => setTimeout(() => res.writeHead(200).end(), 20));
    const server = await startServerProcess({ webhookUrls: [hooks.url], ringTimeoutMs: 60_000 });
    const connect = async (user: string) => Client.connect(server.url, await server.token(user, { conferences: ['*'] }));
    const a = await connect('sd-a');
    const b = await connect('sd-b');
    await a.joinConference('sd-room');
    await b.joinConference('sd-room');
    const call = await a.makeCall('sd-nobody');
    await hooks.until(() => eventsOf(hooks, call.callId).length === 1 && eventsOf(hooks, 'sd-room').length === 3);
    const goodbye = next(a, 'disconnected');
    expect(await server.stop()).toBe(0);
    await goodbye;
    expect(eventsOf(hooks, 'sd-room').slice(3).map((e) => [e.type, 'reason' in e ? e.reason.code : undefined])).toEqual([
      ['participant.left', 'room-ended'],
      ['participant.left', 'room-ended'],
      ['conference.ended', 'server-shutdown'],
    ]);
    expect(eventsOf(hooks, call.callId).map((e) => [e.type, 'reason' in e ? e.reason.code : undefined])).toEqual([
      ['call.incoming', undefined],
      ['call.ended', 'server-shutdown'],
    ]);
    await b.close();
    await hooks.close();
  });

  it('bounds the flush: a dead endpoint cannot hold up shutdown, and what was left is logged', async () => {
    const hooks = await webhookReceiver(() => undefined); // never answers
    const server = await startServerProcess({ webhookUrls: [hooks.url], webhookTimeoutMs: 60_000, webhookFlushTimeoutMs: 200 });
    const a = await Client.connect(server.url, await server.token('bound-a', { conferences: ['*'] }));
    await a.joinConference('bound-room');
    await hooks.until((d) => d.length === 1);
    expect(await server.stop()).toBe(0);
    const left = await untilLog(server, (l) => l.msg === 'webhooks left undelivered at shutdown');
    // conference.started (in flight) + participant.joined + participant.left + conference.ended
    expect(left).toMatchObject({ level: 50, undelivered: 4 });
    await hooks.close();
  });
});
