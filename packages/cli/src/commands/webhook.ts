/**
 * `backchannel webhook listen`: a tiny webhook receiver for developing an app server. It verifies
 * each delivery with the server SDK, answers 2xx (also for a re-delivered event id, which it
 * reports as a duplicate) or 401 for a delivery that fails verification, and prints the events.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Command, Option } from 'commander';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { DEV_API_SECRET } from '@backchannel/server';
import { DEFAULT_WEBHOOK_TOLERANCE_SEC, createMemorySeenStore, verifyWebhook, type WebhookEvent } from '@backchannel/server-sdk';
import { action, exitWithFailure } from '../errors.js';
import { integer } from '../options.js';
import { jsonSafe, terminalSafe } from '../sanitize.js';

interface ListenOptions {
  host: string;
  port: number;
  apiSecret: string;
  toleranceSec: number;
  json?: boolean;
}

/** One line describing `e`, for people. */
export function describeWebhook(e: WebhookEvent): string {
  const who = (p: { userId: string; participantId?: string; id?: string }) => `${p.userId} (${p.participantId ?? p.id})`;
  const head = `${new Date(e.createdAt).toISOString()}  ${e.room.kind} ${e.room.name} #${e.sequence}  ${e.type}`;
  switch (e.type) {
    case 'call.incoming':
      return `${head}  ${who(e.caller)} → ${e.callee.userId}${e.appParam !== undefined ? `  appParam=${JSON.stringify(e.appParam)}` : ''}`;
    case 'call.started':
      return `${head}  ${who(e.caller)} ↔ ${who(e.callee)}`;
    case 'call.ended':
      return `${head}  ${e.reason.code} (${e.reason.message})  ${e.durationMs} ms`;
    case 'conference.started':
      return head;
    case 'conference.ended':
      return `${head}  ${e.reason.code} (${e.reason.message})  ${e.durationMs} ms`;
    case 'participant.joined':
      return `${head}  ${who(e.participant)}`;
    case 'participant.left':
    case 'participant.kicked':
      return `${head}  ${who(e.participant)}  ${e.reason.code} (${e.reason.message})`;
    default:
      return `${head}  ${JSON.stringify(e)}`;
  }
}

/** Registers `webhook listen`. */
export function registerWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('webhook tools');
  webhook
    .command('listen')
    .description('receive, verify and print webhook events (point the server’s --webhook at it)')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .requiredOption('--port <port>', 'TCP port, 0 = any free port', integer(0, 65535))
    .addOption(new Option('--api-secret <secret>', 'API secret that signs the webhooks').env('BACKCHANNEL_API_SECRET').default(DEV_API_SECRET))
    .option('--tolerance-sec <seconds>', 'accepted clock difference', integer(), DEFAULT_WEBHOOK_TOLERANCE_SEC)
    .option('--json', 'print each event as one JSON line')
    .action(
      action('webhook listen', (o: ListenOptions) => {
        const seen = createMemorySeenStore();
        const server = createServer((req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            const body = Buffer.concat(chunks);
            verifyWebhook(body, req.headers, { apiSecret: o.apiSecret, toleranceSec: o.toleranceSec, seen }).then(
              (event) => {
                res.writeHead(204).end();
                // Names, metadata and reasons in events come from clients: printed inert.
                process.stdout.write(o.json ? `${jsonSafe(JSON.stringify(event))}\n` : `${terminalSafe(describeWebhook(event))}\n${jsonSafe(JSON.stringify(event, null, 2)).replace(/^/gm, '    ')}\n`);
              },
              (error: BackchannelError) => {
                if (error.code === ErrorCode.WebhookReplayed) {
                  // At-least-once delivery: acknowledge the retry so the server stops sending it.
                  res.writeHead(204).end();
                  process.stdout.write(`duplicate delivery of ${terminalSafe(String(error.details?.id))} (already printed)\n`);
                  return;
                }
                res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ code: error.code, message: error.message }));
                process.stderr.write(`rejected delivery: ${error.code}: ${error.message}\n`);
              },
            );
          });
        });
        server.once('error', (error) => exitWithFailure('webhook listen', error));
        server.listen(o.port, o.host, () => {
          const { port } = server.address() as AddressInfo;
          const host = o.host.includes(':') ? `[${o.host}]` : o.host;
          process.stdout.write(`listening for webhooks on http://${host}:${port}/\n`);
        });
        const stop = () => server.close(() => process.exit(0));
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      }),
    );
}
