/**
 * The WebRTC datagram path between Node clients and a real server process (docs/webrtc.md):
 * the data channel is negotiated on first use (a sent, announced or late-joined `unreliable`
 * session; a client that never uses one opens no peer connection); `unreliable` data travels over
 * it (the path is asserted, not just delivery), in both hops, fragmented when large; a room mixes a WebRTC and a WebSocket-only participant; the
 * path falls back to the WebSocket when either side has WebRTC off or UDP is blocked; malformed
 * offers and candidates get clear errors and harm no one.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, ErrorCode, type TransportInfo } from '@backchannel/client';
import { deferred, within } from '../helpers/events.js';
import { scrape, scrapeUntil } from '../helpers/metrics.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { blockUdpPorts, nftUnavailable } from '../helpers/netns.js';
import { rawConnect } from '../helpers/raw.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const servers: ServerProcess[] = [];
const clients: Client[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
});

/** A server whose peer connections get 20 s to open (a loaded machine can take seconds), unless `config` says otherwise. */
async function server(config: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const s = await startServerProcess({ webrtcNegotiationTimeoutMs: 20_000, ...config }, env);
  servers.push(s);
  return s;
}

async function connect(s: ServerProcess, user: string, options: { webrtc?: boolean } = {}) {
  const c = await Client.connect(s.url, await s.token(user), options);
  clients.push(c);
  return c;
}

const pending = (info: TransportInfo) => info.webrtc === 'idle' || info.webrtc === 'connecting';

/**
 * Resolves once the client's WebRTC path has settled (open, failed, off or unavailable), with its
 * info; an idle path must first be wanted (an `unreliable` session).
 */
