/**
 * Readiness and drain, on a real server process: `/readyz` is distinct from `/healthz`; SIGTERM
 * makes the server not ready and refuses new clients, joins and calls while the rooms already
 * going on continue; the process exits once they have finished, or ends them with
 * `server-shutdown` when `drainTimeoutMs` has passed, and flushes webhooks before it exits.
 */
import { describe, expect, it } from 'vitest';
import { Client } from '@backchannel/client';
import { untilLog, webhookReceiver } from '../helpers/api.js';
import { next } from '../helpers/events.js';
import { startServerProcess } from '../helpers/server.js';

const decode = (d: Uint8Array) => new TextDecoder().decode(d);

describe('drain on SIGTERM', () => {
  it('refuses new clients, joins and calls while rooms go on; exits once they have finished', async () => {
    const server = await startServerProcess({ drainTimeoutMs: 30_000 });
    const exited = new Promise<number | null>((resolve) => server.proc.once('exit', resolve));
    expect(await (await fetch(`${server.httpUrl}/readyz`)).json()).toMatchObject({ status: 'ready' });
    const grants = { conferences: ['*'], calls: true };
    const ann = await Client.connect(server.url, await server.token('drain-ann', grants));
    const ben = await Client.connect(server.url, await server.token('drain-ben', grants));
    const annRoom = await ann.joinConference('drain-room');
    const benRoom = await ben.joinConference('drain-room');
    const got: string[] = [];
    let arrived: () => void = () => undefined;
    await benRoom.makeRecvDataSession(100, (d) => {
      got.push(decode(d));
      arrived();
    });
    const tx = await annRoom.makeSendDataSession(100, 'reliable-message');

    server.proc.kill('SIGTERM');
    await untilLog(server, (l) => typeof l.msg === 'string' && l.msg.startsWith('draining'));
    const ready = await fetch(`${server.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'draining' });
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200); // alive: do not restart it

    await expect(Client.connect(server.url, await server.token('drain-late'), { reconnect: false })).rejects.toMatchObject({ code: 'server-shutdown' });
    await expect(ann.joinConference('another-room')).rejects.toMatchObject({ code: 'server-shutdown' });
    await expect(ann.makeCall('drain-ben')).rejects.toMatchObject({ code: 'server-shutdown' });

    // The room that was going on goes on.
    const delivered = new Promise<void>((resolve) => (arrived = resolve));
    tx.send('still here');
    await delivered;
    expect(got).toEqual(['still here']);
    const tx2 = await annRoom.makeSendDataSession(101, 'unreliable');
    await tx2.close();

    await ann.close();
    await ben.close();
    expect(await exited).toBe(0);
    expect(server.logs.some((l) => l.msg === 'drained: every room has finished')).toBe(true);
  });

  it('ends the rooms left when drainTimeoutMs has passed, with server-shutdown, and flushes webhooks', async () => {
    const hooks = await webhookReceiver();
    const server = await startServerProcess({ drainTimeoutMs: 300, webhookUrls: [hooks.url] });
    const exited = new Promise<number | null>((resolve) => server.proc.once('exit', resolve));
    const ann = await Client.connect(server.url, await server.token('slow-ann'));
    const room = await ann.joinConference('slow-room');
    const ended = next<{ reason: { code: string } }>(room, 'ended');
    server.proc.kill('SIGTERM');
    expect((await ended).reason.code).toBe('server-shutdown');
    expect(await exited).toBe(0);
    expect(server.logs.some((l) => l.msg === 'drain time is up')).toBe(true);
    const types = hooks.deliveries.map((d) => JSON.parse(d.body) as { type: string; reason?: { code: string } });
    expect(types.at(-1)).toMatchObject({ type: 'conference.ended', reason: { code: 'server-shutdown' } });
    await ann.close();
    await hooks.close();
  });

  it('a second SIGTERM while draining shuts down at once', async () => {
    const server = await startServerProcess({ drainTimeoutMs: 60_000 });
    const exited = new Promise<number | null>((resolve) => server.proc.once('exit', resolve));
    const ann = await Client.connect(server.url, await server.token('twice-ann'));
    const room = await ann.joinConference('twice-room');
    const ended = next<{ reason: { code: string } }>(room, 'ended');
    server.proc.kill('SIGTERM');
    await untilLog(server, (l) => typeof l.msg === 'string' && l.msg.startsWith('draining'));
    server.proc.kill('SIGTERM');
    expect((await ended).reason.code).toBe('server-shutdown');
    expect(await exited).toBe(0);
    await ann.close();
  });
});
