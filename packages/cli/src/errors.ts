/**
 * How the CLI fails: every failure is one line on stderr, `backchannel <command>: <code>: <message>`,
 * and an exit code — 2 for a usage or configuration error (the command line, the environment or a
 * config file must change), 1 for everything else. Only usage errors end with a pointer to `--help`.
 */
import { ConfigError } from '@backchannel/server';

/** Exit code of a usage or configuration error. */
export const EXIT_USAGE = 2;
/** Exit code of any other failure. */
export const EXIT_FAILURE = 1;

/** CLI error codes (the server's and the SDKs' codes are passed through unchanged). */
export const CliErrorCode = {
  /** The command line is wrong: unknown option, missing or malformed value. */
  Usage: 'usage-error',
  /** The port is already taken by another process. */
  AddressInUse: 'address-in-use',
  /** The host is not an address of this machine. */
  AddressNotAvailable: 'address-not-available',
  /** Binding the port needs privileges this process does not have. */
  AddressNotPermitted: 'address-not-permitted',
  /** A path that must be a directory is something else. */
  NotADirectory: 'not-a-directory',
  /** A path that must be a regular file is something else. */
  NotAFile: 'not-a-file',
  /** A file or directory does not exist. */
  FileNotFound: 'file-not-found',
  /** The operating system refused access to a file. */
  FileAccessDenied: 'file-access-denied',
  /** `send-file`: nobody (or not the participant named by `--to`) joined within `--wait-ms`. */
  NoReceiver: 'no-receiver',
} as const;

/** A failure the CLI reports as one line with `code`, exiting with `exitCode`. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code: string;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
  }
}

/** A usage error: exit 2, followed by a pointer to `--help`. */
export function usageError(message: string): CliError {
  return new CliError(CliErrorCode.Usage, message, { exitCode: EXIT_USAGE });
}

/** Node's system error codes the CLI names in its own words (others pass through lower-cased). */
const SYSTEM_ERRORS: Record<string, { code: string; text: string; exitCode?: number }> = {
  EADDRINUSE: { code: CliErrorCode.AddressInUse, text: 'is already in use (choose another port, or stop the process that holds it)', exitCode: EXIT_USAGE },
  EADDRNOTAVAIL: { code: CliErrorCode.AddressNotAvailable, text: 'is not an address of this machine', exitCode: EXIT_USAGE },
  EACCES: { code: CliErrorCode.FileAccessDenied, text: 'permission denied' },
  EPERM: { code: CliErrorCode.FileAccessDenied, text: 'operation not permitted' },
  ENOENT: { code: CliErrorCode.FileNotFound, text: 'no such file or directory' },
  ENOTDIR: { code: CliErrorCode.NotADirectory, text: 'a part of the path is not a directory' },
  EISDIR: { code: CliErrorCode.NotAFile, text: 'is a directory' },
};

interface SystemError {
  code: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
}

/** The string `code` of `e`, if it has one. */
function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isSystemError(e: unknown): e is Error & SystemError {
  return e instanceof Error && /^E[A-Z]+$/.test(codeOf(e) ?? '');
}

/** The code, one-line message and exit code to report for `error`. */
export function describeFailure(error: unknown): { code: string; message: string; exitCode: number } {
  if (error instanceof CliError) return { code: error.code, message: oneLine(error.message, error.code), exitCode: error.exitCode };
  if (error instanceof ConfigError) return { code: error.code, message: oneLine(error.message, error.code), exitCode: EXIT_USAGE };
  if (isSystemError(error)) {
    const known = SYSTEM_ERRORS[error.code];
    if (error.syscall === 'listen') {
      const host = error.address?.includes(':') ? `[${error.address}]` : (error.address ?? '');
      const where = error.port ? `${host}:${error.port}` : host;
      if (error.code === 'EACCES' || error.code === 'EPERM') {
        return { code: CliErrorCode.AddressNotPermitted, message: `${where}: binding this port needs more privileges (use a port above 1023)`, exitCode: EXIT_USAGE };
      }
      if (known) return { code: known.code, message: `${where} ${known.text}`, exitCode: known.exitCode ?? EXIT_FAILURE };
    }
    if (known) return { code: known.code, message: error.path ? `${error.path}: ${known.text}` : oneLine(error.message, error.code), exitCode: known.exitCode ?? EXIT_FAILURE };
    return { code: error.code.toLowerCase(), message: oneLine(error.message, error.code), exitCode: EXIT_FAILURE };
  }
  if (error instanceof Error) {
    const code = codeOf(error) ?? 'error';
    return { code, message: oneLine(error.message, code), exitCode: EXIT_FAILURE };
  }
  return { code: 'error', message: oneLine(String(error), 'error'), exitCode: EXIT_FAILURE };
}

/**
 * `message` on one line, without a leading copy of `code` (Node's messages start with it) and
 * without a part repeated right after itself (an error that wraps another may quote it whole).
 */
export function oneLine(message: string, code: string): string {
  let text = message.replace(/\s*\n\s*/g, ' ').trim();
  if (text.toLowerCase().startsWith(`${code.toLowerCase()}: `)) text = text.slice(code.length + 2);
  const parts = text.split(': ');
  return parts.filter((part, i) => i === 0 || part !== parts[i - 1]).join(': ');
}

/** Prints `error` as the failure of `command` and exits. */
export function exitWithFailure(command: string, error: unknown): never {
  const { code, message, exitCode } = describeFailure(error);
  const help = code === CliErrorCode.Usage ? ` (run backchannel${command ? ` ${command}` : ''} --help for usage)` : '';
  process.stderr.write(`${command ? `backchannel ${command}` : 'backchannel'}: ${code}: ${message}${help}\n`);
  process.exit(exitCode);
}

/** Wraps a command's action so that any failure is reported by {@link exitWithFailure}. */
export function action<A extends unknown[]>(command: string, fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      exitWithFailure(command, error);
    }
  };
}
