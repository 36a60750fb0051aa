/**
 * Pages of the server API's list endpoints: `?limit=` (default 100, at most 1000) and an opaque
 * `?cursor=` taken from the previous page's `next`. Items are ordered by a key (creation or join
 * time, then name or id) and a cursor is the key of the last item served, so a walk through the
 * pages sees every item that exists throughout it exactly once, however items come and go
 * meanwhile; items created during the walk appear if they sort after the cursor. In a cluster each
 * node serves its own page for the same request and {@link mergePages} makes the page one server
 * holding every node's items would have served, so the cursors work across nodes unchanged.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { API_PAGE_LIMIT_DEFAULT, API_PAGE_LIMIT_MAX } from '@backchannel/server-sdk';

/** Sort key of an item: a time (ms) and a unique name or id to break ties. */
export type PageKey = readonly [number, string];

/** A validated page request. */
export interface PageRequest {
  limit: number;
  /** Key of the last item of the previous page. */
  after: PageKey | undefined;
}

/** Longest cursor accepted (a cursor holds one key: a number and a name of at most a few hundred characters). */
const MAX_CURSOR_LENGTH = 2_048;

/** Reads `limit` and `cursor` from `query`; `invalid-argument` (with `details.parameter`) if either is malformed. */
export function readPageRequest(query: URLSearchParams): PageRequest {
  const rawLimit = query.get('limit');
  let limit = API_PAGE_LIMIT_DEFAULT;
  if (rawLimit !== null) {
    limit = /^\d{1,7}$/.test(rawLimit) ? Number(rawLimit) : NaN;
    if (!(limit >= 1 && limit <= API_PAGE_LIMIT_MAX)) {
      throw new BackchannelError(ErrorCode.InvalidArgument, `limit must be an integer from 1 to ${API_PAGE_LIMIT_MAX} (got ${JSON.stringify(rawLimit.slice(0, 32))})`, {
        details: { parameter: 'limit' },
      });
    }
  }
  const cursor = query.get('cursor');
  return { limit, after: cursor === null || cursor === '' ? undefined : decodeCursor(cursor) };
}

/** The opaque text of a cursor at `key`. */
export function encodeCursor(key: PageKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): PageKey {
  let key: unknown;
  try {
    key = cursor.length <= MAX_CURSOR_LENGTH && /^[A-Za-z0-9_-]+$/.test(cursor) ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) : undefined;
  } catch {
    key = undefined;
  }
  if (Array.isArray(key) && key.length === 2 && Number.isFinite(key[0]) && typeof key[1] === 'string') return [key[0] as number, key[1]];
  throw new BackchannelError(ErrorCode.InvalidArgument, 'cursor is not a cursor this server issued (pass the `next` of the previous page unchanged)', {
    details: { parameter: 'cursor' },
  });
}

function compare(a: PageKey, b: PageKey): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/**
 * One page of `items` in key order after `req.after`: at most `req.limit` items, and fewer once
 * their summed `weight` reaches `maxWeight` (the page always holds at least one item). `next` is
 * set when more items follow.
 */
export function paginate<T>(
  items: Iterable<T>,
  keyOf: (item: T) => PageKey,
  req: PageRequest,
  weight?: { of: (item: T) => number; max: number },
): { items: T[]; next?: string } {
  const after = req.after;
  const candidates: { item: T; key: PageKey }[] = [];
  for (const item of items) {
    const key = keyOf(item);
    if (after === undefined || compare(key, after) > 0) candidates.push({ item, key });
  }
  candidates.sort((a, b) => compare(a.key, b.key));
  const page: T[] = [];
  let total = 0;
  for (const { item } of candidates) {
    if (page.length === req.limit || (weight && page.length > 0 && total >= weight.max)) break;
    page.push(item);
    if (weight) total += weight.of(item);
  }
  if (page.length === candidates.length) return { items: page };
  return { items: page, next: encodeCursor(candidates[page.length - 1]!.key) };
}

/**
 * The page of `req` over the items of several sources (cluster nodes), given the page each source
 * served for the same `req` (with the same `weight`). Every item of the combined page is on its
 * source's own page: it sorts no later, and neither its rank nor its source's share of the weight
 * before it can exceed what the combined page allows. So paginating the union of the pages gives
 * the combined page; it is followed by more if any source had more.
 */
export function mergePages<T>(
  pages: readonly { items: T[]; next?: string }[],
  keyOf: (item: T) => PageKey,
  req: PageRequest,
  weight?: { of: (item: T) => number; max: number },
): { items: T[]; next?: string } {
  const page = paginate(pages.flatMap((p) => p.items), keyOf, req, weight);
  const last = page.items.at(-1);
  if (page.next || last === undefined || !pages.some((p) => p.next)) return page;
  return { items: page.items, next: encodeCursor(keyOf(last)) };
}
