/**
 * Peer 2: the smallest correct WebSocket relay, built on the `ws` package — the practical limit
 * for a WebSocket relay in Node.
 *
 * - Room membership: a client connects to `ws://host:port/?room=NAME` and is in that room until it
 *   disconnects; the relay then sends the text message `j` ("joined").
 * - Forwarding: every binary message is sent, unchanged and uncopied, to every other member.
 * - Backpressure: when a receiver's `bufferedAmount` passes HIGH_WATER_BYTES, the sender's socket is
 *   paused (`ws.pause()`, which stops reading from TCP, so the sender's own socket buffer fills and
 *   its client waits) until that receiver's socket drains. Queues are therefore bounded by the
 *   high-water mark plus what is already in flight; nothing grows without bound.
 *
 * Started by the benchmark with an IPC channel; reports `{ t: 'listening', url }` once bound.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const HOST = '127.0.0.1';
/** Per-receiver socket buffer level above which its senders are paused, bytes. */
const HIGH_WATER_BYTES = 1024 * 1024;

const rooms = new Map();
const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });

wss.on('connection', (ws, req) => {
  const name = new URL(req.url ?? '/', 'http://relay').searchParams.get('room') ?? 'default';
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Set()));
  room.add(ws);
  ws.blockers = 0; // receivers this socket is waiting on
  ws.waiting = null; // senders paused because of this socket
  ws.send('j');
  ws.on('message', (data, isBinary) => {
    if (!isBinary) return;
    for (const peer of room) {
      if (peer === ws || peer.readyState !== 1) continue;
      peer.send(data);
      if (peer.bufferedAmount > HIGH_WATER_BYTES) block(ws, peer);
    }
  });
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0) rooms.delete(name);
    release(ws);
  });
  ws.on('error', () => {});
});

/** Pauses `sender` until `receiver`'s socket has drained. */
function block(sender, receiver) {
  if (!receiver.waiting) {
    receiver.waiting = new Set();
    receiver._socket.once('drain', () => release(receiver));
  }
  if (receiver.waiting.has(sender)) return;
  receiver.waiting.add(sender);
  if (sender.blockers++ === 0) sender.pause();
}

/** `receiver` drained (or closed): resumes the senders that waited on it. */
function release(receiver) {
  const waiting = receiver.waiting;
  receiver.waiting = null;
  if (!waiting) return;
  for (const sender of waiting) if (--sender.blockers === 0 && sender.readyState === 1) sender.resume();
}

http.listen(0, HOST, () => {
  const { port } = http.address();
  process.send?.({ t: 'listening', url: `ws://${HOST}:${port}` });
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
