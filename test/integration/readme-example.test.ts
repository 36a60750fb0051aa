/**
 * The README's example of two clients exchanging data, run as written (a plain ES module, with
 * only the server address changed) against a real server with the development key, prints what
 * the README says it prints.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeExample, readmeExampleFor } from '../helpers/readme.js';
import { startServerProcess, type ServerProcess } from '../helpers/server.js';

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess({ apiKeys: { devkey: 'devsecret' } });
});
afterAll(async () => {
  await server.stop();
});

describe('README example', () => {
  it('runs with node as a .mjs module in the repository and prints the documented output', async () => {
    // Code given on stdin as a module resolves packages from the working directory, as a file
    // saved at the repository root would.
    const run = exec(process.execPath, ['--input-type=module', '-'], { cwd: ROOT, timeout: 20_000 });
    run.child.stdin!.end(readmeExampleFor(server.url));
    const { stdout, stderr } = await run;
    expect(stderr).toBe('');
    expect(stdout).toBe(readmeExample().output);
  });
});
