// A receiver in its own process: joins a conference, counts messages on a stream id checking
// order and size, and reports progress as JSON lines on stdout.
import { Client } from '@backchannel/client';

const [url, token, room, streamId, count, size] = process.argv.slice(2);
const client = await Client.connect(url, token);
const conf = await client.joinConference(room);
let n = 0;
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
await conf.makeRecvDataSession(Number(streamId), (data, info) => {
  if (info.seq !== n || data.byteLength !== Number(size) || data[0] !== (n & 0xff) || data[data.byteLength - 1] !== (n & 0xff)) {
    out({ error: `message ${n}: got seq ${info.seq}, ${data.byteLength} bytes, first byte ${data[0]}` });
    process.exit(1);
  }
  if (++n % 16 === 0 && n < Number(count)) out({ progress: n });
  if (n === Number(count)) {
    out({ done: n });
    void client.close().then(() => process.exit(0));
  }
});
out({ ready: client.participantId });
