/**
 * Certificates made at test time with the system's `openssl`: a test CA and server certificates
 * it signed for 127.0.0.1 and localhost, and what a Node client needs to trust them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

/** A test CA and the directory its files live in. */
export interface TestCa {
  dir: string;
  /** PEM of the CA certificate (what clients trust). */
  caPem: string;
  caCert: string;
  caKey: string;
}

/** A server certificate and its key, as files. */
export interface ServerCert {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as Node prints it (`AB:CD:…`). */
  fingerprint: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const e = error as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('the TLS tests need the openssl command (Debian package "openssl"; .ci/run installs it)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() ?? String(error)}`);
  }
}

/** Makes a CA in a new temporary directory. */
export function makeTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'bc-tls-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Backchannel test CA'], dir);
  return { dir, caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca.key'), caPem: readFileSync(join(dir, 'ca.pem'), 'utf8') };
}

/** Makes a server certificate for 127.0.0.1 and localhost signed by `ca`, named `name`.pem / `name`.key. */
export function makeServerCert(ca: TestCa, name: string): ServerCert {
  const ext = join(ca.dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], ca.dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.caCert, '-CAkey', ca.caKey, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext], ca.dir);
  const cert = join(ca.dir, `${name}.pem`);
  return { cert, key: join(ca.dir, `${name}.key`), fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

/** A `ws` WebSocket class that trusts `caPem` (for `Client.connect(url, token, { WebSocket })`). */
export function trustingWebSocket(caPem: string): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { ca: caPem, perMessageDeflate: false });
    }
  };
}
