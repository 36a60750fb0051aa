/** A raw protocol client for tests that need to send what the SDK never would. */
import WebSocket from 'ws';
import { decodeFrame, encodeControlFrame, FrameKind, PROTOCOL_VERSION, type ServerMessage } from '@backchannel/protocol';

export interface RawClient {
  ws: WebSocket;
  messages: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
  send(msg: Record<string, unknown>): void;
  sendBytes(bytes: Uint8Array | string): void;
  /** Resolves with the first received control message matching `pred` (past or future). */
  waitFor(pred: (m: ServerMessage) => boolean, timeoutMs?: number): Promise<ServerMessage>;
  hello(token: string, protocol?: number): Promise<ServerMessage>;
}

/** Opens a raw WebSocket to `url`, offering `protocols` (subprotocols, e.g. early frames) if given. */
export async function rawConnect(url: string, protocols?: string[]): Promise<RawClient> {
  const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
  const messages: ServerMessage[] = [];
  const waiters = new Set<() => void>();
  // Listening from the start: frames may come with the upgrade's response.
  ws.on('message', (data: Buffer) => {
    const f = decodeFrame(new Uint8Array(data));
    if (f.kind !== FrameKind.Control) return;
    messages.push(JSON.parse(new TextDecoder().decode(f.body)) as ServerMessage);
    for (const w of [...waiters]) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const client: RawClient = {
    ws,
    messages,
    closed,
    send: (msg) => ws.send(encodeControlFrame(JSON.stringify(msg))),
    sendBytes: (bytes) => ws.send(bytes),
    waitFor: (pred, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = messages.find(pred);
          if (!m) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching message; got ${JSON.stringify(messages)}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      }),
    hello: (token, protocol = PROTOCOL_VERSION) => {
      client.send({ t: 'hello', id: 1, token, protocol, capabilities: { protocol, dataSession: true } });
      return client.waitFor((m) => 're' in m && m.re === 1);
    },
  };
  return client;
}
