/**
 * Commands that drive a running server through its server API: `rooms list|end`,
 * `participants list|kick|update` and `send`. They use the server SDK's {@link ServerApiClient}.
 */
import { type Command, Option } from 'commander';
import { BackchannelError, ErrorCode, type DataMode } from '@backchannel/protocol';
import { API_STREAM_ID_MAX, ServerApiClient, type ApiCall, type ApiConference, type ApiParticipant } from '@backchannel/server-sdk';
import { action } from '../errors.js';
import { integer, list, withApiOptions, type ApiOptions } from '../options.js';

function client(o: ApiOptions): ServerApiClient {
  return new ServerApiClient(o.url, { apiKey: o.apiKey, apiSecret: o.apiSecret });
}

function print(o: ApiOptions, value: unknown, table: () => string): void {
  process.stdout.write(o.json ? `${JSON.stringify(value, null, 2)}\n` : table());
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function participantLines(participants: ApiParticipant[], indent = ''): string {
  if (participants.length === 0) return `${indent}(no participants)\n`;
  return participants
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

/** Registers `rooms`, `participants` and `send`. */
export function registerApiCommands(program: Command): void {
  const rooms = program.command('rooms').description('conferences and calls of a running server (server API)');
  withApiOptions(rooms.command('list').description('list conferences and calls with their participants')).action(
    action('rooms list', async (o: ApiOptions) => {
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
    action('rooms end', async (room: string, o: ApiOptions) => {
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
    action('participants list', async (room: string, o: ApiOptions) => {
      const found = await client(o).listParticipants(room);
      print(o, { participants: found }, () => participantLines(found));
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
    action('participants kick', async (room: string, participant: string, o: ApiOptions & { reason?: string }) => {
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
    action('participants update', async (room: string, participant: string, o: ApiOptions & { metadata: string }) => {
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
      .argument('<message>', 'the message (UTF-8 text)')
      .requiredOption('--room <room>', 'conference name or call id')
      .requiredOption('--stream-id <id>', `stream id the clients receive it on (1–${API_STREAM_ID_MAX})`, integer(1, API_STREAM_ID_MAX))
      // One value per flag (repeat it, or separate ids with commas), so the message after it is
      // never taken for another participant id.
      .option('--to <participant>', 'participant id to send to; repeatable or comma-separated (default: everyone in the room)', list)
      .addOption(new Option('--mode <mode>', 'delivery mode').choices(MODES).default('reliable-message'))
      .addOption(new Option('--priority <priority>', 'priority').choices(['high', 'normal', 'low']).default('normal')),
  ).action(
    action('send', async (message: string, o: ApiOptions & { room: string; streamId: number; to?: string[]; mode: DataMode; priority: 'high' | 'normal' | 'low' }) => {
      const result = await client(o).sendData(o.room, { streamId: o.streamId, mode: o.mode, priority: o.priority, data: message, destination: o.to ?? 'broadcast' });
      print(o, result, () => `sent #${result.seq} on stream ${result.streamId} to ${result.recipients.length} participant(s): ${result.recipients.join(' ')}\n`);
    }),
  );
}
