/**
 * `backchannel send-file` and `backchannel receive-files`: files as data streams (SHA-256 verified
 * by the receiver), with a progress bar and a throughput line. A received file is written under a
 * temporary name in the output directory and gets its final name only once it arrived whole and
 * verified; names chosen by the sender are made safe before they touch the disk or the terminal.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, createWriteStream, existsSync, linkSync, mkdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, join as joinPath } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Command } from 'commander';
import type { Conference, StreamReader } from '@backchannel/client';
import { joinFromCli } from '../connect.js';
import { CliError, CliErrorCode, EXIT_USAGE, action, describeFailure } from '../errors.js';
import { integer, withClientOptions, type ClientOptions } from '../options.js';
import { ProgressBar, rate } from '../progress.js';
import { safeFileName, terminalSafe } from '../sanitize.js';

/** Registers `send-file` and `receive-files`. */
export function registerFileCommands(program: Command): void {
  withClientOptions(
    program
      .command('send-file <conference> <path>')
      .description('send a file as a data stream (SHA-256 verified by receivers), with a progress bar')
      .option('--to <participant>', 'participant id or user id to send to (default: everyone)')
      .option('--topic <topic>', 'stream topic', 'files')
      .option('--wait-ms <ms>', 'how long to wait for a receiver to be present', integer(), 30_000),
  ).action(
    action('send-file', async (conference: string, path: string, o: ClientOptions & { to?: string; topic: string; waitMs: number }) => {
      checkReadableFile(path);
      const { client, room } = await joinFromCli(o, conference);
      try {
        const target = await waitForTarget(room, o.to, o.waitMs);
        const start = performance.now();
        let progress: ProgressBar | undefined;
        const res = await room.sendFile(o.topic, path, {
          ...(target ? { destination: target } : {}),
          onProgress: ({ bytes, total }) => {
            progress ??= new ProgressBar(`sending ${basename(path)}`, total);
            progress.update(bytes);
          },
        });
        progress?.stop();
        process.stdout.write(`sent ${basename(path)}: ${rate(res.bytes, performance.now() - start)}\n`);
      } finally {
        await client.close().catch(() => undefined);
      }
    }),
  );

  withClientOptions(
    program
      .command('receive-files <conference>')
      .description('save files sent as data streams on --topic into --out, with a progress bar')
      .requiredOption('--out <dir>', 'directory to write files into (created if missing)')
      .option('--topic <topic>', 'stream topic', 'files')
      .option('--count <n>', 'exit after this many files (default: run until interrupted)', integer(1)),
  ).action(
    action('receive-files', async (conference: string, o: ClientOptions & { out: string; topic: string; count?: number }) => {
      prepareOutDir(o.out);
      const { client, room } = await joinFromCli(o, conference);
      let remaining = o.count ?? Infinity;
      let failures = 0;
      process.stdout.write(`waiting for files on "${o.topic}" in ${conference} as ${client.participantId}\n`);
      room.registerStreamHandler(o.topic, async (reader) => {
        const ok = await save(reader, o.out).catch((error: unknown) => {
          const { code, message } = describeFailure(error);
          process.stdout.write(`${terminalSafe(`failed ${reader.info.name ?? reader.info.id}: ${code}: ${message}`)}\n`);
          return false;
        });
        if (!ok) failures++;
        if (--remaining <= 0) {
          await client.close().catch(() => undefined);
          process.exit(failures > 0 ? 1 : 0);
        }
      });
      process.once('SIGINT', () => void client.close().then(() => process.exit(failures > 0 ? 1 : 0)));
    }),
  );
}

/** Fails before connecting if `path` is not a readable file. */
function checkReadableFile(path: string): void {
  const st = statSync(path);
  if (!st.isFile()) throw new CliError(CliErrorCode.NotAFile, `${path} is not a regular file`, { exitCode: EXIT_USAGE });
  accessSync(path, constants.R_OK);
}

/** Makes sure `dir` is a writable directory (creating it if missing) before anything is received. */
function prepareOutDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new CliError(CliErrorCode.NotADirectory, `--out ${dir} exists and is not a directory`, { exitCode: EXIT_USAGE });
  }
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (cause) {
    const { code, message } = describeFailure(cause);
    throw new CliError(code, `--out ${dir} cannot be used: ${message}`, { exitCode: EXIT_USAGE, cause });
  }
}

async function waitForTarget(room: Conference, to: string | undefined, waitMs: number): Promise<string | undefined> {
  const find = () => (to === undefined ? [...room.participants.values()][0] : [...room.participants.values()].find((p) => p.id === to || p.userId === to));
  if (!find()) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new CliError(CliErrorCode.NoReceiver, to ? `participant ${to} did not join within ${waitMs} ms` : `nobody joined within ${waitMs} ms`));
      }, waitMs);
      const off = room.on('participantJoined', () => {
        if (!find()) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }
  return to === undefined ? undefined : find()!.id;
}

/** Temporary files of transfers in progress, removed if the process exits before they end. */
const partial = new Set<string>();
process.once('exit', () => {
  for (const path of partial) removeQuietly(path);
});

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/**
 * Writes a received file to `dir`, verifying it; resolves true on success. The bytes go to a
 * hidden temporary file (`.backchannel-….part`) first; only a transfer that ended normally and
 * passed its SHA-256 check is renamed to its final name (never overwriting: `name.1`, `name.2`, …).
 * A failed or aborted transfer leaves nothing behind.
 */
async function save(reader: StreamReader, dir: string): Promise<boolean> {
  const name = safeFileName(reader.info.name ?? '', safeFileName(reader.info.id, 'received-file'));
  const temp = joinPath(dir, `.backchannel-${randomBytes(8).toString('hex')}.part`);
  partial.add(temp);
  const file = createWriteStream(temp, { flags: 'wx' });
  const start = performance.now();
  const progress = new ProgressBar(`receiving ${terminalSafe(name)}`, reader.info.totalLength);
  let bytes = 0;
  let path: string;
  try {
    // An error of the file (disk full, …) ends the loop too, rather than waiting for a drain forever.
    const failed = new Promise<never>((_, reject) => file.once('error', reject));
    failed.catch(() => undefined);
    for await (const chunk of reader) {
      bytes += (chunk as Uint8Array).byteLength;
      if (!file.write(chunk)) await Promise.race([new Promise<void>((r) => file.once('drain', () => r())), failed]);
      progress.update(bytes);
    }
    file.end();
    await finished(file);
    path = publish(temp, dir, name);
  } catch (error) {
    file.destroy();
    await finished(file).catch(() => undefined);
    removeQuietly(temp);
    throw error;
  } finally {
    partial.delete(temp);
    progress.stop();
  }
  process.stdout.write(`${terminalSafe(`received ${name} → ${path}: ${rate(bytes, performance.now() - start)}, SHA-256 verified`)}\n`);
  return true;
}

/** Gives the finished file `temp` its final name in `dir`, never replacing an existing file. */
function publish(temp: string, dir: string, name: string): string {
  for (let i = 0; ; i++) {
    const path = joinPath(dir, i === 0 ? name : `${name}.${i}`);
    try {
      // A hard link fails if the name is taken, where a rename would silently replace the file.
      linkSync(temp, path);
      unlinkSync(temp);
      return path;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
      // A file system without hard links: check, then rename.
      if (existsSync(path)) continue;
      renameSync(temp, path);
      return path;
    }
  }
}
