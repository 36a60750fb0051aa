/**
 * Preloaded (`--import`) by bench/fanout-stages.mjs only, into the server and the worker processes
 * of one system, to time the stages of a light fan-out on the clock every process shares
 * (`process.hrtime`, CLOCK_MONOTONIC). It reads the send timestamp the `sendRate` worker puts in
 * the first 8 bytes of every 100-byte message, and writes what it saw to
 * `$BENCH_STAGE_DIR/<role>-<pid>.json` every 250 ms and at exit:
 * - a worker: for each message it sent, µs from the stamp to the WebSocket library's `send` (the
 *   SDK's own path; for the relay's client, nothing) and to the socket write (`_writeGeneric`);
 * - a server: for each message, µs from the stamp to the read of a chunk the size of that message
 *   from a client, and to each write of it to a receiver, in order.
 * It wraps `net.Socket` methods and `DataView#setBigUint64`, which costs every system alike a few
 * hundred nanoseconds per call: compare systems within one run, not with the other scenarios.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const DIR = process.env.BENCH_STAGE_DIR;
const SIZE = 100;
const now = () => process.hrtime.bigint();
const us = (a, b) => Number(a - b) / 1000;
const argv = process.argv.join(' ');

function dumpTo(role, data) {
  const file = join(DIR, `${role}-${process.pid}.json`);
  const dump = () => writeFileSync(file, JSON.stringify(data()));
  process.on('exit', dump);
  setInterval(dump, 250).unref();
}

if (DIR && /worker\.mjs/.test(argv)) {
  // The sending worker: the stamp is the last value written at offset 0 of a 100-byte view.
  let forSend = 0n;
  let forWrite = 0n;
  const toSend = [];
  const toWrite = [];
  const setBig = DataView.prototype.setBigUint64;
  DataView.prototype.setBigUint64 = function (offset, value, little) {
    if (offset === 0 && this.byteLength === SIZE) forSend = forWrite = value;
    return setBig.call(this, offset, value, little);
  };
  const WebSocket = createRequire(import.meta.url)('ws');
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) {
    if (forSend) {
      toSend.push(us(now(), forSend));
      forSend = 0n;
    }
    return send.apply(this, args);
  };
  const write = net.Socket.prototype._writeGeneric;
  net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
    if (forWrite) {
      toWrite.push(us(now(), forWrite));
      forWrite = 0n;
    }
    return write.call(this, writev, data, encoding, cb);
  };
  dumpTo('worker', () => ({ toSend, toWrite }));
} else if (DIR && /cli\.js|peers\//.test(argv)) {
  // A server: a client's message arrives masked (its stamp unreadable), so the read is matched by
  // size (WebSocket header 6 + payload; Backchannel's frame adds its 16-byte header) and the
  // writes by the stamp, which leaves the server unmasked.
  const reads = new Set([SIZE + 6, SIZE + 22]);
  let readAt = 0n;
  const push = net.Socket.prototype.push;
  net.Socket.prototype.push = function (chunk, encoding) {
    if (chunk && reads.has(chunk.length)) readAt = now();
    return push.call(this, chunk, encoding);
  };
  const messages = new Map();
  const seen = (buf) => {
    let stamp;
    if (buf.length === SIZE + 16 && buf[0] === 0x12) stamp = buf.readBigUInt64BE(16);
    else if (buf.length === SIZE) stamp = buf.readBigUInt64BE(0);
    else return;
    let m = messages.get(stamp);
    if (!m) messages.set(stamp, (m = [us(readAt, stamp)]));
    m.push(us(now(), stamp));
  };
  const write = net.Socket.prototype._writeGeneric;
  net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
    if (writev) for (const c of data) seen(c.chunk ?? c);
    else if (Buffer.isBuffer(data)) seen(data);
    return write.call(this, writev, data, encoding, cb);
  };
  dumpTo('server', () => [...messages.values()]);
}
