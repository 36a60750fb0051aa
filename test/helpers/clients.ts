/** Client helpers for data-session tests. */
import WebSocket from 'ws';
import { Client, type ClientOptions, type WebSocketConstructor } from '@backchannel/client';
import type { ServerProcess } from './server.js';

/** A connected client whose socket reading can be paused (to play a slow receiver). */
export interface PausableClient {
  client: Client;
  /** Stops reading from the socket: data piles up in the server. */
  pause(): void;
  resume(): void;
}

export async function connectPausable(server: ServerProcess, userId: string, options: ClientOptions = {}): Promise<PausableClient> {
  let socket: WebSocket | undefined;
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url);
      socket = this;
    }
  }
  const client = await Client.connect(server.url, await server.token(userId), { ...options, WebSocket: Recording as unknown as WebSocketConstructor });
  return { client, pause: () => socket!.pause(), resume: () => socket!.resume() };
}

/** Connects `users` and joins them all to `room`, in order. */
export async function roomOf(server: ServerProcess, room: string, users: string[], options: ClientOptions = {}) {
  const clients = [];
  for (const u of users) {
    const client = await Client.connect(server.url, await server.token(u), options);
    clients.push({ client, room: await client.joinConference(room) });
  }
  return clients;
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);
export const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** A receiver running in its own process (see receiver-proc.mjs). */
export async function spawnReceiver(server: ServerProcess, userId: string, room: string, streamId: number, count: number, size: number) {
  const { spawn } = await import('node:child_process');
  const { createInterface } = await import('node:readline');
  const script = new URL('./receiver-proc.mjs', import.meta.url).pathname;
  const proc = spawn(process.execPath, [script, server.url, await server.token(userId), room, String(streamId), String(count), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const ready = new Promise<string>((resolve, reject) => {
    lines.on('line', (l) => {
      const m = JSON.parse(l) as { ready?: string };
      if (m.ready) resolve(m.ready);
    });
    proc.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
  });
  const done = new Promise<number>((resolve, reject) => {
    lines.on('line', (l) => {
      const m = JSON.parse(l) as { done?: number; error?: string };
      if (m.done) resolve(m.done);
      if (m.error) reject(new Error(m.error));
    });
    // A receiver that ended without reporting `done` fails the wait instead of leaving it hanging.
    proc.once('exit', (code, signal) => reject(new Error(`receiver ${userId} exited (${signal ?? code}) after ${received} of ${count} messages`)));
  });
  done.catch(() => undefined); // a test that kills its receiver need not await this
  // Messages the receiver has handled, as it reports them (every 16 and at the end).
  let received = 0;
  const waiters = new Set<() => void>();
  lines.on('line', (l) => {
    const m = JSON.parse(l) as { progress?: number; done?: number };
    received = Math.max(received, m.progress ?? m.done ?? 0);
    for (const w of [...waiters]) w();
  });
  /** Resolves once the receiver has handled at least `n` messages. */
  const handled = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (received < n) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return { participantId: await ready, done, handled, kill: () => proc.kill() };
}
