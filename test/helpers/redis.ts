/**
 * Test harness: a real `redis-server` (Debian's, /usr/bin/redis-server) on 127.0.0.1 and a random
 * free port, with its own temporary directory and no persistence, killed when the test process
 * exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** A running redis-server. */
export interface RedisProcess {
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Stops it (SIGTERM) and waits for it to exit; removes its directory. */
  stop(): Promise<void>;
  /** Stops it and starts a new one, empty, on the same port; resolves when it answers PING. */
  restart(): Promise<void>;
  /** Kills it at once (SIGKILL) without waiting; `restart()` brings it back. */
  kill(): void;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts a redis-server and resolves once it answers PING. */
export async function startRedis(): Promise<RedisProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-redis-'));
  const port = await freePort();
  let proc = await spawnRedis(port, dir);
  const exited = (p: ChildProcess) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r())));
  const stopProc = async () => {
    proc.kill('SIGTERM');
    await exited(proc);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopProc();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopProc();
      proc = await spawnRedis(port, dir);
    },
    kill() {
      proc.kill('SIGKILL');
    },
  };
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes', '--loglevel', 'warning'];
  const proc = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return proc;
}

/** Whether a Redis on `port` answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
