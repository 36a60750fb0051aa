/**
 * The certificate of the `backchannel-tls` system: a CA and a server certificate for 127.0.0.1,
 * made with `openssl` at the start of a run that includes that system. Workers trust the CA through
 * NODE_EXTRA_CA_CERTS (set before any of them is forked), so their client SDK connects to `wss://`
 * exactly as it connects to `ws://`: same code, same options.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let files;

/** Makes the CA and the server certificate once; returns `{ cert, key, ca }` (paths). */
export function benchTls() {
  if (files) return files;
  const dir = mkdtempSync(join(tmpdir(), 'bc-bench-tls-'));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Backchannel bench CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  files = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') };
  process.env.NODE_EXTRA_CA_CERTS = files.ca;
  return files;
}