function settled(c: Client, timeoutMs = 10_000): Promise<TransportInfo> {
  if (!pending(c.transport)) return Promise.resolve(c.transport);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WebRTC still ${c.transport.webrtc} after ${timeoutMs} ms`)), timeoutMs);
    const off = c.on('transportChanged', (info) => {
      if (pending(info)) return;
      clearTimeout(timer);
      off();
      resolve(info);
    });
  });
}

/**
 * Sends `count` unreliable messages of `size` bytes (byte 0 = index) and collects what arrives. The
 * unreliable session makes both clients negotiate (if they have not): sending starts once both
 * paths have settled, and once `serverSide` (if given) resolves. Each end of a pre-negotiated
 * channel opens on its own: a client can see its channel open a moment before the server does, and
 * data the server relays in that moment goes over the WebSocket.
 */
async function exchange(from: Client, to: Client, room: string, streamId: number, count: number, size: number, serverSide?: () => Promise<unknown>) {
  const rf = await from.joinConference(room);
  const rt = await to.joinConference(room);
  const got: Uint8Array[] = [];
  const done = deferred();
  await rt.makeRecvDataSession(streamId, (d) => {
    got.push(d);
    if (got.length === count) done.resolve();
  });
  const tx = await rf.makeSendDataSession(streamId, 'unreliable');
  await Promise.all([settled(from), settled(to)]);
  await serverSide?.();
  for (let i = 0; i < count; i++) {
    const m = new Uint8Array(size).fill(i & 0xff);
    tx.send(m);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.race([done.promise, new Promise((r) => setTimeout(r, 3_000))]);
  await tx.close();
  await Promise.all([rf.leave(), rt.leave()]);
  return got;
}

describe('WebRTC datagram path (Node client)', () => {
  it('negotiates on first use: for a sent, an announced and a late-joined unreliable session; a client that never uses one opens no peer connection', async () => {
    const s = await server();
    const quiet = await connect(s, 'first-quiet');
    const tx = await connect(s, 'first-tx');
    const rx = await connect(s, 'first-rx');
    const late = await connect(s, 'first-late');
    for (const c of [quiet, tx, rx, late]) {
      expect(c.transport).toEqual({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'idle' });
      expect(c.transportStats.negotiationMs).toBeUndefined();
    }
    // Reliable data only: nothing to negotiate.
    const q = await quiet.joinConference('first-quiet-room');
    const other = await tx.joinConference('first-quiet-room');
    const got = deferred<Uint8Array>();
    await other.makeRecvDataSession(1, (d) => got.resolve(d));
    await (await q.makeSendDataSession(1, 'reliable-message')).send(new Uint8Array([1, 2, 3]));
    expect([...(await got.promise)]).toEqual([1, 2, 3]);
    expect(quiet.transport.webrtc).toBe('idle');
    expect(tx.transport.webrtc).toBe('idle');
    expect((await scrape(`${s.httpUrl}/metrics`)).value('backchannel_webrtc_peer_connections')).toBe(0);

    // The sender negotiates when it opens its session, the receiver when the session is announced.
    const rxRoom = await rx.joinConference('first-room');
    const txRoom = await tx.joinConference('first-room');
    const connecting = new Promise<TransportInfo>((resolve) => tx.once('transportChanged', resolve));
    await txRoom.makeSendDataSession(3, 'unreliable');
    expect(await connecting).toEqual({ unreliable: 'websocket', reliable: 'websocket', webrtc: 'connecting' });
    expect(await settled(tx)).toEqual({ unreliable: 'webrtc', reliable: 'websocket', webrtc: 'open' });
    expect((await settled(rx)).webrtc).toBe('open');
    expect(rxRoom.incomingSessions).toEqual([{ streamId: 3, from: tx.participantId, mode: 'unreliable' }]);
    // A late joiner learns of the session from the room snapshot, and negotiates then.
    expect(late.transport.webrtc).toBe('idle');
    await late.joinConference('first-room');
    expect(late.transport.webrtc).toBe('connecting');
    expect((await settled(late)).webrtc).toBe('open');
    expect(tx.transportStats.negotiationMs).toBeGreaterThan(0);

    // One peer connection each for the three that needed one, none for the quiet client.
    const m = await scrapeUntil(`${s.httpUrl}/metrics`, (x) => x.value('backchannel_webrtc_opened_total') === 3);
    expect(m.value('backchannel_webrtc_peer_connections')).toBe(3);
    expect(m.value('backchannel_webrtc_offers_total')).toBe(3);
    expect(quiet.transport.webrtc).toBe('idle');
  });

  it('carries unreliable data over the data channel in both hops, fragments what does not fit a datagram, and reports the path', async () => {
    const s = await server();
    const a = await connect(s, 'rtc-a');
    const b = await connect(s, 'rtc-b');

    // 40 small messages and 5 of 20 000 bytes (18 datagrams each).
    const bothOpen = () => scrapeUntil(`${s.httpUrl}/metrics`, (x) => x.value('backchannel_webrtc_opened_total') === 2);
    const small = await exchange(a, b, 'rtc-room', 7, 40, 100, bothOpen);
    expect(small.length).toBe(40);
    expect(a.transport).toEqual({ unreliable: 'webrtc', reliable: 'websocket', webrtc: 'open' });
    expect(b.transport.unreliable).toBe('webrtc');
    expect(a.transportStats.negotiationMs).toBeGreaterThan(0);
    const large = await exchange(a, b, 'rtc-room-2', 8, 5, 20_000);
    expect(large.length).toBe(5);
    for (const m of large) expect(m.every((x) => x === m[0])).toBe(true);

    // The path, not just delivery: both clients and the server moved the data as datagrams.
    expect(a.transportStats.datagramsOut).toBeGreaterThanOrEqual(40 + 5 * 18);
    expect(b.transportStats.datagramsIn).toBeGreaterThanOrEqual(40 + 5 * 18);
    const m = await scrapeUntil(`${s.httpUrl}/metrics`, (x) => (x.value('backchannel_webrtc_datagrams_in_total') ?? 0) >= 130);
    expect(m.value('backchannel_webrtc_datagrams_out_total')).toBeGreaterThanOrEqual(130);
    expect(m.value('backchannel_webrtc_opened_total')).toBe(2);
    expect(m.value('backchannel_webrtc_peer_connections')).toBe(2);
  });

  it('mixes a WebRTC participant and a WebSocket-only one in one room, both ways', async () => {
    const s = await server();
    const rtc = await connect(s, 'mix-rtc');
    const ws = await connect(s, 'mix-ws', { webrtc: false });
    expect(ws.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'off', reason: { code: ErrorCode.WebRtcUnavailable } });
    expect((await exchange(rtc, ws, 'mix-1', 9, 30, 200)).length).toBe(30);
    expect(rtc.transport.unreliable).toBe('webrtc');
    expect(ws.transport.webrtc).toBe('off');
    expect((await exchange(ws, rtc, 'mix-2', 9, 30, 200)).length).toBe(30);
    expect(rtc.transportStats.datagramsOut).toBeGreaterThanOrEqual(30);
    expect(rtc.transportStats.datagramsIn).toBeGreaterThanOrEqual(30);
    expect(ws.transportStats.datagramsIn + ws.transportStats.datagramsOut).toBe(0);
  });

  it('stays on the WebSocket when the server has WebRTC off, and says why', async () => {
    const s = await server({ webrtc: false });
    const a = await connect(s, 'off-a');
    const b = await connect(s, 'off-b');
    expect(a.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable } });
    expect((await exchange(a, b, 'off-room', 5, 20, 100)).length).toBe(20);
    expect(a.transportStats.datagramsOut).toBe(0);
    // A client that offers anyway is told so, with the stable code.
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('off-raw'));
    raw.send({ t: 'rtc.offer', id: 5, sdp: 'v=0\r\n' });
    const reply = await raw.waitFor((x) => 're' in x && x.re === 5);
    expect(reply).toMatchObject({ t: 'err', error: { code: ErrorCode.WebRtcUnavailable } });
    raw.ws.close();
  });

  it('answers malformed offers and candidates with clear errors, harming no one else', async () => {
    const s = await server();
    const good = await connect(s, 'bad-good');
    const other = await connect(s, 'bad-other');
    expect((await exchange(good, other, 'bad-room-0', 4, 10, 100)).length).toBe(10);
    expect(good.transport.webrtc).toBe('open');
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('bad-raw'));
    const ask = async (id: number, msg: Record<string, unknown>) => {
      raw.send({ ...msg, id });
      return raw.waitFor((x) => 're' in x && x.re === id);
    };
    expect(await ask(10, { t: 'rtc.candidate', candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', mid: '0' })).toMatchObject({ error: { code: ErrorCode.WebRtcBadCandidate } });
    expect(await ask(11, { t: 'rtc.offer', sdp: 'hello' })).toMatchObject({ error: { code: ErrorCode.WebRtcBadSdp } });
    expect(await ask(12, { t: 'rtc.offer', sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' })).toMatchObject({ error: { code: ErrorCode.WebRtcBadSdp } });
    const garbled = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=fingerprint:sha-256 zz\r\na=setup:actpass\r\n';
    expect(await ask(13, { t: 'rtc.offer', sdp: garbled })).toMatchObject({ t: 'err', error: { code: expect.stringMatching(/^webrtc-(bad-sdp|failed)$/) } });
    expect(await ask(14, { t: 'rtc.offer', sdp: 42 })).toMatchObject({ error: { code: ErrorCode.BadMessage } });
    expect(await ask(15, { t: 'rtc.candidate', candidate: 'candidate:x', mid: '0' })).toMatchObject({ error: { code: expect.stringMatching(/^webrtc-bad-candidate$/) } });
    // Each offer may make a peer connection: at most 10 a minute per client (3 were made above).
    for (let id = 16; id < 23; id++) expect(await ask(id, { t: 'rtc.offer', sdp: 'hello' })).toMatchObject({ error: { code: ErrorCode.WebRtcBadSdp } });
    expect(await ask(23, { t: 'rtc.offer', sdp: 'hello' })).toMatchObject({ error: { code: ErrorCode.RateLimited } });
    raw.ws.close();
    // The others' paths are untouched and carry data.
    expect(good.transport.webrtc).toBe('open');
    const before = good.transportStats.datagramsOut;
    expect((await exchange(good, other, 'bad-room', 4, 20, 100)).length).toBe(20);
    expect(good.transportStats.datagramsOut - before).toBeGreaterThanOrEqual(20);
  });

  it('closes a data channel the client opens on its own, and the peer connection of a client flooding datagrams beyond its limits', async () => {
    const s = await server({ maxDataFramesPerSecond: 100 });
    // A raw client: the negotiated channel plus one it opens in-band, which the server must refuse.
    const { default: ndc } = await import('node-datachannel');
    const raw = await rawConnect(s.url);
    await raw.hello(await s.token('rogue'));
    const pc = new ndc.PeerConnection('rogue', { iceServers: [] });
    const sdp = deferred<string>();
    let nextId = 100;
    pc.onLocalDescription((d) => sdp.resolve(d));
    pc.onLocalCandidate((candidate, mid) => raw.send({ t: 'rtc.candidate', id: nextId++, candidate: candidate.replace(/^a=/, ''), mid }));
    const ours = pc.createDataChannel('backchannel-unreliable', { negotiated: true, id: 0, unordered: true, maxRetransmits: 0 });
    const rogue = pc.createDataChannel('extra');
    const oursOpen = deferred();
    const rogueClosed = deferred();
    ours.onOpen(() => oursOpen.resolve());
    ours.onMessage(() => {});
    rogue.onMessage(() => {});
    rogue.onClosed(() => rogueClosed.resolve());
    raw.send({ t: 'rtc.offer', id: 20, sdp: await sdp.promise });
    const answer = (await raw.waitFor((x) => 're' in x && x.re === 20)) as { data: { sdp: string } };
    pc.setRemoteDescription(answer.data.sdp, 'answer');
    // Candidates the server finds after its answer follow as events, which a client applies.
    const applied = new Set<unknown>();
    const applyTrickled = () => {
      for (const m of raw.messages) {
        if (m.t !== 'rtc.candidate' || applied.has(m)) continue;
        applied.add(m);
        pc.addRemoteCandidate(m.candidate, m.mid);
      }
    };
    applyTrickled();
    raw.ws.on('message', applyTrickled);
    await within(oursOpen.promise, 'the negotiated channel to open', 25_000);
    await within(rogueClosed.promise, 'the server to close the channel the client opened');
    expect(ours.isOpen()).toBe(true);
    pc.close();
    raw.ws.close();

    // An SDK client over its frame limit for more than a second's worth: its peer connection goes.
    const a = await connect(s, 'flood-a');
    const conf = await a.joinConference('flood-room');
    const tx = await conf.makeSendDataSession(12, 'unreliable');
    expect((await settled(a)).webrtc).toBe('open');
    // The client may see its channel close before the server's rtc.closed arrives with the reason:
    // transportChanged then fires again when it does.
    const failed = new Promise<TransportInfo>((resolve) => a.on('transportChanged', (i) => i.webrtc === 'failed' && /beyond twice its data limits/.test(i.reason?.message ?? '') && resolve(i)));
    for (let i = 0; i < 1_000; i++) tx.send(new Uint8Array(20));
    const info = await within(failed, "the flooding client's path to fail with the reason");
    expect(info).toMatchObject({ unreliable: 'websocket', reason: { code: ErrorCode.WebRtcFailed } });
    expect(a.transport).toEqual(info);
  }, 60_000);

  it('falls back while the WebSocket is lost and opens a new data channel after the resume, visibly', async () => {
    const s = await server();
    const proxy = await startFaultProxy(s.port);
    try {
      const a = await Client.connect(proxy.url, await s.token('resume-a'));
      clients.push(a);
      const b = await connect(s, 'resume-b', { webrtc: false });
      // The path is wanted once a has had an unreliable session, and stays wanted across the resume.
      await (await (await a.joinConference('resume-first')).makeSendDataSession(2, 'unreliable')).close();
      expect((await settled(a)).webrtc).toBe('open');
      const changes: string[] = [];
      a.on('transportChanged', (i) => changes.push(`${i.webrtc}/${i.unreliable}`));
      const reopened = new Promise<void>((resolve) => a.on('transportChanged', (i) => i.webrtc === 'open' && resolve()));
      const resumed = new Promise<{ resumed: boolean }>((resolve) => a.once('reconnected', resolve));
      expect(proxy.cutAll()).toBe(1);
      expect((await resumed).resumed).toBe(true);
      await reopened;
      expect(changes[0]).toBe('failed/websocket');
      expect(changes.at(-1)).toBe('open/webrtc');
      const before = a.transportStats.datagramsOut;
      expect((await exchange(a, b, 'resume-room', 6, 20, 100)).length).toBe(20);
      expect(a.transportStats.datagramsOut - before).toBeGreaterThanOrEqual(20);
    } finally {
      await proxy.close();
    }
  });

  it('stays on the WebSocket where node-datachannel cannot be loaded, on the server or in a Node client', async () => {
    const preload = `--require=${new URL('../helpers/no-datachannel.cjs', import.meta.url).pathname}`;
    const s = await server({}, { NODE_OPTIONS: preload });
    expect(s.logs.some((l) => String(l.msg).startsWith('WebRTC is unavailable'))).toBe(true);
    const a = await connect(s, 'nolib-a');
    expect(a.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable } });
    // A Node client without the package, against a server that has it.
    const full = await server();
    const rx = await connect(full, 'nolib-rx');
    const room = await rx.joinConference('nolib-room');
    let got = 0;
    await room.makeRecvDataSession(11, () => void got++);
    const opts = { url: full.url, token: await full.token('nolib-tx'), room: 'nolib-room', streamId: 11, count: 20, hz: 200, size: 100, webrtc: true };
    const proc = spawn(process.execPath, [new URL('../helpers/webrtc-sender-proc.mjs', import.meta.url).pathname, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: preload } });
    const lines: Record<string, any>[] = [];
    createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
    expect(await new Promise((resolve) => proc.once('exit', resolve))).toBe(0);
    expect(lines[0]!.transport).toMatchObject({ unreliable: 'websocket', webrtc: 'unavailable', reason: { code: ErrorCode.WebRtcUnavailable } });
    expect(got).toBe(20);
  });

  it('falls back to the WebSocket within the negotiation time when UDP is blocked', async (ctx) => {
    const why = nftUnavailable();
    if (why) {
      ctx.skip();
      return;
    }
    // Below the ephemeral range (32768–60999 on Linux), so no other server's port falls in the blocked range.
    const min = 20_000 + (process.pid % 400) * 20;
    const unblock = blockUdpPorts(min, min + 19);
    try {
      const s = await server({ webrtcPortMin: min, webrtcPortMax: min + 19, webrtcNegotiationTimeoutMs: 1_500 });
      const a = await connect(s, 'udp-a');
      const b = await connect(s, 'udp-b', { webrtc: false });
      const conf = await a.joinConference('udp-first');
      const started = Date.now();
      await conf.makeSendDataSession(2, 'unreliable');
      const info = await settled(a, 5_000);
      expect(info).toMatchObject({ unreliable: 'websocket', webrtc: 'failed', reason: { code: ErrorCode.WebRtcFailed } });
      expect(Date.now() - started).toBeLessThan(4_000);
      expect((await exchange(a, b, 'udp-room', 3, 20, 100)).length).toBe(20);
      expect(a.transportStats.datagramsOut).toBe(0);
    } finally {
      unblock();
    }
  });
});
