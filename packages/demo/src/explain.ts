/** Turns SDK errors and end reasons into sentences a person can act on. */
import { BackchannelError } from '@backchannel/client';

/** A failure as the page shows it: a headline, the SDK's own message, and its stable code. */
export interface Explained {
  title: string;
  detail: string;
  code: string;
}

const TITLES: Record<string, string> = {
  'token-missing': 'No access token',
  'token-malformed': 'The server refused the access token: it is not a token',
  'token-expired': 'The server refused the access token: it has expired',
  'token-not-yet-valid': 'The server refused the access token: it is not valid yet',
  'token-bad-signature': 'The server refused the access token: its signature does not match',
  'token-unknown-key': 'The server refused the access token: it was signed with an API key this server does not know',
  'token-invalid-claims': 'The server refused the access token: its claims are invalid',
  'permission-denied': 'Not allowed by this access token',
  'room-full': 'The room is full',
  'connect-failed': 'Cannot reach the server',
  'protocol-version-unsupported': 'This page and the server speak different protocol versions',
  'rate-limited': 'Too many requests',
  'not-found': 'The demo is not available on this server',
  'connection-lost': 'The connection to the server was lost',
  'server-shutdown': 'The server shut down',
  'cluster-unavailable': 'The server cannot reach its cluster right now; try again',
  'request-timeout': 'The server did not answer in time',
};

/** Explains any error thrown by the SDK, the token endpoint or the network. */
export function explain(error: unknown): Explained {
  if (error instanceof BackchannelError || (error instanceof Error && typeof (error as { code?: unknown }).code === 'string')) {
    const code = (error as Error & { code: string }).code;
    return { title: TITLES[code] ?? 'Something went wrong', detail: error.message, code };
  }
  if (error instanceof Error) return { title: 'Something went wrong', detail: error.message, code: 'error' };
  return { title: 'Something went wrong', detail: String(error), code: 'error' };
}

/** Why a call ended, in words (codes from docs/errors.md). */
export function callEndText(code: string): string {
  switch (code) {
    case 'normal':
      return 'hung up';
    case 'declined':
      return 'declined';
    case 'busy':
      return 'busy (already in a call)';
    case 'no-answer':
      return 'no answer';
    case 'cancelled':
      return 'cancelled by the caller';
    case 'connection-lost':
      return 'connection lost';
    case 'ended-by-server':
      return 'ended by the server';
    case 'server-shutdown':
      return 'the server shut down';
    default:
      return code;
  }
}
