import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { until } from '../helpers/events.js';

/** Adapts a Node emitter to the `on(...) => off` shape the event helpers expect. */
const events = (emitter: NodeJS.EventEmitter) => ({
  on(event: string, listener: (...args: any[]) => unknown) {
    emitter.on(event, listener);
    return () => void emitter.off(event, listener);
  },
});

interface TestServer {
  port: number;
  /** Server-side sockets accepted so far. */
  sockets: net.Socket[];
  /** Emits 'connection' for every accepted socket. */
  server: net.Server;
}

/** A TCP server on 127.0.0.1 running `handler` for each connection (an echo server by default). */
async function startServer(handler: (s: net.Socket) => void = (s) => s.pipe(s)): Promise<TestServer> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    sockets.push(s);
    handler(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as net.AddressInfo).port, sockets, server };
}

interface TestClient {
  socket: net.Socket;
  /** Everything received so far, concatenated. */
  received(): Buffer;
  /** Bytes received so far. */
  length(): number;
  /** Resolves once at least `n` bytes have arrived. */
  receive(n: number): Promise<void>;
  /** Resolves once the socket has closed. */
  closed: Promise<void>;
  isClosed(): boolean;
}

/** Opens a connection to `port` on 127.0.0.1 and records what arrives (without waiting for it to connect). */
function dial(port: number): TestClient {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  cleanups.push(async () => void socket.destroy());
  const chunks: Buffer[] = [];
  let length = 0;
  let isClosed = false;
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    length += c.length;
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  return {
    socket,
    received: () => Buffer.concat(chunks),
    length: () => length,
    receive: (n) => until(events(socket), 'data', () => length >= n, 2_000),
    closed,
    isClosed: () => isClosed,
  };
}

/** Connects to `port` on 127.0.0.1 and records what arrives. */
async function connect(port: number): Promise<TestClient> {
  const c = dial(port);
  await new Promise<void>((resolve, reject) => {
    c.socket.once('connect', resolve);
    c.socket.once('close', () => reject(new Error('closed before connecting')));
  });
  return c;
}

/** Sends `text` and waits until it has come back through the echo server. */
async function roundTrip(c: TestClient, text: string): Promise<void> {
  const before = c.length();
  c.socket.write(text);
  await c.receive(before + text.length);
  expect(c.received().subarray(before).toString()).toBe(text);
}

/** Resolves once `socket` has closed. */
const closeOf = (socket: net.Socket) => (socket.closed ? Promise.resolve() : new Promise<void>((r) => socket.once('close', () => r())));

/** Resolves once `server` has accepted `n` connections in total. */
const accepted = (s: TestServer, n: number) => until(events(s.server), 'connection', () => s.sockets.length >= n, 2_000);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()));
});

async function proxyTo(server: TestServer, seed?: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy(server.port, seed === undefined ? {} : { seed });
  cleanups.push(() => proxy.close());
  return proxy;
}

