/**
 * Access-token verification (packages/server/src/auth.ts) checks HS256 tokens with node:crypto; it
 * must accept and refuse exactly what `jose`'s `jwtVerify` (the library the server SDK signs with)
 * does, with the documented `token-*` codes.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT, base64url, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@backchannel/protocol';
import { createAccessToken } from '@backchannel/server-sdk';
import { verifyAccessToken } from '../../packages/server/dist/auth.js';

const KEY = 'key1';
const SECRET = 'secret-0123456789abcdef';
const KEYS = { [KEY]: SECRET };
const now = () => Math.floor(Date.now() / 1000);
const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
const sign = async (payload: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256', kid: KEY }, secret = SECRET) =>
  new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(new TextEncoder().encode(secret));

/** Signs any header and payload (jose refuses to sign some of the headers tested here). */
const rawSign = (header: unknown, payload: unknown) => {
  const input = `${enc(header)}.${enc(payload)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
};

/** The code `verifyAccessToken` refuses `token` with, or 'ok'. */
async function outcome(token: string): Promise<string> {
  try {
    await verifyAccessToken(token, KEYS);
    return 'ok';
  } catch (error) {
    return (error as { code: string }).code;
  }
}

/** Whether `jose` accepts `token` (HS256 only) with the secret of its `kid`. */
async function joseAccepts(token: string): Promise<boolean> {
  try {
    await jwtVerify(token, new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
    return true;
  } catch {
    return false;
  }
}

describe('verifyAccessToken', () => {
  it('returns the identity of a token from the server SDK', async () => {
    const token = await createAccessToken({ apiKey: KEY, apiSecret: SECRET, userId: 'alice', name: 'Alice', grants: { conferences: ['*'] }, ttl: 600 });
    const id = await verifyAccessToken(token, KEYS);
    expect(id).toMatchObject({ userId: 'alice', displayName: 'Alice', apiKey: KEY });
    expect(id.grants.conferences).toEqual(['*']);
    expect(Math.abs(id.expiresAt - (Date.now() + 600_000))).toBeLessThan(2_000);
  });

  it('refuses with the documented code for each kind of bad token', async () => {
    const t = now();
    const cases: Array<[string, string]> = [
      ['', ErrorCode.TokenMissing],
      ['not-a-jwt', ErrorCode.TokenMalformed],
      ['a.b', ErrorCode.TokenMalformed],
      ['a.b.c.d', ErrorCode.TokenMalformed],
      [`${enc({ alg: 'HS256', kid: KEY })}.${enc({ sub: 'a', exp: t + 60 })}.***`, ErrorCode.TokenMalformed],
      [`!!.${enc({ sub: 'a' })}.sig`, ErrorCode.TokenMalformed],
      [`${enc([1])}.${enc({ sub: 'a' })}.sig`, ErrorCode.TokenMalformed],
      [await sign({ sub: 'a', exp: t + 60 }, { alg: 'HS384', kid: KEY }), ErrorCode.TokenMalformed],
      [await sign({ sub: 'a', exp: t + 60 }, { alg: 'HS256' }), ErrorCode.TokenMalformed], // no kid
      [rawSign({ alg: 'HS256', kid: KEY, crit: ['exp'], exp: 1 }, { sub: 'a', exp: t + 60 }), ErrorCode.TokenMalformed],
      [rawSign({ alg: 'HS256', kid: KEY }, ['a']), ErrorCode.TokenMalformed], // payload not an object
      [await sign({ sub: 'a', exp: t + 60 }, { alg: 'HS256', kid: 'other' }), ErrorCode.TokenUnknownKey],
      [await sign({ sub: 'a', exp: t + 60 }, { alg: 'HS256', kid: 'toString' }), ErrorCode.TokenUnknownKey],
      [await sign({ sub: 'a', exp: t + 60 }, undefined, 'another-secret'), ErrorCode.TokenBadSignature],
      [`${enc({ alg: 'HS256', kid: KEY })}.${enc({ sub: 'a', exp: t + 60 })}.${(await sign({ sub: 'b', exp: t + 60 })).split('.')[2]}`, ErrorCode.TokenBadSignature],
      [await sign({ sub: 'a', exp: t - 1 }), ErrorCode.TokenExpired],
      [await sign({ sub: 'a', exp: t }), ErrorCode.TokenExpired],
      [await sign({ sub: 'a', exp: t + 60, nbf: t + 60 }), ErrorCode.TokenNotYetValid],
      [await sign({ sub: 'a', exp: '1h' }), ErrorCode.TokenInvalidClaims],
      [await sign({ sub: 'a', exp: t + 60, iat: 'yesterday' }), ErrorCode.TokenInvalidClaims],
      [await sign({ sub: 'a' }), ErrorCode.TokenInvalidClaims], // no exp
      [await sign({ exp: t + 60 }), ErrorCode.TokenInvalidClaims], // no sub
      [await sign({ sub: 'x'.repeat(257), exp: t + 60 }), ErrorCode.TokenInvalidClaims],
      [await sign({ sub: 'a', exp: t + 60, bc: { calls: 'yes' } }), ErrorCode.TokenInvalidClaims],
    ];
    for (const [token, code] of cases) expect([token, await outcome(token)]).toEqual([token, code]);
    expect(await outcome(rawSign({ alg: 'HS256', kid: KEY }, { sub: 'a', exp: t + 60 }))).toBe('ok');
  });

  it('accepts exactly the well-signed tokens jose accepts (random claims and tampering)', async () => {
    const t = now();
    const claim = fc.oneof(fc.constant(undefined), fc.integer({ min: t - 1000, max: t + 1000 }), fc.string({ maxLength: 3 }));
    await fc.assert(
      fc.asyncProperty(
        fc.record({ exp: claim, nbf: claim, iat: claim, sub: fc.oneof(fc.constant('u'), fc.constant(''), fc.integer()) }),
        fc.option(fc.nat(200), { nil: undefined }),
        async (claims, flip) => {
          const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
          let token = await sign(payload);
          if (flip !== undefined) {
            const i = flip % token.length;
            const c = token[i] === 'A' ? 'B' : 'A';
            token = token.slice(0, i) + c + token.slice(i + 1);
          }
          const joseOk = await joseAccepts(token);
          const result = await outcome(token);
          // jose accepts a token without `sub`/`exp`; this server requires both (token-invalid-claims).
          const required = typeof payload.sub === 'string' && payload.sub !== '' && typeof payload.exp === 'number';
          if (joseOk && required) expect(result).toBe('ok');
          else if (joseOk) expect(result).toBe(ErrorCode.TokenInvalidClaims);
          else expect(result).not.toBe('ok');
        },
      ),
      { numRuns: 300 },
    );
  });
});
