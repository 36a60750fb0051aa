/**
 * Peer 1: a Socket.IO server as a Node developer would write it for in-call messaging — rooms,
 * binary payloads and `socket.to(room).emit(...)`.
 *
 * Events (client → server):
 * - `join(room, ack)`: joins the room; `ack(n)` gives the client a small numeric id.
 * - `m(buf)`: relayed to the rest of the room as `m(n, buf)` (`n` = the sender's id, so receivers
 *   know who sent what, as Backchannel's receivers do).
 * - `c(to, count)`: flow-control credit ("I have received `count` of your messages"), relayed to
 *   participant `to` as `c(n, count)`. Socket.IO has no backpressure of its own (the server queues
 *   without limit in each connection's write buffer), so senders keep at most a window of unacked
 *   bytes in flight — the usual application-level fix, and what keeps memory bounded here.
 *
 * Websocket transport only (no long-polling), no per-message compression (the Socket.IO default).
 * Started by the benchmark with an IPC channel; reports `{ t: 'listening', url }` once bound.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const HOST = '127.0.0.1';
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: 64 * 1024 * 1024 });
const byNum = new Map();
let nextNum = 1;

io.on('connection', (socket) => {
  const n = nextNum++;
  byNum.set(n, socket);
  let room;
  socket.on('join', (name, ack) => {
    room = String(name);
    socket.join(room);
    if (typeof ack === 'function') ack(n);
  });
  socket.on('m', (buf) => {
    if (room) socket.to(room).emit('m', n, buf);
  });
  socket.on('c', (to, count) => {
    byNum.get(to)?.emit('c', n, count);
  });
  socket.on('disconnect', () => byNum.delete(n));
});

http.listen(0, HOST, () => {
  const { port } = http.address();
  process.send?.({ t: 'listening', url: `ws://${HOST}:${port}` });
});

const stop = () => {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
