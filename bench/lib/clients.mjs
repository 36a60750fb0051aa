/**
 * One client-side interface over the three systems, so every scenario runs the same application
 * code on each. A participant:
 *
 *   id                         Backchannel participant id, Socket.IO numeric id, or 0 (ws relay)
 *   openSender({ mode, receivers }) → { send(bytes) → boolean, drained() → Promise }
 *       send() returns false once the participant should wait; drained() resolves when it may
 *       send again. Every system gets the same high/low water marks (1 MiB / 256 KiB).
 *   receive(onData(bytes, from))   starts receiving the room's data
 *   close()                        leaves and disconnects
 *   errors                         data-path errors observed (a run with any is reported as failed)
 *   client                         (Backchannel only) the SDK's Client, for its connection events
 */
import { join as joinPath } from 'node:path';
import { pathToFileURL } from 'node:url';

// Each system's client library is loaded on first use, so a worker only pays for what it runs.
// `backchannel-baseline` is an earlier build of Backchannel (see baseline.mjs): its client SDK and
// server SDK come from that worktree, found through BENCH_BASELINE_DIR, which the orchestrator sets.
const fromBaseline = (path) => import(pathToFileURL(joinPath(process.env.BENCH_BASELINE_DIR ?? '', path)).href);
const lib = {
  backchannel: () => import('@backchannel/client'),
  serverSdk: () => import('@backchannel/server-sdk'),
  'backchannel-baseline': () => fromBaseline('packages/client/dist/index.node.js'),
  'serverSdk-baseline': () => fromBaseline('packages/server-sdk/dist/index.js'),
  socketio: () => import('socket.io-client'),
  ws: () => import('ws'),
};

/**
 * Variants of this checkout's build, run with other server settings (procs.mjs): `metrics: false`,
 * and TLS (clients connect to `wss://`, trusting the run's CA through NODE_EXTRA_CA_CERTS).
 */
export const VARIANTS = ['backchannel-nometrics', 'backchannel-tls'];

/** Whether `system` is a build of Backchannel (this checkout's, a variant of it, or the baseline's). */
export const isBackchannel = (system) => system === 'backchannel' || system === 'backchannel-baseline' || VARIANTS.includes(system);

/** API key and secret the benchmark's Backchannel server is configured with. */
export const BENCH_API_KEY = 'benchkey';
export const BENCH_API_SECRET = 'bench-secret-0123456789abcdef';

/** Stream id used by every Backchannel data session of the benchmark. */
const STREAM_ID = 100;
/** High and low water marks, the same for every system (Backchannel's client defaults). */
export const HIGH_WATER_BYTES = 1024 * 1024;
export const LOW_WATER_BYTES = 256 * 1024;
/** Socket.IO receivers return a credit after this many bytes from one sender. */
const CREDIT_EVERY_BYTES = LOW_WATER_BYTES / 2;

/** Mints what `join` needs before the clock starts (Backchannel: an access token; `hidden` grant optional). */
export async function prepare(system, name, { hidden = false } = {}) {
  if (!isBackchannel(system)) return undefined;
  const { createAccessToken } = await (system === 'backchannel-baseline' ? lib['serverSdk-baseline']() : lib.serverSdk());
  const grants = hidden ? { conferences: ['*'], hidden: true } : { conferences: ['*'] };
  return createAccessToken({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET, userId: name, grants, ttl: '2h' });
}

/** Connects and joins `room`; resolves with a participant. */
export function join(system, url, room, name, prepared) {
  switch (system) {
    case 'backchannel':
    case 'backchannel-baseline':
      return joinBackchannel(lib[system], url, room, name, prepared);
    case 'backchannel-nometrics':
    case 'backchannel-tls':
      return joinBackchannel(lib.backchannel, url, room, name, prepared);
    case 'socketio':
      return joinSocketIO(url, room);
    case 'ws':
      return joinWs(url, room);
    default:
      throw new Error(`unknown system ${system}`);
  }
}

