#!/usr/bin/env node
/**
 * The `backchannel` command: run the server, mint tokens, drive the server API (rooms,
 * participants, send), receive webhooks (webhook listen). Server settings come from flags, then
 * environment variables, then a JSON config file, then the defaults (see docs/cli.md).
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createAccessToken } from '@backchannel/server-sdk';
import { registerApiCommands } from './api/cli.js';
import { registerClientCommands } from './client-cli.js';
import { ConfigError, DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET, resolveConfig, type ServerConfig } from './config.js';
import { startServer } from './server.js';
import { SERVER_VERSION } from './version.js';
import { registerWebhookCommands } from './webhooks/listener.js';

function int(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}

function readConfigFile(path: string): Partial<ServerConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read config file ${path}: ${(cause as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the file must hold a JSON object');
    return value as Partial<ServerConfig>;
  } catch (cause) {
    throw new ConfigError(`config file ${path} is not valid: ${(cause as Error).message}`);
  }
}

/** Environment variables understood by `serve`, mapped to settings. */
function fromEnv(env: NodeJS.ProcessEnv): Partial<ServerConfig> {
  const out: Partial<ServerConfig> = {};
  if (env.BACKCHANNEL_HOST) out.host = env.BACKCHANNEL_HOST;
  if (env.BACKCHANNEL_PORT) out.port = Number(env.BACKCHANNEL_PORT);
  if (env.BACKCHANNEL_LOG_LEVEL) out.logLevel = env.BACKCHANNEL_LOG_LEVEL;
  if (env.BACKCHANNEL_API_KEY || env.BACKCHANNEL_API_SECRET) {
    if (!env.BACKCHANNEL_API_KEY || !env.BACKCHANNEL_API_SECRET) throw new ConfigError('set both BACKCHANNEL_API_KEY and BACKCHANNEL_API_SECRET');
    out.apiKeys = { [env.BACKCHANNEL_API_KEY]: env.BACKCHANNEL_API_SECRET };
  }
  if (env.BACKCHANNEL_WEBHOOK_URLS) out.webhookUrls = env.BACKCHANNEL_WEBHOOK_URLS.split(',').map((u) => u.trim()).filter(Boolean);
  return out;
}

/** Builds the command tree. */
function buildProgram(): Command {
  const program = new Command('backchannel')
    .description('Backchannel: self-hosted real-time data sessions inside calls and conferences')
    .version(SERVER_VERSION)
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('serve')
    .description('run the server (zero-config development defaults: 127.0.0.1:7800, API key devkey/devsecret)')
    .option('--host <host>', `interface to bind (env BACKCHANNEL_HOST, default ${DEFAULT_CONFIG.host})`)
    .option('--port <port>', `TCP port, 0 = any free port (env BACKCHANNEL_PORT, default ${DEFAULT_CONFIG.port})`, int('--port'))
    .option('--config <file>', 'JSON file with any server settings (see docs/configuration.md)')
    .option('--api-key <key>', 'API key (env BACKCHANNEL_API_KEY; needs --api-secret)')
    .option('--api-secret <secret>', 'API secret (env BACKCHANNEL_API_SECRET)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env BACKCHANNEL_LOG_LEVEL, default info)')
    .option('--webhook <url>', 'URL that receives webhook events; repeatable (env BACKCHANNEL_WEBHOOK_URLS, comma-separated)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText('after', '\nLogs are JSON lines on stdout. SIGINT/SIGTERM shut down gracefully (clients see reason server-shutdown).')
    .action(async (opts: { host?: string; port?: number; config?: string; apiKey?: string; apiSecret?: string; logLevel?: string; webhook: string[] }) => {
      let config: Readonly<ServerConfig>;
      try {
        const merged: Partial<ServerConfig> = { ...(opts.config ? readConfigFile(opts.config) : {}), ...fromEnv(process.env) };
        if (opts.host) merged.host = opts.host;
        if (opts.port !== undefined) merged.port = opts.port;
        if (opts.logLevel) merged.logLevel = opts.logLevel;
        if (opts.webhook.length > 0) merged.webhookUrls = opts.webhook;
        if (opts.apiKey || opts.apiSecret) {
          if (!opts.apiKey || !opts.apiSecret) throw new ConfigError('--api-key and --api-secret go together');
          merged.apiKeys = { [opts.apiKey]: opts.apiSecret };
        }
        config = resolveConfig(merged);
      } catch (error) {
        if (error instanceof ConfigError) program.error(`backchannel serve: ${error.message}`, { exitCode: 2 });
        throw error;
      }
      const server = await startServer(config);
      if (config.devKeys) {
        const token = await createAccessToken({ apiKey: DEV_API_KEY, apiSecret: DEV_API_SECRET, userId: 'dev', name: 'Developer', ttl: '24h', grants: { conferences: ['*'] } });
        process.stderr.write(
          `\nBackchannel dev server: ${server.url}\n` +
            `  health:    http://${config.host}:${server.port}/healthz\n` +
            `  API:       http://${config.host}:${server.port}/api/v1/ (openapi.json; admin token: backchannel token create --user app --admin)\n` +
            `  dev token: ${token}\n` +
            `  WARNING: using the development API key "${DEV_API_KEY}"/"${DEV_API_SECRET}". Set --api-key/--api-secret for production.\n\n`,
        );
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        server.log.info({ signal }, 'signal received');
        void server.close().then(() => process.exit(0));
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });

  const token = program.command('token').description('access tokens');
  token
    .command('create')
    .description('mint an access token for a client (prints the JWT)')
    .requiredOption('--user <id>', 'user id (sub)')
    .option('--name <name>', 'display name')
    .option('--conference <name...>', 'conferences it may join: names, prefixes ending in *, or * for any')
    .option('--ttl <ttl>', 'lifetime, e.g. 30m, 1h, 7d', '1h')
    .option('--stream-ids <ids>', 'comma-separated allow-list of stream ids it may send on')
    .option('--no-calls', 'may not make or receive 1:1 calls')
    .option('--no-publish', 'may not send data')
    .option('--no-subscribe', 'may not receive data')
    .option('--hidden', 'joins rooms without being listed')
    .option('--admin', 'may call the server API')
    .addOption(new Option('--api-key <key>', 'API key').env('BACKCHANNEL_API_KEY').default(DEV_API_KEY))
    .addOption(new Option('--api-secret <secret>', 'API secret').env('BACKCHANNEL_API_SECRET').default(DEV_API_SECRET))
    .action(async (o: Record<string, unknown>) => {
      const streamIds = typeof o.streamIds === 'string' ? o.streamIds.split(',').map((s) => Number(s.trim())) : undefined;
      try {
        const jwt = await createAccessToken({
          apiKey: o.apiKey as string,
          apiSecret: o.apiSecret as string,
          userId: o.user as string,
          ...(typeof o.name === 'string' ? { name: o.name } : {}),
          ttl: o.ttl as string,
          grants: {
            calls: o.calls as boolean,
            conferences: (o.conference as string[] | undefined) ?? [],
            publishData: o.publish as boolean,
            subscribeData: o.subscribe as boolean,
            hidden: Boolean(o.hidden),
            admin: Boolean(o.admin),
            ...(streamIds ? { streamIds } : {}),
          },
        });
        process.stdout.write(`${jwt}\n`);
      } catch (error) {
        program.error(`backchannel token create: ${(error as Error).message}`, { exitCode: 2 });
      }
    });
  registerApiCommands(program);
  registerClientCommands(program);
  registerWebhookCommands(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
