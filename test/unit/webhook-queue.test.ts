import { describe, expect, it } from 'vitest';
import { DeliveryQueue, retryDelayMs, type DeliveryOutcome, type DeliveryReport, type DeliveryTask } from '../../packages/server/dist/webhooks/queue.js';
import { WebhookSequencer } from '../../packages/server/dist/webhooks/events.js';
import { deferred } from '../helpers/events.js';

/** A scripted endpoint: each attempt waits for the test to settle it. */
function endpoint() {
  const attempts: { task: DeliveryTask; attempt: number; signal: AbortSignal; settle: (o: DeliveryOutcome) => void }[] = [];
  const waiters = new Set<() => void>();
  const deliver = (task: DeliveryTask, signal: AbortSignal) => {
    const d = deferred<DeliveryOutcome>();
    attempts.push({ task, attempt: task.attempts, signal, settle: d.resolve });
    for (const w of waiters) w();
    return d.promise;
  };
  /** Resolves once `n` attempts have started. */
  const started = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => attempts.length >= n && (waiters.delete(check), resolve());
      waiters.add(check);
      check();
    });
  return { attempts, deliver, started };
}

function reports() {
  const list: DeliveryReport[] = [];
  const waiters = new Set<() => void>();
  return {
    list,
    report: (r: DeliveryReport) => {
      list.push(r);
      for (const w of waiters) w();
    },
    until: (pred: (l: DeliveryReport[]) => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => pred(list) && (waiters.delete(check), resolve());
        waiters.add(check);
        check();
      }),
  };
}

const task = (key: string, id: string, source = `user:${key}`, type = 'participant.joined'): DeliveryTask => ({ key, source, id, type, body: `{"id":"${id}"}`, attempts: 0 });
/** The counters of a queue that dropped nothing. */
const counts = (delivered: number, failedAttempts: number, retries = failedAttempts) => ({
  delivered,
  failedAttempts,
  retries,
  dropped: 0,
  droppedByReason: { attempts: 0, queueFull: 0, shutdown: 0 },
  droppedByType: {},
});
const OK: DeliveryOutcome = { ok: true, status: 200 };
const FAIL: DeliveryOutcome = { ok: false, status: 500, error: 'HTTP 500' };
const opts = { maxAttempts: 3, retryBaseMs: 1, retryMaxMs: 4, concurrency: 8, maxEvents: 100 };

describe('retryDelayMs', () => {
  it('doubles from the base up to the maximum (documented default schedule)', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, 1000, 60_000))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  });
});

