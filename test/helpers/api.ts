/** Helpers for server-API and webhook tests: raw HTTP calls, data receivers, a webhook receiver. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RoomBase } from '@backchannel/client';

/** A raw server-API call; resolves with status, headers and parsed JSON body. */
export async function http(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; authorization?: string; body?: unknown; rawBody?: string } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.authorization) headers.authorization = options.authorization;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${baseUrl}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** One message a receiver got. */
export interface Got {
  text: string;
  bytes: Uint8Array;
  from: string;
  seq: number;
  mode: string;
}

/** Receives `streamId` in `room`, recording every message; `until(n)` waits for n of them. */
export async function receiver(room: RoomBase, streamId: number) {
  const got: Got[] = [];
  const waiters = new Set<() => void>();
  await room.makeRecvDataSession(streamId, (data, info) => {
    got.push({ text: new TextDecoder().decode(data), bytes: data, from: info.from, seq: info.seq, mode: info.mode });
    for (const w of waiters) w();
  });
  const until = (n: number, timeoutMs = 10_000) =>
    new Promise<Got[]>((resolve, reject) => {
      if (got.length >= n) return resolve(got);
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${n} message(s) on stream ${streamId} (got ${got.length})`));
      }, timeoutMs);
      const check = () => {
        if (got.length < n) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(got);
      };
      waiters.add(check);
    });
  return { got, until };
}

/** One request the webhook receiver got. */
export interface Delivery {
  body: string;
  headers: IncomingMessage['headers'];
  at: number;
}

/**
 * A real HTTP webhook receiver on 127.0.0.1. `respond` decides each answer (default 200); it may
 * hold the response open to play a slow endpoint.
 */
export async function webhookReceiver(respond: (d: Delivery, res: ServerResponse) => void = (_d, res) => res.writeHead(200).end()) {
  const deliveries: Delivery[] = [];
  const waiters = new Set<() => void>();
  let handler = respond;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const d = { body: Buffer.concat(chunks).toString('utf8'), headers: req.headers, at: Date.now() };
      deliveries.push(d);
      handler(d, res);
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return {
    url,
    deliveries,
    /** Replaces the answer policy. */
    respondWith(fn: typeof respond) {
      handler = fn;
    },
    /** Resolves once `predicate(deliveries)` holds, re-checked on each delivery. */
    until(predicate: (d: Delivery[]) => boolean, timeoutMs = 10_000): Promise<void> {
      return new Promise((resolve, reject) => {
        if (predicate(deliveries)) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for webhook deliveries (got ${deliveries.length})`));
        }, timeoutMs);
        const check = () => {
          if (!predicate(deliveries)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    close(): Promise<void> {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A free TCP port on 127.0.0.1 (for a child process that must listen where a URL already points). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Resolves with the first JSON log line of `server` matching `predicate`, waiting for more output if needed. */
export function untilLog(
  server: { logs: Record<string, unknown>[]; proc: { stdout: NodeJS.ReadableStream | null } },
  predicate: (line: Record<string, unknown>) => boolean,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const stdout = server.proc.stdout!;
    const done = () => {
      clearTimeout(timer);
      stdout.off('data', onData);
      stdout.off('end', onData);
    };
    const check = () => {
      const hit = server.logs.find(predicate);
      if (!hit) return;
      done();
      resolve(hit);
    };
    // The harness parses each chunk in its own listener; look once that has run.
    const onData = () => setImmediate(check);
    const timer = setTimeout(() => {
      done();
      reject(new Error('timed out waiting for a matching server log line'));
    }, timeoutMs);
    stdout.on('data', onData);
    stdout.on('end', onData);
    check();
  });
}