describe('fault proxy', () => {
  it('forwards bytes both ways exactly, with backpressure', async () => {
    const echo = await startServer();
    const proxy = await proxyTo(echo);
    expect(proxy.url).toBe(`ws://127.0.0.1:${proxy.port}`);
    const c = await connect(proxy.port);
    const payload = randomBytes(1 << 20);
    c.socket.write(payload);
    await c.receive(payload.length);
    expect(c.received().equals(payload)).toBe(true);
    expect(proxy.connections).toBe(1);
    expect(proxy.accepted).toBe(1);

    c.socket.end();
    await c.closed;
    await closeOf(echo.sockets[0]!);
  });

  it('cutAll closes every client and server socket; cutOne closes one', async () => {
    const echo = await startServer();
    const proxy = await proxyTo(echo);
    const a = await connect(proxy.port);
    const b = await connect(proxy.port);
    await roundTrip(a, 'a');
    await roundTrip(b, 'b');

    expect(proxy.cutAll()).toBe(2);
    expect(proxy.connections).toBe(0);
    await Promise.all([a.closed, b.closed, ...echo.sockets.map(closeOf)]);
    expect(proxy.cutAll()).toBe(0);

    const c = await connect(proxy.port);
    const d = await connect(proxy.port);
    await roundTrip(c, 'c');
    await roundTrip(d, 'd');
    expect(proxy.cutOne()).toBe(true);
    await Promise.race([c.closed, d.closed]);
    const survivor = c.isClosed() ? d : c;
    await roundTrip(survivor, 'still here');
    expect(proxy.connections).toBe(1);
    expect(proxy.cutOne()).toBe(true);
    await survivor.closed;
    expect(proxy.cutOne()).toBe(false);
    expect(proxy.accepted).toBe(4);
  });

  it('blackholeAll stops forwarding without closing either side; new connections still work', async () => {
    const echo = await startServer();
    const proxy = await proxyTo(echo);
    const c = await connect(proxy.port);
    await roundTrip(c, 'hello');

    proxy.blackholeAll();
    c.socket.write('lost');
    // Absence of data is what is tested here, so this one waits on a timer.
    await new Promise((r) => setTimeout(r, 300));
    expect(c.length()).toBe('hello'.length);
    expect(c.isClosed()).toBe(false);
    expect(echo.sockets[0]!.destroyed).toBe(false);
    expect(proxy.connections).toBe(1);

    const fresh = await connect(proxy.port);
    await roundTrip(fresh, 'fresh');
    expect(proxy.connections).toBe(2);
  });

  it('stall holds data for the given time, then delivers it in order', async () => {
    const echo = await startServer();
    const proxy = await proxyTo(echo);
    const c = await connect(proxy.port);
    await roundTrip(c, 'ready');

    const start = performance.now();
    const stalled = proxy.stall(200);
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
    for (const line of lines) c.socket.write(line);
    const late = await connect(proxy.port); // a connection opened during the stall is held too
    late.socket.write('late');
    const expected = 'ready' + lines.join('');
    await c.receive(expected.length);
    await late.receive(4);
    const elapsed = performance.now() - start;
    await stalled;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(c.received().toString()).toBe(expected);
    expect(late.received().toString()).toBe('late');
  });

  it('cutAtRandomOffsets cuts each connection after a byte count within the range', async () => {
    const range = { minBytes: 1_000, maxBytes: 5_000 };
    const download = randomBytes(64 * 1024);
    const source = await startServer((s) => s.write(download));
    const proxy = await proxyTo(source, 42);
    expect(proxy.seed).toBe(42);
    proxy.cutAtRandomOffsets(range);

    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(proxy.port)));
    await Promise.all(clients.map((c) => c.closed));
    const counts = clients.map((c) => c.length());
    for (const c of clients) {
      expect(c.length()).toBeGreaterThanOrEqual(range.minBytes);
      expect(c.length()).toBeLessThanOrEqual(range.maxBytes);
      expect(c.received().equals(download.subarray(0, c.length()))).toBe(true);
    }
    expect(new Set(counts).size).toBeGreaterThan(1);

    // Echoed traffic: at most maxBytes comes back, and what does is an exact prefix.
    const echo = await startServer();
    const echoProxy = await proxyTo(echo, 7);
    const early = await connect(echoProxy.port); // open before the mode is turned on
    echoProxy.cutAtRandomOffsets(range);
    const later = await connect(echoProxy.port);
    for (const c of [early, later]) {
      const payload = randomBytes(64 * 1024);
      c.socket.write(payload);
      await c.closed;
      expect(c.length()).toBeLessThanOrEqual(range.maxBytes);
      expect(c.received().equals(payload.subarray(0, c.length()))).toBe(true);
    }

    echoProxy.cutAtRandomOffsets(undefined);
    const free = await connect(echoProxy.port);
    const big = randomBytes(32 * 1024);
    free.socket.write(big);
    await free.receive(big.length);
    expect(free.received().equals(big)).toBe(true);
    expect(() => echoProxy.cutAtRandomOffsets({ minBytes: 10, maxBytes: 5 })).toThrow(RangeError);
  });

  it('refuseNew closes new connections at once, and close() stops everything', async () => {
    const echo = await startServer();
    const proxy = await proxyTo(echo);
    const open = await connect(proxy.port);
    await roundTrip(open, 'before');

    proxy.refuseNew(true);
    const refused = dial(proxy.port); // the reset may even beat the client's connect callback
    await refused.closed;
    expect(refused.length()).toBe(0);
    expect(proxy.accepted).toBe(2);
    expect(echo.sockets.length).toBe(1);
    await roundTrip(open, 'existing ones keep working');

    proxy.refuseNew(false);
    const again = await connect(proxy.port);
    await roundTrip(again, 'back');
    await accepted(echo, 2);

    await proxy.close();
    await Promise.all([open.closed, again.closed, ...echo.sockets.map(closeOf)]);
    expect(proxy.connections).toBe(0);
    await expect(connect(proxy.port)).rejects.toThrow();
  });
});
