/**
 * `backchannel join`: a conference from the terminal. Lines typed are sent as text streams on
 * `--topic`; received text, joins and leaves, and raw data sessions are printed. It runs until
 * Ctrl-D / Ctrl-C, or until it is removed from the room (kicked, room ended) or disconnected, which
 * it prints with the reason before exiting.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { LeaveReason, RoomEndReason, type Reason } from '@backchannel/protocol';
import { displayName, joinFromCli } from '../connect.js';
import { action } from '../errors.js';
import { withClientOptions, type ClientOptions } from '../options.js';
import { terminalSafe } from '../sanitize.js';

/** Reasons to stop that are not a failure of this command (exit 0). */
const CLEAN_ENDS: ReadonlySet<string> = new Set([RoomEndReason.EndedByServer, RoomEndReason.ServerShutdown, LeaveReason.RoomEnded, LeaveReason.ServerShutdown]);

function describeReason(reason: Reason): string {
  return reason.message ? `${reason.code} (${reason.message})` : reason.code;
}

/** Prints one line. Everything here may carry text other participants chose, so it is made inert. */
function out(line: string): void {
  process.stdout.write(`${terminalSafe(line)}\n`);
}

/** Registers `join`. */
export function registerJoinCommand(program: Command): void {
  withClientOptions(
    program
      .command('join <conference>')
      .description('join a conference from the terminal: lines you type are sent as text on --topic; received text and data are printed')
      .option('--topic <topic>', 'text-stream topic to send and print', 'chat'),
  ).action(
    action('join', async (conference: string, o: ClientOptions & { topic: string }) => {
      const { client, room } = await joinFromCli(o, conference);
      out(`joined ${conference} as ${client.participantId}; ${room.participants.size} other participant(s)`);
      for (const p of room.participants.values()) out(`  ${p.id} ${p.displayName}`);
      room.on('participantJoined', (p) => out(`* ${p.displayName} (${p.id}) joined`));
      room.on('participantLeft', (p, r) => out(`* ${p.displayName} left (${r.code})`));
      room.registerStreamHandler(o.topic, async (reader) => {
        out(`<${displayName(room, reader.info.sender)}> ${String(await reader.readAll())}`);
      });
      // Raw data sessions on application stream ids are printed too.
      room.on('dataSessionIncoming', ({ streamId, from, mode }) => {
        out(`* ${displayName(room, from)} opened stream ${streamId} (${mode})`);
        room
          .makeRecvDataSession(streamId, (data, info) => out(`[${streamId}] <${displayName(room, info.from)}> #${info.seq} ${printable(data)}`))
          .catch(() => undefined); // one receiver per stream id serves every sender
      });
      room.on('dataSessionError', (e) => out(`! ${e.code}: ${e.message}`));

      let stopping = false;
      const stop = (exitCode: number, line?: string) => {
        if (stopping) return;
        stopping = true;
        if (line) out(line);
        void client
          .close()
          .catch(() => undefined)
          .then(() => process.exit(exitCode));
      };
      const input = createInterface({ input: process.stdin });
      input.on('line', (line) => {
        if (line.trim()) room.sendText(o.topic, line).catch((e: Error) => out(`! ${e.message}`));
      });
      input.on('close', () => stop(0));
      process.once('SIGINT', () => stop(0));
      // Removed from the room by someone else: say why and stop, rather than run on silently.
      room.on('ended', ({ reason }) => stop(CLEAN_ENDS.has(reason.code) ? 0 : 1, `* left ${conference}: ${describeReason(reason)}`));
      client.on('disconnected', (reason) => stop(CLEAN_ENDS.has(reason.code) ? 0 : 1, `* disconnected: ${describeReason(reason)}`));
    }),
  );
}

function printable(data: Uint8Array): string {
  try {
    // Text is shown (escaped by `out`); anything that is not UTF-8 is summarised.
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    return text.length > 200 ? `${text.slice(0, 200)}… (${data.byteLength} bytes)` : text;
  } catch {
    /* binary */
  }
  return `<${data.byteLength} bytes>`;
}
