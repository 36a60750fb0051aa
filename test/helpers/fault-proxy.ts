/**
 * A fault-injecting TCP proxy for integration tests: it sits between real clients and a real
 * server on 127.0.0.1 and forwards raw bytes, so tests can cut, black-hole, stall or refuse
 * connections the way a network would. It does not parse the traffic.
 */
import net from 'node:net';

/** A running proxy; see {@link startFaultProxy}. */
export interface FaultProxy {
  /** ws://127.0.0.1:<port> of the proxy (clients connect here instead of the server). */
  readonly url: string;
  /** The port the proxy listens on. */
  readonly port: number;
  /** The seed of the PRNG behind {@link FaultProxy.cutOne} and {@link FaultProxy.cutAtRandomOffsets} (pass it back to replay). */
  readonly seed: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Total connections accepted so far (including those refused by {@link FaultProxy.refuseNew}). */
  readonly accepted: number;
  /** Destroys every open connection at once (both sides see a reset/close, like a network cut). Returns how many were cut. */
  cutAll(): number;
  /** Destroys one connection chosen at random (returns false if none open). */
  cutOne(): boolean;
  /**
   * Half-open: from now on, stops forwarding in both directions on every open connection WITHOUT
   * closing either side — bytes are read and discarded, and a close on one side is not passed on
   * to the other, like a dead NAT mapping. New connections are still accepted and forwarded
   * normally unless {@link FaultProxy.refuseNew} is on.
   */
  blackholeAll(): void;
  /** Stalls all forwarding (existing and new connections) for `ms` milliseconds, then resumes and delivers what was held, in order. */
  stall(ms: number): Promise<void>;
  /**
   * Cut-mid-frame mode: each connection (existing and future) is destroyed after forwarding a
   * random number of bytes in [minBytes, maxBytes] counted from when this was called (each
   * direction draws its own budget; whichever direction reaches its budget first cuts the
   * connection), so cuts land at arbitrary byte offsets, including in the middle of a WebSocket
   * frame. The chunk that crosses the budget is split: only the bytes up to the budget are
   * forwarded, and the cut follows once they are flushed. Pass undefined to turn it off.
   */
  cutAtRandomOffsets(range: { minBytes: number; maxBytes: number } | undefined): void;
  /** When true, new connections are accepted and immediately destroyed (server unreachable). */
  refuseNew(refuse: boolean): void;
  /** Stops listening and destroys every connection (pending stalls resolve at once); leaves no handles open. */
  close(): Promise<void>;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Seed of the PRNG that picks cut offsets and the connection {@link FaultProxy.cutOne} cuts (random if omitted). */
  seed?: number;
}

type Direction = 'up' | 'down';

/** One proxied connection: the accepted client socket and the socket to the target. */
interface Conn {
  client: net.Socket;
  upstream: net.Socket;
  /** The target accepted the connection. */
  connected: boolean;
  /** Forwarding stopped for good by {@link FaultProxy.blackholeAll}. */
  blackholed: boolean;
  /** A random-offset cut is flushing its last bytes; everything read now is dropped. */
  cutting: boolean;
  /** Byte budgets of the random-offset mode, per direction (undefined when off). */
  budget: Record<Direction, number> | undefined;
  /** Bytes forwarded per direction since the budget was set. */
  forwarded: Record<Direction, number>;
  /** Resolves once both sockets have closed. */
  closed: Promise<void>;
}

const CUT_FLUSH_TIMEOUT_MS = 250;

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const noop = () => {};

/** Destroys `socket` with a TCP reset where the platform allows it, else with a plain close. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/** Cuts `conn`: resets the client side and destroys the target side. */
function destroyConn(conn: Conn): void {
  reset(conn.client);
  conn.upstream.destroy();
}

/**
 * Starts a proxy on 127.0.0.1 (random free port) that forwards every accepted connection to
 * 127.0.0.1:`targetPort`.
 */
