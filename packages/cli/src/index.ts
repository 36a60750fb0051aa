/**
 * @packageDocumentation
 * The `backchannel` command. Installing this package puts `backchannel` on the PATH; the exports
 * below let a program embed the command tree or reuse its formatting.
 */
export { buildProgram, CLI_VERSION } from './program.js';
export { CliError, CliErrorCode, describeFailure, EXIT_FAILURE, EXIT_USAGE } from './errors.js';
export { describeWebhook } from './commands/webhook.js';
