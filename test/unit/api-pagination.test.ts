/**
 * Pages of the server API's lists: order, cursors, limits and the participant budget of a page,
 * and pages merged from the nodes of a cluster.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BackchannelError } from '@backchannel/protocol';
import { encodeCursor, mergePages, paginate, readPageRequest, type PageKey } from '../../packages/server/dist/api/pagination.js';

const item = (t: number, name: string, weight = 1) => ({ t, name, weight });
type Item = ReturnType<typeof item>;
const key = (i: Item): PageKey => [i.t, i.name];

describe('paginate', () => {
  const items = [item(3, 'c'), item(1, 'b'), item(1, 'a'), item(2, 'z')];

  it('orders by time then name and hands out a cursor while more follow', () => {
    const first = paginate(items, key, { limit: 3, after: undefined });
    expect(first.items.map((i) => i.name)).toEqual(['a', 'b', 'z']);
    expect(first.next).toBe(encodeCursor([2, 'z']));
    const second = paginate(items, key, readPageRequest(new URLSearchParams({ limit: '3', cursor: first.next! })));
    expect(second).toEqual({ items: [item(3, 'c')] });
  });

  it('ends a page early once its weight reaches the budget, but always serves one item', () => {
    const heavy = [item(1, 'a', 600), item(2, 'b', 600), item(3, 'c', 5000), item(4, 'd', 1)];
    const budget = { of: (i: Item) => i.weight, max: 1000 };
    const pages: string[][] = [];
    let after: PageKey | undefined;
    for (;;) {
      const page = paginate(heavy, key, { limit: 100, after }, budget);
      pages.push(page.items.map((i) => i.name));
      if (!page.next) break;
      after = readPageRequest(new URLSearchParams({ cursor: page.next })).after;
    }
    expect(pages).toEqual([['a', 'b'], ['c'], ['d']]);
  });

  it('defaults the limit to 100 and refuses bad limits and cursors with invalid-argument', () => {
    expect(readPageRequest(new URLSearchParams())).toEqual({ limit: 100, after: undefined });
    for (const q of ['limit=0', 'limit=1001', 'limit=1.5', 'cursor=%%%', `cursor=${Buffer.from('{"a":1}').toString('base64url')}`, `cursor=${'A'.repeat(5000)}`]) {
      expect(() => readPageRequest(new URLSearchParams(q)), q).toThrow(BackchannelError);
      try {
        readPageRequest(new URLSearchParams(q));
      } catch (e) {
        expect((e as BackchannelError).code).toBe('invalid-argument');
      }
    }
  });
});

describe('mergePages', () => {
  /** Every page of a walk with `limit` and `budget`, each page made by `pageOf`. */
  function walk(pageOf: (after: PageKey | undefined) => { items: Item[]; next?: string }): string[][] {
    const pages: string[][] = [];
    let after: PageKey | undefined;
    for (;;) {
      const page = pageOf(after);
      pages.push(page.items.map((i) => i.name));
      if (!page.next) return pages;
      after = readPageRequest(new URLSearchParams({ cursor: page.next })).after;
    }
  }

  it('walks items spread over several nodes page by page exactly as if one node held them all', () => {
    const arbItem = fc.record({ t: fc.integer({ min: 0, max: 20 }), weight: fc.integer({ min: 0, max: 50 }), node: fc.integer({ min: 0, max: 3 }) });
    fc.assert(
      fc.property(fc.array(arbItem, { maxLength: 40 }), fc.integer({ min: 1, max: 6 }), fc.option(fc.integer({ min: 1, max: 120 })), (raw, limit, max) => {
        const all = raw.map((r, i) => ({ ...item(r.t, `n${i}`, r.weight), node: r.node }));
        const budget = max === null ? undefined : { of: (i: Item) => i.weight, max };
        const nodes = [0, 1, 2, 3].map((n) => all.filter((i) => i.node === n));
        const single = walk((after) => paginate(all, key, { limit, after }, budget));
        const merged = walk((after) => mergePages(nodes.map((own) => paginate(own, key, { limit, after }, budget)), key, { limit, after }, budget));
        expect(merged).toEqual(single);
      }),
      { numRuns: 300 },
    );
  });
});
