/**
 * Access-token verification: turns a JWT into an {@link Identity} or a `token-*` error. Runs before
 * any room state is touched.
 *
 * Tokens are HS256 JWTs (RFC 7519) and nothing else, so they are checked here with `node:crypto`
 * in the calling turn: a WebCrypto verification (what a general JOSE library uses) is a job on
 * libuv's thread pool, and that hop was a quarter of the hello round trip (issue 17, `join`
 * scenario). The rules are those of `jose`'s `jwtVerify` with `algorithms: ['HS256']`, which
 * signs the tokens (server SDK): compact serialization, no `crit` header, a JSON object payload,
 * numeric `exp`/`nbf`/`iat` when present, `exp` in the past refused, `nbf` in the future refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
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

/** Base64url without padding, as JWS uses it (RFC 7515 §2). */
const BASE64URL = /^[A-Za-z0-9_-]*$/;

const malformed = (message = 'the access token is not a well-formed JWT', cause?: unknown) =>
  new BackchannelError(ErrorCode.TokenMalformed, message, cause === undefined ? undefined : { cause });

/** Decodes one base64url JSON segment into an object; throws `token-malformed`. */
function jsonSegment(segment: string, what: string): Record<string, unknown> {
  if (!segment || !BASE64URL.test(segment)) throw malformed(`the access token's ${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch (cause) {
    throw malformed(`the access token's ${what} is not JSON`, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`the access token's ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Verifies `token` against the configured API keys (API key id → secret). */
export async function verifyAccessToken(token: string, apiKeys: Readonly<Record<string, string>>): Promise<Identity> {
  if (!token) throw new BackchannelError(ErrorCode.TokenMissing, 'an access token is required');
  if (typeof token !== 'string') throw malformed();
  const parts = token.split('.');
  if (parts.length !== 3) throw malformed();
  const [headerB64, payloadB64, signatureB64] = parts as [string, string, string];
  const header = jsonSegment(headerB64, 'header');
  if (header.alg !== 'HS256') throw malformed(`token algorithm must be HS256 (got ${String(header.alg)})`);
  // Extensions the verifier must understand (RFC 7515 §4.1.11): none are supported.
  if (header.crit !== undefined) throw malformed('the access token has critical header parameters (crit), which are not supported');
  const kid = header.kid;
  if (typeof kid !== 'string' || !kid) throw malformed('the access token has no key id (kid)');
  const secret = Object.hasOwn(apiKeys, kid) ? apiKeys[kid] : undefined;
  if (secret === undefined) throw new BackchannelError(ErrorCode.TokenUnknownKey, `unknown API key "${kid}"`);
  if (!BASE64URL.test(signatureB64)) throw malformed('the access token signature is not base64url');
  const signature = Buffer.from(signatureB64, 'base64url');
  const expected = createHmac('sha256', secret).update(`${headerB64}.${payloadB64}`).digest();
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
    throw new BackchannelError(ErrorCode.TokenBadSignature, 'the access token signature does not match the API secret');
  }
  const payload = jsonSegment(payloadB64, 'payload');
  const now = Math.floor(Date.now() / 1000);
  for (const claim of ['iat', 'nbf', 'exp'] as const) {
    if (payload[claim] !== undefined && typeof payload[claim] !== 'number') {
      throw new BackchannelError(ErrorCode.TokenInvalidClaims, `invalid token claim "${claim}": "${claim}" claim must be a number`);
    }
  }
  if (typeof payload.nbf === 'number' && payload.nbf > now) throw new BackchannelError(ErrorCode.TokenNotYetValid, 'the access token is not valid yet (nbf)');
  if (typeof payload.exp === 'number' && payload.exp <= now) throw new BackchannelError(ErrorCode.TokenExpired, 'the access token has expired');
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
