/**
 * Access tokens: JWTs signed with HS256 using the API secret, key id = API key. Works anywhere
 * WebCrypto exists (Node, browsers, edge runtimes).
 */
import { SignJWT } from 'jose';
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
 * Mints a signed access token for a client. Throws a TypeError for missing or malformed options
 * (no network involved).
 */
export async function createAccessToken(options: AccessTokenOptions): Promise<string> {
  const { apiKey, apiSecret, userId } = options;
  if (typeof apiKey !== 'string' || !apiKey) throw new TypeError('createAccessToken: apiKey is required');
  if (typeof apiSecret !== 'string' || !apiSecret) throw new TypeError('createAccessToken: apiSecret is required');
  if (typeof userId !== 'string' || !userId || userId.length > 256) throw new TypeError('createAccessToken: userId must be 1–256 characters');
  const grants = resolveGrants(options.grants);
  const ttl = options.ttl ?? '1h';
  const claims: Record<string, unknown> = { [GRANTS_CLAIM]: grants };
  if (options.name !== undefined) claims.name = options.name;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: apiKey, typ: 'JWT' })
    .setSubject(userId)
    .setIssuer(apiKey)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl)
    .sign(new TextEncoder().encode(apiSecret));
}
