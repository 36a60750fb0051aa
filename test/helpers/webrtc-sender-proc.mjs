// A sender in its own process (possibly inside a network namespace, see netns.ts): connects,
// joins a conference, opens an unreliable session (which starts the WebRTC negotiation), waits for
// its WebRTC path to settle and sends `count` unreliable messages of `size` bytes at `hz`, each
// carrying its index (u32) and send time (f64, ms since the epoch).
// Prints JSON lines: { ready, transport } once connected, { done, transport, stats } at the end.
import { Client } from '@backchannel/client';

const o = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const client = await Client.connect(o.url, o.token, { webrtc: o.webrtc, reconnect: false });
console.log(JSON.stringify({ ready: client.participantId, transport: client.transport }));
const room = await client.joinConference(o.room);
const tx = await room.makeSendDataSession(o.streamId, 'unreliable');
// The sender waits for its path to settle: open, or off / unavailable for good. A failed
// negotiation (under loss, say) is retried by the client, and sending meanwhile would go over the
// WebSocket, so the sender waits through it.
const ready = (i) => i.webrtc !== 'idle' && i.webrtc !== 'connecting' && i.webrtc !== 'failed';
if (!ready(client.transport)) {
  await new Promise((resolve) => {
    const timer = setTimeout(() => {
      console.log(JSON.stringify({ error: `the WebRTC path has not settled after 30 s: ${JSON.stringify(client.transport)}` }));
      process.exit(1);
    }, 30_000);
    client.on('transportChanged', (i) => ready(i) && (clearTimeout(timer), resolve()));
  });
}
const interval = 1000 / o.hz;
const start = now();
for (let i = 0; i < o.count; i++) {
  const due = start + i * interval;
  const wait = due - now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const m = new Uint8Array(o.size);
  const dv = new DataView(m.buffer);
  dv.setUint32(0, i);
  dv.setFloat64(4, now());
  tx.send(m);
}
await new Promise((r) => setTimeout(r, 500));
console.log(JSON.stringify({ done: o.count, transport: client.transport, stats: client.transportStats }));
await client.close();
process.exit(0);
