import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FairQueue, type QueueItem } from '@backchannel/protocol';

interface Item extends QueueItem {
  id: string;
}
const item = (id: string, size = 10, droppable = false): Item => ({ id, size, droppable });

function drain(q: FairQueue<Item>): string[] {
  const out: string[] = [];
  for (let n = q.shift(); n; n = q.shift()) out.push(n.item.id);
  return out;
}

describe('FairQueue', () => {
  it('serves higher priority classes first', () => {
    const q = new FairQueue<Item>();
    q.push('low', 2, item('l1'));
    q.push('normal', 1, item('n1'));
    q.push('high', 0, item('h1'));
    q.push('high', 0, item('h2'));
    expect(drain(q)).toEqual(['h1', 'h2', 'n1', 'l1']);
  });

  it('round-robins sessions of one class, so a small message is not stuck behind a big transfer', () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 5; i++) q.push('file', 1, item(`f${i}`));
    q.push('chat', 1, item('c0'));
    expect(drain(q)).toEqual(['f0', 'c0', 'f1', 'f2', 'f3', 'f4']);
  });

  it('drops the oldest droppable items beyond the cap and keeps markers', () => {
    const q = new FairQueue<Item>();
    q.push('u', 1, item('a', 10, true));
    q.push('u', 1, item('m', 0, false));
    q.push('u', 1, item('b', 10, true));
    const dropped = q.push('u', 1, item('c', 10, true), 20);
    expect(dropped.map((d) => d.id)).toEqual(['a']);
    expect(q.bytesOf('u')).toBe(20);
    expect(drain(q)).toEqual(['m', 'b', 'c']);
  });

  it('keeps per-session FIFO order and exact byte accounting under any interleaving', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), pri: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>, size: fc.nat(100), shift: fc.boolean() })),
        (ops) => {
          const q = new FairQueue<Item & { key: string; n: number }>();
          const prio: Record<string, 0 | 1 | 2> = {};
          const counters: Record<string, number> = {};
          const lastSeen: Record<string, number> = {};
          let bytes = 0;
          for (const op of ops) {
            if (op.shift) {
              const n = q.shift();
              if (n) {
                bytes -= n.item.size;
                expect(n.item.n).toBeGreaterThan(lastSeen[n.key] ?? -1);
                lastSeen[n.key] = n.item.n;
              }
            } else {
              // A session keeps the class it was created with while it has items.
              const pri = q.lengthOf(op.key) > 0 ? prio[op.key]! : op.pri;
              prio[op.key] = pri;
              const n = (counters[op.key] = (counters[op.key] ?? 0) + 1);
              q.push(op.key, pri, { id: `${op.key}${n}`, size: op.size, droppable: false, key: op.key, n });
              bytes += op.size;
            }
            expect(q.bytes).toBe(bytes);
          }
        },
      ),
    );
  });

  it("counts a session's progress from its own first item, when its queue reuses the ring of one that emptied", () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 100; i++) q.push('big', 1, item(`b${i}`)); // grows the ring past its first size
    drain(q);
    expect(q.takenOf('big')).toBe(-1);
    q.push('next', 1, item('n0'));
    q.push('next', 1, item('n1'));
    expect(q.takenOf('next')).toBe(0);
    expect(q.next()?.id).toBe('n0');
    expect(q.takenOf('next')).toBe(1);
    expect(q.lengthOf('next')).toBe(1);
    for (let i = 2; i < 300; i++) q.push('next', 1, item(`n${i}`)); // past the spare's size too
    expect(drain(q)).toEqual(Array.from({ length: 299 }, (_, i) => `n${i + 1}`));
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
  });

  it('serves in the same order as a reference model (strict priority, round-robin in arrival order) under pushes, drops, clears and priority changes', () => {
    /** The reference: per class, the ready sessions in a Set (insertion order); the first is served and moved to the back. */
    class Model {
      queues = new Map<string, { pri: 0 | 1 | 2; items: Item[] }>();
      ready: Array<Set<string>> = [new Set(), new Set(), new Set()];
      push(key: string, pri: 0 | 1 | 2, it: Item): void {
        let q = this.queues.get(key);
        if (!q) this.queues.set(key, (q = { pri, items: [] }));
        q.items.push(it);
        if (q.items.length === 1) this.ready[q.pri]!.add(key);
      }
      next(): string | undefined {
        for (const ready of this.ready) {
          const key = ready.values().next().value;
          if (key === undefined) continue;
          const q = this.queues.get(key)!;
          const it = q.items.shift()!;
          ready.delete(key);
          if (q.items.length > 0) ready.add(key);
          else this.queues.delete(key);
          return it.id;
        }
        return undefined;
      }
      clear(key: string): void {
        const q = this.queues.get(key);
        if (!q) return;
        this.ready[q.pri]!.delete(key);
        this.queues.delete(key);
      }
      setPriority(key: string, pri: 0 | 1 | 2): void {
        const q = this.queues.get(key);
        if (!q || q.pri === pri) return;
        if (this.ready[q.pri]!.delete(key)) this.ready[pri]!.add(key);
        q.pri = pri;
      }
    }
    const op = fc.record({
      kind: fc.constantFrom('push', 'push', 'push', 'push', 'next', 'next', 'clear', 'prio', 'trim'),
      key: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
      pri: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const q = new FairQueue<Item>();
        const m = new Model();
        let n = 0;
        for (const o of ops) {
          if (o.kind === 'push') {
            const it = item(`${o.key}${n++}`);
            q.push(o.key, o.pri, it);
            m.push(o.key, o.pri, it);
          } else if (o.kind === 'next') expect(q.next()?.id).toBe(m.next());
          else if (o.kind === 'clear') {
            q.clear(o.key);
            m.clear(o.key);
          } else if (o.kind === 'trim') q.trim();
          else {
            q.setPriority(o.key, o.pri);
            m.setPriority(o.key, o.pri);
          }
          // A queue that emptied hands its ring on to the next session that gets an item: every
          // session's count and bytes stay its own.
          for (const key of ['a', 'b', 'c', 'd', 'e']) {
            const items = m.queues.get(key)?.items ?? [];
            expect(q.lengthOf(key)).toBe(items.length);
            expect(q.bytesOf(key)).toBe(items.length * 10);
          }
        }
        const rest: Array<string | undefined> = [];
        for (let id = m.next(); id !== undefined; id = m.next()) rest.push(id);
        expect(drain(q)).toEqual(rest);
      }),
      { numRuns: 500 },
    );
  });
});
