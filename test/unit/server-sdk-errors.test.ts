/** Every failure of the server SDK is a BackchannelError with a documented code (no TypeErrors). */
import { describe, expect, it } from 'vitest';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { ServerApiClient, createAccessToken, formatRoomId, parseRoomId, resolveGrants, signWebhook, verifyWebhook } from '@backchannel/server-sdk';

/** What `fn` threw or rejected with. */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

const invalid = (field: string) => ({ code: ErrorCode.InvalidArgument, details: { field } });
const key = { apiKey: 'k', apiSecret: 'secret-123456' };

describe('server SDK errors', () => {
  it('createAccessToken rejects bad options with invalid-argument naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...key, apiKey: '', userId: 'u' }, 'apiKey'],
      [{ ...key, apiSecret: undefined, userId: 'u' }, 'apiSecret'],
      [{ ...key, userId: '' }, 'userId'],
      [{ ...key, userId: 'x'.repeat(257) }, 'userId'],
      [{ ...key, userId: 'u', ttl: 'soon' }, 'ttl'],
      [{ ...key, userId: 'u', ttl: Number.NaN }, 'ttl'],
      [{ ...key, userId: 'u', grants: { calls: 'yes' } }, 'grants.calls'],
      [{ ...key, userId: 'u', grants: { conferences: 'all' } }, 'grants.conferences'],
      [{ ...key, userId: 'u', grants: { streamIds: [0] } }, 'grants.streamIds'],
      [{ ...key, userId: 'u', grants: [] }, 'grants'],
    ];
    for (const [options, field] of cases) {
      const error = await failure(() => createAccessToken(options as never));
      expect(error, field).toBeInstanceOf(BackchannelError);
      expect(error, field).toMatchObject(invalid(field));
    }
    expect(() => resolveGrants({ admin: 1 })).toThrow(BackchannelError);
  });

  it('ServerApiClient, signWebhook and verifyWebhook refuse missing options with invalid-argument', async () => {
    expect(await failure(() => new ServerApiClient('ftp://x', key))).toMatchObject(invalid('url'));
    expect(await failure(() => new ServerApiClient('http://x', { apiKey: 'k' } as never))).toMatchObject(invalid('apiSecret'));
    expect(await failure(() => new ServerApiClient('http://x', { apiKey: '', apiSecret: 's' }))).toMatchObject(invalid('apiKey'));
    expect(await failure(() => signWebhook('', 1, 'body'))).toMatchObject(invalid('apiSecret'));
    expect(await failure(() => verifyWebhook('body', {}, {} as never))).toMatchObject(invalid('apiSecret'));
    const api = new ServerApiClient('http://127.0.0.1:1', key);
    expect(await failure(() => api.listParticipants(''))).toMatchObject({ code: ErrorCode.InvalidArgument });
  });

  it('room ids: the text alone says whether a conference or a call is meant', () => {
    expect(parseRoomId('standup')).toEqual({ kind: 'conference', name: 'standup' });
    expect(parseRoomId('CA_0123456789abcdef')).toEqual({ kind: 'call', name: 'CA_0123456789abcdef' });
    expect(parseRoomId('conference:CA_0123456789abcdef')).toEqual({ kind: 'conference', name: 'CA_0123456789abcdef' });
    expect(parseRoomId('call:CA_x')).toEqual({ kind: 'call', name: 'CA_x' });
    expect(parseRoomId('conference:call:x')).toEqual({ kind: 'conference', name: 'call:x' });
    for (const room of [{ kind: 'conference', name: 'CA_x' }, { kind: 'call', name: 'CA_y' }, { kind: 'conference', name: 'a:b' }] as const) {
      expect(parseRoomId(formatRoomId(room))).toEqual(room);
    }
  });
});
