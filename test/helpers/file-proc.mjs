// One end of a file transfer in its own process, reporting JSON lines on stdout:
//   receive <url> <token> <room> <topic>   → {ready}, then {done, bytes, sha256, seconds, maxRssBytes}
//   send <url> <token> <room> <topic> <path> → waits for another participant, sends the file, then {done, …}
import { createHash } from 'node:crypto';
import { Client } from '@backchannel/client';

const [mode, url, token, room, topic, path] = process.argv.slice(2);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const client = await Client.connect(url, token);
const conf = await client.joinConference(room);
const maxRssBytes = () => process.resourceUsage().maxRSS * 1024;

if (mode === 'receive') {
  conf.registerStreamHandler(topic, async (reader) => {
    const start = performance.now();
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of reader) {
        hash.update(chunk);
        bytes += chunk.byteLength;
      }
    } catch (e) {
      out({ error: `${e.code}: ${e.message}` });
      process.exit(1);
    }
    out({ done: true, bytes, sha256: hash.digest('hex'), name: reader.info.name, seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() });
    await client.close();
    process.exit(0);
  });
  out({ ready: client.participantId });
} else {
  if (conf.participants.size === 0) await new Promise((r) => conf.once('participantJoined', r));
  const start = performance.now();
  const { bytes } = await conf.sendFile(topic, path);
  out({ done: true, bytes, seconds: (performance.now() - start) / 1000, maxRssBytes: maxRssBytes() });
  await client.close();
  process.exit(0);
}
