/**
 * Access tokens: JWTs signed with HS256 using the API secret, key id = API key. Works anywhere
 * WebCrypto exists (Node, browsers, edge runtimes).
 */
import { SignJWT } from 'jose';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { resolveGrants, type Grants } from './grants.js';

/** Name of the JWT claim that carries Backchannel grants. */
export const GRANTS_CLAIM = 'bc';

/** Options for {@link createAccessToken}. */
export interface AccessTokenOptions {
  apiKey: string;
  apiSecret: string;
  /** The user's id (`sub`). Several connections may share one user id. */
  userId: string;
  /** Display name shown to other participants (defaults to the user id). */
  name?: string;
  /** Lifetime: seconds, or a string like `'30m'`, `'1h'`, `'7d'`. Default `'1h'`. */
  ttl?: number | string;
  grants?: Grants;
}

/**
 * Mints a signed access token for a client (no network involved). Rejects with a
 * {@link BackchannelError} `invalid-argument` (`details.field` names the option) for missing or
 * malformed options.
 */
export async function createAccessToken(options: AccessTokenOptions): Promise<string> {
  const { apiKey, apiSecret, userId } = options;
  if (typeof apiKey !== 'string' || !apiKey) throw invalid('apiKey', 'createAccessToken: apiKey is required');
  if (typeof apiSecret !== 'string' || !apiSecret) throw invalid('apiSecret', 'createAccessToken: apiSecret is required');
  if (typeof userId !== 'string' || !userId || userId.length > 256) throw invalid('userId', 'createAccessToken: userId must be 1–256 characters');
  if (options.name !== undefined && typeof options.name !== 'string') throw invalid('name', 'createAccessToken: name must be a string');
  const grants = resolveGrants(options.grants);
  const ttl = options.ttl ?? '1h';
  if (typeof ttl === 'number' ? !Number.isFinite(ttl) : typeof ttl !== 'string') throw invalid('ttl', 'createAccessToken: ttl must be a number of seconds or a string like "30m"');
  const claims: Record<string, unknown> = { [GRANTS_CLAIM]: grants };
  if (options.name !== undefined) claims.name = options.name;
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: apiKey, typ: 'JWT' }).setSubject(userId).setIssuer(apiKey).setIssuedAt().setNotBefore('0s');
  try {
    jwt.setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000 + ttl) : ttl);
  } catch (cause) {
    throw new BackchannelError(ErrorCode.InvalidArgument, `createAccessToken: ttl ${JSON.stringify(ttl)} is not a number of seconds or a duration like "30m", "1h", "7d"`, {
      cause,
      details: { field: 'ttl' },
    });
  }
  return jwt.sign(new TextEncoder().encode(apiSecret));
}

function invalid(field: string, message: string): BackchannelError {
  return new BackchannelError(ErrorCode.InvalidArgument, message, { details: { field } });
}
