/**
 * A receiver only ever gets whole `reliable-message` messages: fragments that do not belong to the
 * message being reassembled (another message's, or a continuation without its start) make the SDK
 * drop the incomplete message and report it, never deliver a part as if it were whole. The frames
 * are crafted by a raw protocol client and pass through the real server.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, ErrorCode, type BackchannelError } from '@backchannel/client';
import { encodeDataFrame } from '@backchannel/protocol';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred } from '../helpers/events.js';
import { rawConnect } from '../helpers/raw.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

it('drops and reports a message cut short by the next one, and a tail without its start; delivers only whole messages', async () => {
  const b = await Client.connect(server.url, await server.token('wm-b'));
  const rb = await b.joinConference('wm');
  const raw = await rawConnect(server.url);
  await raw.hello(await server.token('wm-raw'));
  raw.send({ t: 'conf.join', id: 2, name: 'wm' });
  const { data } = (await raw.waitFor((m) => 're' in m && m.re === 2)) as { data: { room: number; self: { id: string } } };
  const errors: BackchannelError[] = [];
  rb.on('dataSessionError', (e) => errors.push(e));
  const got: { text: string; seq: number }[] = [];
  const last = deferred();
  await rb.makeRecvDataSession(100, (bytes, info) => {
    got.push({ text: dec(bytes), seq: info.seq });
    if (info.seq === 5) last.resolve();
  });
  raw.send({ t: 'ds.open', id: 3, room: data.room, streamId: 100, mode: 'reliable-message', destination: 'broadcast', priority: 'normal' });
  await raw.waitFor((m) => 're' in m && m.re === 3);
  const frame = (seq: number, fin: boolean, text: string) => raw.sendBytes(encodeDataFrame({ mode: 'reliable-message', fin, streamId: 100, room: data.room, sender: 0, seq }, enc(text)));

  frame(0, false, 'one-');
  frame(0, true, 'whole'); //          seq 0: "one-whole"
  frame(1, false, 'cut-'); //          seq 1 never ends…
  frame(2, true, 'two'); //            …seq 2 follows: seq 1 was cut short
  frame(3, false, 'three-');
  frame(3, true, 'whole'); //          seq 3: "three-whole"
  frame(3, false, 'tail-'); //         a continuation of seq 3 after its end…
  frame(3, true, 'end'); //            …is not a message
  frame(4, true, 'four');
  frame(5, false, 'five-');
  frame(5, true, 'whole');
  await last.promise;

  expect(got).toEqual([
    { text: 'one-whole', seq: 0 },
    { text: 'two', seq: 2 },
    { text: 'three-whole', seq: 3 },
    { text: 'four', seq: 4 },
    { text: 'five-whole', seq: 5 },
  ]);
  expect(errors.map((e) => ({ code: e.code, details: e.details }))).toEqual([
    { code: ErrorCode.MessageIncomplete, details: { streamId: 100, from: data.self.id, seq: 1 } },
    { code: ErrorCode.MessageIncomplete, details: { streamId: 100, from: data.self.id, seq: 3 } },
  ]);
  raw.ws.close();
  await b.close();
});
