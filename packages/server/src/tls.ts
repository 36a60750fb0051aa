/**
 * The server's TLS certificate: read from the configured PEM files and checked before use, at
 * start and at every reload, so a bad file is a one-line error with a code instead of a failed
 * handshake for every client later.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { ConfigError, ConfigErrorCode } from './config.js';

/** A certificate (chain) and its private key, as PEM, ready for `https.createServer`/`setSecureContext`. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** Subject of the leaf certificate, for logs. */
  subject: string;
  /** End of the leaf certificate's validity (its `validTo`, as printed by Node). */
  validTo: string;
  /** SHA-256 fingerprint of the leaf certificate, for logs. */
  fingerprint: string;
}

/**
 * Reads and checks `certFile` and `keyFile`. Throws a {@link ConfigError} with code
 * `tls-file-unreadable` (missing or unreadable), `tls-invalid` (not a PEM certificate / key) or
 * `tls-key-mismatch` (the key is not the certificate's).
 */
export function loadTlsFiles(certFile: string, keyFile: string): TlsFiles {
  const cert = readTlsFile(certFile, 'certificate');
  const key = readTlsFile(keyFile, 'private key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (cause) {
    throw new ConfigError(`TLS certificate file ${certFile} does not hold a PEM certificate`, { code: ConfigErrorCode.TlsInvalid, cause });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    const encrypted = /ENCRYPTED/.test(key.toString('latin1'));
    const why = encrypted ? 'holds an encrypted private key (use one without a passphrase)' : 'does not hold a PEM private key';
    throw new ConfigError(`TLS key file ${keyFile} ${why}`, { code: ConfigErrorCode.TlsInvalid, cause });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(`TLS key file ${keyFile} does not hold the private key of the certificate in ${certFile}`, { code: ConfigErrorCode.TlsKeyMismatch });
  }
  return { cert, key, subject: x509.subject.replace(/\n/g, ', '), validTo: x509.validTo, fingerprint: x509.fingerprint256 };
}

function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (cause as Error).message;
    throw new ConfigError(`cannot read TLS ${what} file ${path}: ${why}`, { code: ConfigErrorCode.TlsFileUnreadable, cause });
  }
}
