/**
 * CLI commands that act as a client of a running server: `join` (chat and watch data from a
 * terminal), `send-file` and `receive-files` (data streams with a progress bar).
 */
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { basename, join as joinPath } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { Client, type Conference, type StreamReader } from '@backchannel/client';
import { createAccessToken } from '@backchannel/server-sdk';
import { DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET } from './config.js';

interface ClientOptions {
  server: string;
  token?: string;
  user?: string;
  apiKey: string;
  apiSecret: string;
  name?: string;
}

const MiB = 1024 * 1024;

/** Adds the options every client command takes. */
function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <url>', 'server WebSocket address').env('BACKCHANNEL_SERVER').default(`ws://${DEFAULT_CONFIG.host}:${DEFAULT_CONFIG.port}`))
    .addOption(new Option('--token <jwt>', 'access token (otherwise one is minted with --user and the API key)').env('BACKCHANNEL_TOKEN'))
    .option('--user <id>', 'user id for a minted token (default: a random cli-… id)')
    .option('--name <name>', 'display name')
    .addOption(new Option('--api-key <key>', 'API key for minting').env('BACKCHANNEL_API_KEY').default(DEV_API_KEY))
    .addOption(new Option('--api-secret <secret>', 'API secret for minting').env('BACKCHANNEL_API_SECRET').default(DEV_API_SECRET));
}

async function connect(o: ClientOptions, conference: string): Promise<{ client: Client; room: Conference }> {
  const token =
    o.token ??
    (await createAccessToken({
      apiKey: o.apiKey,
      apiSecret: o.apiSecret,
      userId: o.user ?? `cli-${Math.random().toString(36).slice(2, 8)}`,
      ...(o.name ? { name: o.name } : {}),
      grants: { conferences: [conference] },
    }));
  const client = await Client.connect(o.server, token);
  const room = await client.joinConference(conference, o.name ? { displayName: o.name } : {});
  return { client, room };
}

function fail(program: Command, name: string) {
  return (error: unknown) => {
    const e = error as { code?: string; message?: string };
    program.error(`backchannel ${name}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(error)}`, { exitCode: 1 });
  };
}

function rate(bytes: number, ms: number): string {
  const s = Math.max(ms, 1) / 1000;
  return `${(bytes / MiB).toFixed(1)} MiB in ${s.toFixed(2)} s (${(bytes / MiB / s).toFixed(1)} MiB/s)`;
}

