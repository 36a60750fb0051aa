/**
 * Access-token verification: turns a JWT into an {@link Identity} or a `token-*` error. Runs before
 * any room state is touched.
 */
import { errors as joseErrors, decodeProtectedHeader, jwtVerify } from 'jose';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { GRANTS_CLAIM, resolveGrants, type ResolvedGrants } from '@backchannel/server-sdk';

/** Who a verified token says the client is, and what it may do. */
export interface Identity {
  userId: string;
  displayName: string;
  grants: ResolvedGrants;
  apiKey: string;
  /** Token expiry, ms since the epoch. */
  expiresAt: number;
}

/** Verifies `token` against the configured API keys. */
export async function verifyAccessToken(token: string, apiKeys: Readonly<Record<string, string>>): Promise<Identity> {
  if (!token) throw new BackchannelError(ErrorCode.TokenMissing, 'an access token is required');
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    kid = header.kid;
    if (header.alg !== 'HS256') throw new BackchannelError(ErrorCode.TokenMalformed, `token algorithm must be HS256 (got ${String(header.alg)})`);
  } catch (cause) {
    if (cause instanceof BackchannelError) throw cause;
    throw new BackchannelError(ErrorCode.TokenMalformed, 'the access token is not a well-formed JWT', { cause });
  }
  if (!kid) throw new BackchannelError(ErrorCode.TokenMalformed, 'the access token has no key id (kid)');
  const secret = Object.hasOwn(apiKeys, kid) ? apiKeys[kid] : undefined;
  if (secret === undefined) throw new BackchannelError(ErrorCode.TokenUnknownKey, `unknown API key "${kid}"`);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ['HS256'] }));
  } catch (cause) {
    throw mapJoseError(cause);
  }
  if (typeof payload.sub !== 'string' || !payload.sub || payload.sub.length > 256) {
    throw new BackchannelError(ErrorCode.TokenInvalidClaims, 'the access token needs a subject (sub) of 1–256 characters');
  }
  if (typeof payload.exp !== 'number') throw new BackchannelError(ErrorCode.TokenInvalidClaims, 'the access token needs an expiry (exp)');
  let grants: ResolvedGrants;
  try {
    grants = resolveGrants(payload[GRANTS_CLAIM]);
  } catch (cause) {
    throw new BackchannelError(ErrorCode.TokenInvalidClaims, `invalid grants: ${(cause as Error).message}`, { cause });
  }
  const name = typeof payload.name === 'string' && payload.name ? payload.name : payload.sub;
  return { userId: payload.sub, displayName: name, grants, apiKey: kid, expiresAt: payload.exp * 1000 };
}

function mapJoseError(cause: unknown): BackchannelError {
  if (cause instanceof joseErrors.JWTExpired) return new BackchannelError(ErrorCode.TokenExpired, 'the access token has expired', { cause });
  if (cause instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new BackchannelError(ErrorCode.TokenBadSignature, 'the access token signature does not match the API secret', { cause });
  }
  if (cause instanceof joseErrors.JWTClaimValidationFailed) {
    if (cause.claim === 'nbf') return new BackchannelError(ErrorCode.TokenNotYetValid, 'the access token is not valid yet (nbf)', { cause });
    return new BackchannelError(ErrorCode.TokenInvalidClaims, `invalid token claim "${cause.claim}": ${cause.message}`, { cause });
  }
  return new BackchannelError(ErrorCode.TokenMalformed, 'the access token could not be verified', { cause });
}
