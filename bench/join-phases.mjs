#!/usr/bin/env node
/**
 * `node bench/join-phases.mjs [N]`: where a join's time goes, from the client. Against a bench
 * server (started as run.mjs starts it) with one member already in the room, N times each (default
 * 300; the first 20 are left out of the medians): the WebSocket open (TCP connect and HTTP
 * upgrade), `hello` → welcome, the `conf.join` round trip (`Client.connect` then
 * `joinConference`), and `Client.connectAndJoin` (the join pipelined behind the hello: open, then
 * hello and join together). A first pass of as many joins, not counted, warms both processes up
 * (as the bench's `join` scenario does now). Prints medians in ms. Build first (`npm run build`).
 */
import WebSocket from 'ws';
import { Client, webSocketTransport } from '@backchannel/client';
import { prepare } from './lib/clients.mjs';
import { startServer } from './lib/procs.mjs';
import { nowMs } from './lib/util.mjs';

const N = Number(process.argv[2] ?? 300);
const median = (a) => {
  const s = a.slice(20).sort((x, y) => x - y);
  return s[s.length >> 1].toFixed(3);
};
/** The SDK's Node WebSocket settings (no compression). */
class NodeWebSocket extends WebSocket {
  constructor(url) {
    super(url, { perMessageDeflate: false });
  }
}

const server = await startServer('backchannel');
try {
  const anchor = await Client.connect(server.url, await prepare('backchannel', 'anchor'));
  await anchor.joinConference('bench');
  const tokens = await Promise.all(Array.from({ length: 4 * N }, (_, i) => prepare('backchannel', `phases-${i}`)));
  const factory = webSocketTransport(NodeWebSocket, { nodeBuffers: true, copiesOnSend: true });
  let openedAt = 0;
  const transport = async (url) => {
    const t = await factory(url);
    openedAt = nowMs();
    return t;
  };
  const p = { open: [], hello: [], join: [], connectThenJoin: [], pipelinedOpen: [], pipelinedHelloAndJoin: [], connectAndJoin: [] };
  for (let i = 0; i < 2 * N; i++) {
    if (i === N) for (const k of Object.keys(p)) p[k] = []; // the warm-up pass is not counted
    let t0 = nowMs();
    const c = await Client.connect(server.url, tokens[2 * i], { transport });
    const t1 = nowMs();
    await c.joinConference('bench');
    const t2 = nowMs();
    p.open.push(openedAt - t0);
    p.hello.push(t1 - openedAt);
    p.join.push(t2 - t1);
    p.connectThenJoin.push(t2 - t0);
    await c.close();
    if (!Client.connectAndJoin) continue; // an SDK from before pipelining
    t0 = nowMs();
    const { client } = await Client.connectAndJoin(server.url, tokens[2 * i + 1], 'bench', {}, { transport });
    const t3 = nowMs();
    p.pipelinedOpen.push(openedAt - t0);
    p.pipelinedHelloAndJoin.push(t3 - openedAt);
    p.connectAndJoin.push(t3 - t0);
    await client.close();
  }
  await anchor.close();
  console.log(`join phases, median of ${N - 20}, ms`);
  for (const [k, v] of Object.entries(p)) if (v.length > 20) console.log(`  ${k.padEnd(22)} ${median(v)}`);
} finally {
  await server.kill();
}
process.exit(0);
