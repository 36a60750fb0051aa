#!/usr/bin/env node
/**
 * `node bench/connect-rtt.mjs [N] [ONE_WAY_MS]`: what early frames (PROTOCOL.md) save on a link
 * with a real round-trip time. A TCP relay on 127.0.0.1 holds every chunk for ONE_WAY_MS (default
 * 10) in each direction, in order, between the client and a bench server with one member in the
 * room; `Client.connectAndJoin` is timed N times (default 40) with `earlyFrames` on and off, one
 * after the other in turn. The TCP handshake itself is not delayed (the relay accepts locally), so
 * the times are the HTTP upgrade and what follows it. Prints medians and p90 in ms, and the
 * difference in round trips. Build first (`npm run build`).
 */
import { createServer, connect } from 'node:net';
import { Client } from '@backchannel/client';
import { prepare } from './lib/clients.mjs';
import { startServer } from './lib/procs.mjs';
import { nowMs } from './lib/util.mjs';

const N = Number(process.argv[2] ?? 40);
const ONE_WAY_MS = Number(process.argv[3] ?? 10);

/** A relay to `port` that delays every chunk by ONE_WAY_MS, each direction in order. */
function delayingRelay(port) {
  const sockets = new Set();
  const relay = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    const pipe = (from, to) => {
      from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), ONE_WAY_MS));
      from.on('end', () => setTimeout(() => to.end(), ONE_WAY_MS));
    };
    pipe(inbound, outbound);
    pipe(outbound, inbound);
  });
  return new Promise((resolve) =>
    relay.listen(0, '127.0.0.1', () =>
      resolve({
        port: relay.address().port,
        close: () => {
          for (const s of sockets) s.destroy();
          relay.close();
        },
      }),
    ),
  );
}

const server = await startServer('backchannel');
const relay = await delayingRelay(Number(new URL(server.url).port));
try {
  const url = `ws://127.0.0.1:${relay.port}/`;
  const anchor = await Client.connect(server.url, await prepare('backchannel', 'anchor'));
  await anchor.joinConference('bench');
  const ms = { on: [], off: [] };
  for (let i = 0; i < N; i++) {
    for (const mode of i % 2 ? ['off', 'on'] : ['on', 'off']) {
      const token = await prepare('backchannel', `rtt-${mode}-${i}`);
      const t0 = nowMs();
      const { client } = await Client.connectAndJoin(url, token, 'bench', {}, { earlyFrames: mode === 'on' });
      ms[mode].push(nowMs() - t0);
      await client.close();
    }
  }
  await anchor.close();
  const q = (a, f) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(f * a.length))];
  const rtt = 2 * ONE_WAY_MS;
  console.log(`connectAndJoin through a relay adding ${ONE_WAY_MS} ms each way (round trip ${rtt} ms), ${N} each, in turn; ms`);
  for (const mode of ['on', 'off']) {
    console.log(`  earlyFrames ${mode.padEnd(3)}  p50 ${q(ms[mode], 0.5).toFixed(1)}  p90 ${q(ms[mode], 0.9).toFixed(1)}  (${(q(ms[mode], 0.5) / rtt).toFixed(2)} round trips)`);
  }
  console.log(`  saved: ${(q(ms.off, 0.5) - q(ms.on, 0.5)).toFixed(1)} ms at p50 (${((q(ms.off, 0.5) - q(ms.on, 0.5)) / rtt).toFixed(2)} round trips)`);
} finally {
  relay.close();
  await server.kill();
}
process.exit(0);
