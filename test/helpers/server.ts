/**
 * Test harness: runs the real `backchannel serve` CLI as a child process on a free port and
 * mints tokens for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createAccessToken, type Grants } from '@backchannel/server-sdk';

/** Server processes still running; killed if the test process exits without stopping them. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export const CLI = resolve(import.meta.dirname, '../../packages/cli/bin/backchannel.js');
export const API_KEY = 'testkey';
export const API_SECRET = 'test-secret-0123456789';

export interface ServerProcess {
  url: string;
  port: number;
  httpUrl: string;
  proc: ChildProcess;
  /** JSON log lines seen so far. */
  logs: Record<string, unknown>[];
  token(userId: string, grants?: Grants, extra?: { name?: string; ttl?: string | number }): Promise<string>;
  /** Sends SIGTERM and waits for the process to exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `backchannel serve` with `config` (any ServerConfig fields) on a random free port. With
 * `BACKCHANNEL_TEST_CLUSTER=1` in the environment it starts a cluster of three nodes and Redis
 * instead, seen as one server whose `url` names the nodes in turn (helpers/cluster.ts), so a test
 * written for one server runs against a cluster; `{ cluster: false }` always starts one process.
 */
export async function startServerProcess(config: Record<string, unknown> = {}, env: Record<string, string> = {}, options: { cluster?: boolean } = {}): Promise<ServerProcess> {
  if (process.env.BACKCHANNEL_TEST_CLUSTER === '1' && options.cluster !== false) {
    const { startCluster, asOneServer } = await import('./cluster.js');
    return asOneServer(await startCluster(3, config));
  }
  const dir = mkdtempSync(join(tmpdir(), 'bc-test-'));
  const file = join(dir, 'config.json');
  // drainTimeoutMs 0: stop() (SIGTERM) ends rooms at once, as tests expect; drain tests set their own.
  writeFileSync(file, JSON.stringify({ port: 0, logLevel: 'info', apiKeys: { [API_KEY]: API_SECRET }, drainTimeoutMs: 0, ...config }));
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolvePromise, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'backchannel server listening') resolvePromise(entry.url as string);
      } catch {
        /* not JSON */
      }
    });
    proc.once('exit', (code) => reject(new Error(`server exited early with ${code}: ${stderr}`)));
  });
  const port = Number(new URL(url).port);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    url,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    proc,
    logs,
    token: (userId, grants = { conferences: ['*'] }, extra = {}) =>
      createAccessToken({ apiKey: API_KEY, apiSecret: API_SECRET, userId, grants, ttl: extra.ttl ?? '1h', ...(extra.name ? { name: extra.name } : {}) }),
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}
