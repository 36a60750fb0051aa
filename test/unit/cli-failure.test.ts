/** How the CLI turns an error into its one-line report (code, message, exit code). */
import { describe, expect, it } from 'vitest';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { ConfigError } from '@backchannel/server';
import { CliError, describeFailure, EXIT_FAILURE, EXIT_USAGE } from '@backchannel/cli';

/** A Node system error as fs and net raise them. */
function systemError(code: string, message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), { code, ...fields });
}

describe('describeFailure', () => {
  it('names a file error by its path, once, with a CLI code', () => {
    const e = systemError('ENOENT', "ENOENT: no such file or directory, open 'x.pdf'", { syscall: 'open', path: 'x.pdf', errno: -2 });
    expect(describeFailure(e)).toEqual({ code: 'file-not-found', message: 'x.pdf: no such file or directory', exitCode: EXIT_FAILURE });
  });

  it('reports a taken port as address-in-use, a configuration error', () => {
    const e = systemError('EADDRINUSE', 'listen EADDRINUSE: address already in use 127.0.0.1:7800', { syscall: 'listen', address: '127.0.0.1', port: 7800 });
    expect(describeFailure(e)).toMatchObject({ code: 'address-in-use', message: expect.stringMatching(/^127\.0\.0\.1:7800 is already in use/), exitCode: EXIT_USAGE });
  });

  it('does not repeat a message that quotes its own code or a wrapped message', () => {
    expect(describeFailure(new BackchannelError(ErrorCode.ConnectFailed, 'could not connect to ws://h:1: could not connect to ws://h:1')).message).toBe('could not connect to ws://h:1');
    expect(describeFailure(Object.assign(new Error('EPIPE: broken pipe, write'), { code: 'EPIPE' }))).toMatchObject({ code: 'epipe', message: 'broken pipe, write' });
  });

  it('keeps the codes of configuration errors and of the SDKs', () => {
    expect(describeFailure(new ConfigError('setting "port" must be an integer'))).toEqual({ code: 'config-invalid', message: 'setting "port" must be an integer', exitCode: EXIT_USAGE });
    expect(describeFailure(new BackchannelError(ErrorCode.RoomNotFound, 'no room "x"'))).toEqual({ code: 'room-not-found', message: 'no room "x"', exitCode: EXIT_FAILURE });
    expect(describeFailure(new CliError('no-receiver', 'nobody joined within 200 ms'))).toEqual({ code: 'no-receiver', message: 'nobody joined within 200 ms', exitCode: EXIT_FAILURE });
  });
});