describe('DeliveryQueue', () => {
  it('keeps each key in order and runs different keys concurrently', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, deliver: ep.deliver, report: r.report });
    q.push(task('room-a', 'a1'));
    q.push(task('room-a', 'a2'));
    q.push(task('room-b', 'b1'));
    await ep.started(2);
    expect(ep.attempts.map((a) => a.task.id)).toEqual(['a1', 'b1']);
    ep.attempts[1]!.settle(OK); // b1 done: a2 must still wait for a1
    await r.until((l) => l.length === 1);
    expect(ep.attempts).toHaveLength(2);
    ep.attempts[0]!.settle(OK);
    await ep.started(3);
    expect(ep.attempts[2]!.task.id).toBe('a2');
    ep.attempts[2]!.settle(OK);
    await r.until((l) => l.length === 3);
    expect(q.stats).toEqual(counts(3, 0));
    expect(q.pending).toBe(0);
  });

  it('retries a failed attempt with backoff, honours Retry-After, then delivers', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, retryBaseMs: 2, retryMaxMs: 50, deliver: ep.deliver, report: r.report });
    q.push(task('k', 'e1'));
    await ep.started(1);
    ep.attempts[0]!.settle(FAIL);
    await ep.started(2);
    ep.attempts[1]!.settle({ ...FAIL, status: 429, retryAfterMs: 30 });
    await ep.started(3);
    ep.attempts[2]!.settle(OK);
    await r.until((l) => l.some((x) => x.result === 'delivered'));
    expect(r.list.map((x) => (x.result === 'retry' ? x.delayMs : x.result))).toEqual([2, 30, 'delivered']);
    expect(ep.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(q.stats).toEqual(counts(1, 2));
  });

  it('drops an event after maxAttempts and moves on to the next of its key', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, deliver: ep.deliver, report: r.report });
    q.push(task('k', 'bad'));
    q.push(task('k', 'good'));
    for (let i = 1; i <= 3; i++) {
      await ep.started(i);
      ep.attempts[i - 1]!.settle(FAIL);
    }
    await ep.started(4);
    expect(ep.attempts[3]!.task.id).toBe('good');
    ep.attempts[3]!.settle(OK);
    await r.until((l) => l.some((x) => x.result === 'delivered'));
    expect(r.list.find((x) => x.result === 'dropped')).toMatchObject({ task: { id: 'bad', attempts: 3 }, reason: 'attempts', why: 'no success after 3 attempts' });
    expect(q.stats).toEqual({ ...counts(1, 3, 2), dropped: 1, droppedByReason: { attempts: 1, queueFull: 0, shutdown: 0 }, droppedByType: { 'participant.joined': 1 } });
  });

  it('limits requests in flight, and refuses events beyond maxEvents', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, concurrency: 2, maxEvents: 3, deliver: ep.deliver, report: r.report });
    expect(['a', 'b', 'c', 'd'].map((k) => q.push(task(k, k)))).toEqual([true, true, true, false]);
    await ep.started(2);
    expect(ep.attempts).toHaveLength(2);
    expect(r.list).toEqual([expect.objectContaining({ result: 'dropped', task: expect.objectContaining({ id: 'd' }) })]);
    ep.attempts[0]!.settle(OK);
    await ep.started(3);
    expect(ep.attempts[2]!.task.id).toBe('c');
    ep.attempts[1]!.settle(OK);
    ep.attempts[2]!.settle(OK);
    await r.until((l) => l.filter((x) => x.result === 'delivered').length === 3);
  });

  it('flush resolves once everything is delivered', async () => {
    const ep = endpoint();
    const q = new DeliveryQueue({ ...opts, deliver: ep.deliver, report: () => undefined });
    q.push(task('k', 'e1'));
    const flushed = q.flush(10_000);
    await ep.started(1);
    ep.attempts[0]!.settle(OK);
    expect(await flushed).toBe(0);
    expect(q.push(task('k', 'late'))).toBe(false);
  });

  it('flush gives up after its timeout: aborts attempts in flight and drops the rest', async () => {
    const ep = endpoint();
    const q = new DeliveryQueue({ ...opts, deliver: ep.deliver, report: () => undefined });
    q.push(task('k', 'e1'));
    q.push(task('k', 'e2'));
    await ep.started(1);
    expect(await q.flush(20)).toBe(2);
    expect(ep.attempts[0]!.signal.aborted).toBe(true);
    expect(q.stats.dropped).toBe(2);
    expect(q.stats.droppedByReason).toEqual({ attempts: 0, queueFull: 0, shutdown: 2 });
    expect(q.pending).toBe(0);
  });
});

