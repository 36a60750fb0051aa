/**
 * A file much larger than memory should allow, between two separate processes: it streams from
 * disk, arrives intact (SHA-256), and neither process holds it in memory.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

let server: ServerProcess;
let dir: string;
beforeAll(async () => {
  server = await startServerProcess({ maxDataBitrateKbps: 0 });
  dir = mkdtempSync(join(tmpdir(), 'bc-big-'));
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const SCRIPT = new URL('../helpers/file-proc.mjs', import.meta.url).pathname;
const MiB = 1024 * 1024;

function run(args: string[]) {
  const proc = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    waiters.splice(0).forEach((w) => w());
  });
  const first = (key: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = lines.find((l) => key in l);
        const err = lines.find((l) => 'error' in l);
        if (err) reject(new Error(String(err.error)));
        else if (hit) resolve(hit);
        else waiters.push(check);
      };
      proc.once('exit', (code) => code !== 0 && reject(new Error(`exited with ${code}`)));
      check();
    });
  return { first, proc };
}

it('sends a 256 MiB file between processes with bounded memory and a verified SHA-256', async () => {
  const SIZE = 256 * MiB;
  const path = join(dir, 'big.bin');
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < SIZE / MiB; i++) {
    block.fill(i & 0xff);
    block.writeUInt32BE(i, 0);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  const receiver = run(['receive', server.url, await server.token('rx'), 'big', 'files']);
  await receiver.first('ready');
  const sender = run(['send', server.url, await server.token('tx'), 'big', 'files', path]);
  const [sent, received] = await Promise.all([sender.first('done'), receiver.first('done')]);
  expect(received.bytes).toBe(SIZE);
  expect(received.sha256).toBe(hash.digest('hex'));
  expect(received.name).toBe('big.bin');
  // Peak memory of each process stays far below the file size.
  expect(sent.maxRssBytes as number).toBeLessThan(SIZE / 2);
  expect(received.maxRssBytes as number).toBeLessThan(SIZE / 2);
  console.log(
    `256 MiB file: sender ${((SIZE / MiB) / (sent.seconds as number)).toFixed(0)} MiB/s, peak RSS ${((sent.maxRssBytes as number) / MiB).toFixed(0)} MiB; ` +
      `receiver peak RSS ${((received.maxRssBytes as number) / MiB).toFixed(0)} MiB`,
  );
}, 120_000);
