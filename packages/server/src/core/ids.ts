import { randomFillSync, timingSafeEqual } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Random bytes from the platform CSPRNG, drawn in bulk: one `randomFillSync` per 4 KiB instead of
 * a `crypto.getRandomValues` call per identifier (two per join, 6–8 µs each on the hello's path).
 * Every byte is handed out once.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomBytes(n: number): Buffer {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}

/** A random identifier of `length` (at most 4,096) base-62 characters (from the platform CSPRNG). */
export function randomId(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  // 62 does not divide 256; the tiny bias is irrelevant for identifiers that are not secrets.
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 62];
  return out;
}

/** An unguessable secret: 32 bytes from the platform CSPRNG, base64url. */
export function randomSecret(): string {
  const bytes = randomBytes(32);
  const secret = bytes.toString('base64url');
  bytes.fill(0); // not left in the pool
  return secret;
}

/** Compares two secrets in time independent of where they differ. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
