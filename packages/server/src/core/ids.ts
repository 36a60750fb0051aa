const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A random identifier of `length` base-62 characters (from the platform CSPRNG). */
export function randomId(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = '';
  // 62 does not divide 256; the tiny bias is irrelevant for identifiers that are not secrets.
  for (const b of bytes) out += ALPHABET[b % 62];
  return out;
}
