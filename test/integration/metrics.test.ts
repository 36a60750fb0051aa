/**
 * `GET /metrics` of a real server process, parsed as Prometheus would: the bearer token, the
 * setting that turns metrics off, and counters and gauges that move with what clients do (joins,
 * data by mode, refused handshakes, resumes, webhooks). The Grafana dashboard in docs/ only
 * queries metrics that a scrape has.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type CallInvite } from '@backchannel/client';
import { createAccessToken } from '@backchannel/server-sdk';
import { webhookReceiver } from '../helpers/api.js';
import { next } from '../helpers/events.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const TOKEN = 'metrics-token-0123456789';

describe('GET /metrics', () => {
  let server: ServerProcess;
  let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
  let url: string;

  beforeAll(async () => {
    // The webhook endpoint fails every first attempt of an event, so retries show.
    const attempts = new Map<string, number>();
    hooks = await webhookReceiver((d, res) => {
      const id = JSON.parse(d.body).id as string;
      attempts.set(id, (attempts.get(id) ?? 0) + 1);
      res.writeHead(attempts.get(id) === 1 ? 503 : 200).end();
    });
    server = await startServerProcess({ metricsToken: TOKEN, webhookUrls: [`${hooks.url}?secret=abc`], webhookRetryBaseMs: 1, webhookRetryMaxMs: 5 });
    url = `${server.httpUrl}/metrics`;
  });
  afterAll(async () => {
    await server?.stop();
    await hooks?.close();
  });

  it('needs the bearer token when metricsToken is set', async () => {
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await none.json()).toMatchObject({ code: 'token-missing' });
    const wrong = await fetch(url, { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(403);
    expect(await wrong.json()).toMatchObject({ code: 'permission-denied' });
    const s = await scrape(url, TOKEN);
    expect(s.value('backchannel_ready')).toBe(1);
    // Node's process and event-loop metrics come with it.
    expect(s.value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(s.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
    expect(s.type('backchannel_data_messages_in_total')).toBe('counter');
    expect(s.type('backchannel_join_duration_seconds')).toBe('histogram');
  });

  it('rooms, participants, clients and connections follow joins and leaves', async () => {
    const before = await scrape(url, TOKEN);
    expect(before.value('backchannel_participants', { kind: 'conference' })).toBe(0);
    const ann = await Client.connect(server.url, await server.token('m-ann', { conferences: ['*'], calls: true }));
    const ben = await Client.connect(server.url, await server.token('m-ben', { conferences: ['*'], calls: true }));
    await ann.joinConference('m-room');
    await ben.joinConference('m-room');
    const answered = next<CallInvite>(ben, 'incomingCall').then((invite) => invite.accept());
    const call = await ann.makeCall('m-ben');
    await next(call, 'connected');
    await answered;
    const during = await scrape(url, TOKEN);
    expect(during.value('backchannel_rooms', { kind: 'conference' })).toBe(1);
    expect(during.value('backchannel_rooms', { kind: 'call' })).toBe(1);
    expect(during.value('backchannel_participants', { kind: 'conference' })).toBe(2);
    expect(during.value('backchannel_participants', { kind: 'call' })).toBe(2);
    expect(during.value('backchannel_clients', { state: 'connected' })).toBe(2);
    expect(during.value('backchannel_connections')).toBe(2);
    // Two joins and one accept were timed.
    expect(during.value('backchannel_join_duration_seconds', { kind: 'conference' })).toBe(2);
    expect(during.value('backchannel_join_duration_seconds', { kind: 'call' })).toBe(1);
    await ann.close();
    await ben.close();
    const after = await scrapeUntil(url, (s) => s.value('backchannel_connections') === 0, TOKEN);
    expect(after.value('backchannel_participants', { kind: 'conference' })).toBe(0);
    expect(after.value('backchannel_rooms', { kind: 'call' })).toBe(0);
  });

  it('data messages, frames and bytes count in and out by mode; sessions by mode', async () => {
    const base = await scrape(url, TOKEN);
    const a = await Client.connect(server.url, await server.token('d-a'));
    const b = await Client.connect(server.url, await server.token('d-b'));
    const c = await Client.connect(server.url, await server.token('d-c'));
    const ra = await a.joinConference('d-room');
    let got = 0;
    let all: () => void = () => undefined;
    const done = new Promise<void>((r) => (all = r));
    for (const client of [b, c]) {
      const room = await client.joinConference('d-room');
      await room.makeRecvDataSession(100, () => void (++got === 10 && all()));
    }
    const tx = await ra.makeSendDataSession(100, 'reliable-message');
    const unreliable = await ra.makeSendDataSession(101, 'unreliable');
    const open = await scrape(url, TOKEN);
    expect(open.value('backchannel_data_sessions', { mode: 'reliable-message' })).toBe(1);
    expect(open.value('backchannel_data_sessions', { mode: 'unreliable' })).toBe(1);
    for (let i = 0; i < 5; i++) tx.send(new Uint8Array(1000));
    await done;
    const s = await scrape(url, TOKEN);
    const delta = (name: string, mode: string) => s.value(name, { mode })! - base.value(name, { mode })!;
    expect(delta('backchannel_data_messages_in_total', 'reliable-message')).toBe(5);
    expect(delta('backchannel_data_messages_out_total', 'reliable-message')).toBe(10); // two receivers
    expect(delta('backchannel_data_bytes_in_total', 'reliable-message')).toBe(5000);
    expect(delta('backchannel_data_bytes_out_total', 'reliable-message')).toBe(10_000);
    expect(delta('backchannel_data_frames_in_total', 'reliable-message')).toBe(5);
    expect(delta('backchannel_data_messages_in_total', 'reliable-bytes')).toBe(0);
    expect(s.value('backchannel_queued_bytes')).toBeGreaterThanOrEqual(0);
    expect(s.value('backchannel_connection_queued_bytes')).toBe(3); // one observation per client
    await unreliable.close();
    await a.close();
    const closed = await scrapeUntil(url, (x) => x.value('backchannel_data_sessions', { mode: 'reliable-message' }) === 0, TOKEN);
    expect(closed.value('backchannel_data_sessions', { mode: 'unreliable' })).toBe(0);
    await b.close();
    await c.close();
  });

  it('counts refused handshakes by code, and resumes', async () => {
    const bad = await createAccessToken({ apiKey: 'testkey', apiSecret: 'not-the-secret-at-all', userId: 'x' });
    await expect(Client.connect(server.url, bad, { reconnect: false })).rejects.toMatchObject({ code: 'token-bad-signature' });
    const proxy = await startFaultProxy(server.port);
    try {
      const client = await Client.connect(proxy.url, await server.token('r-1'));
      await client.joinConference('r-room');
      const reconnected = next(client, 'reconnected');
      proxy.cutAll();
      expect(await reconnected).toEqual({ resumed: true });
      const s = await scrape(url, TOKEN);
      expect(s.value('backchannel_handshake_failures_total', { code: 'token-bad-signature' })).toBe(1);
      expect(s.value('backchannel_resumes_total')).toBe(1);
      await client.close();
    } finally {
      await proxy.close();
    }
  });

  it('webhook deliveries, failed attempts and retries per URL, without its query', async () => {
    const label = { url: hooks.url };
    const client = await Client.connect(server.url, await server.token('w-1'));
    await client.joinConference('w-room'); // conference.started, participant.joined
    await hooks.until((d) => d.filter((x) => x.body.includes('w-room')).length >= 2);
    const s = await scrapeUntil(url, (x) => (x.value('backchannel_webhook_deliveries_total', label) ?? 0) >= 1, TOKEN);
    expect(s.value('backchannel_webhook_failed_attempts_total', label)).toBeGreaterThanOrEqual(1);
    expect(s.value('backchannel_webhook_retries_total', label)).toBeGreaterThanOrEqual(1);
    expect(s.value('backchannel_webhook_queue_depth', label)).toBeGreaterThanOrEqual(0);
    expect(s.value('backchannel_webhook_dropped_total', label)).toBe(0);
    await client.close();
  });

  it('docs/grafana-dashboard.json queries only metrics a scrape has', async () => {
    const dashboard = readFileSync(resolve(import.meta.dirname, '../../docs/grafana-dashboard.json'), 'utf8');
    const exprs = [...dashboard.matchAll(/"expr":\s*"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    expect(exprs.length).toBeGreaterThan(10);
    const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:backchannel|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!)));
    const s = await scrape(url, TOKEN);
    const known = (name: string) => s.has(name) || s.has(name.replace(/_(bucket|sum|count)$/, ''));
    expect([...names].filter((n) => !known(n))).toEqual([]);
  });
});

describe('metrics: false', () => {
  it('turns /metrics off (404) and leaves the rest alone', async () => {
    const server = await startServerProcess({ metrics: false });
    try {
      const res = await fetch(`${server.httpUrl}/metrics`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ code: 'not-found' });
      expect((await fetch(`${server.httpUrl}/readyz`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});
