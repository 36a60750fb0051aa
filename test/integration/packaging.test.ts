/**
 * The packages as a user gets them: every workspace package is packed (`npm pack`, which runs its
 * prepack), the tarballs are installed into a fresh app offline (`npm ci --offline`, from npm's
 * cache, with a lockfile pinning the versions this repository's lockfile tested), and from there
 * `backchannel serve` starts, the README example runs, TypeScript finds the types, and the client
 * resolves to its Node entry in Node and to its browser entry in a browser bundle.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeExample, readmeExampleFor } from '../helpers/readme.js';

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const WORKSPACES = ['packages/protocol', 'packages/client', 'packages/server-sdk', 'packages/server', 'packages/cli'];

interface PackedFile {
  path: string;
}
interface Packed {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}
interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  link?: boolean;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [field: string]: unknown;
}

let work: string;
let app: string;
let packed: Packed[];
const timings: Record<string, number> = {};

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    timings[what] = Math.round(performance.now() - start);
  }
}

/**
 * A lockfile for an app that depends on the tarballs: the tarballs' entries point at the files,
 * and every other package is the entry this repository's lockfile resolved for the workspace that
 * needs it (so `npm ci --offline` installs from npm's cache, with no registry lookups).
 */
function appLockfile(tarballs: Map<string, Packed & { integrity: string; manifest: LockEntry }>): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const entries = lock.packages;
  const workspaceKey = new Map<string, string>();
  for (const [key, entry] of Object.entries(entries)) {
    if (key.startsWith('packages/') && !key.includes('/node_modules/') && entry.name) workspaceKey.set(entry.name, key);
  }
  // Node's lookup: the nearest node_modules/<dep> above the requiring package.
  const resolveDep = (from: string, dep: string): string | undefined => {
    for (let base = from; ; ) {
      const key = `${base ? `${base}/` : ''}node_modules/${dep}`;
      const hit = entries[key];
      if (hit) return hit.link ? hit.resolved : key;
      if (!base) return undefined;
      const up = base.lastIndexOf('/node_modules/');
      base = up >= 0 ? base.slice(0, up) : '';
    }
  };
  const appKey = (key: string): string => {
    for (const [name, ws] of workspaceKey) {
      if (key === ws || key.startsWith(`${ws}/`)) return `node_modules/${name}${key.slice(ws.length)}`;
    }
    return key;
  };
  const packages: Record<string, object> = { '': { name: 'packaging-test-app', dependencies: {} as Record<string, string> } };
  const seen = new Set<string>();
  const queue = [...tarballs.keys()].map((name) => workspaceKey.get(name)!);
  while (queue.length > 0) {
    const key = queue.shift()!;
    if (seen.has(key)) continue;
    seen.add(key);
    const tarball = [...tarballs.values()].find((t) => workspaceKey.get(t.name) === key);
    // A tarball's dependencies are those of the package.json inside it.
    const entry: LockEntry = tarball ? tarball.manifest : entries[key]!;
    const { dev, devOptional, peer, link, name, ...kept } = entry;
    if (tarball) {
      const spec = `file:../tarballs/${tarball.filename}`;
      packages[appKey(key)] = { ...kept, version: tarball.version, resolved: spec, integrity: tarball.integrity };
      (packages['']! as { dependencies: Record<string, string> }).dependencies[tarball.name] = spec;
    } else {
      packages[appKey(key)] = kept;
    }
    const optionalPeers = new Set(Object.entries(entry.peerDependenciesMeta ?? {}).flatMap(([n, m]) => (m.optional ? [n] : [])));
    const deps: [string, boolean][] = [
      ...Object.keys(entry.dependencies ?? {}).map((n): [string, boolean] => [n, false]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((n): [string, boolean] => [n, true]),
      ...Object.keys(entry.peerDependencies ?? {}).map((n): [string, boolean] => [n, optionalPeers.has(n)]),
    ];
    for (const [dep, optional] of deps) {
      const found = resolveDep(key, dep);
      if (found) queue.push(found);
      else if (!optional) throw new Error(`${key} needs ${dep}, which package-lock.json does not have`);
    }
  }
  return { name: 'packaging-test-app', lockfileVersion: 3, requires: true, packages };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'bc-packaging-'));
  const tarballDir = join(work, 'tarballs');
  app = join(work, 'app');
  mkdirSync(tarballDir);
  mkdirSync(app);
  const { stdout } = await timed('npm pack (with prepack)', () =>
    exec(NPM, ['pack', ...WORKSPACES.flatMap((w) => ['--workspace', w]), '--pack-destination', tarballDir, '--json'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }),
  );
  packed = JSON.parse(stdout) as Packed[];
  const tarballs = new Map(
    packed.map((p) => {
      const integrity = `sha512-${createHash('sha512').update(readFileSync(join(tarballDir, p.filename))).digest('base64')}`;
      const pkg = JSON.parse(readFileSync(join(ROOT, 'packages', p.name.split('/')[1]!, 'package.json'), 'utf8')) as LockEntry;
      const fields = ['license', 'dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines'];
      const manifest = Object.fromEntries(fields.filter((f) => pkg[f] !== undefined).map((f) => [f, pkg[f]])) as LockEntry;
      return [p.name, { ...p, integrity, manifest }] as const;
    }),
  );
  const lockfile = appLockfile(tarballs) as { packages: Record<string, { dependencies?: Record<string, string> }> };
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'packaging-test-app', private: true, type: 'module', dependencies: lockfile.packages['']!.dependencies }, null, 2));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
  await timed('npm ci --offline', () => exec(NPM, ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app }));
}, 120_000);

