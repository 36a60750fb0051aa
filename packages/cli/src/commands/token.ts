/** `backchannel token create`: mints an access token offline with the server SDK. */
import type { Command } from 'commander';
import { createAccessToken } from '@backchannel/server-sdk';
import { action } from '../errors.js';
import { duration, integer, list, withKeyOptions, type KeyOptions } from '../options.js';

interface TokenOptions extends KeyOptions {
  user: string;
  name?: string;
  conference?: string[];
  ttl: number;
  streamIds?: number[];
  calls: boolean;
  publish: boolean;
  subscribe: boolean;
  hidden?: boolean;
  admin?: boolean;
}

/** Registers `token create`. */
export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('access tokens');
  const streamId = integer(1, 65535);
  const streamIds = (value: string, previous: number[] = []) => [...previous, ...list(value).map(streamId)];
  withKeyOptions(
    token
      .command('create')
      .description('mint an access token for a client (prints the JWT)')
      .requiredOption('--user <id>', 'user id (sub)')
      .option('--name <name>', 'display name')
      .option('--conference <name...>', 'conferences it may join: names, prefixes ending in *, or * for any')
      .option('--ttl <duration>', 'lifetime: seconds, or a number with s, m, h, d or w (e.g. 30m, 8h, 7d)', duration(), 3600)
      .option('--stream-ids <ids>', 'comma-separated allow-list of stream ids it may send on', streamIds)
      .option('--no-calls', 'may not make or receive 1:1 calls')
      .option('--no-publish', 'may not send data')
      .option('--no-subscribe', 'may not receive data')
      .option('--hidden', 'joins rooms without being listed')
      .option('--admin', 'may call the server API'),
    'that signs the token',
  ).action(
    action('token create', async (o: TokenOptions) => {
      const jwt = await createAccessToken({
        apiKey: o.apiKey,
        apiSecret: o.apiSecret,
        userId: o.user,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ttl: o.ttl,
        grants: {
          calls: o.calls,
          conferences: o.conference ?? [],
          publishData: o.publish,
          subscribeData: o.subscribe,
          hidden: Boolean(o.hidden),
          admin: Boolean(o.admin),
          ...(o.streamIds ? { streamIds: o.streamIds } : {}),
        },
      });
      process.stdout.write(`${jwt}\n`);
    }),
  );
}
