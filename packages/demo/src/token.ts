/** Access tokens for the demo: from the server's demo endpoint, or one the user pastes. */

/** What `POST /demo/token` answers (docs/demo.md). */
export interface DemoToken {
  token: string;
  userId: string;
  displayName: string;
  /** Conference names this token may join: `*` for any, `demo-*` for names starting with `demo-`. */
  conferences: string[];
  expiresAt: number;
}

/** An error answered by the server (`{ code, message }`), with the stable code. */
export class EndpointError extends Error {
  override readonly name = 'EndpointError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Asks this server for a demo token for a new user. Rejects with an {@link EndpointError}. */
export function fetchDemoToken(displayName: string): Promise<DemoToken> {
  return post({ displayName });
}

/** Renews a demo token that has not expired yet: same user, new expiry. */
export function renewDemoToken(token: string): Promise<DemoToken> {
  return post({ token });
}

async function post(body: { displayName: string } | { token: string }): Promise<DemoToken> {
  let res: Response;
  try {
    res = await fetch('/demo/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (error) {
    throw new EndpointError('connect-failed', `the token request did not reach the server (${(error as Error).message})`);
  }
  const answer = (await res.json().catch(() => undefined)) as (Partial<DemoToken> & { code?: string; message?: string }) | undefined;
  if (!res.ok || !answer?.token) throw new EndpointError(answer?.code ?? `http-${res.status}`, answer?.message ?? `the token endpoint answered ${res.status}`);
  return answer as DemoToken;
}

/** Whether `room` is a conference name `patterns` allow (exact names, `prefix*`, or `*`). */
export function allowedRoom(patterns: readonly string[], room: string): boolean {
  return patterns.some((p) => p === '*' || p === room || (p.endsWith('*') && room.startsWith(p.slice(0, -1))));
}
