/**
 * Grants: what an access token allows. Carried in the token's `bc` claim; checked by the server on
 * connect and on every action.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';

/** Grants as given when minting a token. Omitted fields take the defaults in {@link DEFAULT_GRANTS}. */
export interface Grants {
  /** May make and receive 1:1 calls. Default true. */
  calls?: boolean;
  /**
   * Conferences this token may join: exact names, prefixes ending in `*` (`'team-*'`), or `'*'` for
   * any. Default none.
   */
  conferences?: string[];
  /** May open send data sessions. Default true. */
  publishData?: boolean;
  /** May receive data sessions. Default true. */
  subscribeData?: boolean;
  /** If set, the only stream ids this participant may send on. */
  streamIds?: number[];
  /** May update its own metadata. Default true. */
  updateOwnMetadata?: boolean;
  /** Joins rooms without being listed to other participants. Default false. */
  hidden?: boolean;
  /** May call the server API (for app servers, not end users). Default false. */
  admin?: boolean;
}

/** Grants with every field decided. */
export type ResolvedGrants = Required<Omit<Grants, 'streamIds'>> & { streamIds?: number[] };

/** Defaults applied to omitted grants. */
export const DEFAULT_GRANTS: Readonly<ResolvedGrants> = Object.freeze({
  calls: true,
  conferences: [],
  publishData: true,
  subscribeData: true,
  updateOwnMetadata: true,
  hidden: false,
  admin: false,
});

/**
 * Fills omitted grants with their defaults. Throws a {@link BackchannelError} `invalid-argument`
 * naming the first bad field (`details.field`, e.g. `grants.calls`).
 */
export function resolveGrants(input: unknown): ResolvedGrants {
  const g = (input ?? {}) as Record<string, unknown>;
  if (typeof g !== 'object' || Array.isArray(g)) throw invalid('grants', 'grants must be an object');
  const out: ResolvedGrants = { ...DEFAULT_GRANTS, conferences: [] };
  for (const key of ['calls', 'publishData', 'subscribeData', 'updateOwnMetadata', 'hidden', 'admin'] as const) {
    if (g[key] === undefined) continue;
    if (typeof g[key] !== 'boolean') throw invalid(`grants.${key}`, `grants.${key} must be a boolean`);
    out[key] = g[key] as boolean;
  }
  if (g.conferences !== undefined) {
    if (!Array.isArray(g.conferences) || !g.conferences.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 256)) {
      throw invalid('grants.conferences', 'grants.conferences must be an array of non-empty names (at most 256 characters) or prefixes ending in "*"');
    }
    out.conferences = [...g.conferences];
  }
  if (g.streamIds !== undefined) {
    if (!Array.isArray(g.streamIds) || !g.streamIds.every((s) => Number.isInteger(s) && s >= 1 && s <= 65535)) {
      throw invalid('grants.streamIds', 'grants.streamIds must be an array of integers 1–65535');
    }
    out.streamIds = [...g.streamIds];
  }
  return out;
}

function invalid(field: string, message: string): BackchannelError {
  return new BackchannelError(ErrorCode.InvalidArgument, message, { details: { field } });
}

/** Whether `grants` allow joining the conference called `name`. */
export function mayJoinConference(grants: Pick<ResolvedGrants, 'conferences'>, name: string): boolean {
  return grants.conferences.some((pattern) => (pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name));
}
