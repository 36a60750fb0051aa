/**
 * The `backchannel` command tree: `serve`, `token create`, the server-API commands (`rooms`,
 * `participants`, `send`), the client commands (`join`, `send-file`, `receive-files`) and
 * `webhook listen`.
 */
import { readFileSync } from 'node:fs';
import { Command, type CommanderError } from 'commander';
import { registerApiCommands } from './commands/api.js';
import { registerFileCommands } from './commands/files.js';
import { registerJoinCommand } from './commands/join.js';
import { registerServeCommand } from './commands/serve.js';
import { registerTokenCommands } from './commands/token.js';
import { registerWebhookCommands } from './commands/webhook.js';
import { exitWithFailure, usageError } from './errors.js';

/** Version of this package (also printed by `backchannel --version`). */
export const CLI_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Commander's exits that are not errors (help or version shown). */
const NOT_ERRORS = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/**
 * Reports commander's parsing errors in the CLI's one-line format, as usage errors (exit 2): each
 * command gets its own handler so the line names the command that was run.
 */
function reportUsageErrors(cmd: Command, path: string[]): void {
  cmd.exitOverride((error: CommanderError) => {
    if (NOT_ERRORS.has(error.code)) process.exit(error.exitCode);
    exitWithFailure(path.join(' '), usageError(error.message.replace(/^error: /, '')));
  });
  for (const sub of cmd.commands) reportUsageErrors(sub, [...path, sub.name()]);
}

/** Builds the command tree (`parseAsync(process.argv)` runs it). */
export function buildProgram(): Command {
  const program = new Command('backchannel')
    .description('Backchannel: self-hosted real-time data sessions inside calls and conferences')
    .version(CLI_VERSION)
    // Parsing errors are printed by reportUsageErrors, in the same format as every other failure.
    .configureOutput({ outputError: () => undefined });
  registerServeCommand(program);
  registerTokenCommands(program);
  registerApiCommands(program);
  registerJoinCommand(program);
  registerFileCommands(program);
  registerWebhookCommands(program);
  reportUsageErrors(program, []);
  return program;
}
