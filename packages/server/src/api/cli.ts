/**
 * CLI commands that drive a running server through its server API: `rooms list|end`,
 * `participants list|kick|update` and `send`. They use the server SDK's {@link ServerApiClient}.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { BackchannelError, ErrorCode, type DataMode } from '@backchannel/protocol';
import { ServerApiClient, type ApiCall, type ApiConference, type ApiParticipant } from '@backchannel/server-sdk';
import { DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET } from '../config.js';

interface ApiOptions {
  url: string;
  apiKey: string;
  apiSecret: string;
  json?: boolean;
}

const DEFAULT_URL = `http://${DEFAULT_CONFIG.host}:${DEFAULT_CONFIG.port}`;

/** Adds the options every server-API command takes. */
function withApiOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', 'server address').env('BACKCHANNEL_URL').default(DEFAULT_URL))
    .addOption(new Option('--api-key <key>', 'API key').env('BACKCHANNEL_API_KEY').default(DEV_API_KEY))
    .addOption(new Option('--api-secret <secret>', 'API secret').env('BACKCHANNEL_API_SECRET').default(DEV_API_SECRET))
    .option('--json', 'print the server’s JSON answer instead of a table');
}

function client(o: ApiOptions): ServerApiClient {
  return new ServerApiClient(o.url, { apiKey: o.apiKey, apiSecret: o.apiSecret });
}

/** Runs `fn`, printing a failure as `<command>: <code>: <message>` with exit code 1. */
function run<A extends unknown[]>(program: Command, name: string, fn: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (error) {
      const e = error as BackchannelError;
      program.error(`backchannel ${name}: ${e.code ? `${e.code}: ` : ''}${e.message}`, { exitCode: 1 });
    }
  };
}

function print(o: ApiOptions, value: unknown, table: () => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : table());
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function participantLines(list: ApiParticipant[], indent = ''): string {
  if (list.length === 0) return `${indent}(no participants)\n`;
  return list
    .map((p) => `${indent}${p.id}  ${p.userId}  "${p.displayName}"${p.hidden ? '  (hidden)' : ''}  joined ${time(p.joinedAt)}  metadata ${JSON.stringify(p.metadata)}\n`)
    .join('');
}

function conferenceLine(c: ApiConference): string {
  return `conference  ${c.name}  ${c.participantCount} participant(s)  since ${time(c.createdAt)}\n`;
}

function callLine(c: ApiCall): string {
  return `call        ${c.callId}  ${c.state}  ${c.caller.userId} → ${c.callee.userId}  since ${time(c.createdAt)}\n`;
}

const MODES: readonly DataMode[] = ['reliable-message', 'reliable-bytes', 'unreliable'];

/** Registers `rooms`, `participants` and `send` on `program`. */
export function registerApiCommands(program: Command): void {
  const rooms = program.command('rooms').description('conferences and calls of a running server (server API)');
  withApiOptions(rooms.command('list').description('list conferences and calls with their participants')).action(
    run(program, 'rooms list', async (o: ApiOptions) => {
      const api = client(o);
      const [conferences, calls] = await Promise.all([api.listConferences(), api.listCalls()]);
      print(o, { conferences, calls }, () => {
        if (conferences.length + calls.length === 0) return 'no rooms\n';
        let out = '';
        for (const c of conferences) out += conferenceLine(c) + participantLines(c.participants, '    ');
        for (const c of calls) out += callLine(c) + participantLines(c.participants, '    ');
        return out;
      });
    }),
  );
  withApiOptions(rooms.command('end').description('end a conference (by name) or a call (by call id)').argument('<room>', 'conference name or call id')).action(
    run(program, 'rooms end', async (room: string, o: ApiOptions) => {
      const api = client(o);
      try {
        await api.endConference(room);
      } catch (error) {
        if ((error as BackchannelError).code !== ErrorCode.RoomNotFound) throw error;
        await api.endCall(room).catch((e: BackchannelError) => {
          throw e.code === ErrorCode.CallNotFound ? new BackchannelError(ErrorCode.RoomNotFound, `no conference or call "${room}"`) : e;
        });
      }
      print(o, { ended: room }, () => `ended ${room}\n`);
    }),
  );

  const participants = program.command('participants').description('participants of a room (server API)');
  withApiOptions(participants.command('list').description('list the participants of a conference or call').argument('<room>', 'conference name or call id')).action(
    run(program, 'participants list', async (room: string, o: ApiOptions) => {
      const list = await client(o).listParticipants(room);
      print(o, { participants: list }, () => participantLines(list));
    }),
  );
  withApiOptions(
    participants
      .command('kick')
      .description('remove a participant from a room')
      .argument('<room>', 'conference name or call id')
      .argument('<participant>', 'participant id')
      .option('--reason <text>', 'shown to the kicked client and carried by the webhooks'),
  ).action(
    run(program, 'participants kick', async (room: string, participant: string, o: ApiOptions & { reason?: string }) => {
      await client(o).kickParticipant(room, participant, o.reason === undefined ? {} : { reason: o.reason });
      print(o, { kicked: participant }, () => `kicked ${participant} from ${room}\n`);
    }),
  );
  withApiOptions(
    participants
      .command('update')
      .description("replace a participant's metadata (everyone in the room is notified)")
      .argument('<room>', 'conference name or call id')
      .argument('<participant>', 'participant id')
      .requiredOption('--metadata <json>', 'new metadata, as JSON (a bare word is taken as a string)'),
  ).action(
    run(program, 'participants update', async (room: string, participant: string, o: ApiOptions & { metadata: string }) => {
      let metadata: unknown;
      try {
        metadata = JSON.parse(o.metadata);
      } catch {
        metadata = o.metadata;
      }
      const updated = await client(o).updateParticipant(room, participant, { metadata });
      print(o, { participant: updated }, () => participantLines([updated]));
    }),
  );

  withApiOptions(
    program
      .command('send')
      .description('send an app control message into a room; clients receive it as data from "server"')
      .requiredOption('--room <room>', 'conference name or call id')
      .requiredOption('--stream-id <id>', 'stream id the clients receive it on (1–64999)', (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--stream-id must be a positive integer');
        return n;
      })
      .option('--to <participant...>', 'participant ids to send to (default: everyone in the room)')
      .addOption(new Option('--mode <mode>', 'delivery mode').choices(MODES).default('reliable-message'))
      .addOption(new Option('--priority <priority>', 'priority').choices(['high', 'normal', 'low']).default('normal'))
      .argument('<message>', 'the message (UTF-8 text)'),
  ).action(
    run(program, 'send', async (message: string, o: ApiOptions & { room: string; streamId: number; to?: string[]; mode: DataMode; priority: 'high' | 'normal' | 'low' }) => {
      const result = await client(o).sendData(o.room, { streamId: o.streamId, mode: o.mode, priority: o.priority, data: message, destination: o.to ?? 'broadcast' });
      print(o, result, () => `sent #${result.seq} on stream ${result.streamId} to ${result.recipients.length} participant(s): ${result.recipients.join(' ')}\n`);
    }),
  );
}
