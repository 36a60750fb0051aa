/**
 * Receivers: refusing a stream id can be undone, and a receiver can take one sender's session on a
 * stream id (telling senders apart) and stop that sender's flow without refusing the stream id.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, ErrorCode, type BackchannelError } from '@backchannel/client';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';
import { deferred, next } from '../helpers/events.js';
import { roomOf, text } from '../helpers/clients.js';

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

it('makeRecvDataSession after unsupportDataSession supports the stream id again: data flows', async () => {
  const [a, b] = await roomOf(server, 'resupport', ['rs-a', 'rs-b']);
  const tx = await a!.room.makeSendDataSession(300);
  const before = await b!.room.makeRecvDataSession(300);
  const unsupported = next<{ participantId: string }>(tx, 'unsupported');
  await b!.room.unsupportDataSession(300);
  expect((await unsupported).participantId).toBe(b!.client.participantId);
  expect(before.ended).toBe(true); // refusing the stream id ends its receivers
  tx.send('refused');
  const got = deferred<{ text: string; seq: number }>();
  await b!.room.makeRecvDataSession(300, (data, { seq }) => got.resolve({ text: text(data), seq }));
  tx.send('welcome back');
  expect(await got.promise).toEqual({ text: 'welcome back', seq: 1 }); // the refused message was never forwarded
  await Promise.all([a, b].map((x) => x!.client.close()));
});

it('a receiver per sender: each gets only its sender, the stream-wide receiver the rest; closing one stops that flow only', async () => {
  const [a, b, c] = await roomOf(server, 'per-sender', ['ps-a', 'ps-b', 'ps-c']);
  const rb = b!.room;
  const errors: BackchannelError[] = [];
  rb.on('dataSessionError', (e) => errors.push(e));
  const fromA: string[] = [];
  const others: string[] = [];
  // Resolves once `cond()` holds, re-checked on every delivery.
  const checks = new Set<() => void>();
  const until = (cond: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => cond() && (checks.delete(check), resolve());
      checks.add(check);
      check();
    });
  const record = (list: string[], item: string) => {
    list.push(item);
    for (const check of [...checks]) check();
  };
  const rxA = await rb.makeRecvDataSession(400, (d, info) => record(fromA, `${info.from === a!.client.participantId ? 'a' : '?'}:${text(d)}`), { from: a!.client.participantId });
  await expect(rb.makeRecvDataSession(400, undefined, { from: a!.client.participantId })).rejects.toMatchObject({ code: ErrorCode.ReceiverExists });
  const rxAny = await rb.makeRecvDataSession(400, (d, info) => record(others, `${info.from === c!.client.participantId ? 'c' : '?'}:${text(d)}`));
  const txA = await a!.room.makeSendDataSession(400);
  const txC = await c!.room.makeSendDataSession(400);
  rxAny.on('closed', () => record(others, 'closed'));
  txA.send('a1');
  txC.send('c1');
  await until(() => fromA.length === 1 && others.length === 1);
  expect(fromA).toEqual(['a:a1']);
  expect(others).toEqual(['c:c1']);

  // Stop a's flow: its data is neither delivered, nor held, nor handed to the stream-wide receiver.
  rxA.close();
  const fence = deferred();
  await rb.makeRecvDataSession(401, () => fence.resolve());
  const txFence = await a!.room.makeSendDataSession(401, 'reliable-message', { priority: 'low' });
  txA.send('a2');
  txFence.send('after a2'); // low priority: leaves a's SDK and the server only after a2
  txC.send('c2');
  await fence.promise;
  const rxA2Got = deferred<{ text: string; seq: number }>();
  await until(() => others.length === 2);
  expect(others).toEqual(['c:c1', 'c:c2']);
  // A new receiver for a resumes its flow with what a sends next (a2 was not kept for it).
  const rxA2 = await rb.makeRecvDataSession(400, (d, { seq }) => rxA2Got.resolve({ text: text(d), seq }), { from: a!.client.participantId });
  txA.send('a3');
  expect(await rxA2Got.promise).toEqual({ text: 'a3', seq: 2 });
  expect(others).toEqual(['c:c1', 'c:c2']);

  // A sender's session closing is told to its own receiver only.
  const closedA = next<{ from: string; reason: { code: string } }>(rxA2, 'closed');
  await txA.close();
  expect(await closedA).toMatchObject({ from: a!.client.participantId, reason: { code: 'closed' } });
  txC.send('c3');
  await until(() => others.length === 3);
  expect(others).toEqual(['c:c1', 'c:c2', 'c:c3']); // no 'closed' for a's session here
  expect(errors).toEqual([]);
  await Promise.all([a, b, c].map((x) => x!.client.close()));
});
