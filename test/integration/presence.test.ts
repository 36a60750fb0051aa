/**
 * Presence: who is in a room, batched per server turn, numbered so a join snapshot and the batches
 * after it never overlap; `presence: 'none'` members and the paged member list; and a room of
 * 2,000 members where every one ends with the exact member list.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackchannelError, Client, ErrorCode, type Conference, type RemoteParticipant } from '@backchannel/client';
import { API_KEY, API_SECRET, startServerProcess, type ServerProcess } from '../helpers/server.js';
import { next, until } from '../helpers/events.js';

let server: ServerProcess;
const clients: Client[] = [];
beforeAll(async () => {
  server = await startServerProcess({ maxParticipantsPerRoom: 5_000, webrtc: false });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server.stop();
});

async function connect(user: string): Promise<Client> {
  const c = await Client.connect(server.url, await server.token(user));
  clients.push(c);
  return c;
}

const ids = (conf: Conference) => [...conf.participants.keys()].sort();

describe('presence', () => {
  it('joins made in one turn arrive as one batch, each with its own event, and the lists agree', async () => {
    const a = await connect('batch-a');
    const confA = await a.joinConference('batch');
    const others = await Promise.all(['batch-b', 'batch-c', 'batch-d', 'batch-e'].map(connect));
    const singles: string[] = [];
    const batches: string[][] = [];
    confA.on('participantJoined', (p) => singles.push(p.id));
    confA.on('participantsJoined', (list) => batches.push(list.map((p) => p.id)));
    const confs = await Promise.all(others.map((c) => c.joinConference('batch')));
    await until(confA, 'participantsJoined', () => confA.participants.size === 4);
    // Every join once, in order, and the batches hold exactly those joins.
    expect(singles.sort()).toEqual(others.map((c) => c.participantId).sort());
    expect(batches.flat().sort()).toEqual(singles.sort());
    for (const [i, conf] of confs.entries()) {
      await until(conf, 'participantJoined', () => conf.participants.size === 4);
      expect(ids(conf)).toEqual([a, ...others].filter((c) => c !== others[i]).map((c) => c.participantId).sort());
    }
    // Leaves: per-participant events and one batch event, with the reason.
    const left: string[] = [];
    const leftBatch = next<{ participant: RemoteParticipant; reason: { code: string } }[]>(confA, 'participantsLeft');
    confA.on('participantLeft', (p) => left.push(p.id));
    await Promise.all([confs[0]!.leave(), confs[1]!.leave()]);
    await until(confA, 'participantLeft', () => confA.participants.size === 2);
    expect(left.sort()).toEqual([others[0]!.participantId, others[1]!.participantId].sort());
    expect((await leftBatch)[0]!.reason.code).toBe('left');
  });

  it('a participant is announced before any data session it opens reaches the others', async () => {
    const a = await connect('order-a');
    const confA = await a.joinConference('order');
    const seen: string[] = [];
    confA.on('participantJoined', (p) => seen.push(`joined ${p.id}`));
    confA.on('dataSessionIncoming', (s) => seen.push(`session ${s.from}`));
    const b = await connect('order-b');
    // Join and open in one go: the session request follows the join within the same turn.
    const confB = await b.joinConference('order');
    await confB.makeSendDataSession(7, 'reliable-message');
    await until(confA, 'dataSessionIncoming', () => seen.length === 2);
    expect(seen).toEqual([`joined ${b.participantId}`, `session ${b.participantId}`]);
  });

  it('metadata updates reach the others; changes folded in one batch show the latest state', async () => {
    const a = await connect('meta-a');
    const confA = await a.joinConference('meta');
    const b = await connect('meta-b');
    const joined = next<RemoteParticipant>(confA, 'participantJoined');
    const confB = await b.joinConference('meta', { metadata: { v: 1 } });
    await confB.updateMetadata({ v: 2 });
    const p = await joined;
    await until(confA, 'participantUpdated', () => (p.metadata as { v: number }).v === 2);
    expect(confA.participants.get(b.participantId)?.metadata).toEqual({ v: 2 });
    // A later joiner's snapshot already has v: 2 and stays consistent with later updates.
    const c = await connect('meta-c');
    const confC = await c.joinConference('meta');
    expect(confC.participants.get(b.participantId)?.metadata).toEqual({ v: 2 });
    await confB.updateMetadata({ v: 3 });
    await until(confC, 'participantUpdated', () => (confC.participants.get(b.participantId)?.metadata as { v: number }).v === 3);
  });

  it("presence 'none': no list and no events, others still see it, and the member list pages in join order", async () => {
    const members = await Promise.all(Array.from({ length: 7 }, (_, i) => connect(`none-${i}`)));
    const confs: Conference[] = [];
    for (const m of members) confs.push(await m.joinConference('none-room'));
    const quiet = await connect('none-quiet');
    const confQ = await quiet.joinConference('none-room', { presence: 'none' });
    expect(confQ.presence).toBe('none');
    expect(confQ.participants.size).toBe(0);
    let events = 0;
    confQ.on('participantJoined', () => events++);
    confQ.on('participantLeft', () => events++);
    // The others see the quiet member join.
    await until(confs[0]!, 'participantJoined', () => confs[0]!.participants.has(quiet.participantId));
    // Pages of 3: all seven others, oldest first, then no cursor.
    const seen: string[] = [];
    let page = await confQ.fetchParticipants({ limit: 3 });
    expect(page.total).toBe(7);
    seen.push(...page.participants.map((p) => p.id));
    while (page.next) {
      page = await confQ.fetchParticipants({ after: page.next, limit: 3 });
      seen.push(...page.participants.map((p) => p.id));
    }
    expect(seen).toEqual(members.map((m) => m.participantId));
    // Those listed on a page can be addressed: an RPC to one of them.
    confs[1]!.registerRpcMethod('hi', (inv) => `hi ${inv.caller}`);
    expect(await confQ.performRpc({ destination: members[1]!.participantId, method: 'hi' })).toBe(`hi ${quiet.participantId}`);
    // A leave in the middle of paging: the next page still starts after the cursor.
    const first = await confQ.fetchParticipants({ limit: 2 });
    await confs[2]!.leave();
    const rest = await confQ.fetchParticipants({ after: first.next!, limit: 10 });
    expect(rest.participants.map((p) => p.id)).toEqual(members.slice(3).map((m) => m.participantId));
    expect(rest.total).toBe(6);
    expect(rest.next).toBeUndefined();
    // A full member's pages leave itself out; a later join event reaches only full members.
    const page0 = await confs[0]!.fetchParticipants();
    expect(page0.participants.map((p) => p.id)).not.toContain(members[0]!.participantId);
    expect(page0.participants.map((p) => p.id)).toContain(quiet.participantId);
    const late = await connect('none-late');
    await late.joinConference('none-room');
    await until(confs[0]!, 'participantJoined', () => confs[0]!.participants.has(late.participantId));
    expect(events).toBe(0);
    // Bad arguments: clear errors, checked before anything is sent.
    await expect(confQ.fetchParticipants({ limit: 0 })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    await expect(confQ.fetchParticipants({ after: 'x' })).rejects.toBeInstanceOf(BackchannelError);
    await expect(quiet.joinConference('other', { presence: 'some' as 'none' })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
  });

  it('2,000 members: every one ends with the exact member list, after joins and after leaves', async () => {
    const PROCS = 4;
    const N = 2_000;
    const procs: ChildProcess[] = [];
    const replies = new Map<ChildProcess, Map<number, (m: any) => void>>();
    let re = 0;
    const call = (p: ChildProcess, msg: Record<string, unknown>): Promise<any> =>
      new Promise((res, rej) => {
        const id = ++re;
        replies.get(p)!.set(id, (m) => (m.error ? rej(new Error(m.error)) : res(m)));
        p.send({ ...msg, re: id });
      });
    try {
      for (let i = 0; i < PROCS; i++) {
        const p = fork(resolve(import.meta.dirname, '../helpers/presence-proc.mjs'), [API_KEY, API_SECRET], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        const map = new Map<number, (m: any) => void>();
        replies.set(p, map);
        const ready = new Promise<void>((res) =>
          p.on('message', (m: any) => {
            if (m.ready) return res();
            map.get(m.re)?.(m);
            map.delete(m.re);
          }),
        );
        procs.push(p);
        await ready;
      }
      const joined = await Promise.all(
        procs.map((p, i) => call(p, { cmd: 'join', url: server.url, room: 'big', names: Array.from({ length: N / PROCS }, (_, j) => `big-${i}-${j}`) })),
      );
      const all: string[] = joined.flatMap((r) => r.ids);
      expect(new Set(all).size).toBe(N);
      for (const r of await Promise.all(procs.map((p) => call(p, { cmd: 'expect', ids: all })))) expect(r).toMatchObject({ ok: true, clients: N / PROCS });
      // 10% leave (from every process at once): the rest converge on the smaller list.
      const gone = new Set((await Promise.all(procs.map((p) => call(p, { cmd: 'close', count: N / PROCS / 10 })))).flatMap((r) => r.ids as string[]));
      const remaining = all.filter((id) => !gone.has(id));
      for (const r of await Promise.all(procs.map((p) => call(p, { cmd: 'expect', ids: remaining })))) expect(r).toMatchObject({ ok: true, clients: (N / PROCS) * 0.9 });
    } finally {
      for (const p of procs) p.kill();
    }
  }, 180_000);
});
