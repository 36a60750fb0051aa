/** Connecting the client commands: a token (given, or minted with the API key) and a conference. */
import { Client, type Conference } from '@backchannel/client';
import { createAccessToken } from '@backchannel/server-sdk';
import type { ClientOptions } from './options.js';

/** Connects to `o.server` and joins `conference`; closes the connection again if the join fails. */
export async function joinFromCli(o: ClientOptions, conference: string): Promise<{ client: Client; room: Conference }> {
  const token =
    o.token ??
    (await createAccessToken({
      apiKey: o.apiKey,
      apiSecret: o.apiSecret,
      userId: o.user ?? `cli-${Math.random().toString(36).slice(2, 8)}`,
      ...(o.name ? { name: o.name } : {}),
      grants: { conferences: [conference] },
    }));
  const client = await Client.connect(o.server, token);
  try {
    const room = await client.joinConference(conference, o.name ? { displayName: o.name } : {});
    return { client, room };
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
}

/** Display name of participant `id` in `room` (the id if it is unknown). */
export function displayName(room: Conference, id: string): string {
  return room.participants.get(id)?.displayName ?? id;
}
