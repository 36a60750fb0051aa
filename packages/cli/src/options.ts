/**
 * Options shared by the commands: where the server is, which API key to use, how to identify a
 * client; the defaults they fall back to; and the value parsers. Each command adds its own
 * options after these.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET } from '@backchannel/server';

/** WebSocket address of a server running with the defaults. */
export const DEFAULT_SERVER_URL = `ws://${DEFAULT_CONFIG.host}:${DEFAULT_CONFIG.port}`;
/** HTTP address (server API) of a server running with the defaults. */
export const DEFAULT_API_URL = `http://${DEFAULT_CONFIG.host}:${DEFAULT_CONFIG.port}`;

/** `--api-key` / `--api-secret` as every command takes them. */
export interface KeyOptions {
  apiKey: string;
  apiSecret: string;
}

/** Options of the commands that connect as a client (`join`, `send-file`, `receive-files`). */
export interface ClientOptions extends KeyOptions {
  server: string;
  token?: string;
  user?: string;
  name?: string;
}

/** Options of the commands that call the server API (`rooms`, `participants`, `send`). */
export interface ApiOptions extends KeyOptions {
  url: string;
  json?: boolean;
}

/** Adds `--api-key` and `--api-secret` (env `BACKCHANNEL_API_KEY` / `BACKCHANNEL_API_SECRET`, default the development key). */
export function withKeyOptions(cmd: Command, purpose: string): Command {
  return cmd
    .addOption(new Option('--api-key <key>', `API key ${purpose}`).env('BACKCHANNEL_API_KEY').default(DEV_API_KEY))
    .addOption(new Option('--api-secret <secret>', `API secret ${purpose}`).env('BACKCHANNEL_API_SECRET').default(DEV_API_SECRET));
}

/** Adds the options every client command takes: `--server`, `--token`, or `--user`/`--name` and a key to mint one. */
export function withClientOptions(cmd: Command): Command {
  cmd
    .addOption(new Option('--server <url>', 'server WebSocket address').env('BACKCHANNEL_SERVER').default(DEFAULT_SERVER_URL))
    .addOption(new Option('--token <jwt>', 'access token (otherwise one is minted with --user and the API key)').env('BACKCHANNEL_TOKEN'))
    .option('--user <id>', 'user id for a minted token (default: a random cli-… id)')
    .option('--name <name>', 'display name');
  return withKeyOptions(cmd, 'for minting a token');
}

/** Adds the options every server-API command takes: `--url`, the API key and `--json`. */
export function withApiOptions(cmd: Command): Command {
  cmd.addOption(new Option('--url <url>', 'server address').env('BACKCHANNEL_URL').default(DEFAULT_API_URL));
  return withKeyOptions(cmd, 'that signs the request').option('--json', 'print the server’s JSON answer instead of a table');
}

/** Parser of an integer option from `min` to `max` (commander names the option in its error). */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected an integer from ${min} to ${max}.`);
    }
    return n;
  };
}

/** Parser of a repeatable option whose values may also be comma-separated: `--to a --to b,c`. */
export function list(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean),
  ];
}

/** Units of a duration as `--ttl` takes it. */
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Parser of a positive duration such as `90s`, `30m`, `8h`, `7d`, `2w` (or plain seconds); returns seconds. */
export function duration(): (value: string) => number {
  return (value: string): number => {
    const m = /^(\d+)([smhdw]?)$/.exec(value.trim());
    const seconds = m ? Number(m[1]) * DURATION_UNITS[m[2] || 's']! : NaN;
    if (!(seconds > 0) || !Number.isSafeInteger(seconds)) {
      throw new InvalidArgumentError('Expected a positive duration such as 90s, 30m, 8h or 7d.');
    }
    return seconds;
  };
}
