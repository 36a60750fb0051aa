/**
 * Webhook queue flooding, against the real server process and a slow HTTP endpoint: one client's
 * flood of `call.make` fills the URL's queue, and another client's lifecycle events must still be
 * delivered — what is shed comes from the flood, and is counted and logged by event type.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@backchannel/client';
import { ServerApiClient, type WebhookEvent } from '@backchannel/server-sdk';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { untilLog, webhookReceiver, type Delivery } from '../helpers/api.js';

type Receiver = Awaited<ReturnType<typeof webhookReceiver>>;
const parse = (d: Delivery) => JSON.parse(d.body) as WebhookEvent;
/** Who placed the call an event belongs to (calls only). */
const callerOf = (e: WebhookEvent) => ('caller' in e ? e.caller.userId : undefined);

const QUEUE_MAX = 100;
const FLOOD = 1_500;

describe('webhook queue under a flood', () => {
  let hooks: Receiver;
  let server: ServerProcess;

  beforeAll(async () => {
    // A slow endpoint: the flooder's events take 1 s each to be answered (4 at a time, the queue
    // of 100 stays full for the whole test), the others' none.
    hooks = await webhookReceiver((d, res: ServerResponse) => {
      if (callerOf(parse(d)) !== 'flooder') return void res.writeHead(204).end();
      setTimeout(() => res.writeHead(204).end(), 1_000);
    });
    server = await startServerProcess({
      webhookUrls: [hooks.url],
      webhookQueueMaxEvents: QUEUE_MAX,
      webhookConcurrency: 4,
      webhookTimeoutMs: 30_000,
      ringTimeoutMs: 600_000,
      // The core's per-client limits would stop the flood early; the queue policy must hold on its own.
      maxRingingCallsPerParticipant: 100_000,
      controlRateLimit: 0,
      emptyRoomGraceMs: 60_000,
      webhookFlushTimeoutMs: 200,
    });
  });
  afterAll(async () => {
    await server.stop();
    await hooks.close();
  });

  it('a flood of call.make from one client does not cause another client’s call.incoming (or its other lifecycle events) to be dropped', async () => {
    const flooder = await Client.connect(server.url, await server.token('flooder'));
    const alice = await Client.connect(server.url, await server.token('alice'));
    const carol = await Client.connect(server.url, await server.token('carol', { conferences: ['quiet-room'] }));
    const flood = Array.from({ length: FLOOD }, (_, i) => flooder.makeCall(`absent-${i % 50}`));
    // In the middle of the flood (the queue is full by now), another client calls, and a third one
    // starts a conference.
    await Promise.all(flood.slice(0, FLOOD / 3));
    const call = await alice.makeCall('bob', { appParam: 'push me' });
    const room = await carol.joinConference('quiet-room');
    await call.cancel();
    await room.leave();
    expect(await Promise.all(flood)).toHaveLength(FLOOD);

    const events = () => hooks.deliveries.map(parse);
    const aliceEvents = () => events().filter((e) => e.room.name === call.callId);
    const roomEvents = () => events().filter((e) => e.room.name === 'quiet-room');
    // Delivered while the flood is still being worked off (its 100 queued events alone take 25 s).
    await hooks.until(() => aliceEvents().length === 2 && roomEvents().length === 3, 15_000);
    expect(aliceEvents().map((e) => [e.sequence, e.type])).toEqual([
      [1, 'call.incoming'],
      [2, 'call.ended'],
    ]);
    expect(aliceEvents()[0]).toMatchObject({ callee: { userId: 'bob' }, appParam: 'push me' });
    expect(roomEvents().map((e) => e.type)).toEqual(['conference.started', 'participant.joined', 'participant.left']);

    // What was shed was the flooder's, counted by reason and type …
    const stats = (await new ServerApiClient(server.httpUrl, { apiKey: API_KEY, apiSecret: API_SECRET }).webhookStats()).endpoints[0]!;
    expect(stats.droppedByReason.queueFull).toBeGreaterThan(FLOOD - QUEUE_MAX - 50);
    expect(stats.droppedByType['call.incoming']).toBe(stats.droppedByReason.queueFull);
    expect(stats.dropped).toBe(stats.droppedByReason.queueFull);
    expect(stats.pending).toBeLessThanOrEqual(QUEUE_MAX);
    // … and logged as a summary naming the source, not one line per event.
    const summary = await untilLog(server, (l) => l.msg === 'webhook events dropped: the queue was full (shed from the users holding the most)');
    expect(summary).toMatchObject({ level: 50, url: hooks.url, byType: { 'call.incoming': expect.any(Number) } });
    expect(Object.keys(summary.sources as object)).toEqual(['user:flooder']);
    expect(server.logs.filter((l) => l.msg === 'webhook dropped')).toEqual([]);

    await Promise.all([flooder.close(), alice.close(), carol.close()]);
  });
});
