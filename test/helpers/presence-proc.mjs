// Many participants in one process, for presence tests of large rooms. Driven over IPC:
//   { cmd: 'join', url, room, names, presence?, concurrency? } → { ids }
//   { cmd: 'expect', ids }   waits until every client here lists exactly `ids` minus itself
//                            → { ok, clients } or { ok: false, problems } if event counts disagree
//   { cmd: 'close', count }  closes the first `count` clients here → { ids }
//   { cmd: 'exit' }
import { Client } from '@backchannel/client';
import { createAccessToken } from '@backchannel/server-sdk';

const [apiKey, apiSecret] = process.argv.slice(2);
/** @type {{ client: Client, conf: any, initial: number, joined: number, left: number, batchJoined: number, batchLeft: number, check?: () => void }[]} */
let parts = [];

async function join({ url, room, names, presence, concurrency = 25 }) {
  const out = new Array(names.length);
  let next = 0;
  const one = async () => {
    while (next < names.length) {
      const i = next++;
      const token = await createAccessToken({ apiKey, apiSecret, userId: names[i], grants: { conferences: ['*'] }, ttl: '1h' });
      const client = await Client.connect(url, token);
      const conf = await client.joinConference(room, presence ? { presence } : {});
      const p = { client, conf, initial: conf.participants.size, joined: 0, left: 0, batchJoined: 0, batchLeft: 0 };
      conf.on('participantJoined', () => { p.joined++; p.check?.(); });
      conf.on('participantLeft', () => { p.left++; p.check?.(); });
      conf.on('participantsJoined', (list) => { p.batchJoined += list.length; });
      conf.on('participantsLeft', (list) => { p.batchLeft += list.length; });
      out[i] = p;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, one));
  parts.push(...out);
  return { ids: out.map((p) => p.client.participantId) };
}

/** Whether `p` lists exactly `want` minus itself. */
function matches(p, want) {
  const ps = p.conf.participants;
  if (ps.size !== want.size - (want.has(p.client.participantId) ? 1 : 0)) return false;
  for (const id of ps.keys()) if (!want.has(id)) return false;
  return true;
}

async function expectIds({ ids }) {
  const want = new Set(ids);
  await Promise.all(
    parts.map(
      (p) =>
        new Promise((resolve) => {
          if (matches(p, want)) return resolve();
          p.check = () => {
            if (!matches(p, want)) return;
            p.check = undefined;
            resolve();
          };
        }),
    ),
  );
  // Events must tell the same story as the list: each join and leave once, batches included.
  const problems = [];
  for (const p of parts) {
    const size = p.conf.participants.size;
    if (p.initial + p.joined - p.left !== size) problems.push(`${p.client.participantId}: ${p.initial} listed at join + ${p.joined} joined - ${p.left} left ≠ ${size}`);
    if (p.batchJoined !== p.joined || p.batchLeft !== p.left) problems.push(`${p.client.participantId}: batches ${p.batchJoined}/${p.batchLeft} vs events ${p.joined}/${p.left}`);
  }
  return problems.length ? { ok: false, problems: problems.slice(0, 10) } : { ok: true, clients: parts.length };
}

async function close({ count }) {
  const gone = parts.slice(0, count);
  parts = parts.slice(count);
  await Promise.all(gone.map((p) => p.client.close()));
  return { ids: gone.map((p) => p.client.participantId) };
}

process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'join') process.send({ re: msg.re, ...(await join(msg)) });
    else if (msg.cmd === 'expect') process.send({ re: msg.re, ...(await expectIds(msg)) });
    else if (msg.cmd === 'close') process.send({ re: msg.re, ...(await close(msg)) });
    else if (msg.cmd === 'exit') process.exit(0);
  } catch (error) {
    process.send({ re: msg.re, error: String(error?.stack ?? error) });
  }
});
process.send({ ready: true });
