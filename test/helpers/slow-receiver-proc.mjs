// A receiving app that does not read, in its own process (run with --expose-gc): joins a
// conference, makes an iterator receiver on a stream id and leaves it unread. Reports JSON lines
// on stdout: {ready, memory} once joined, and, for each line on stdin, {memory, stats, closed}.
import { createInterface } from 'node:readline';
import { Client } from '@backchannel/client';

const [url, token, room, streamId] = process.argv.slice(2);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const memory = () => {
  globalThis.gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
};
const client = await Client.connect(url, token);
const conf = await client.joinConference(room);
const rx = await conf.makeRecvDataSession(Number(streamId));
const closed = [];
rx.on('closed', ({ reason }) => closed.push(reason.code));
out({ ready: client.participantId, memory: memory() });
createInterface({ input: process.stdin }).on('line', () => out({ memory: memory(), stats: rx.stats(), closed }));