function bar(label: string, total: number | undefined): cliProgress.SingleBar {
  const b = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} bytes | {speed} MiB/s`, hideCursor: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  b.start(total ?? 0, 0, { speed: '0.0' });
  return b;
}

const who = (room: Conference, id: string) => room.participants.get(id)?.displayName ?? id;

/** Registers `join`, `send-file` and `receive-files`. */
export function registerClientCommands(program: Command): void {
  withClientOptions(
    program
      .command('join <conference>')
      .description('join a conference from the terminal: lines you type are sent as text on --topic; received text and data are printed')
      .option('--topic <topic>', 'text-stream topic to send and print', 'chat'),
  ).action(async (conference: string, o: ClientOptions & { topic: string }) => {
    const { client, room } = await connect(o, conference).catch(fail(program, 'join'));
    const out = (line: string) => process.stdout.write(`${line}\n`);
    out(`joined ${conference} as ${client.participantId}; ${room.participants.size} other participant(s)`);
    for (const p of room.participants.values()) out(`  ${p.id} ${p.displayName}`);
    room.on('participantJoined', (p) => out(`* ${p.displayName} (${p.id}) joined`));
    room.on('participantLeft', (p, r) => out(`* ${p.displayName} left (${r.code})`));
    room.registerStreamHandler(o.topic, async (reader) => {
      out(`<${who(room, reader.info.sender)}> ${String(await reader.readAll())}`);
    });
    // Raw data sessions on application stream ids are printed too.
    room.on('dataSessionIncoming', ({ streamId, from, mode }) => {
      out(`* ${who(room, from)} opened stream ${streamId} (${mode})`);
      room
        .makeRecvDataSession(streamId, (data, info) => out(`[${streamId}] <${who(room, info.from)}> #${info.seq} ${printable(data)}`))
        .catch(() => undefined); // one receiver per stream id serves every sender
    });
    room.on('dataSessionError', (e) => out(`! ${e.code}: ${e.message}`));
    const input = createInterface({ input: process.stdin });
    input.on('line', (line) => {
      if (line.trim()) room.sendText(o.topic, line).catch((e: Error) => out(`! ${e.message}`));
    });
    let stopping = false;
    const stop = async () => {
      stopping = true;
      await client.close().catch(() => undefined);
      process.exit(0);
    };
    input.on('close', () => void stop());
    process.once('SIGINT', () => void stop());
    client.on('disconnected', (r) => {
      if (stopping) return;
      out(`* disconnected (${r.code})`);
      process.exit(r.code === 'server-shutdown' ? 0 : 1);
    });
  });

  withClientOptions(
    program
      .command('send-file <conference> <path>')
      .description('send a file as a data stream (SHA-256 verified by receivers), with a progress bar')
      .option('--to <participant>', 'participant id or user id to send to (default: everyone)')
      .option('--topic <topic>', 'stream topic', 'files')
      .option('--wait-ms <ms>', 'how long to wait for a receiver to be present', '30000'),
  ).action(async (conference: string, path: string, o: ClientOptions & { to?: string; topic: string; waitMs: string }) => {
    const { client, room } = await connect(o, conference).catch(fail(program, 'send-file'));
    try {
      const target = await waitForTarget(room, o.to, Number(o.waitMs));
      const start = performance.now();
      let progress: cliProgress.SingleBar | undefined;
      const res = await room.sendFile(o.topic, path, {
        ...(target ? { destination: target } : {}),
        onProgress: ({ bytes, total }) => {
          progress ??= bar(`sending ${basename(path)}`, total);
          progress.update(bytes, { speed: (bytes / MiB / ((performance.now() - start) / 1000 || 1)).toFixed(1) });
        },
      });
      progress?.stop();
      process.stdout.write(`sent ${basename(path)}: ${rate(res.bytes, performance.now() - start)}\n`);
    } catch (error) {
      fail(program, 'send-file')(error);
    } finally {
      await client.close().catch(() => undefined);
    }
  });

  withClientOptions(
    program
      .command('receive-files <conference>')
      .description('save files sent as data streams on --topic into --out, with a progress bar')
      .requiredOption('--out <dir>', 'directory to write files into (created if missing)')
      .option('--topic <topic>', 'stream topic', 'files')
      .option('--count <n>', 'exit after this many files (default: run until interrupted)'),
  ).action(async (conference: string, o: ClientOptions & { out: string; topic: string; count?: string }) => {
    mkdirSync(o.out, { recursive: true });
    const { client, room } = await connect(o, conference).catch(fail(program, 'receive-files'));
    let remaining = o.count === undefined ? Infinity : Number(o.count);
    let failures = 0;
    process.stdout.write(`waiting for files on "${o.topic}" in ${conference} as ${client.participantId}\n`);
    room.registerStreamHandler(o.topic, async (reader) => {
      const ok = await save(reader, o.out).catch((e: { code?: string; message: string }) => {
        process.stdout.write(`failed ${reader.info.name ?? reader.info.id}: ${e.code ?? 'error'}: ${e.message}\n`);
        return false;
      });
      if (!ok) failures++;
      if (--remaining <= 0) {
        await client.close().catch(() => undefined);
        process.exit(failures > 0 ? 1 : 0);
      }
    });
    process.once('SIGINT', () => void client.close().then(() => process.exit(failures > 0 ? 1 : 0)));
  });
}

async function waitForTarget(room: Conference, to: string | undefined, waitMs: number): Promise<string | undefined> {
  const find = () => (to === undefined ? [...room.participants.values()][0] : [...room.participants.values()].find((p) => p.id === to || p.userId === to));
  if (!find()) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(to ? `participant ${to} did not join within ${waitMs} ms` : `nobody joined within ${waitMs} ms`)), waitMs);
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

/** Writes a received file to `dir` (never overwriting), verifying it; resolves true on success. */
async function save(reader: StreamReader, dir: string): Promise<boolean> {
  const base = basename(reader.info.name ?? reader.info.id).replace(/^\.+/, '_') || reader.info.id;
  let path = joinPath(dir, base);
  for (let i = 1; existsSync(path); i++) path = joinPath(dir, `${base}.${i}`);
  const file = createWriteStream(path);
  const start = performance.now();
  const progress = bar(`receiving ${base}`, reader.info.totalLength);
  let bytes = 0;
  try {
    for await (const chunk of reader) {
      bytes += (chunk as Uint8Array).byteLength;
      if (!file.write(chunk)) await new Promise<void>((r) => file.once('drain', () => r()));
      progress.update(bytes, { speed: (bytes / MiB / ((performance.now() - start) / 1000 || 1)).toFixed(1) });
    }
  } finally {
    progress.stop();
    file.end();
    await finished(file);
  }
  process.stdout.write(`received ${base} → ${path}: ${rate(bytes, performance.now() - start)}, SHA-256 verified\n`);
  return true;
}

function printable(data: Uint8Array): string {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return text.length > 200 ? `${text.slice(0, 200)}… (${data.byteLength} bytes)` : text;
  } catch {
    /* binary */
  }
  return `<${data.byteLength} bytes>`;
}