async function joinBackchannel(load, url, room, name, token) {
  const { Client } = await load();
  // Connect and join in one round trip where the SDK can (an older baseline build cannot).
  const { client, conference: conf } = Client.connectAndJoin
    ? await Client.connectAndJoin(url, token, room, { displayName: name })
    : await Client.connect(url, token).then(async (c) => ({ client: c, conference: await c.joinConference(room, { displayName: name }) }));
  const errors = [];
  client.on('error', (e) => errors.push(`client error: ${e.code} ${e.message}`));
  conf.on('dataSessionError', (e) => errors.push(`data session error: ${e.code} ${e.message}`));
  return {
    id: client.participantId,
    errors,
    client,
    room: conf,
    async openSender({ mode = 'reliable-message' } = {}) {
      const tx = await conf.makeSendDataSession(STREAM_ID, mode, { destination: 'broadcast' });
      tx.on('closed', ({ reason }) => errors.push(`send session closed: ${reason.code} ${reason.message}`));
      tx.on('receiverDetached', ({ participantId, reason }) => errors.push(`receiver ${participantId} detached: ${reason.code} ${reason.message}`));
      return { send: (bytes) => tx.send(bytes), drained: () => tx.drained(), stats: () => tx.stats() };
    },
    async receive(onData) {
      const rx = await conf.makeRecvDataSession(STREAM_ID, (data, info) => onData(data, info.from));
      rx.on('closed', ({ from, reason }) => errors.push(`receive from ${from} closed: ${reason.code} ${reason.message}`));
      rx.on('dropped', ({ count }) => errors.push(`server dropped ${count} chunks`));
    },
    close: () => client.close(),
  };
}

async function joinSocketIO(url, room) {
  const { io: ioConnect } = await lib.socketio();
  const socket = ioConnect(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 20_000 });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const id = await socket.timeout(20_000).emitWithAck('join', room);
  const errors = [];
  socket.on('disconnect', (why) => {
    if (why !== 'io client disconnect') errors.push(`disconnected: ${why}`);
  });
  // Credits received from each receiver: bytes of ours it has received.
  const acked = new Map();
  let expected = 0;
  let sent = 0;
  let waiter;
  const inFlight = () => {
    if (acked.size < expected) return sent;
    let min = Infinity;
    for (const v of acked.values()) if (v < min) min = v;
    return sent - min;
  };
  socket.on('c', (from, bytes) => {
    acked.set(from, bytes);
    if (waiter && inFlight() < LOW_WATER_BYTES) {
      const w = waiter;
      waiter = undefined;
      w();
    }
  });
  return {
    id,
    errors,
    async openSender({ receivers }) {
      expected = receivers;
      return {
        send(bytes) {
          socket.emit('m', bytes);
          sent += bytes.byteLength;
          return inFlight() < HIGH_WATER_BYTES;
        },
        drained() {
          if (inFlight() < LOW_WATER_BYTES) return Promise.resolve();
          return new Promise((resolve) => (waiter = resolve));
        },
      };
    },
    async receive(onData) {
      const got = new Map(); // sender → [bytes received, bytes at the last credit]
      socket.on('m', (from, buf) => {
        onData(buf, from);
        let g = got.get(from);
        if (!g) got.set(from, (g = [0, 0]));
        g[0] += buf.byteLength;
        if (g[0] - g[1] >= CREDIT_EVERY_BYTES) {
          g[1] = g[0];
          socket.emit('c', from, g[0]);
        }
      });
    },
    close: async () => {
      if (socket.disconnected) return;
      const closed = new Promise((resolve) => socket.once('disconnect', resolve));
      socket.disconnect();
      await closed;
    },
  };
}

async function joinWs(url, room) {
  const { default: WebSocket } = await lib.ws();
  const ws = new WebSocket(`${url}/?room=${encodeURIComponent(room)}`, { perMessageDeflate: false });
  const errors = [];
  await new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => (!isBinary && String(data) === 'j' ? resolve() : reject(new Error('unexpected first message'))));
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('closed before joining')));
  });
  ws.on('error', (e) => errors.push(`socket error: ${e.message}`));
  ws.on('close', (code) => {
    if (code !== 1000 && code !== 1005) errors.push(`closed with ${code}`);
  });
  return {
    id: 0,
    errors,
    async openSender() {
      return {
        send(bytes) {
          ws.send(bytes);
          return ws.bufferedAmount < HIGH_WATER_BYTES;
        },
        drained: () => wsDrained(ws),
      };
    },
    async receive(onData) {
      ws.on('message', (data, isBinary) => {
        if (isBinary) onData(data, 0);
      });
    },
    close: async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000);
      await closed;
    },
  };
}

/**
 * Resolves once `ws` has sent its buffer down to LOW_WATER_BYTES (or closed): ws has no 'drain'
 * event of its own, so this waits for the TCP socket's, re-checking every 5 ms.
 */
export async function wsDrained(ws) {
  while (ws.readyState === ws.OPEN && ws.bufferedAmount >= LOW_WATER_BYTES) {
    await new Promise((resolve) => {
      const timer = setTimeout(done, 5);
      function done() {
        clearTimeout(timer);
        ws._socket?.off('drain', done);
        resolve();
      }
      ws._socket?.once('drain', done);
    });
  }
}
