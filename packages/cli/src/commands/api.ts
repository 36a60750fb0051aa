/**
 * Commands that drive a running server through its server API: `rooms list|end`,
 * `participants list|kick|update|revoke` and `send`. They use the server SDK's
 * {@link ServerApiClient}; lists follow the server's pages.
 */
import { type Command, Option } from 'commander';
import type { DataMode } from '@backchannel/protocol';
import {
  API_PAGE_LIMIT_MAX,
  API_STREAM_ID_MAX,
  ServerApiClient,
  parseRoomId,
  type ApiCall,
  type ApiConference,
  type ApiParticipant,
  type PageOptions,
} from '@backchannel/server-sdk';
import { action } from '../errors.js';
import { integer, list, withApiOptions, type ApiOptions } from '../options.js';
import { jsonSafe, terminalSafe } from '../sanitize.js';

function client(o: ApiOptions): ServerApiClient {
  return new ServerApiClient(o.url, { apiKey: o.apiKey, apiSecret: o.apiSecret });
}

/** Prints the answer as JSON (`--json`) or as lines for people; names and metadata chosen by clients are made inert either way. */
function print(o: ApiOptions, value: unknown, table: () => string): void {
  process.stdout.write(o.json ? `${jsonSafe(JSON.stringify(value, null, 2))}\n` : table());
}

/** A value chosen by a client (name, id), one line and inert on a terminal. */
const t = terminalSafe;

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function participantLines(participants: ApiParticipant[], indent = ''): string {
  if (participants.length === 0) return `${indent}(no participants)\n`;
  return participants
    .map((p) => `${indent}${t(p.id)}  ${t(p.userId)}  "${t(p.displayName)}"${p.hidden ? '  (hidden)' : ''}  joined ${time(p.joinedAt)}  metadata ${jsonSafe(JSON.stringify(p.metadata))}\n`)
    .join('');
}

function conferenceLine(c: ApiConference): string {
  return `conference  ${t(c.name)}  ${c.participantCount} participant(s)  since ${time(c.createdAt)}\n`;
}

function callLine(c: ApiCall): string {
  return `call        ${c.callId}  ${c.state}  ${t(c.caller.userId)} → ${t(c.callee.userId)}  since ${time(c.createdAt)}\n`;
}

const MODES: readonly DataMode[] = ['reliable-message', 'reliable-bytes', 'unreliable'];

/** What ROOM arguments accept (see docs/server-api.md#rooms-and-ids). */
const ROOM_ARG = 'conference name or call id (conference:<name> or call:<id> to be explicit)';

/**
 * Up to `max` items of a list, page after page; `more` says whether the server has more. Pages
 * are as large as the server allows, so even a long list takes few requests.
 */
async function collect<P extends { next?: string }, T>(fetchPage: (page: PageOptions) => Promise<P>, items: (page: P) => T[], max: number): Promise<{ items: T[]; more: boolean }> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage({ limit: Math.min(API_PAGE_LIMIT_MAX, max - out.length), ...(cursor === undefined ? {} : { cursor }) });
    out.push(...items(page));
    cursor = page.next;
  } while (cursor !== undefined && out.length < max);
  return { items: out.slice(0, max), more: cursor !== undefined || out.length > max };
}

/** `--limit`: at most this many of each list (default: all of them). */
function withLimit(cmd: Command, what: string): Command {
  return cmd.option('--limit <n>', `show at most this many ${what} (default: all)`, integer(1));
}

/** Registers `rooms`, `participants` and `send`. */
export function registerApiCommands(program: Command): void {
  const rooms = program.command('rooms').description('conferences and calls of a running server (server API)');
  withApiOptions(withLimit(rooms.command('list').description('list conferences and calls with their participants'), 'conferences and calls')).action(
    action('rooms list', async (o: ApiOptions & { limit?: number }) => {
      const api = client(o);
      const max = o.limit ?? Infinity;
      const [conferences, calls] = await Promise.all([
        collect((p) => api.listConferences(p), (p) => p.conferences, max),
        collect((p) => api.listCalls(p), (p) => p.calls, max),
      ]);
      const json = { conferences: conferences.items, calls: calls.items, ...(conferences.more ? { moreConferences: true } : {}), ...(calls.more ? { moreCalls: true } : {}) };
      print(o, json, () => {
        if (conferences.items.length + calls.items.length === 0) return 'no rooms\n';
        let out = '';
        for (const c of conferences.items) out += conferenceLine(c) + participantLines(c.participants, '    ');
        if (conferences.more) out += `… more conferences (raise --limit)\n`;
        for (const c of calls.items) out += callLine(c) + participantLines(c.participants, '    ');
        if (calls.more) out += `… more calls (raise --limit)\n`;
        return out;
      });
    }),
  );
  withApiOptions(rooms.command('end').description('end a conference (by name) or a call (by call id)').argument('<room>', ROOM_ARG)).action(
    action('rooms end', async (room: string, o: ApiOptions) => {
      const api = client(o);
      // What the id names depends on its text alone (a conference cannot pass for a call).
      const ref = parseRoomId(room);
      if (ref.kind === 'conference') await api.endConference(ref.name);
      else await api.endCall(ref.name);
      print(o, { ended: room }, () => `ended ${t(room)}\n`);
    }),
  );

  const participants = program.command('participants').description('participants of a room (server API)');
  withApiOptions(withLimit(participants.command('list').description('list the participants of a conference or call').argument('<room>', ROOM_ARG), 'participants')).action(
    action('participants list', async (room: string, o: ApiOptions & { limit?: number }) => {
      const api = client(o);
      const found = await collect((p) => api.listParticipants(room, p), (p) => p.participants, o.limit ?? Infinity);
      print(o, { participants: found.items, ...(found.more ? { more: true } : {}) }, () => participantLines(found.items) + (found.more ? '… more participants (raise --limit)\n' : ''));
    }),
  );
  withApiOptions(
    participants
      .command('kick')
      .description('remove a participant from a room')
      .argument('<room>', ROOM_ARG)
      .argument('<participant>', 'participant id')
      .option('--reason <text>', 'shown to the kicked client and carried by the webhooks'),
  ).action(
    action('participants kick', async (room: string, participant: string, o: ApiOptions & { reason?: string }) => {
      await client(o).kickParticipant(room, participant, o.reason === undefined ? {} : { reason: o.reason });
      print(o, { kicked: participant }, () => `kicked ${t(participant)} from ${t(room)}\n`);
    }),
  );
  withApiOptions(
    participants
      .command('revoke')
      .description("end a participant's connection for good: it leaves every room and cannot resume")
      .argument('<participant>', 'participant id')
      .option('--reason <text>', 'shown to the client and to the others in its rooms'),
  ).action(
    action('participants revoke', async (participant: string, o: ApiOptions & { reason?: string }) => {
      await client(o).revokeParticipant(participant, o.reason === undefined ? {} : { reason: o.reason });
      print(o, { revoked: participant }, () => `revoked ${t(participant)}\n`);
    }),
  );
  withApiOptions(
    participants
      .command('update')
      .description("replace a participant's metadata (everyone in the room is notified)")
      .argument('<room>', ROOM_ARG)
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
      .requiredOption('--room <room>', ROOM_ARG)
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
