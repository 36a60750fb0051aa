/**
 * How the `backchannel` command fails, run as real processes: every failure is one line on stderr,
 * `backchannel <command>: <code>: <message>`, exit 2 for usage and configuration errors and 1 for
 * the rest; only usage errors point to --help. None of these needs a running Backchannel server.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/server.js';
import { freePort } from '../helpers/api.js';

const exec = promisify(execFile);

/** Runs `backchannel <args>`; resolves with its exit code and output (never rejects). */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Asserts that stderr is exactly one line and returns it. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

let taken: Server;
let takenPort: number;
beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  takenPort = (taken.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => taken.close(r));
});

describe('backchannel serve: configuration errors', () => {
  it('a port that is taken is address-in-use, exit 2', async () => {
    const res = await cli(['serve', '--port', String(takenPort), '--log-level', 'warn']);
    expect(res.code).toBe(2);
    expect(oneLine(res.stderr)).toBe(`backchannel serve: address-in-use: 127.0.0.1:${takenPort} is already in use (choose another port, or stop the process that holds it)`);
  });

  it('an unknown log level, from a flag or the environment, is refused with the other settings', async () => {
    const [flag, env] = await Promise.all([cli(['serve', '--port', '0', '--log-level', 'loud']), cli(['serve', '--port', '0'], { BACKCHANNEL_LOG_LEVEL: 'verbose' })]);
    expect(flag.code).toBe(2);
    expect(oneLine(flag.stderr)).toBe('backchannel serve: config-invalid: setting "logLevel" must be one of fatal, error, warn, info, debug, trace, silent (got "loud")');
    expect(env.code).toBe(2);
    expect(oneLine(env.stderr)).toMatch(/^backchannel serve: config-invalid: setting "logLevel" must be one of .* \(got "verbose"\)$/);
  });

  it('a config file that is missing or not JSON is config-file-unreadable, said once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-cli-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "port": ');
    const [missing, invalid, setting] = await Promise.all([
      cli(['serve', '--config', join(dir, 'nope.json')]),
      cli(['serve', '--config', bad]),
      cli(['serve', '--port', '0'], { BACKCHANNEL_PORT: 'eighty' }),
    ]);
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toBe(`backchannel serve: config-file-unreadable: cannot read config file ${join(dir, 'nope.json')}: no such file`);
    expect(invalid.code).toBe(2);
    expect(oneLine(invalid.stderr)).toMatch(/^backchannel serve: config-file-unreadable: config file .*bad\.json is not valid JSON: /);
    expect(setting.code).toBe(2);
    expect(oneLine(setting.stderr)).toBe('backchannel serve: config-invalid: BACKCHANNEL_PORT must be a port number (got "eighty")');
  });

  it('a usage error says so, points to --help and exits 2', async () => {
    const [unknown, badPort, noCommand] = await Promise.all([cli(['serve', '--bogus']), cli(['serve', '--port', 'http']), cli(['frobnicate'])]);
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown.stderr)).toBe("backchannel serve: usage-error: unknown option '--bogus' (run backchannel serve --help for usage)");
    expect(badPort.code).toBe(2);
    expect(oneLine(badPort.stderr)).toMatch(/^backchannel serve: usage-error: option '--port <port>' argument 'http' is invalid\. Expected an integer from 0 to 65535\. \(run backchannel serve --help for usage\)$/);
    expect(noCommand.code).toBe(2);
    expect(oneLine(noCommand.stderr)).toBe("backchannel: usage-error: unknown command 'frobnicate' (run backchannel --help for usage)");
  });
});

describe('backchannel token create', () => {
  it('refuses a lifetime that is not in the future, and mints one that is', async () => {
    const [negative, zero, ok] = await Promise.all([
      cli(['token', 'create', '--user', 'u', '--ttl', '-5m']),
      cli(['token', 'create', '--user', 'u', '--ttl', '0']),
      cli(['token', 'create', '--user', 'u', '--ttl', '5m']),
    ]);
    for (const refused of [negative, zero]) {
      expect(refused.code).toBe(2);
      expect(refused.stdout).toBe('');
      expect(oneLine(refused.stderr)).toMatch(/^backchannel token create: usage-error: option '--ttl <duration>' argument '-?\w+' is invalid\. Expected a positive duration/);
    }
    expect(ok.code).toBe(0);
    const payload = JSON.parse(Buffer.from(ok.stdout.trim().split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
    expect(payload.exp - payload.iat).toBe(300);
  });
});

describe('client commands: errors before and while connecting', () => {
  it('receive-files --out naming an existing file fails before connecting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-cli-'));
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const res = await cli(['receive-files', 'room', '--out', file, '--server', 'ws://127.0.0.1:1']);
    expect(res.code).toBe(2);
    expect(oneLine(res.stderr)).toBe(`backchannel receive-files: not-a-directory: --out ${file} exists and is not a directory`);
  });

  it('send-file of a missing file names it once, without a usage hint', async () => {
    const missing = join(tmpdir(), 'bc-no-such-file.bin');
    const res = await cli(['send-file', 'room', missing, '--server', 'ws://127.0.0.1:1']);
    expect(res.code).toBe(1);
    expect(oneLine(res.stderr)).toBe(`backchannel send-file: file-not-found: ${missing}: no such file or directory`);
  });

  it('a server that cannot be reached is connect-failed, said once, without a usage hint', async () => {
    const url = `ws://127.0.0.1:${await freePort()}`;
    const res = await cli(['join', 'room', '--server', url]);
    expect(res.code).toBe(1);
    const line = oneLine(res.stderr);
    expect(line.startsWith(`backchannel join: connect-failed: could not connect to ${url}`)).toBe(true);
    expect(line.split('could not connect').length).toBe(2);
    expect(line).not.toContain('--help');
  });
});

describe('the bin shim', () => {
  it('is linked by npm install and runs the built CLI', async () => {
    const bin = resolve(import.meta.dirname, '../../node_modules/.bin/backchannel');
    const { stdout } = await exec(bin, ['--version']);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('says to build, in one line, when dist/ is missing', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'bc-unbuilt-'));
    mkdirSync(join(pkg, 'bin'));
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ type: 'module' }));
    copyFileSync(CLI, join(pkg, 'bin/backchannel.js'));
    const res = await exec(process.execPath, [join(pkg, 'bin/backchannel.js'), '--version']).catch((e: { code: number; stderr: string }) => e);
    expect(res).toMatchObject({ code: 1 });
    expect(oneLine((res as { stderr: string }).stderr)).toBe(`backchannel: not-built: ${join(pkg, 'dist/cli.js')} is missing (run npm run build)`);
  });
});