describe('DeliveryQueue fairness and shedding', () => {
  it('at a full queue sheds the newest event of the source holding the most, never a lighter source’s', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, concurrency: 1, maxEvents: 5, deliver: ep.deliver, report: r.report });
    // One flooding user, one room per event (as a flood of calls makes).
    for (let i = 0; i < 5; i++) expect(q.push(task(`flood-${i}`, `f${i}`, 'user:flood', 'call.incoming'))).toBe(true);
    await ep.started(1);
    // The flooder's next event is its own loss…
    expect(q.push(task('flood-5', 'f5', 'user:flood', 'call.incoming'))).toBe(false);
    // …while another user's events displace the flooder's newest ones.
    expect(q.push(task('victim-1', 'v1', 'user:victim', 'call.incoming'))).toBe(true);
    expect(q.push(task('victim-2', 'v2', 'user:victim2', 'call.incoming'))).toBe(true);
    const dropped = r.list.filter((x) => x.result === 'dropped').map((x) => x.task.id);
    expect(dropped).toEqual(['f5', 'f4', 'f3']);
    expect(q.pending).toBe(5);
    expect(q.heldFor('user:flood')).toBe(3);
    expect(q.stats.droppedByReason).toEqual({ attempts: 0, queueFull: 3, shutdown: 0 });
    expect(q.stats.droppedByType).toEqual({ 'call.incoming': 3 });
  });

  it('never sheds an event while its attempt is in flight', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, concurrency: 2, maxEvents: 2, deliver: ep.deliver, report: r.report });
    q.push(task('a', 'a1', 'user:flood'));
    q.push(task('b', 'b1', 'user:flood'));
    await ep.started(2);
    // Both of the flooder's events are being attempted: nothing can be shed, so the newcomer waits its turn elsewhere.
    expect(q.push(task('v', 'v1', 'user:victim'))).toBe(false);
    ep.attempts[0]!.settle(OK);
    await r.until((l) => l.some((x) => x.result === 'delivered'));
    expect(q.push(task('v', 'v2', 'user:victim'))).toBe(true);
  });

  it('serves sources in turn: a user with one event waits at most one round behind a user with many', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, concurrency: 1, maxEvents: 1000, deliver: ep.deliver, report: r.report });
    for (let i = 0; i < 50; i++) q.push(task(`flood-${i}`, `f${i}`, 'user:flood'));
    q.push(task('victim', 'v1', 'user:victim'));
    // Without fairness v1 would be the 51st attempt; with it, it is among the first three.
    for (let i = 0; i < 3; i++) {
      await ep.started(i + 1);
      ep.attempts[i]!.settle(OK);
    }
    expect(ep.attempts.slice(0, 3).map((a) => a.task.id)).toContain('v1');
    q.stop();
  });

  it('sheds a flooder’s event that waits for a retry, and its room moves on to its next event', async () => {
    const ep = endpoint();
    const r = reports();
    const q = new DeliveryQueue({ ...opts, retryBaseMs: 60_000, retryMaxMs: 60_000, concurrency: 4, maxEvents: 2, deliver: ep.deliver, report: r.report });
    q.push(task('room', 'x1', 'user:flood'));
    q.push(task('room', 'x2', 'user:flood'));
    await ep.started(1);
    ep.attempts[0]!.settle(FAIL); // x1 now waits a minute for its retry
    await r.until((l) => l.some((x) => x.result === 'retry'));
    expect(q.push(task('v', 'v1', 'user:victim'))).toBe(true); // sheds x2 (newest)
    expect(q.push(task('w', 'w1', 'user:victim2'))).toBe(true); // sheds x1 (waiting for its retry)
    expect(r.list.filter((x) => x.result === 'dropped').map((x) => x.task.id)).toEqual(['x2', 'x1']);
    await ep.started(3);
    expect(ep.attempts.slice(1).map((a) => a.task.id).sort()).toEqual(['v1', 'w1']);
    q.stop();
  });
});

describe('WebhookSequencer', () => {
  const at = 1_700_000_000_000;
  const room = { kind: 'conference' as const, name: 'r' };
  it('numbers each room from 1, separately, and restarts after the room ended', () => {
    const s = new WebhookSequencer();
    const a1 = s.next({ type: 'conference.started', at, room });
    const c1 = s.next({ type: 'call.incoming', at, callId: 'CA_1', caller: { userId: 'u', displayName: 'U', participantId: 'PA_1' }, callee: 'v', appParam: 'x' });
    const a2 = s.next({ type: 'conference.ended', at, room, reason: { code: 'empty', message: '' }, durationMs: 5 });
    const a3 = s.next({ type: 'conference.started', at, room });
    expect([a1.sequence, c1.sequence, a2.sequence, a3.sequence]).toEqual([1, 1, 2, 1]);
    expect(c1).toMatchObject({ room: { kind: 'call', name: 'CA_1' }, callId: 'CA_1', callee: { userId: 'v' }, appParam: 'x', createdAt: at });
    expect(new Set([a1.id, c1.id, a2.id, a3.id]).size).toBe(4);
    expect(s.rooms).toBe(2);
  });
});