afterAll(() => {
  console.log(`packaging: ${Object.entries(timings).map(([what, ms]) => `${what} ${(ms / 1000).toFixed(1)} s`).join(', ')}`);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Starts the installed `backchannel serve` on a free port; resolves once it logs that it listens. */
async function serve(): Promise<{ proc: ChildProcess; url: string; exited: Promise<number | null> }> {
  const proc = spawn(join(app, 'node_modules/.bin/backchannel'), ['serve', '--port', '0'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'backchannel server listening') resolveUrl(entry.url!);
    });
    void exited.then((code) => reject(new Error(`backchannel serve exited with ${code}: ${stderr}`)));
  });
  return { proc, url, exited };
}

describe('published packages', () => {
  it('each tarball holds the compiled code, its types, a README and the LICENSE', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(['@backchannel/cli', '@backchannel/client', '@backchannel/protocol', '@backchannel/server', '@backchannel/server-sdk']);
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License');
    for (const p of packed) {
      const files = p.files.map((f) => f.path);
      expect(files, p.name).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']));
      expect(files.filter((f) => /(^|\/)(test|node_modules)\/|\.tsbuildinfo$/.test(f)), p.name).toEqual([]);
    }
    const files = (name: string) => packed.find((p) => p.name === name)!.files.map((f) => f.path);
    expect(files('@backchannel/client')).toEqual(expect.arrayContaining(['dist/index.node.js', 'dist/index.node.d.ts', 'dist/backchannel.browser.js']));
    expect(files('@backchannel/cli')).toEqual(expect.arrayContaining(['bin/backchannel.js', 'dist/cli.js']));
    // The server no longer carries the CLI (it lives in @backchannel/cli).
    expect(files('@backchannel/server').filter((f) => /cli/.test(f))).toEqual([]);
    for (const name of ['protocol', 'client', 'server-sdk', 'server', 'cli']) {
      expect(readFileSync(join(app, 'node_modules/@backchannel', name, 'LICENSE'), 'utf8')).toBe(license);
    }
  });

  it('the installed backchannel serves, and the README example runs against it', async () => {
    const server = await serve();
    try {
      writeFileSync(join(app, 'example.mjs'), readmeExampleFor(server.url));
      const { stdout, stderr } = await exec(process.execPath, ['example.mjs'], { cwd: app, timeout: 20_000 });
      expect(stderr).toBe('');
      expect(stdout).toBe(readmeExample().output);
    } finally {
      server.proc.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  });

  it('TypeScript finds every package’s types from the installed app', async () => {
    writeFileSync(
      join(app, 'uses-types.ts'),
      [
        "import { Client, type Conference } from '@backchannel/client';",
        "import { createAccessToken, ServerApiClient } from '@backchannel/server-sdk';",
        "import { ConfigError, startServer, type ServerConfig } from '@backchannel/server';",
        "import { ErrorCode } from '@backchannel/protocol';",
        "import { buildProgram } from '@backchannel/cli';",
        'export const values = [Client, createAccessToken, ServerApiClient, ConfigError, startServer, ErrorCode, buildProgram];',
        'export type Types = Conference | ServerConfig;',
        "export const code: string = ErrorCode.RoomFull;",
        '',
      ].join('\n'),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), 'uses-types.ts'];
    const result = await exec(process.execPath, [tsc, ...args], { cwd: app }).catch((e: { stdout: string }) => e);
    expect(result.stdout).toBe('');
  });

  it('the client resolves to its Node entry in Node and to its browser entry in a browser bundle', async () => {
    const where = async (args: string[]) =>
      (await exec(process.execPath, [...args, '--input-type=module', '-e', "console.log(import.meta.resolve('@backchannel/client'))"], { cwd: app })).stdout.trim();
    expect(await where([])).toMatch(/@backchannel\/client\/dist\/index\.node\.js$/);
    expect(await where(['--conditions=browser'])).toMatch(/@backchannel\/client\/dist\/index\.js$/);
    // A browser bundle of an app using the SDK pulls in no Node built-ins (esbuild fails on them).
    const bundle = await build({
      stdin: { contents: "import { Client } from '@backchannel/client'; import { createAccessToken } from '@backchannel/server-sdk'; console.log(Client, createAccessToken);", resolveDir: app },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    expect(bundle.errors).toEqual([]);
    expect(bundle.outputFiles[0]!.text).toContain('WebSocket');
    const direct = (await exec(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('@backchannel/client/bundle'))"], { cwd: app })).stdout.trim();
    expect(direct).toMatch(/@backchannel\/client\/dist\/backchannel\.browser\.js$/);
  });
});
