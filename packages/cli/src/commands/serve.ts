/**
 * `backchannel serve`: runs the server. Settings come from flags, then environment variables,
 * then a JSON config file, then the defaults (docs/cli.md); they are validated together before
 * anything starts, so a bad one is a configuration error (exit 2), not a crash.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, ConfigErrorCode, DEFAULT_CONFIG, DEV_API_KEY, DEV_API_SECRET, LOG_LEVELS, resolveConfig, startServer, type ServerConfig } from '@backchannel/server';
import { createAccessToken } from '@backchannel/server-sdk';
import { action, describeFailure, usageError } from '../errors.js';
import { integer, list } from '../options.js';

interface ServeOptions {
  host?: string;
  port?: number;
  config?: string;
  apiKey?: string;
  apiSecret?: string;
  logLevel?: string;
  webhook?: string[];
  tlsCert?: string;
  tlsKey?: string;
  demo?: boolean;
  webrtc?: boolean;
  redis?: string;
  clusterAddress?: string;
}

/** Reads a JSON config file holding any server settings. */
export function readConfigFile(path: string): Partial<ServerConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    const reason = (cause as { code?: string }).code === 'ENOENT' ? 'no such file' : (cause as Error).message;
    throw new ConfigError(`cannot read config file ${path}: ${reason}`, { code: ConfigErrorCode.FileUnreadable, cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(cause as Error).message}`, { code: ConfigErrorCode.FileUnreadable, cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`config file ${path} must hold a JSON object of settings`, { code: ConfigErrorCode.FileUnreadable });
  }
  return value as Partial<ServerConfig>;
}

/** Settings from the environment variables `serve` understands. */
export function settingsFromEnv(env: NodeJS.ProcessEnv): Partial<ServerConfig> {
  const out: Partial<ServerConfig> = {};
  if (env.BACKCHANNEL_HOST) out.host = env.BACKCHANNEL_HOST;
  if (env.BACKCHANNEL_PORT) {
    const port = Number(env.BACKCHANNEL_PORT);
    if (!/^\d+$/.test(env.BACKCHANNEL_PORT.trim()) || !Number.isInteger(port)) {
      throw new ConfigError(`BACKCHANNEL_PORT must be a port number (got ${JSON.stringify(env.BACKCHANNEL_PORT)})`);
    }
    out.port = port;
  }
  if (env.BACKCHANNEL_LOG_LEVEL) out.logLevel = env.BACKCHANNEL_LOG_LEVEL;
  if (env.BACKCHANNEL_API_KEY || env.BACKCHANNEL_API_SECRET) {
    if (!env.BACKCHANNEL_API_KEY || !env.BACKCHANNEL_API_SECRET) throw new ConfigError('set both BACKCHANNEL_API_KEY and BACKCHANNEL_API_SECRET');
    out.apiKeys = { [env.BACKCHANNEL_API_KEY]: env.BACKCHANNEL_API_SECRET };
  }
  if (env.BACKCHANNEL_WEBHOOK_URLS) out.webhookUrls = list(env.BACKCHANNEL_WEBHOOK_URLS);
  if (env.BACKCHANNEL_TLS_CERT) out.tlsCertFile = env.BACKCHANNEL_TLS_CERT;
  if (env.BACKCHANNEL_TLS_KEY) out.tlsKeyFile = env.BACKCHANNEL_TLS_KEY;
  if (env.BACKCHANNEL_METRICS_TOKEN) out.metricsToken = env.BACKCHANNEL_METRICS_TOKEN;
  if (env.BACKCHANNEL_WEBRTC) {
    const v = env.BACKCHANNEL_WEBRTC.trim().toLowerCase();
    if (!['0', '1', 'true', 'false', 'on', 'off'].includes(v)) throw new ConfigError(`BACKCHANNEL_WEBRTC must be on or off (got ${JSON.stringify(env.BACKCHANNEL_WEBRTC)})`);
    out.webrtc = ['1', 'true', 'on'].includes(v);
  }
  if (env.BACKCHANNEL_WEBRTC_PORTS) {
    const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(env.BACKCHANNEL_WEBRTC_PORTS);
    if (!m) throw new ConfigError(`BACKCHANNEL_WEBRTC_PORTS must be a UDP port range such as 50000-50999 (got ${JSON.stringify(env.BACKCHANNEL_WEBRTC_PORTS)})`);
    out.webrtcPortMin = Number(m[1]);
    out.webrtcPortMax = Number(m[2]);
  }
  if (env.BACKCHANNEL_WEBRTC_ANNOUNCED_ADDRESS) out.webrtcAnnouncedAddress = env.BACKCHANNEL_WEBRTC_ANNOUNCED_ADDRESS;
  if (env.BACKCHANNEL_REDIS_URL) out.redis = env.BACKCHANNEL_REDIS_URL;
  if (env.BACKCHANNEL_CLUSTER_ADDRESS) out.clusterAddress = env.BACKCHANNEL_CLUSTER_ADDRESS;
  if (env.BACKCHANNEL_CLUSTER_SECRET) out.clusterSecret = env.BACKCHANNEL_CLUSTER_SECRET;
  return out;
}

/** Flags over environment over config file over defaults, validated. */
function resolveServeConfig(o: ServeOptions): Readonly<ServerConfig> {
  if (Boolean(o.apiKey) !== Boolean(o.apiSecret)) throw usageError('--api-key and --api-secret go together');
  const merged: Partial<ServerConfig> = { ...(o.config ? readConfigFile(o.config) : {}), ...settingsFromEnv(process.env) };
  if (o.host) merged.host = o.host;
  if (o.port !== undefined) merged.port = o.port;
  if (o.logLevel) merged.logLevel = o.logLevel;
  if (o.webhook && o.webhook.length > 0) merged.webhookUrls = o.webhook;
  if (o.tlsCert) merged.tlsCertFile = o.tlsCert;
  if (o.tlsKey) merged.tlsKeyFile = o.tlsKey;
  if (o.demo) merged.demo = true;
  if (o.webrtc === false) merged.webrtc = false;
  if (o.redis) merged.redis = o.redis;
  if (o.clusterAddress) merged.clusterAddress = o.clusterAddress;
  if (o.apiKey && o.apiSecret) merged.apiKeys = { [o.apiKey]: o.apiSecret };
  return resolveConfig(merged);
}

async function printDevBanner(config: Readonly<ServerConfig>, url: string, port: number): Promise<void> {
  const token = await createAccessToken({ apiKey: DEV_API_KEY, apiSecret: DEV_API_SECRET, userId: 'dev', name: 'Developer', ttl: '24h', grants: { conferences: ['*'] } });
  const http = `${config.tlsCertFile ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  process.stderr.write(
    `\nBackchannel dev server: ${url}\n` +
      `  health:    ${http}/healthz (ready: /readyz)\n` +
      `  API:       ${http}/api/v1/ (openapi.json; admin token: backchannel token create --user app --admin)\n` +
      `  demo:      ${http}/ (open it in two tabs)\n` +
      `  dev token: ${token}\n` +
      `  WARNING: using the development API key "${DEV_API_KEY}"/"${DEV_API_SECRET}". Set --api-key/--api-secret for production.\n\n`,
  );
}

/** Registers `serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the server (zero-config development defaults: 127.0.0.1:7800, API key devkey/devsecret)')
    .option('--host <host>', `interface to bind (env BACKCHANNEL_HOST, default ${DEFAULT_CONFIG.host})`)
    .option('--port <port>', `TCP port, 0 = any free port (env BACKCHANNEL_PORT, default ${DEFAULT_CONFIG.port})`, integer(0, 65535))
    .option('--config <file>', 'JSON file with any server settings (see docs/configuration.md)')
    .option('--api-key <key>', 'API key (env BACKCHANNEL_API_KEY; needs --api-secret)')
    .option('--api-secret <secret>', 'API secret (env BACKCHANNEL_API_SECRET)')
    .option('--log-level <level>', `${LOG_LEVELS.join('|')} (env BACKCHANNEL_LOG_LEVEL, default ${DEFAULT_CONFIG.logLevel})`)
    .option('--webhook <url>', 'URL that receives webhook events; repeatable (env BACKCHANNEL_WEBHOOK_URLS, comma-separated)', list)
    .option('--tls-cert <file>', 'PEM certificate (chain): serve HTTPS and WSS (env BACKCHANNEL_TLS_CERT; needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert (env BACKCHANNEL_TLS_KEY)')
    .option('--demo', 'serve the demo web app and its token endpoint on a production API key (always on with the development key; see docs/demo.md)')
    .option('--no-webrtc', 'offer no WebRTC datagram path: unreliable data stays on the WebSocket (env BACKCHANNEL_WEBRTC=off; see docs/webrtc.md)')
    .option('--redis <url>', 'cluster mode: redis:// or rediss:// URL of the Redis the nodes share (env BACKCHANNEL_REDIS_URL; default none: one process)')
    .option('--cluster-address <url>', 'cluster mode: ws:// or wss:// URL other nodes reach this one at (env BACKCHANNEL_CLUSTER_ADDRESS; default from --host and --port, needed with a wildcard host)')
    .addHelpText(
      'after',
      '\nLogs are JSON lines on stdout. SIGTERM drains: no new clients, joins or calls, rooms go on for drainTimeoutMs, then the rest end\n' +
        'with reason server-shutdown. SIGINT (or a second SIGTERM) shuts down at once, as gracefully. SIGHUP reloads the TLS certificate.',
    )
    .action(
      action('serve', async (o: ServeOptions) => {
        const config = resolveServeConfig(o);
        const server = await startServer(config);
        if (config.devKeys) await printDevBanner(config, server.url, server.port);
        let stopping = false;
        const stop = (signal: string, drain: boolean) => {
          server.log.info({ signal }, 'signal received');
          if (drain && !stopping) void server.drain();
          else void server.close();
          if (stopping) return;
          stopping = true;
          server.once('closed', () => process.exit(0));
        };
        process.on('SIGINT', () => stop('SIGINT', false));
        process.on('SIGTERM', () => stop('SIGTERM', true));
        process.on('SIGHUP', () => {
          if (!config.tlsCertFile) return void server.log.info({ signal: 'SIGHUP' }, 'signal received; no TLS certificate to reload');
          try {
            server.reloadTls();
          } catch (error) {
            const { code, message } = describeFailure(error);
            server.log.error({ signal: 'SIGHUP', code }, `TLS certificate not reloaded (the current one stays in use): ${message}`);
          }
        });
      }),
    );
}