export async function startFaultProxy(targetPort: number, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  const random = mulberry32(seed);
  const randomInt = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));

  const conns = new Set<Conn>();
  const stallTimers = new Map<NodeJS.Timeout, () => void>();
  const cutTimers = new Set<NodeJS.Timeout>();
  let accepted = 0;
  let stalls = 0;
  let refusing = false;
  let cutRange: { minBytes: number; maxBytes: number } | undefined;
  let closing: Promise<void> | undefined;

  const drawBudget = (): Record<Direction, number> | undefined =>
    cutRange && { up: randomInt(cutRange.minBytes, cutRange.maxBytes), down: randomInt(cutRange.minBytes, cutRange.maxBytes) };

  /** Pauses or resumes each side's reading according to the stall, backpressure and fault state. */
  const updateFlow = (conn: Conn) => {
    for (const [src, dest] of [
      [conn.client, conn.upstream],
      [conn.upstream, conn.client],
    ] as const) {
      const discarding = conn.blackholed || conn.cutting;
      const flow = conn.connected && stalls === 0 && (discarding || !dest.writableNeedDrain);
      if (flow) src.resume();
      else src.pause();
    }
  };

  /** Forwards the last bytes within the budget, then cuts once they are flushed (or after a short grace period). */
  const cutAfter = (conn: Conn, dest: net.Socket, last: Buffer) => {
    conn.cutting = true;
    updateFlow(conn);
    const timer = setTimeout(() => cut(), CUT_FLUSH_TIMEOUT_MS).unref();
    cutTimers.add(timer);
    const cut = () => {
      clearTimeout(timer);
      cutTimers.delete(timer);
      conn.client.destroy();
      conn.upstream.destroy();
    };
    if (last.length > 0 && dest.writable) dest.write(last, cut);
    else cut();
  };

  const forward = (conn: Conn, dir: Direction, chunk: Buffer) => {
    if (conn.blackholed || conn.cutting) return;
    const dest = dir === 'up' ? conn.upstream : conn.client;
    if (!dest.writable) return;
    if (conn.budget) {
      const left = conn.budget[dir] - conn.forwarded[dir];
      if (chunk.length >= left) {
        conn.forwarded[dir] += left;
        cutAfter(conn, dest, chunk.subarray(0, left));
        return;
      }
      conn.forwarded[dir] += chunk.length;
    }
    if (!dest.write(chunk)) updateFlow(conn);
  };

  /** Passes an end or close of `src` on to `dest`, unless the connection is black-holed. */
  const propagate = (conn: Conn, src: net.Socket, dest: net.Socket) => {
    src.on('end', () => {
      if (!conn.blackholed) dest.end();
    });
    src.on('close', (hadError) => {
      if (conn.blackholed) return;
      if (hadError || !conn.connected) dest.destroy();
      else dest.end();
    });
  };

  const server = net.createServer((client) => {
    accepted++;
    client.on('error', noop);
    if (refusing || closing) {
      reset(client);
      return;
    }
    client.pause();
    client.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    upstream.pause();
    upstream.on('error', noop);
    upstream.setNoDelay(true);

    const closed = Promise.all([new Promise((r) => client.once('close', r)), new Promise((r) => upstream.once('close', r))]).then(noop);
    const conn: Conn = { client, upstream, connected: false, blackholed: false, cutting: false, budget: drawBudget(), forwarded: { up: 0, down: 0 }, closed };
    conns.add(conn);
    void closed.then(() => conns.delete(conn));

    upstream.once('connect', () => {
      conn.connected = true;
      updateFlow(conn);
    });
    client.on('data', (chunk: Buffer) => forward(conn, 'up', chunk));
    upstream.on('data', (chunk: Buffer) => forward(conn, 'down', chunk));
    client.on('drain', () => updateFlow(conn));
    upstream.on('drain', () => updateFlow(conn));
    propagate(conn, client, upstream);
    propagate(conn, upstream, client);
  });
  server.on('error', noop);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const open = () => [...conns].filter((c) => !(c.client.destroyed && c.upstream.destroyed));

  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    seed,
    get connections() {
      return open().length;
    },
    get accepted() {
      return accepted;
    },
    cutAll() {
      const victims = open();
      for (const conn of victims) destroyConn(conn);
      return victims.length;
    },
    cutOne() {
      const candidates = open();
      if (candidates.length === 0) return false;
      destroyConn(candidates[Math.floor(random() * candidates.length)]!);
      return true;
    },
    blackholeAll() {
      for (const conn of open()) {
        conn.blackholed = true;
        updateFlow(conn);
      }
    },
    stall(ms) {
      stalls++;
      for (const conn of conns) updateFlow(conn);
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          stallTimers.delete(timer);
          stalls--;
          for (const conn of conns) updateFlow(conn);
          resolve();
        };
        const timer = setTimeout(done, ms);
        stallTimers.set(timer, done);
      });
    },
    cutAtRandomOffsets(range) {
      if (range && !(Number.isInteger(range.minBytes) && Number.isInteger(range.maxBytes) && range.minBytes >= 0 && range.minBytes <= range.maxBytes)) {
        throw new RangeError(`invalid byte range ${JSON.stringify(range)}`);
      }
      cutRange = range;
      for (const conn of conns) {
        conn.budget = drawBudget();
        conn.forwarded = { up: 0, down: 0 };
      }
    },
    refuseNew(refuse) {
      refusing = refuse;
    },
    close() {
      closing ??= (async () => {
        const listening = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const done of [...stallTimers.values()]) done();
        for (const timer of cutTimers) clearTimeout(timer);
        cutTimers.clear();
        const all = [...conns];
        for (const conn of all) destroyConn(conn);
        await Promise.all([listening, ...all.map((c) => c.closed)]);
      })();
      return closing;
    },
  };
}
